import argparse
import copy
import json

import numpy as np
import pytest
import torch

import common
import training


# --- strategies on hand-made probabilities ----------------------------------------------------

PROBS = np.array([[0.5, 0.5], [0.9, 0.1], [0.6, 0.4], [0.01, 0.99]])


@pytest.mark.parametrize("fn", [training.least_confidence, training.margin, training.entropy])
def test_uncertainty_scores_rank_the_least_sure_first(fn):
    assert np.argsort(-fn(PROBS)).tolist() == [0, 2, 1, 3]


def test_label_savings():
    summary = {"random": {"labels_used": [100, 200, 300, 400], "mean": [0.6, 0.7, 0.75, 0.8]},
               "margin": {"labels_used": [100, 200, 300, 400], "mean": [0.6, 0.78, 0.81, 0.83]}}
    assert training.label_savings(summary, "margin") == pytest.approx(300 / 400)
    summary["margin"]["mean"] = [0.6, 0.7, 0.7, 0.79]
    assert training.label_savings(summary, "margin") is None


def test_strategy_values():
    np.testing.assert_allclose(training.least_confidence(PROBS), [0.5, 0.1, 0.4, 0.01])
    np.testing.assert_allclose(training.margin(PROBS), [1.0, 0.2, 0.8, 0.02])
    np.testing.assert_allclose(training.entropy(PROBS)[:2], [np.log(2), -(0.9 * np.log(0.9) + 0.1 * np.log(0.1))])
    three = np.array([[0.5, 0.4, 0.1], [0.5, 0.25, 0.25]])  # margin looks at the top two only
    assert training.margin(three)[0] > training.margin(three)[1]


def test_bald_prefers_disagreement_over_agreed_uncertainty():
    agree = np.array([[0.5, 0.5], [0.5, 0.5]])  # both samples unsure: no disagreement
    disagree = np.array([[0.99, 0.01], [0.01, 0.99]])  # confident samples that disagree
    confident = np.array([[0.99, 0.01], [0.99, 0.01]])
    mc = np.stack([agree, disagree, confident], axis=1)  # (S=2, N=3, C=2)
    scores = training.bald(mc)
    assert scores[1] > scores[0] and scores[1] > scores[2]
    assert scores[0] == pytest.approx(0, abs=1e-9) and scores[2] == pytest.approx(0, abs=1e-9)


def test_select_takes_the_top_k_and_breaks_ties_at_random():
    candidates = np.array([10, 11, 12, 13])
    assert sorted(training.select(candidates, np.array([0.1, 0.9, 0.5, 0.7]), 2, np.random.default_rng(0))) == [11, 13]
    tied = {tuple(training.select(candidates, np.ones(4), 1, np.random.default_rng(s))) for s in range(20)}
    assert len(tied) > 1


def test_seed_set_is_balanced():
    labels = np.array([0] * 90 + [1] * 10)
    chosen = training.seed_set(labels, np.arange(100), 10, np.random.default_rng(0))
    assert np.bincount(labels[chosen]).tolist() == [5, 5]
    with pytest.raises(common.UserError, match="too few reviews of one class"):
        training.seed_set(labels, np.arange(100), 30, np.random.default_rng(0))


# --- word-vector initialisation -----------------------------------------------------------------


def test_word_vectors_put_words_used_alike_together():
    # 5 and 6 are used alike (between 9 and 10), and so are 7 and 8 (between 11s): only the texts
    # say so, there are no labels.
    rng = np.random.default_rng(0)
    docs = []
    for _ in range(200):
        a, b = (rng.choice([5, 6]), rng.choice([7, 8]))
        docs += [np.array([2, 9, a, 10, 9, a, 10, 3]), np.array([2, 11, b, 11, 12, b, 11, 3])]
    v = torch.nn.functional.normalize(training.word_vectors(docs, 13, 4, window=2), dim=1)
    assert v.shape == (13, 4)
    assert v[5] @ v[6] > 0.9 and v[7] @ v[8] > 0.9
    assert abs(v[5] @ v[7]) < 0.5
    assert torch.all(v[:5] == 0)  # special tokens get no vector


def test_new_model_starts_from_the_word_vectors():
    args = argparse.Namespace(teacher_size="tiny", max_len=16, dropout=0.1, pooling="mean")
    tokenizer = type("Tok", (), {"pad_token_id": 0, "__len__": lambda self: 30})()
    vectors = torch.randn(30, 16) * 3
    emb = training.new_model(args, tokenizer, 0, vectors).tok_emb.weight.detach()
    torch.testing.assert_close(emb, vectors / vectors.std() * training.EMBEDDING_INIT_STD)
    random_init = training.new_model(args, tokenizer, 0).tok_emb.weight.detach()
    assert random_init.std() == pytest.approx(0.02, rel=0.2)


# --- masked-LM pre-training ---------------------------------------------------------------------


