"""origi.py in process: students written, unrevealed labels never read, bad input refused."""

import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

import common
import origi
import training
from labelless import store
from labelless.data import Reviews
from labelless.distill import distil
from labelless.fit import predict_logits
from labelless.store import load_checkpoint, read_json, read_results



def run_args(data, ck, results, *extra):
    return ["--preset", "smoke", "--data", str(data), "--out-dir", str(ck), "--results", str(results),
            "--no-progress", "--threads", "1", *extra]


@pytest.fixture
def teacher(parquet_dir, tmp_path):
    ck = tmp_path / "ck"
    training.main(run_args(parquet_dir, ck, tmp_path / "training.txt"))
    return ck


def test_smoke_run_writes_students_and_results(parquet_dir, teacher, tmp_path):
    results = tmp_path / "results.txt"
    out = origi.main(run_args(parquet_dir, teacher, results))
    records = read_results(results)
    assert [r["model"] for r in records] == ["student", "student_no_kd"]
    history = read_json(teacher / "teacher" / "al_history.json")
    s, b = records
    assert s["transfer_size"] == len(history["pool_index"]) == 240 and s["unlabeled"] == 0
    assert b["transfer_size"] == len(history["revealed_index"]) == 120
    assert s["labels_used"] == history["labels_used"] == 180
    assert s["test_acc"] == pytest.approx(out["student"]["test_acc"], abs=1e-4)
    assert 0 <= s["agreement"] <= 1 and s["temperature"] == 4.0 and s["alpha"] == 0.9 and b["alpha"] == 0.0
    teacher_model = load_checkpoint(teacher / "teacher", "training.py")[0]
    for name in ("student", "student_no_kd"):
        model, _, info = load_checkpoint(teacher / name, "origi.py")
        assert info["distilled"] == (name == "student")
        # Both students carry the teacher's bag of n-grams beside an encoder of their own.
        for key, value in teacher_model.bag.state_dict().items():
            assert torch.equal(model.bag.state_dict()[key], value)


def test_the_student_distils_from_the_teachers_encoder_alone(parquet_dir, teacher, tmp_path, monkeypatch):
    teacher_model = load_checkpoint(teacher / "teacher", "training.py")[0]
    seen = {}

    def recording_distil(model, ids, teacher_logits, *args, **kwargs):
        seen["ids"], seen["logits"] = ids, teacher_logits
        return distil(model, ids, teacher_logits, *args, **kwargs)

    monkeypatch.setattr(origi, "distil", recording_distil)
    origi.main(run_args(parquet_dir, teacher, tmp_path / "results.txt", "--skip-baseline"))
    teacher_model.bag = None  # the encoder alone
    np.testing.assert_allclose(seen["logits"], predict_logits(teacher_model, seen["ids"]), atol=1e-5)


def test_unlabeled_imdb_adds_the_unlabeled_reviews_to_the_students_transfer_set(parquet_dir, teacher, tmp_path):
    origi.main(run_args(parquet_dir, teacher, tmp_path / "r.txt", "--unlabeled", "imdb"))
    s, b = read_results(tmp_path / "r.txt")
    assert s["transfer_size"] == 240 + 160 and s["unlabeled"] == 160  # the pool, then the unlabeled reviews
    assert b["transfer_size"] == 120 and b["unlabeled"] == 0  # the baseline reads the revealed labels only


def test_unrevealed_labels_are_never_read(parquet_dir, teacher, tmp_path):
    before = origi.main(run_args(parquet_dir, teacher, tmp_path / "a.txt", "--skip-baseline"))
    history = read_json(teacher / "teacher" / "al_history.json")
    hidden = np.setdiff1d(history["pool_index"], history["revealed_index"])
    table = pq.read_table(parquet_dir / "train.parquet")
    labels = np.array(table["label"].to_pylist())
    labels[hidden] = 1 - labels[hidden]  # corrupt every label active learning did not reveal
    pq.write_table(pa.table({"text": table["text"], "label": labels}), parquet_dir / "train.parquet")
    shutil.rmtree(teacher / "student")  # trained again, not reused
    after = origi.main(run_args(parquet_dir, teacher, tmp_path / "b.txt", "--skip-baseline"))
    assert after == before
    assert read_results(tmp_path / "a.txt")[0]["run_id"] == read_results(tmp_path / "b.txt")[0]["run_id"]


