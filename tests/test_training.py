import argparse
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


@pytest.mark.parametrize("extra, message", [
    (["--initial-labels", "500"], "--initial-labels 500"),
    (["--query-size", "0"], "--query-size must be at least 1"),
    (["--label-budget", "5000"], "--label-budget 5000 exceeds"),
    (["--seeds", "1,x"], "--seeds takes comma-separated integers"),
    (["--epochs", "0"], "--epochs must be at least 1"),
    (["--val-block", "0"], "--val-block must be at least 1"),
    (["--average-from", "1"], "--average-from must be in [0, 1)"),
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