def test_mask_tokens_hides_only_real_words_the_bert_way():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 100, (400, 50))
    ids[:, 0], ids[:, -1] = 2, 3  # [CLS] ... [SEP]
    mask = torch.ones_like(ids)
    mask[:200, 30:] = 0  # padded rows
    ids[:200, 30:] = 0
    corrupted, targets = training.mask_tokens(ids, mask, 4, 100, g)
    chosen = targets != -100
    assert torch.equal(targets[chosen], ids[chosen])  # the targets are the original tokens
    assert not chosen[:, 0].any() and not chosen[:, -1].any() and not chosen[:200, 30:].any()
    assert torch.equal(corrupted[~chosen], ids[~chosen])  # the rest is untouched
    n_real = int((mask.bool() & (ids >= 5)).sum())
    assert chosen.sum() / n_real == pytest.approx(training.MASK_FRACTION, abs=0.01)
    masked = (corrupted[chosen] == 4).float().mean()
    kept = (corrupted[chosen] == ids[chosen]).float().mean()
    assert masked == pytest.approx(0.8, abs=0.03) and kept == pytest.approx(0.1 + 0.1 / 95, abs=0.03)
    assert (corrupted[chosen] >= 5).sum() + (corrupted[chosen] == 4).sum() == chosen.sum()  # no pad/special drawn


def tiny_args(**kw):
    return argparse.Namespace(teacher_size="tiny", max_len=16, dropout=0.0, pooling="mean", **kw)


def test_pretraining_learns_to_fill_in_and_leaves_the_head_alone():
    # Each text repeats one word: a hidden token is predictable from its neighbours, from no label.
    rng = np.random.default_rng(0)
    texts = [np.array([2] + [w] * 10 + [3]) for w in rng.integers(5, 30, 400)]
    tokenizer = type("Tok", (), {"pad_token_id": 0, "__len__": lambda self: 30})()
    model = training.new_model(tiny_args(), tokenizer, 0)
    head = model.head.weight.detach().clone()
    history = training.pretrain(model, texts, 4, epochs=8, lr=1e-2, batch_size=16, seed=0, progress_bar=False)
    loss = history["mlm_loss"]
    assert loss[0] > 2.0 and loss[-1] < 0.2 * loss[0]  # from guessing among 25 words to filling in
    assert torch.equal(model.head.weight, head)


def test_new_model_starts_from_the_pretrained_encoder_with_a_fresh_head():
    tokenizer = type("Tok", (), {"pad_token_id": 0, "__len__": lambda self: 30})()
    pretrained = training.new_model(tiny_args(), tokenizer, 1)
    with torch.no_grad():
        for p in pretrained.parameters():
            p.add_(1.0)  # unlike any fresh init
    model = training.new_model(tiny_args(), tokenizer, 0, torch.randn(30, 16), pretrained.state_dict())
    fresh = training.new_model(tiny_args(), tokenizer, 0)
    for name, p in model.state_dict().items():
        expected = (fresh if name.startswith("head.") else pretrained).state_dict()[name]
        torch.testing.assert_close(p, expected, msg=name)


# --- the loop, in process ---------------------------------------------------------------------


def smoke_args(parquet_dir, tmp_path, *extra):
    return ["--preset", "smoke", "--data", str(parquet_dir), "--out-dir", str(tmp_path / "ck"),
            "--results", str(tmp_path / "results.txt"), "--no-progress", *extra]


