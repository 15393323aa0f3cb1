"""labelless.distill: the loss, and distilling an ensemble on the pool with revealed labels only."""

import numpy as np
import torch
import torch.nn.functional as F
from conftest import make_reviews

from labelless.data import Reviews
from labelless.distill import DistillSettings, distil, distil_ensemble, distillation_loss
from labelless.fit import ModelSettings, TrainSettings, new_model


def test_alpha_0_is_cross_entropy():
    torch.manual_seed(0)
    s, t, y = torch.randn(8, 2), torch.randn(8, 2), torch.randint(0, 2, (8,))
    loss = distillation_loss(s, t, y, torch.ones(8, dtype=torch.bool), temperature=3.0, alpha=0.0)
    torch.testing.assert_close(loss, F.cross_entropy(s, y))


def test_hard_term_uses_revealed_rows_only():
    torch.manual_seed(0)
    s, t, y = torch.randn(8, 2), torch.randn(8, 2), torch.randint(0, 2, (8,))
    revealed = torch.tensor([1, 1, 0, 0, 1, 0, 0, 0], dtype=torch.bool)
    loss = distillation_loss(s, t, y, revealed, 2.0, alpha=0.0)
    torch.testing.assert_close(loss, F.cross_entropy(s[revealed], y[revealed]))
    flipped = torch.where(revealed, y, 1 - y)  # hidden labels changed: same loss
    torch.testing.assert_close(distillation_loss(s, t, flipped, revealed, 2.0, 0.5),
                               distillation_loss(s, t, y, revealed, 2.0, 0.5))
    none = torch.zeros(8, dtype=torch.bool)
    assert distillation_loss(s, t, y, none, 2.0, 0.0).item() == 0.0


def test_matching_teacher_gives_zero_soft_loss():
    t = torch.randn(16, 2)
    loss = distillation_loss(t.clone(), t, torch.zeros(16, dtype=torch.long), torch.ones(16, dtype=torch.bool),
                             temperature=4.0, alpha=1.0)
    assert abs(loss.item()) < 1e-6
    assert distillation_loss(t + torch.randn(16, 2), t, torch.zeros(16, dtype=torch.long),
                             torch.ones(16, dtype=torch.bool), 4.0, 1.0).item() > 1e-3


def test_t_squared_keeps_gradient_scale_across_temperatures():
    torch.manual_seed(0)
    t = torch.randn(256, 2) * 0.5  # logit gaps small next to T: the regime of Hinton et al.'s argument
    base = torch.randn(256, 2) * 0.5
    norms = {}
    for T in (2.0, 5.0, 10.0):
        s = base.clone().requires_grad_(True)
        distillation_loss(s, t, torch.zeros(256, dtype=torch.long), torch.ones(256, dtype=torch.bool),
                          T, 1.0).backward()
        norms[T] = s.grad.norm().item()
    assert max(norms.values()) / min(norms.values()) < 1.5
    # Without T^2 the gradient would shrink by about 1/T^2: 25x between T=2 and T=10.


def test_distil_ensemble_reads_the_revealed_labels_only_and_the_teachers_mean(tiny_model_and_tokenizer, monkeypatch):
    _, tok = tiny_model_and_tokenizer
    texts, labels = make_reviews(40, 0)
    pool = Reviews(np.arange(40), [np.array(tok(t, truncation=True)["input_ids"]) for t in texts], np.array(labels))
    settings = ModelSettings("tiny", len(tok), 32, tok.pad_token_id, 0.1)
    teachers = [new_model(settings, s).eval() for s in (1, 2)]
    seen = {}

    def recording(model, ids, teacher_logits, labels, distill, train, seed, val=None, desc="", **kwargs):
        seen.update(ids=ids, logits=teacher_logits, labels=np.asarray(labels), seed=seed)
        return {"val_acc": [0.5]}

    monkeypatch.setattr("labelless.distill.distil", recording)
    labeled = np.array([0, 5, 30])
    model, _ = distil_ensemble(teachers, pool, labeled, pool, settings, TrainSettings(1, 1e-3, 8, False), seed=7)
    assert len(seen["ids"]) == 40 and all(a is b for a, b in zip(seen["ids"], pool.ids)) and seen["seed"] == 7
    assert (seen["labels"][labeled] == pool.labels[labeled]).all() and (np.delete(seen["labels"], labeled) == -1).all()
    with torch.no_grad():
        probs = [torch.softmax(t(torch.tensor(pool.ids[3][None])).logits, -1) for t in teachers]
    np.testing.assert_allclose(np.exp(seen["logits"][3]), (probs[0] + probs[1])[0].numpy() / 2, rtol=1e-5)
    fresh = new_model(settings, 7)  # a fresh model from the distillation's seed, not a copy of a teacher
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), fresh.parameters()))


def test_distil_ensemble_adds_the_unlabeled_reviews_to_the_transfer_set_without_labels(tiny_model_and_tokenizer,
                                                                                      monkeypatch):
    _, tok = tiny_model_and_tokenizer
    texts, labels = make_reviews(20, 0)
    encoded = [np.array(tok(t, truncation=True)["input_ids"]) for t in texts]
    pool = Reviews(np.arange(12), encoded[:12], np.array(labels[:12]))
    unlabeled = Reviews(np.arange(8), encoded[12:], np.full(8, -1))
    settings = ModelSettings("tiny", len(tok), 32, tok.pad_token_id, 0.1)
    seen = {}

    def recording(model, ids, teacher_logits, labels, distill, train, seed, val=None, desc="", **kwargs):
        seen.update(ids=ids, logits=teacher_logits, labels=np.asarray(labels))
        return {"val_acc": [0.5]}

    monkeypatch.setattr("labelless.distill.distil", recording)
    distil_ensemble([new_model(settings, 1).eval()], pool, np.array([0, 11]), pool, settings,
                    TrainSettings(1, 1e-3, 8, False), seed=7, unlabeled=unlabeled)
    assert len(seen["ids"]) == len(seen["logits"]) == 20 and seen["ids"][12] is unlabeled.ids[0]
    assert np.flatnonzero(seen["labels"] >= 0).tolist() == [0, 11]  # the unlabeled reviews have no label


def test_a_student_with_ngram_embeddings_distils(tiny_model_and_tokenizer):
    _, tok = tiny_model_and_tokenizer
    texts, labels = make_reviews(40, 0)
    ids = [np.array(tok(t, truncation=True)["input_ids"]) for t in texts]
    teacher_logits = np.where(np.array(labels)[:, None] == 1, [[-2.0, 2.0]], [[2.0, -2.0]]).astype(np.float32)
    student = new_model(ModelSettings("tiny", len(tok), 32, tok.pad_token_id, 0.0, ngram_buckets=101), seed=1)
    before = student.ngram_emb.weight.detach().clone()
    history = distil(student, ids, teacher_logits, np.full(40, -1), DistillSettings(), TrainSettings(3, 1e-2, 8, False),
                     seed=1, val=(ids, np.array(labels)))
    assert not torch.equal(before, student.ngram_emb.weight)  # the n-gram table learns from the soft labels
    assert history["val_acc"][-1] > 0.9
