"""labelless.fit: the model factory, the training loop (best validation epoch kept), prediction, accuracy."""

import argparse
import dataclasses

import numpy as np
import pytest
import torch
from conftest import make_reviews

from labelless.fit import (BAG_TRAIN, BagAlone, ModelSettings, TrainSettings, accuracy, encoder_logits, evaluate, fit,
                           mean_probs, new_model, predict_logits, warmup_linear_decay, with_bag)


class Fixed(torch.nn.Module):
    """A model whose logits are given, row k for the review whose first token is k + 1: ``predict_logits``
    only needs config, forward and train."""

    def __init__(self, logits):
        super().__init__()
        self.logits = torch.tensor(logits)
        self.config = argparse.Namespace(num_labels=2, pad_token_id=0)
        self.anchor = torch.nn.Parameter(torch.zeros(()))  # gives the model a device

    def forward(self, input_ids, attention_mask=None):
        return argparse.Namespace(logits=self.logits[input_ids[:, 0] - 1])


def test_new_model_is_the_seeds_and_the_settings():
    settings = ModelSettings("tiny", vocab_size=40, max_len=24, pad_token_id=0, dropout=0.3)
    a, b, c = new_model(settings, 1), new_model(settings, 1), new_model(settings, 2)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not torch.equal(a.tok_emb.weight, c.tok_emb.weight)
    assert (a.config.vocab_size, a.config.max_len, a.config.dropout, a.config.n_layer) == (40, 24, 0.3, 1)


def test_fit_learns_and_keeps_the_best_validation_epoch(tiny_model_and_tokenizer, monkeypatch):
    model, tok = tiny_model_and_tokenizer
    texts, labels = make_reviews(64, 0)
    ids = [np.array(tok(t, truncation=True)["input_ids"]) for t in texts]
    y = torch.tensor(labels)
    scores = iter([0.6, 0.9, 0.7])  # validation says the second epoch is best
    states = []

    def fake_evaluate(m, *args, **kwargs):
        states.append({k: v.clone() for k, v in m.state_dict().items()})
        return next(scores)

    monkeypatch.setattr("labelless.fit.evaluate", fake_evaluate)
    history = fit(model, ids, lambda logits, idx: torch.nn.functional.cross_entropy(logits, y[idx]),
                  TrainSettings(epochs=3, lr=1e-2, batch_size=8, progress=False), seed=0, val=([], []))
    assert history["best_epoch"] == 2 and history["val_acc"] == [0.6, 0.9, 0.7]
    assert history["train_loss"][-1] < history["train_loss"][0]
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, states[1][k], msg=k)


def test_fit_is_reproducible_from_its_seed(tiny_model_and_tokenizer):
    model, tok = tiny_model_and_tokenizer
    texts, labels = make_reviews(32, 1)
    ids = [np.array(tok(t, truncation=True)["input_ids"]) for t in texts]
    y = torch.tensor(labels)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    runs = []
    for _ in range(2):
        model.load_state_dict(start)
        fit(model, ids, lambda logits, idx: torch.nn.functional.cross_entropy(logits, y[idx]),
            TrainSettings(epochs=2, lr=1e-2, batch_size=8, progress=False), seed=3)
        runs.append({k: v.clone() for k, v in model.state_dict().items()})
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in start)


def test_one_cycle_schedule():
    f = warmup_linear_decay(100)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(55) == pytest.approx(0.5) and f(100) == 0.0


def test_predictions_keep_the_order_of_the_reviews():
    model = Fixed([[0.0, 1.0], [2.0, 0.0], [0.0, 3.0]])
    ids = [[3, 9, 9, 9], [1], [2, 9]]  # lengths differ: batches are sorted by length inside
    np.testing.assert_array_equal(predict_logits(model, ids, batch_size=2), [[0, 3], [0, 1], [2, 0]])
    assert evaluate(model, ids, [1, 1, 0]) == 1.0 and evaluate(model, ids, [0, 0, 0]) == pytest.approx(1 / 3)


def test_prediction_releases_the_heap_every_few_batches(monkeypatch):
    """Batches in ascending length leave holes a longer batch cannot reuse: trimmed every ``TRIM_EVERY``
    batches, a rank's memory is a few batches', not the pool's."""
    import labelless.fit

    calls = []
    monkeypatch.setattr(labelless.fit, "release_heap", lambda: calls.append(1))
    monkeypatch.setattr(labelless.fit, "TRIM_EVERY", 2)
    predict_logits(Fixed([[0.0, 1.0]] * 3), [[1], [2, 9], [3, 9, 9]] * 2, batch_size=1)
    assert len(calls) == 3


def test_mean_probs_average_probabilities_not_logits():
    ids = [[1], [2]]
    a, b = Fixed([[0.0, 0.0], [np.log(9), 0.0]]), Fixed([[np.log(3), 0.0], [0.0, 0.0]])
    # Probabilities (0.5, 0.5) and (0.75, 0.25) average to (0.625, 0.375); (0.9, 0.1) and (0.5, 0.5) to (0.7, 0.3).
    np.testing.assert_allclose(mean_probs([a, b], ids), [[0.625, 0.375], [0.7, 0.3]], rtol=1e-6)
    np.testing.assert_allclose(mean_probs([a], ids), [[0.5, 0.5], [0.9, 0.1]], rtol=1e-6)


def test_accuracy_of_scores():
    assert accuracy([[0.2, 0.8], [0.9, 0.1], [0.5, 0.5]], [1, 0, 0]) == 1.0  # a tie goes to class 0
    assert accuracy(np.array([[1.0, -1.0]]), [1]) == 0.0


def test_with_bag_fits_the_bag_alone_beside_an_unchanged_encoder(tiny_model_and_tokenizer):
    model, tok = tiny_model_and_tokenizer
    texts, labels = make_reviews(64, 0)
    ids = [np.array(tok(t, truncation=True)["input_ids"]) for t in texts]
    hybrid = with_bag(model, ids, labels, seed=0)
    assert hybrid is not model and hybrid.config.bag_dim > 0 and model.bag is None
    assert all(torch.equal(hybrid.state_dict()[k], v) for k, v in model.state_dict().items())
    bag_alone = predict_logits(BagAlone(hybrid), ids)
    assert accuracy(bag_alone, labels) >= 0.9  # the reviews are learnable from their words
    np.testing.assert_array_equal(encoder_logits(hybrid, ids), predict_logits(model, ids))  # exactly the encoder's
    assert hybrid.bag is not None
    again = with_bag(model, ids, labels, seed=0)
    assert all(torch.equal(p, q) for p, q in zip(hybrid.parameters(), again.parameters()))
    shorter = with_bag(model, ids, labels, seed=0, train=dataclasses.replace(BAG_TRAIN, epochs=1))
    assert not torch.equal(shorter.bag.head.weight, hybrid.bag.head.weight)  # the bag's fit follows ``train``