def test_missing_teacher_exits_2_and_leaves_results_alone(tmp_path, parquet_dir, capsys):
    results = tmp_path / "results.txt"
    results.write_text("2026-01-01T00:00:00Z training.py model=teacher\n")
    with pytest.raises(SystemExit) as e:
        origi.main(run_args(parquet_dir, tmp_path / "nowhere", results))
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"origi.py: error: no teacher at {tmp_path / 'nowhere' / 'teacher'}: "
                   "run `python training.py` first (or pass --out-dir)")
    assert results.read_text() == "2026-01-01T00:00:00Z training.py model=teacher\n"


def test_other_data_than_the_teachers_is_refused(teacher, tmp_path, capsys):
    from conftest import write_parquet

    other = write_parquet(tmp_path / "other", seed=7)
    with pytest.raises(SystemExit) as e:
        origi.main(run_args(other, teacher, tmp_path / "r.txt"))
    assert e.value.code == 2 and "is not the data the teacher was trained on" in capsys.readouterr().err


@pytest.mark.parametrize("extra, message", [
    (["--temperature", "0"], "--temperature must be positive"),
    (["--alpha", "1.5"], "--alpha must be between 0 and 1, got 1.5"),
    (["--lr", "0"], "--lr must be positive, got 0.0"),
    (["--dropout", "1"], "--dropout must be in [0, 1), got 1.0"),
    (["--no-distill", "--temperature", "8"], "--temperature and --alpha set the distillation, which --no-distill"),
    (["--no-distill", "--alpha", "0.5"], "--temperature and --alpha set the distillation, which --no-distill"),
])
def test_bad_options(parquet_dir, tmp_path, capsys, extra, message):
    with pytest.raises(SystemExit) as e:
        origi.main(run_args(parquet_dir, tmp_path, tmp_path / "r.txt", *extra))
    err = capsys.readouterr().err
    assert e.value.code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r.txt").exists()


def test_a_teacher_without_its_history_is_refused(parquet_dir, teacher, tmp_path, capsys):
    (teacher / "teacher" / "al_history.json").unlink()
    with pytest.raises(SystemExit) as e:
        origi.main(run_args(parquet_dir, teacher, tmp_path / "r.txt"))
    assert e.value.code == 2 and "lacks its active-learning history" in capsys.readouterr().err
    assert not (tmp_path / "r.txt").exists()


def test_a_kill_after_the_first_students_line_leaves_one_line_per_model(parquet_dir, teacher, tmp_path, monkeypatch):
    results, real_append = tmp_path / "r.txt", store.append_results

    def killed_after_one(*args, **kwargs):
        real_append(*args, **kwargs)
        raise KeyboardInterrupt  # after the student's line, before student_no_kd is trained

    monkeypatch.setattr(store, "append_results", killed_after_one)
    with pytest.raises(KeyboardInterrupt):
        origi.main(run_args(parquet_dir, teacher, results))
    monkeypatch.undo()
    student = (teacher / "student" / "model.safetensors").read_bytes()
    out = origi.main(run_args(parquet_dir, teacher, results))  # the same command again
    assert [r["model"] for r in read_results(results)] == ["student", "student_no_kd"]
    assert (teacher / "student" / "model.safetensors").read_bytes() == student  # reused, not trained twice
    assert out["student"]["test_acc"] == pytest.approx(read_results(results)[0]["test_acc"], abs=1e-4)
    origi.main(run_args(parquet_dir, teacher, results))  # and once more: still one line per model
    assert len(read_results(results)) == 2


def test_a_damaged_teacher_is_one_line(parquet_dir, teacher, tmp_path, capsys):
    weights = teacher / "teacher" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:2000])
    with pytest.raises(SystemExit) as e:
        origi.main(run_args(parquet_dir, teacher, tmp_path / "r.txt"))
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1 and "cannot read the teacher at" in err
    assert not (tmp_path / "r.txt").exists()


