"""labelless.store: atomic checkpoints (old ones load), results.txt, fingerprints, the al_history.json schema."""

import json
import multiprocessing
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers

from labelless import UserError
from labelless.data import load_imdb
from labelless.store import (HISTORY_FILE, ALHistory, append_result, fingerprint, load_checkpoint, read_json,
                             read_results, save_checkpoint)

OLD_CHECKPOINT = Path(__file__).parent / "data" / "checkpoint_6e1d09b"


def test_interrupted_save_leaves_previous_checkpoint(tiny_model_and_tokenizer, tmp_path, monkeypatch):
    model, tok = tiny_model_and_tokenizer
    folder = save_checkpoint(model, tok, tmp_path / "teacher", {"version": 1})
    before = {f.name: f.read_bytes() for f in folder.iterdir()}
    with torch.no_grad():
        model.head.weight.add_(1.0)

    def crash(*args, **kwargs):
        raise KeyboardInterrupt  # Ctrl-C after the weights were written, before the tokenizer

    monkeypatch.setattr(type(tok), "save_pretrained", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(model, tok, folder, {"version": 2})
    assert {f.name: f.read_bytes() for f in folder.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["teacher"]  # no half folder left behind
    _, _, info = load_checkpoint(folder, "training.py")
    assert info == {"version": 1}


def test_missing_or_incomplete_checkpoint(tiny_model_and_tokenizer, tmp_path):
    with pytest.raises(UserError, match=r"no checkpoint at .*nothing: run `python training.py` first"):
        load_checkpoint(tmp_path / "nothing", "training.py")
    model, tok = tiny_model_and_tokenizer
    folder = save_checkpoint(model, tok, tmp_path / "student", {})
    (folder / "model.safetensors").unlink()
    with pytest.raises(UserError, match="incomplete checkpoint .*model.safetensors.*origi.py"):
        load_checkpoint(folder, "origi.py")


def test_a_checkpoint_saved_by_the_previous_version_loads_and_predicts_the_same():
    """tests/data/checkpoint_6e1d09b was written by save_checkpoint at commit 6e1d09b (its config still
    names the pooling, fixed since); its logits on three texts were recorded then."""
    expected = read_json(OLD_CHECKPOINT / "expected_logits.json")
    model, tok, info = load_checkpoint(OLD_CHECKPOINT, "training.py")
    assert info["commit"] == "6e1d09b"
    enc = tok(expected["texts"], padding=True, truncation=True, return_tensors="pt")
    with torch.no_grad():
        logits = model(enc["input_ids"], attention_mask=enc["attention_mask"]).logits
    assert torch.equal(logits, torch.tensor(expected["logits"]))
    out = transformers.pipeline("text-classification", model=str(OLD_CHECKPOINT), device="cpu")(expected["texts"])
    assert [r["label"] for r in out] == [("pos" if row[1] > row[0] else "neg") for row in expected["logits"]]


def test_append_and_read_results(tmp_path):
    path = tmp_path / "results.txt"
    line = append_result(path, "training.py", model="teacher", test_acc=0.87654321, params=12, tag="a_b")
    assert line.split()[1:] == ["training.py", "model=teacher", "test_acc=0.8765", "params=12", "tag=a_b"]
    assert line.split()[0].endswith("Z") and "T" in line.split()[0]
    append_result(path, "origi.py", model="student")
    records = read_results(path)
    assert records[0] | {} == {"time": records[0]["time"], "script": "training.py", "model": "teacher",
                               "test_acc": 0.8765, "params": 12, "tag": "a_b"}
    assert records[1]["model"] == "student"
    with pytest.raises(ValueError, match="whitespace"):
        append_result(path, "x.py", note="two words")
    assert len(read_results(path)) == 2
    assert read_results(tmp_path / "absent.txt") == []
    path.write_text(path.read_text() + "garbage line\n")
    with pytest.raises(UserError, match="results.txt:3 is not a results line"):
        read_results(path)


def _writer(path, worker):
    for i in range(100):
        append_result(path, "worker.py", worker=worker, i=i, pad="x" * 200)


def test_concurrent_appends_never_interleave(tmp_path):
    path = tmp_path / "results.txt"
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(path, w)) for w in range(8)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    assert all(p.exitcode == 0 for p in procs)
    records = read_results(path)
    assert len(records) == 800
    assert {(r["worker"], r["i"]) for r in records} == {(w, i) for w in range(8) for i in range(100)}
    assert all(r["pad"] == "x" * 200 for r in records)


def test_fingerprint_covers_every_item(parquet_dir):
    _, test = load_imdb(str(parquet_dir))
    column = test.select(range(50))["text"]  # a datasets Column, not a list
    texts = list(column)
    assert fingerprint(np.arange(50), column) == fingerprint(np.arange(50), texts)
    changed = texts[:49] + [texts[49] + "!"]
    assert fingerprint(np.arange(50), changed) != fingerprint(np.arange(50), texts)
    assert fingerprint(np.arange(50), texts) != fingerprint(np.arange(1, 51), texts)


def history(**extra):
    return ALHistory(settings={"data": "x"}, seeds=[1], teacher_strategy="margin", teacher_seed=1, pool_index=[1, 2],
                     val_index=[0], pool_fingerprint="f", test_index=[0], revealed_index=[2], labels_used=2,
                     curve_metric="val_acc", summary={}, runs=[], **extra)


def test_history_round_trip_and_the_comparison_with_random(tmp_path):
    history().save(tmp_path)
    saved = read_json(tmp_path / HISTORY_FILE)
    assert "gain_over_random_at_budget" not in saved and "label_fraction_to_match_random" not in saved
    assert ALHistory.load(tmp_path) == history()
    compared = history(label_fraction_to_match_random=None, gain_over_random_at_budget=0.01)  # not reached
    compared.save(tmp_path)
    assert read_json(tmp_path / HISTORY_FILE)["label_fraction_to_match_random"] is None
    assert ALHistory.load(tmp_path) == compared


def test_history_of_an_older_version_loads_or_names_the_fix(tmp_path):
    history().save(tmp_path)
    record = read_json(tmp_path / HISTORY_FILE) | {"pretraining": None}  # a key that versions before had
    (tmp_path / HISTORY_FILE).write_text(json.dumps(record))
    assert ALHistory.load(tmp_path) == history()
    del record["pool_fingerprint"]
    (tmp_path / HISTORY_FILE).write_text(json.dumps(record))
    with pytest.raises(UserError, match="lacks pool_fingerprint: .*run `python training.py` again"):
        ALHistory.load(tmp_path)
    with pytest.raises(UserError, match="no .*al_history.json: .*run `python training.py` again"):
        ALHistory.load(tmp_path / "absent")
