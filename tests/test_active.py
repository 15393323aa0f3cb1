"""labelless.active: the loop (initialize, train, query, update) and the ensemble step, on a tiny pool."""

import numpy as np
import pytest
import torch

from labelless import active, strategies
from labelless.active import ALData, ALSettings
from labelless.data import DataSettings, encode_rows, partition
from labelless.fit import ModelSettings, TrainSettings
from labelless.sources import load_imdb
from labelless.text import train_tokenizer


@pytest.fixture
def data(parquet_dir):
    train, test = load_imdb(str(parquet_dir))
    part = partition(train["label"], test["label"], DataSettings(None, None, 60, seed=1))
    tok = train_tokenizer(train.select(part.texts)["text"], 300, 64)
    return ALData(*(encode_rows(ds, idx, tok, False) for ds, idx in ((train, part.pool), (train, part.val),
                                                                      (test, part.test))), tok, None, torch.device("cpu"))


def learn(data, tmp_path, al, seed=1):
    model = ModelSettings("tiny", len(data.tokenizer), 64, data.tokenizer.pad_token_id, 0.1)
    state = active.initialize(al, seed, data.pool, {"test": True})
    return active.learn(al, seed, data, model, TrainSettings(1, 3e-3, 16, progress=False), tmp_path / "state", state)


def test_each_round_reveals_query_size_new_pool_labels_until_the_budget(data, tmp_path):
    _, state = learn(data, tmp_path, ALSettings("margin", initial_labels=40, query_size=30, budget=120))
    rounds = state["rounds"]
    assert [r["n_labeled"] for r in rounds] == [40, 70, 100, 120]  # the last query fills the budget
    assert [r["labels_used"] for r in rounds] == [100, 130, 160, 180]  # validation labels count
    queried = [i for r in rounds[:-1] for i in r["queried"]]
    assert len(queried) == len(set(queried)) == 80 and set(queried) <= set(data.pool.index)
    labeled = data.pool.index[state["labeled"]]
    assert len(set(labeled)) == 120 and set(queried) <= set(labeled) and state["done"]
    assert np.bincount(data.pool.labels[state["labeled"][:40]]).tolist() == [20, 20]  # a balanced seed set
    assert (tmp_path / "state" / "model.safetensors").is_file()


def test_pool_sample_bounds_the_scored_reviews_and_rounds_stop_the_loop(data, tmp_path, monkeypatch):
    scored, real_score = [], active.score
    monkeypatch.setattr(strategies, "MC_SAMPLES", 2)

    def recording(model, ids, candidates, strategy, rng, progress_bar=False, **kwargs):
        scored.append(len(candidates))
        return real_score(model, ids, candidates, strategy, rng, progress_bar, **kwargs)

    monkeypatch.setattr(active, "score", recording)
    _, state = learn(data, tmp_path, ALSettings("bald", 40, 40, budget=160, rounds=1, pool_sample=50))
    assert scored == [50] and [r["n_labeled"] for r in state["rounds"]] == [40, 80]


def test_the_ensemble_members_train_on_the_final_labels_and_are_distilled(data, tmp_path, monkeypatch):
    rounds, teachers = [], []
    real_round, real_distil = active.train_round, active.distil_ensemble

    def recording_round(model, pool, labeled, *args, **kwargs):
        rounds.append(np.sort(pool.index[labeled]))
        return real_round(model, pool, labeled, *args, **kwargs)

    def recording_distil(members, *args, **kwargs):
        teachers.append(list(members))
        return real_distil(members, *args, **kwargs)

    monkeypatch.setattr(active, "train_round", recording_round)
    monkeypatch.setattr(active, "distil_ensemble", recording_distil)
    model, state = learn(data, tmp_path, ALSettings("margin", 40, 40, budget=120, ensemble=3))
    n_rounds = len(state["rounds"])
    # Two more members after the rounds, on exactly the final labeled set, each a model of its own.
    assert len(rounds) == n_rounds + 2
    for labeled in rounds[n_rounds - 1:]:
        np.testing.assert_array_equal(labeled, np.sort(data.pool.index[state["labeled"]]))
    (members,) = teachers
    assert len(members) == 3 and len({id(m) for m in members}) == 3 and all(m is not model for m in members)
    assert not torch.equal(members[1].tok_emb.weight, members[2].tok_emb.weight)
    record = state["ensemble_step"]
    assert record["member_val_acc"][0] == state["rounds"][-1]["val_acc"] and len(record["member_val_acc"]) == 3
    assert 0 <= record["ensemble_val_acc"] <= 1 and record["labels_used"] == state["rounds"][-1]["labels_used"]
