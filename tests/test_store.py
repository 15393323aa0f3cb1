"""labelless.store: atomic checkpoints (old ones load), results.txt, fingerprints, the al_history.json schema."""

import json
import multiprocessing
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers

from labelless import UserError
from labelless.sources import load_imdb
from labelless.store import (HISTORY_FILE, ALHistory, append_result, append_results, check_writable, fingerprint,
                             load_checkpoint, read_json, read_results, save_checkpoint)

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
    # Within float rounding: another CPU's kernels round differently (5.6e-9 between AVX-512 and AVX2).
    torch.testing.assert_close(logits, torch.tensor(expected["logits"]), atol=1e-6, rtol=0)
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


def leftovers(parent):
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def test_a_kill_between_the_two_renames_is_recovered_at_the_next_start(tiny_model_and_tokenizer, tmp_path,
                                                                      monkeypatch):
    model, tok = tiny_model_and_tokenizer
    folder = save_checkpoint(model, tok, tmp_path / "teacher", {"version": 1})
    real_rename, calls = Path.rename, []

    def killed_at_the_second_rename(self, target):
        calls.append(target)
        if len(calls) == 2:
            raise KeyboardInterrupt  # the old folder is out of the way, the new one not yet in
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", killed_at_the_second_rename)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(model, tok, folder, {"version": 2})
    monkeypatch.undo()
    assert not folder.exists() and len(leftovers(tmp_path)) == 2  # what the kill left
    _, _, info = load_checkpoint(folder, "training.py")  # the complete new copy is put in place
    assert info == {"version": 2} and leftovers(tmp_path) == []


def test_recovery_after_a_hard_kill_takes_a_complete_copy_only(tiny_model_and_tokenizer, tmp_path):
    model, tok = tiny_model_and_tokenizer
    folder = save_checkpoint(model, tok, tmp_path / "teacher", {"version": 1})
    # As a SIGKILL between the renames leaves it: the old folder renamed, a new copy missing its last file.
    folder.rename(tmp_path / ".teacher.old-aaaa")
    half = save_checkpoint(model, tok, tmp_path / "half", {"version": 2})
    (half / "training_info.json").unlink()
    half.rename(tmp_path / ".teacher.tmp-bbbb")
    _, _, info = load_checkpoint(folder, "training.py")
    assert info == {"version": 1} and leftovers(tmp_path) == []
    # Leftovers beside a folder that is in place are removed too.
    (tmp_path / ".teacher.tmp-cccc").mkdir()
    save_checkpoint(model, tok, folder, {"version": 3})
    assert leftovers(tmp_path) == [] and read_json(folder / "training_info.json") == {"version": 3}


@pytest.mark.parametrize("damage", ["truncated weights", "malformed info"])
def test_a_damaged_checkpoint_is_one_line_naming_the_fix(tiny_model_and_tokenizer, tmp_path, damage):
    model, tok = tiny_model_and_tokenizer
    folder = save_checkpoint(model, tok, tmp_path / "student", {"version": 1})
    if damage == "truncated weights":
        weights = folder / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[:1000])
    else:
        (folder / "training_info.json").write_text('{"version": ')
    with pytest.raises(UserError) as e:
        load_checkpoint(folder, "origi.py", what="student")
    assert str(e.value).startswith(f"cannot read the student at {folder}") and "run `python origi.py` again" in str(e.value)
    assert "\n" not in str(e.value)


def test_a_results_file_whose_last_line_lacks_its_newline_keeps_it_apart(tmp_path):
    path = tmp_path / "results.txt"
    path.write_text("2026-01-01T00:00:00Z training.py model=teacher test_acc=0.5")  # cut short by a kill
    append_results(path, "origi.py", [{"model": "student"}, {"model": "student_no_kd"}])
    assert [r["model"] for r in read_results(path)] == ["teacher", "student", "student_no_kd"]


def test_a_run_reports_once(tmp_path):
    path = tmp_path / "results.txt"
    assert len(append_results(path, "training.py", [{"model": "teacher", "run_id": "ab12"}], once=True)) == 1
    assert append_results(path, "training.py", [{"model": "teacher", "run_id": "ab12"}], once=True) == []
    append_results(path, "training.py", [{"model": "teacher", "run_id": "ab12"}, {"model": "teacher", "run_id": "cd"}],
                   once=True)
    assert [r["run_id"] for r in read_results(path)] == ["ab12", "cd"]


def test_output_paths_are_checked_before_any_work(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("x")
    (tmp_path / "folder").mkdir()
    check_writable(tmp_path / "new" / "deeper" / "results.txt", "--results")  # folders are created later
    check_writable(tmp_path / "new_out", "--out-dir", folder=True)
    for path, flag, folder, message in (
            (tmp_path / "folder", "--results", False, "is a folder, not a file"),
            (tmp_path / "file", "--out-dir", True, "is a file, not a folder"),
            (tmp_path / "file" / "results.txt", "--results", False, "which is a file")):
        with pytest.raises(UserError, match=message):
            check_writable(path, flag, folder)
    monkeypatch.setattr("os.access", lambda path, mode: False)  # as a user without write permission
    with pytest.raises(UserError, match=r"--results .* cannot be written \(.* is not writable\)"):
        check_writable(tmp_path / "folder" / "results.txt", "--results")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "folder"]  # nothing created