@pytest.mark.parametrize("preset, unlabeled", [("smoke", "none"), ("quick", "imdb"), ("full", "imdb")])
def test_quick_and_full_distil_on_the_unlabeled_reviews_by_default(preset, unlabeled):
    from common import apply_preset

    assert apply_preset(origi.parse_args(["--preset", preset])).student_unlabeled == unlabeled
    assert apply_preset(origi.parse_args(["--preset", preset, "--unlabeled", "none"])).student_unlabeled == "none"


@pytest.mark.parametrize("preset, max_len", [("smoke", None), ("quick", None), ("full", 256)])
def test_full_s_student_reads_the_last_256_tokens_by_default(preset, max_len):
    from common import apply_preset

    assert apply_preset(origi.parse_args(["--preset", preset])).student_max_len == max_len  # None: the teacher's
    assert apply_preset(origi.parse_args(["--preset", preset, "--max-len", "64"])).student_max_len == 64


def test_the_student_can_read_fewer_tokens_than_the_teacher(parquet_dir, teacher, tmp_path, monkeypatch, capsys):
    seen, real = [], origi.distil

    def recording(model, ids, *args, **kwargs):
        seen.append(max(len(x) for x in ids))
        return real(model, ids, *args, **kwargs)

    monkeypatch.setattr(origi, "distil", recording)
    origi.main(run_args(parquet_dir, teacher, tmp_path / "r.txt", "--skip-baseline", "--max-len", "16"))
    model, tok, _ = load_checkpoint(teacher / "student", "origi.py")
    teacher_model, teacher_tok, _ = load_checkpoint(teacher / "teacher", "training.py")
    assert model.config.max_len == 16 and seen == [16]  # the encoder trained on the last 16 tokens
    # Its copy of the teacher's bag reads what the teacher's did, the whole 64 tokens; the model crops for the encoder.
    assert model.config.bag_max_len == 64 and tok.model_max_length == teacher_tok.model_max_length == 64
    text = "the plot was boring and the actors awful, but the ending was great and moving " * 3
    ids = torch.tensor([tok(text, truncation=True)["input_ids"]])
    assert ids.shape[1] == 64
    with torch.no_grad():
        whole = model(ids).logits
        bag = model.bag(ids, torch.ones_like(ids, dtype=torch.bool))
        torch.testing.assert_close(bag, teacher_model.bag(ids, torch.ones_like(ids, dtype=torch.bool)))
        crop = torch.cat([ids[:, :1], ids[:, -15:]], 1)
        torch.testing.assert_close(whole, model(crop).logits - model.bag(crop, torch.ones_like(crop, dtype=torch.bool))
                                   + bag)
    assert read_results(tmp_path / "r.txt")[0]["max_len"] == 16
    for bad in ("65", "0"):
        with pytest.raises(SystemExit) as e:
            origi.main(run_args(parquet_dir, teacher, tmp_path / "r.txt", "--max-len", bad))
        assert e.value.code == 2 and f"--max-len must be between 8 and 64, got {bad}" in capsys.readouterr().err


def test_the_presets_length_is_capped_by_a_shorter_teachers(parquet_dir, teacher, tmp_path, monkeypatch):
    monkeypatch.setitem(common.PRESETS["smoke"], "student_max_len", 128)  # as full's 256 on a 128-token teacher
    origi.main(run_args(parquet_dir, teacher, tmp_path / "r.txt", "--skip-baseline"))
    assert load_checkpoint(teacher / "student", "origi.py")[0].config.max_len == 64  # the smoke teacher's


def test_shorten_keeps_the_end_as_the_tokenizer_does(tiny_model_and_tokenizer):
    _, tok = tiny_model_and_tokenizer
    texts = ["a great and moving film, " * 5, "dull"]
    long = Reviews(np.arange(2), [np.array(x) for x in tok(texts, truncation=True)["input_ids"]], np.zeros(2))
    tok.model_max_length = 10
    assert [x.tolist() for x in origi.shorten(long, 10).ids] == tok(texts, truncation=True)["input_ids"]