def test_smoke_run(parquet_dir, tmp_path):
    out = training.main(smoke_args(parquet_dir, tmp_path, "--compare-random", "--eval-test-each-round"))
    history = json.loads((tmp_path / "ck" / "teacher" / "al_history.json").read_text())
    rounds = history["runs"][0]["rounds"]
    sizes = [r["n_labeled"] for r in rounds]
    assert sizes == [40, 80, 120]  # grows by exactly --query-size
    assert [r["labels_used"] for r in rounds] == [100, 140, 180]  # validation labels count
    assert all(len(r["queried"]) == 40 for r in rounds[:-1]) and "queried" not in rounds[-1]
    revealed = history["revealed_index"]
    assert len(revealed) == len(set(revealed)) == 120  # nothing queried twice
    queried = [i for r in rounds[:-1] for i in r["queried"]]
    assert set(queried) <= set(revealed) and len(set(queried)) == 80
    pool, val = set(history["pool_index"]), set(history["val_index"])
    assert set(revealed) <= pool and not pool & val
    assert len({i // 100 for i in val}) <= 2  # one run of 100 adjacent rows per class (--val-block)
    # The pool holds training reviews only: no test text ever enters it.
    train, test = common.load_imdb(str(parquet_dir))
    assert not set(train.select(sorted(pool))["text"]) & set(test["text"])
    assert all("test_acc" in r for r in rounds)
    assert {r["strategy"] for r in history["runs"]} == {"margin", "random"}
    summary = history["summary"]
    assert out["gain_over_random_at_budget"] == pytest.approx(summary["margin"]["mean"][-1] - summary["random"]["mean"][-1])
    assert summary["margin"]["labels_used"] == [100, 140, 180]
    records = common.read_results(tmp_path / "results.txt")
    assert [(r["model"], r["strategy"]) for r in records] == [("teacher", "margin"), ("teacher", "random")]
    assert records[0]["labels_used"] == 180 and records[0]["pool_size"] == 240 and records[0]["rounds"] == 2
    assert records[0]["test_acc"] == pytest.approx(out["test_acc"], abs=1e-4)
    assert (tmp_path / "ck" / "al_curve.png").stat().st_size > 1000
    _, _, info = common.load_checkpoint(tmp_path / "ck" / "teacher", "training.py")
    assert info["settings"]["strategy"] == "margin" and info["settings"]["embedding_init"] == "ppmi"


@pytest.mark.parametrize("strategy, init", [("bald", "ppmi"), ("entropy", "random")])
def test_other_strategies_and_warm_retraining(parquet_dir, tmp_path, strategy, init):
    out = training.main(smoke_args(parquet_dir, tmp_path, "--strategy", strategy, "--retrain", "warm",
                                   "--rounds", "1", "--mc-samples", "2", "--embedding-init", init))
    assert out["labels_used"] == 140  # --rounds 1 stops after one query


@pytest.mark.parametrize("retrain", ["cold", "warm"])  # warm: the resumed round starts from saved weights
def test_resume_after_interruption_gives_the_same_labeled_set(parquet_dir, tmp_path, monkeypatch, retrain):
    # One thread: with several, a busy machine can reorder float sums and flip a near-tie query.
    one = ("--threads", "1", "--retrain", retrain)
    reference = training.main(smoke_args(parquet_dir, tmp_path / "a", *one))["runs"][0]["labeled_index"]

    real_round = training.train_round
    calls = []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt  # killed during the third round
        return real_round(*args, **kwargs)

    monkeypatch.setattr(training, "train_round", interrupted)
    with pytest.raises(KeyboardInterrupt):
        training.main(smoke_args(parquet_dir, tmp_path / "b", *one))
    assert not (tmp_path / "b" / "ck" / "teacher").exists()
    monkeypatch.setattr(training, "train_round", real_round)
    monkeypatch.setattr(common, "train_tokenizer", None)  # a resumed run must not retrain it
    # A state written before an option existed lacks it, and resumes as long as the option is at its default.
    info = next((tmp_path / "b" / "ck" / "al_state").glob("*/training_info.json"))
    state = json.loads(info.read_text())
    del state["settings"]["average_from"]
    info.write_text(json.dumps(state))
    resumed = training.main(smoke_args(parquet_dir, tmp_path / "b", "--resume", *one))
    assert resumed["runs"][0]["labeled_index"] == reference
    assert len(resumed["runs"][0]["rounds"]) == 3
    # Other settings cannot be resumed.
    with pytest.raises(SystemExit) as e:
        training.main(smoke_args(parquet_dir, tmp_path / "b", "--resume", "--lr", "0.01", *one))
    assert e.value.code == 2


def test_pretrained_run_saves_the_encoder_and_resume_reuses_it(parquet_dir, tmp_path, monkeypatch, capsys):
    one = ("--threads", "1", "--pretrain-epochs", "2")
    real_new_model, starts = training.new_model, []

    def recording(*args, **kwargs):
        starts.append(args[4] if len(args) > 4 else kwargs.get("pretrained"))
        return real_new_model(*args, **kwargs)

    monkeypatch.setattr(training, "new_model", recording)
    out = training.main(smoke_args(parquet_dir, tmp_path, *one))
    history = json.loads((tmp_path / "ck" / "teacher" / "al_history.json").read_text())
    assert len(history["pretraining"]["mlm_loss"]) == 2 and history["settings"]["pretrain_epochs"] == 2
    encoder, _, _ = common.load_checkpoint(tmp_path / "ck" / "al_state" / "pretrained", "training.py")
    # One model to pre-train, then every cold round starts from the saved encoder.
    assert starts[0] is None and len(starts) == 1 + len(out["runs"][0]["rounds"])
    for start in starts[1:]:
        for name, p in encoder.state_dict().items():
            torch.testing.assert_close(start[name], p, msg=name)

    # The interrupted run's last round is redone; the encoder is read back, not pre-trained again.
    state = tmp_path / "ck" / "al_state" / "margin_seed1" / "training_info.json"
    saved = json.loads(state.read_text())
    saved["rounds"], saved["done"] = saved["rounds"][:-1], False
    state.write_text(json.dumps(saved))
    monkeypatch.setattr(training, "pretrain", None)
    resumed = training.main(smoke_args(parquet_dir, tmp_path, "--resume", *one))
    assert resumed["runs"][0]["labeled_index"] == out["runs"][0]["labeled_index"]
    assert "resuming with the pre-trained encoder" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        training.main(smoke_args(parquet_dir, tmp_path, "--resume", "--threads", "1", "--pretrain-epochs", "3"))
    assert e.value.code == 2 and "pre-trained with other settings (pretrain_epochs)" in capsys.readouterr().err


def test_self_distil_learns_from_revealed_labels_only_and_resumes(parquet_dir, tmp_path, monkeypatch):
    one = ("--threads", "1", "--self-distil")
    real_distil, seen = common.distil, []

    def recording(model, ids, teacher_logits, labels, **kwargs):
        seen.append((len(ids), np.asarray(labels).copy()))
        return real_distil(model, ids, teacher_logits, labels, **kwargs)

    monkeypatch.setattr(common, "distil", recording)
    out = training.main(smoke_args(parquet_dir, tmp_path / "a", *one))
    run = out["runs"][0]
    history = json.loads((tmp_path / "a" / "ck" / "teacher" / "al_history.json").read_text())
    pool_index = np.array(history["pool_index"])
    # Soft labels on the whole pool; hard labels exactly where active learning revealed them.
    (n, labels), = seen
    assert n == len(pool_index) == 240
    revealed = np.isin(pool_index, run["labeled_index"])
    assert (labels[~revealed] == -1).all() and revealed.sum() == 120
    train, _ = common.load_imdb(str(parquet_dir))
    assert (labels[revealed] == np.array(train["label"])[pool_index[revealed]]).all()
    # The distilled model is the teacher: same labels used, saved, evaluated and written to results.txt.
    assert run["self_distil"]["labels_used"] == run["rounds"][-1]["labels_used"] == out["labels_used"] == 180
    teacher, _, _ = common.load_checkpoint(tmp_path / "a" / "ck" / "teacher", "training.py")
    state, _, _ = common.load_checkpoint(tmp_path / "a" / "ck" / "al_state" / "margin_seed1", "training.py")
    for name, p in teacher.state_dict().items():
        torch.testing.assert_close(state.state_dict()[name], p, msg=name)
    record, = common.read_results(tmp_path / "a" / "results.txt")
    assert record["self_distilled"] == "True"
    assert record["val_acc"] == pytest.approx(run["self_distil"]["val_acc"], abs=1e-4)

    # Killed while distilling: --resume distils the saved last round and ends with the same teacher.
    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(training, "self_distil", killed)
    with pytest.raises(KeyboardInterrupt):
        training.main(smoke_args(parquet_dir, tmp_path / "b", *one))
    monkeypatch.undo()
    resumed = training.main(smoke_args(parquet_dir, tmp_path / "b", "--resume", *one))
    assert resumed["runs"][0]["labeled_index"] == run["labeled_index"]
    assert resumed["test_acc"] == out["test_acc"]
    again, _, _ = common.load_checkpoint(tmp_path / "b" / "ck" / "teacher", "training.py")
    for name, p in teacher.state_dict().items():
        torch.testing.assert_close(again.state_dict()[name], p, msg=name)


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


def test_ensemble_logits_average_probabilities():
    ids = [[1], [2]]
    a, b = Fixed([[0.0, 0.0], [np.log(9), 0.0]]), Fixed([[np.log(3), 0.0], [0.0, 0.0]])
    # Probabilities (0.5, 0.5) and (0.75, 0.25) average to (0.625, 0.375); (0.9, 0.1) and (0.5, 0.5) to (0.7, 0.3).
    np.testing.assert_allclose(np.exp(training.ensemble_logits([a, b], ids)), [[0.625, 0.375], [0.7, 0.3]], rtol=1e-6)
    np.testing.assert_allclose(np.exp(training.ensemble_logits([a], ids)), [[0.5, 0.5], [0.9, 0.1]], rtol=1e-6)


def test_ngram_features_are_sublinear_tfidf_rows_of_norm_one():
    # [CLS]=1 and [SEP]=2 around tokens; vocabulary of 10 ids. Review 0 holds 5 twice and the bigram (5, 6).
    texts = [[1, 5, 5, 6, 2], [1, 5, 6, 7, 2], [1, 8, 2]]
    model = training.NgramLogisticRegression(texts, vocab_size=10, min_df=2)
    bigram = 10 * (1 + 5) + 6
    assert model.keys.tolist() == [5, 6, bigram]  # in two texts each; 7, 8, (5, 5), (6, 7) in one; specials never
    idf = np.log(4 / 3) + 1
    X = model.features(texts + [[1, 9, 2]]).to_dense().numpy()
    expected = np.array([1 + np.log(2), 1, 1]) * idf
    np.testing.assert_allclose(X[0], expected / np.linalg.norm(expected), rtol=1e-6)
    np.testing.assert_allclose(X[1], np.ones(3) / np.sqrt(3), rtol=1e-6)
    np.testing.assert_array_equal(X[2:], 0)  # n-grams it does not know (or none) give an empty row
    np.testing.assert_allclose(model.log_probs([[1, 9, 2]]), np.log([[0.5, 0.5]]))  # untrained: no opinion


def test_ngram_fit_reaches_the_regularised_optimum():
    # At the minimum of C * sum of log losses + ||w||^2 / 2 the gradient is zero: X^T (p - y) + w / C = 0 and,
    # the bias being free, sum(p - y) = 0. Checked densely in numpy, apart from the fit's own products.
    rng = np.random.default_rng(0)
    texts = [np.array([1, *rng.integers(3, 30, 12), 2]) for _ in range(80)]
    y = np.array([int(5 in x) for x in texts])
    model = training.NgramLogisticRegression(texts, vocab_size=30)
    X = model.features(texts)
    for C in (0.5, 30.0):
        model.fit(X, y, C)
        w, b, dense = model.weight.numpy(), float(model.bias), X.to_dense().numpy()
        p = 1 / (1 + np.exp(-(dense @ w + b)))
        assert np.abs(dense.T @ (p - y) + w / C).max() < 1e-3 * C and abs((p - y).sum()) < 1e-3 * C
        assert model.accuracy(X, y) == ((dense @ w + b > 0) == y).mean()
    assert model.accuracy(X, y) == 1.0  # weakly penalised, token 5 alone decides


def test_ngram_member_learns_the_labels_and_picks_c_on_validation(monkeypatch):
    # Token 10 marks a positive review, 11 a negative one, among 10 noise tokens drawn from 40.
    rng = np.random.default_rng(0)

    def reviews(n):
        y = rng.integers(0, 2, n)
        return [np.array([1, *rng.integers(20, 60, 10), 11 - label, 2]) for label in y], y

    pool_ids, pool_y = reviews(200)
    val_ids, val_y = reviews(100)
    pool = common.Split(np.arange(200), pool_ids, pool_y)
    val = common.Split(np.arange(100), val_ids, val_y)
    labeled = np.arange(0, 200, 2)  # half the pool revealed; the rest are texts only
    model, record = training.ngram_member(pool, labeled, val, vocab_size=60)
    assert record["C"] in training.NGRAM_CS and set(record["val_acc_per_C"]) == set(training.NGRAM_CS)
    assert record["val_acc"] == max(record["val_acc_per_C"].values()) >= 0.9
    probs = np.exp(model.log_probs(val_ids))
    np.testing.assert_allclose(probs.sum(1), 1, rtol=1e-5)
    assert (probs.argmax(1) == val_y).mean() == record["val_acc"]
    # The marker tokens carry the two largest weights, with the signs of their classes.
    top = model.keys[np.argsort(-model.weight.abs().numpy())[:2]]
    weight = dict(zip(model.keys.tolist(), model.weight.tolist()))
    assert set(top.tolist()) == {10, 11} and weight[10] > 0 > weight[11]
    # The weights kept are the best C's, not the last one tried: a fit from zero at that C predicts the same.
    monkeypatch.setattr(training, "NGRAM_CS", (300.0, 3.0))  # the larger C wins here (above), and goes first
    model, record = training.ngram_member(pool, labeled, val, vocab_size=60)
    assert record["C"] == 300.0 and record["val_acc_per_C"][300.0] > record["val_acc_per_C"][3.0]
    again = training.NgramLogisticRegression(pool_ids, 60)
    again.fit(again.features([pool_ids[i] for i in labeled]), pool_y[labeled], 300.0)
    np.testing.assert_allclose(again.log_probs(val_ids), model.log_probs(val_ids), atol=0.02)


def test_ensemble_logits_give_the_ngram_model_its_weight():
    class Ngram:
        def log_probs(self, ids):
            return np.log(np.array([[0.1, 0.9], [0.9, 0.1]]))[[x[0] - 1 for x in ids]]

    ids, model = [[1], [2]], Fixed([[0.0, 0.0], [np.log(9), 0.0]])  # (0.5, 0.5) and (0.9, 0.1)
    mixed = np.exp(training.ensemble_logits([model], ids, ngram=Ngram(), ngram_weight=0.25))
    np.testing.assert_allclose(mixed, [[0.4, 0.6], [0.9, 0.1]], rtol=1e-6)
    only = np.exp(training.ensemble_logits([model], ids, ngram=Ngram(), ngram_weight=1.0))
    np.testing.assert_allclose(only, [[0.1, 0.9], [0.9, 0.1]], rtol=1e-6)
    assert training.accuracy(mixed, [1, 0]) == 1.0
    assert training.accuracy(training.mean_probs([model], ids), [1, 0]) == 0.5  # (0.5, 0.5) goes to class 0


def test_ngram_weight_alone_distils_the_last_round_with_the_ngram_member(parquet_dir, tmp_path, monkeypatch):
    real_distil, real_member, targets = common.distil, training.ngram_member, []

    def recording_distil(model, ids, teacher_logits, *args, **kwargs):
        targets.append(np.exp(teacher_logits))
        return real_distil(model, ids, teacher_logits, *args, **kwargs)

    def sure_of_neg_member(*args, **kwargs):  # the real member, made certain of class 0 on every review
        model, record = real_member(*args, **kwargs)
        model.log_probs = lambda ids: np.log(np.tile([[1 - 1e-6, 1e-6]], (len(ids), 1)))
        return model, record

    monkeypatch.setattr(common, "distil", recording_distil)
    monkeypatch.setattr(training, "ngram_member", sure_of_neg_member)
    out = training.main(smoke_args(parquet_dir, tmp_path, "--threads", "1", "--ngram-weight", "1"))
    record = out["runs"][0]["self_distil"]
    assert record["member_val_acc"] == [out["runs"][0]["rounds"][-1]["val_acc"]]  # no other Transformer
    assert record["ngram_member"]["C"] in training.NGRAM_CS
    # The Transformers alone: the last round's model. With the n-gram member at weight 1, the ensemble says neg.
    assert record["transformers_val_acc"] == out["runs"][0]["rounds"][-1]["val_acc"]
    history = common.read_json(tmp_path / "ck" / "teacher" / "al_history.json")
    val_labels = np.array(common.load_imdb(str(parquet_dir))[0]["label"])[history["val_index"]]
    assert record["ensemble_val_acc"] == pytest.approx(float((val_labels == 0).mean()))
    # At weight 1 the target of every pool review is the n-gram model's, however unsure the Transformer is.
    (target,) = targets
    assert target.shape == (len(history["pool_index"]), 2)
    np.testing.assert_allclose(target, np.tile([[1 - 1e-6, 1e-6]], (len(target), 1)), rtol=1e-5)
    line = common.read_results(tmp_path / "results.txt")[0]
    assert line["ngram_weight"] == 1 and line["self_distilled"] == "True" and line["ensemble"] == 1
    assert history["settings"]["ngram_weight"] == 1


def test_ensemble_members_train_on_the_final_labels_and_are_distilled(parquet_dir, tmp_path, monkeypatch):
    real_round, real_distil, rounds, teachers = training.train_round, training.self_distil, [], []

    def recording_round(model, pool, labeled, *args, **kwargs):
        rounds.append(np.sort(pool.index[labeled]))
        return real_round(model, pool, labeled, *args, **kwargs)

    def recording_distil(members, *args, **kwargs):
        teachers.append(list(members))
        return real_distil(members, *args, **kwargs)

    monkeypatch.setattr(training, "train_round", recording_round)
    monkeypatch.setattr(training, "self_distil", recording_distil)
    three = ("--threads", "1", "--ensemble", "3", "--self-distil-epochs", "3")
    out = training.main(smoke_args(parquet_dir, tmp_path / "a", *three))
    run = out["runs"][0]
    n_rounds = len(run["rounds"])
    # Two more members after the rounds, on exactly the final labeled set, each a model of its own.
    assert len(rounds) == n_rounds + 2
    for labeled in rounds[n_rounds - 1:]:
        np.testing.assert_array_equal(labeled, np.sort(run["labeled_index"]))
    (members,) = teachers
    assert len(members) == 3 and len({id(m) for m in members}) == 3
    assert not torch.equal(members[1].tok_emb.weight, members[2].tok_emb.weight)
    record = run["self_distil"]
    assert record["member_val_acc"][0] == run["rounds"][-1]["val_acc"] and len(record["member_val_acc"]) == 3
    assert 0 <= record["ensemble_val_acc"] <= 1
    assert len(record["epochs"]["val_acc"]) == 3 and len(run["rounds"][-1]["epochs"]["val_acc"]) == 2
    assert common.read_results(tmp_path / "a" / "results.txt")[0]["ensemble"] == 3

    # Killed while training the last member: --resume redoes the step and ends with the same teacher.
    def killed_in_third_member(model, pool, labeled, *args, **kwargs):
        calls.append(1)
        if len(calls) == n_rounds + 2:
            raise KeyboardInterrupt
        return real_round(model, pool, labeled, *args, **kwargs)

    calls = []
    monkeypatch.setattr(training, "train_round", killed_in_third_member)
    with pytest.raises(KeyboardInterrupt):
        training.main(smoke_args(parquet_dir, tmp_path / "b", *three))
    monkeypatch.undo()
    training.main(smoke_args(parquet_dir, tmp_path / "b", "--resume", *three))
    teacher, _, _ = common.load_checkpoint(tmp_path / "a" / "ck" / "teacher", "training.py")
    again, _, _ = common.load_checkpoint(tmp_path / "b" / "ck" / "teacher", "training.py")
    for name, p in teacher.state_dict().items():
        torch.testing.assert_close(again.state_dict()[name], p, msg=name)


@pytest.mark.parametrize("start", ["fresh", "member"])
def test_self_distil_starts_fresh_or_from_the_first_member(parquet_dir, tmp_path, monkeypatch, start):
    real_distil, real_self_distil, seen = common.distil, training.self_distil, {}

    def recording_self_distil(members, *args, **kwargs):
        seen["member"] = copy.deepcopy(members[0].state_dict())
        model, fit = real_self_distil(members, *args, **kwargs)
        seen["member_after"] = members[0].state_dict()
        return model, fit

    def recording_distil(model, *args, **kwargs):
        seen["start"] = copy.deepcopy(model.state_dict())
        return real_distil(model, *args, **kwargs)

    monkeypatch.setattr(training, "self_distil", recording_self_distil)
    monkeypatch.setattr(common, "distil", recording_distil)
    training.main(smoke_args(parquet_dir, tmp_path, "--threads", "1", "--ensemble", "2", "--self-distil-start", start))
    same = [torch.equal(seen["start"][k], v) for k, v in seen["member"].items()]
    assert all(same) == (start == "member")
    for k, v in seen["member"].items():  # the member itself is not trained further
        torch.testing.assert_close(seen["member_after"][k], v)


def test_crops_are_contiguous_spans_inside_the_special_tokens():
    ids = [np.arange(100, 142), np.array([1, 7, 2]), np.array([1, 2])]  # [CLS] ... [SEP]
    out = training.crops(ids, 3, np.random.default_rng(0))
    assert len(out) == 3 * len(ids)
    lengths, starts = [], []
    for k, crop in enumerate(out):
        x = ids[k % len(ids)]
        assert crop[0] == x[0] and crop[-1] == x[-1]
        inner, span = list(x[1:-1]), list(crop[1:-1])
        start = inner.index(span[0]) if span else 0
        assert inner[start:start + len(span)] == span  # a contiguous span of the review
        if len(inner) == 40:
            assert 10 <= len(span) <= 40  # a quarter to all of the tokens
            lengths.append(len(span))
            starts.append(start)
    assert len(set(lengths)) > 1 and min(lengths) < 40  # drawn, not the whole review each time
    assert len(set(starts)) > 1  # from anywhere in the review, not always its beginning
    again = training.crops(ids, 3, np.random.default_rng(0))
    assert all(np.array_equal(a, b) for a, b in zip(out, again))


def test_self_distil_crops_join_the_transfer_set_unlabeled(parquet_dir, tmp_path, monkeypatch):
    real_distil, seen = common.distil, {}

    def recording_distil(model, ids, teacher_logits, labels, **kwargs):
        seen.update(ids=ids, logits=teacher_logits, labels=np.asarray(labels))
        return real_distil(model, ids, teacher_logits, labels, **kwargs)

    monkeypatch.setattr(common, "distil", recording_distil)
    out = training.main(smoke_args(parquet_dir, tmp_path, "--threads", "1", "--ensemble", "2",
                                   "--self-distil-crops", "2"))
    run = out["runs"][0]
    n = len(seen["ids"]) // 3  # the pool, then two crops of every pool review
    assert len(seen["ids"]) == 3 * n and len(seen["logits"]) == 3 * n
    assert (seen["labels"][:n] >= 0).sum() == len(run["labeled_index"])  # the revealed labels, on the pool
    assert (seen["labels"][n:] == -1).all()  # crops take no label
    for k in range(n, 3 * n):
        review, crop = seen["ids"][k % n], seen["ids"][k]
        assert len(crop) <= len(review) and crop[0] == review[0] and crop[-1] == review[-1]
    assert any(len(seen["ids"][k]) < len(seen["ids"][k % n]) for k in range(n, 3 * n))


def test_weight_averaging_reaches_every_model(parquet_dir, tmp_path, monkeypatch):
    real_fit, calls = common.fit, []

    def recording_fit(*args, **kwargs):
        calls.append(kwargs["average_from"])
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(common, "fit", recording_fit)
    training.main(smoke_args(parquet_dir, tmp_path, "--threads", "1", "--ensemble", "2", "--average-from", "0.5"))
    # The rounds, the second member and the distillation (common.distil calls common.fit).
    assert len(calls) >= 4 and set(calls) == {0.5}
    assert common.read_results(tmp_path / "results.txt")[0]["average_from"] == 0.5


def test_token_dropout_thins_every_labeled_training_step_and_nothing_else(parquet_dir, tmp_path, monkeypatch):
    real_fit, real_drop, fits, dropped = common.fit, common.drop_tokens, [], []

    def recording_fit(model, ids, loss_fn, **kwargs):
        fits.append((len(ids), kwargs["epochs"], kwargs.get("token_dropout", 0.0)))
        return real_fit(model, ids, loss_fn, **kwargs)

    def recording_drop(ids, p, rng):
        out = real_drop(ids, p, rng)
        dropped.append((sum(map(len, ids)), sum(map(len, out))))
        return out

    monkeypatch.setattr(common, "fit", recording_fit)
    monkeypatch.setattr(common, "drop_tokens", recording_drop)
    out = training.main(smoke_args(parquet_dir, tmp_path, "--threads", "1", "--ensemble", "2",
                                   "--token-dropout", "0.5"))
    rounds = out["runs"][0]["rounds"]
    # Every round, then the second member on the final labels, then the distillation (common.distil).
    assert [n for n, _, _ in fits[:-1]] == [r["n_labeled"] for r in rounds] + [rounds[-1]["n_labeled"]]
    assert {p for _, _, p in fits[:-1]} == {0.5} and fits[-1][2] == 0.0
    batch = common.PRESETS["smoke"]["batch_size"]
    assert len(dropped) == sum(epochs * -(-n // batch) for n, epochs, _ in fits[:-1])  # every training batch
    before, after = map(sum, zip(*dropped))
    assert 0.4 < after / before < 0.75  # half of the real tokens gone ([CLS] and [SEP] stay)
    history = json.loads((tmp_path / "ck" / "teacher" / "al_history.json").read_text())
    assert history["settings"]["token_dropout"] == 0.5


def test_self_distil_token_dropout_thins_the_distilled_models_inputs_only(parquet_dir, tmp_path, monkeypatch):
    real_fit, real_drop, real_logits = common.fit, common.drop_tokens, training.ensemble_logits
    fits, dropped, labeled_by = [], [], []

    def recording_fit(model, ids, loss_fn, **kwargs):
        fits.append((ids, kwargs.get("token_dropout", 0.0)))
        return real_fit(model, ids, loss_fn, **kwargs)

    def recording_drop(ids, p, rng):
        out = real_drop(ids, p, rng)
        dropped.append((sum(map(len, ids)), sum(map(len, out))))
        return out

    def recording_logits(models, ids, *args, **kwargs):
        labeled_by.append(ids)
        return real_logits(models, ids, *args, **kwargs)

    monkeypatch.setattr(common, "fit", recording_fit)
    monkeypatch.setattr(common, "drop_tokens", recording_drop)
    monkeypatch.setattr(training, "ensemble_logits", recording_logits)
    training.main(smoke_args(parquet_dir, tmp_path, "--threads", "1", "--ensemble", "2",
                             "--self-distil-token-dropout", "0.5"))
    # The rounds and the second member train on whole reviews; the distillation (last) on thinned ones.
    assert {p for _, p in fits[:-1]} == {0.0} and fits[-1][1] == 0.5
    transfer = fits[-1][0]
    batch, epochs = common.PRESETS["smoke"]["batch_size"], common.PRESETS["smoke"]["epochs"]
    assert len(dropped) == epochs * -(-len(transfer) // batch)  # every distillation batch, and no other
    before, after = map(sum, zip(*dropped))
    assert before == epochs * sum(map(len, transfer)) and 0.4 < after / before < 0.75
    # The teachers' soft labels come from the very reviews the distillation thins, whole.
    assert labeled_by[-1] is transfer
    history = json.loads((tmp_path / "ck" / "teacher" / "al_history.json").read_text())
    assert history["settings"]["self_distil_token_dropout"] == 0.5


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_label_smoothing_softens_the_targets_of_the_labeled_reviews(parquet_dir, tmp_path, monkeypatch, smoothing):
    real_fit, losses = common.fit, []

    def recording_fit(model, ids, loss_fn, **kwargs):
        losses.append(loss_fn)
        return real_fit(model, ids, loss_fn, **kwargs)

    monkeypatch.setattr(common, "fit", recording_fit)
    training.main(smoke_args(parquet_dir, tmp_path, "--threads", "1", "--rounds", "0",
                             "--label-smoothing", str(smoothing)))
    # Logits sure of one class by a margin of 40, on the first labeled review: the right one costs ~0 in
    # cross-entropy, and smoothing / 2 * 40 with smoothed targets (the share the other class is given).
    sure, first = torch.tensor([[20.0, -20.0]]), np.array([0])
    right = min(losses[0](sure, first).item(), losses[0](sure.flip(1), first).item())
    assert right == pytest.approx(smoothing / 2 * 40, abs=1e-4)


@pytest.mark.parametrize("extra, message", [
    (["--initial-labels", "500"], "--initial-labels 500"),
    (["--query-size", "0"], "--query-size must be at least 1"),
    (["--label-budget", "5000"], "--label-budget 5000 exceeds"),
    (["--seeds", "1,x"], "--seeds takes comma-separated integers"),
    (["--epochs", "0"], "--epochs must be at least 1"),
    (["--val-block", "0"], "--val-block must be at least 1"),
    (["--average-from", "1"], "--average-from must be in [0, 1)"),
    (["--token-dropout", "1"], "--token-dropout must be in [0, 1), got 1.0"),
    (["--label-smoothing", "-0.1"], "--label-smoothing must be in [0, 1), got -0.1"),
    (["--pretrain-epochs", "-1"], "--pretrain-epochs must not be negative"),
    (["--self-distil", "--temperature", "0"], "--temperature must be positive"),
    (["--ensemble", "0"], "--ensemble must be at least 1, got 0"),
    (["--ensemble", "2", "--self-distil-epochs", "0"], "--self-distil-epochs must be at least 1, got 0"),
    (["--self-distil-epochs", "3"], "--self-distil-epochs sets the distillation of --self-distil"),
    (["--temperature", "2"], "--temperature sets the distillation of --self-distil"),
    (["--alpha", "0.5"], "--alpha sets the distillation of --self-distil"),
    (["--self-distil-start", "member"], "--self-distil-start sets the distillation of --self-distil"),
    (["--self-distil-crops", "1"], "--self-distil-crops sets the distillation of --self-distil"),
    (["--self-distil", "--self-distil-crops", "-1"], "--self-distil-crops must not be negative, got -1"),
    (["--self-distil-token-dropout", "0.1"], "--self-distil-token-dropout sets the distillation of --self-distil"),
    (["--self-distil", "--self-distil-token-dropout", "1"], "--self-distil-token-dropout must be in [0, 1), got 1.0"),
    (["--ngram-weight", "-0.1"], "--ngram-weight must be between 0 and 1, got -0.1"),
    (["--ngram-weight", "1.5"], "--ngram-weight must be between 0 and 1, got 1.5"),
])
def test_bad_options_exit_2_and_write_nothing(parquet_dir, tmp_path, capsys, extra, message):
    with pytest.raises(SystemExit) as e:
        training.main(smoke_args(parquet_dir, tmp_path, *extra))
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert list(tmp_path.iterdir()) == [parquet_dir]


def test_unknown_strategy_is_refused(parquet_dir, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        training.main(smoke_args(parquet_dir, tmp_path, "--strategy", "oracle"))
    err = capsys.readouterr().err
    assert e.value.code == 2 and "invalid choice: 'oracle'" in err
    assert err.count("\n") == 1 and err.startswith("training.py: error:")  # one line, no usage dump
