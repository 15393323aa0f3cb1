"""The benchmark scripts: the n-gram bar on the teacher's partition, teacher_dev's members, pool scoring,
the GPU check rehearsed on CPU."""

import os
import subprocess

import pytest
from conftest import ROOT

import common
from benchmarks import ngram_baseline, student_dev, teacher_dev
from labelless import active
from labelless.store import read_results


def baseline_args(parquet_dir, results, *extra):
    return ["--preset", "smoke", "--data", str(parquet_dir), "--results", str(results), "--no-progress", *extra]


def test_baseline_learns_on_the_teachers_split_and_writes_a_line_per_label_count(parquet_dir, tmp_path):
    # smoke: 300 training reviews, 60 of them validation, so a pool of 240; its teacher asks 180 - 60 = 120.
    out = ngram_baseline.main(baseline_args(parquet_dir, tmp_path / "r.txt"))
    lines = read_results(tmp_path / "r.txt")
    assert [x["pool_labels"] for x in lines] == [120, 240] and [x["labels_used"] for x in lines] == [180, 300]
    assert [r["test_acc"] for r in out["runs"]] == [x["test_acc"] for x in lines]
    assert all(x["model"] == "ngram_baseline" and x["test_acc"] >= 0.9 for x in lines)  # the reviews are learnable
    few = ngram_baseline.main(baseline_args(parquet_dir, tmp_path / "few.txt", "--labels", "4"))["runs"]
    assert few[0]["labels_used"] == 64 and few[0]["test_acc"] < lines[-1]["test_acc"]  # labels matter


@pytest.mark.parametrize("labels", ["1", "241", "2,x", ""])
def test_bad_label_counts_exit_2_and_write_nothing(parquet_dir, tmp_path, capsys, labels):
    with pytest.raises(SystemExit) as e:
        ngram_baseline.main(baseline_args(parquet_dir, tmp_path / "r.txt", "--labels", labels))
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--labels" in err
    assert not (tmp_path / "r.txt").exists()


@pytest.fixture
def tiny_dev(monkeypatch, parquet_dir):
    """teacher_dev.main on a tiny synthetic copy, counting the models it trains."""
    monkeypatch.setattr(teacher_dev, "DEV_SIZE", 60)
    monkeypatch.setattr(teacher_dev, "DEV_BLOCK", 10)
    monkeypatch.setattr(teacher_dev, "POOL_SIZE", 200)
    trained, real = [], active.train_round

    def counted(model, *args, **kwargs):
        trained.append(model)
        return real(model, *args, **kwargs)

    monkeypatch.setattr(teacher_dev, "train_round", counted)

    def run(*extra):
        argv = ["--data", str(parquet_dir), "--labels", "80", "--epochs", "1", "--batch-size", "16",
                "--vocab-size", "300", "--max-len", "32", "--teacher-size", "tiny", "--lr", "3e-3",
                "--ensemble", "2", "--no-progress", *extra]
        trained.clear()
        return teacher_dev.main(argv)["dev_acc"], len(trained)

    return run


def test_members_are_saved_then_loaded_and_give_the_same_distillation(tiny_dev, tmp_path, capsys):
    fresh, n_fresh = tiny_dev()
    kept, n_kept = tiny_dev("--members", str(tmp_path / "m"))
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["seed1_member1", "seed1_member10001"]
    reused, n_reused = tiny_dev("--members", str(tmp_path / "m"))
    assert (n_fresh, n_kept, n_reused) == (2, 2, 0)  # the third run trains no member
    assert fresh == kept == reused  # loading the members changes nothing downstream
    out = capsys.readouterr().out
    ensembles = [line for line in out.splitlines() if line.startswith("ensemble of 2")]
    assert len(ensembles) == 3 and len(set(ensembles)) == 1
    assert out.count("(loaded from") == 2 and out.count("distilled: dev accuracy per epoch") == 3


def test_members_of_other_settings_are_refused(tiny_dev, tmp_path, capsys):
    tiny_dev("--members", str(tmp_path / "m"))
    before = sorted(p.name for p in (tmp_path / "m").rglob("*"))
    with pytest.raises(SystemExit) as e:
        tiny_dev("--members", str(tmp_path / "m"), "--dropout", "0.3")
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "other settings" in err and "--members" in err
    assert sorted(p.name for p in (tmp_path / "m").rglob("*")) == before


@pytest.mark.parametrize("extra, message", [
    (["--labels", "0"], "--labels must be between 1 and 200, got 0"),
    (["--labels", "201"], "--labels must be between 1 and 200, got 201"),
    (["--labels", "80", "--dropout", "1"], "--dropout must be in [0, 1), got 1.0"),
    (["--labels", "80", "--bag", "--bag-epochs", "0"], "--bag-epochs must be at least 1, got 0"),
])
def test_bad_options_are_refused_before_anything_is_written(monkeypatch, tmp_path, capsys, extra, message):
    monkeypatch.setattr(teacher_dev, "POOL_SIZE", 200)
    with pytest.raises(SystemExit) as e:
        teacher_dev.main([*extra, "--members", str(tmp_path / "m")])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not (tmp_path / "m").exists()


def test_onnx_parity_on_the_pipelines_models(parquet_dir, tmp_path, capsys):
    import origi
    import training
    from benchmarks import onnx_parity

    args = ["--preset", "smoke", "--data", str(parquet_dir), "--out-dir", str(tmp_path / "ck"), "--no-progress"]
    training.main(args + ["--results", str(tmp_path / "r.txt")])
    origi.main(args + ["--results", str(tmp_path / "r.txt"), "--skip-baseline"])
    out = onnx_parity.main(args)
    for name in ("student", "vanilla"):
        assert out[name]["max_abs_diff_torch"] == 0 and out[name]["max_abs_diff_onnx"] < 1e-4
        assert out[name]["agreement_torch"] == 1 and out[name]["agreement_onnx"] == 1
        assert out[name]["agreement_onnx-int8"] >= 0.9
        assert abs(out[name]["accuracy_onnx-int8"] - out[name]["accuracy_torch"]) <= 0.1
    assert "onnx-int8: largest |logit - torch's|" in capsys.readouterr().out
    train = onnx_parity.main(args + ["--split", "train"])  # another sample: the training split's
    assert train["data_fingerprint"] != out["data_fingerprint"]
    assert "train reviews" in capsys.readouterr().out


def test_tokenizer_speed_times_each_normalizer_on_the_same_vocabulary(parquet_dir, capsys):
    from benchmarks import tokenizer_speed

    out = tokenizer_speed.main(["--preset", "smoke", "--data", str(parquet_dir), "--repeats", "2", "--no-progress"])
    assert len(out) == 3 and all(r["reviews_per_s"] > 0 for r in out.values())
    now = next(iter(out.values()))
    assert now["same_ids"] == 1.0 and all(0 < r["same_ids"] <= 1 for r in out.values())
    assert capsys.readouterr().out.count("reviews/s") == 3


def test_pool_scoring_scores_every_synthetic_review_in_one_process(capsys):
    from benchmarks import pool_scoring

    rows = pool_scoring.main(["--pool-sizes", "40,60", "--size", "tiny", "--max-len", "16"])
    assert [(r["processes"], r["pool"]) for r in rows] == [(1, 40), (1, 60)] and all(r["reviews_per_s"] > 0 for r in rows)
    assert capsys.readouterr().out.count("processes=1") == 2
    assert pool_scoring.row_ids(5, 16).tolist() == pool_scoring.row_ids(5, 16).tolist()  # a row is its index's alone
    from labelless import runtime

    kept = pool_scoring.main(["--pool-sizes", "40", "--size", "tiny", "--max-len", "16", "--keep-heap"])
    assert [r["heap"] for r in rows + kept] == ["trimmed", "trimmed", "kept"] and runtime.RELEASE_HEAP


def test_gpu_check_rehearsed_on_cpu_runs_the_pipeline_on_one_process_and_on_two(parquet_dir, tmp_path):
    """benchmarks/gpu_check.sh, the one prepared script for a GPU machine, on the smoke preset on CPU."""
    env = os.environ | {"IMDB_DATA": str(parquet_dir), "GPU_CHECK_PRESET": "smoke", "GPU_CHECK_DEVICE": "cpu",
                        "GPU_CHECK_NPROC": "2", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), str(tmp_path / "gpu")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    for run, nproc in (("one_gpu", 1), ("all_gpus", 2)):
        models = [r["model"] for r in read_results(tmp_path / "gpu" / run / "results.txt")]
        assert models[:4] == ["teacher", "bar", "student", "student_no_kd"] and "vanilla" in models
        assert f"preset=smoke nproc={nproc} " in (tmp_path / "gpu" / run / "log.txt").read_text()
    assert "torch" in (tmp_path / "gpu" / "machine.txt").read_text()


def test_teacher_dev_reports_the_teacher_with_a_bag_beside_it(tiny_dev, capsys):
    tiny_dev("--ensemble", "1", "--bag", "--bag-epochs", "1")
    out = capsys.readouterr().out
    assert "'bag_epochs': 1" in out
    assert "the encoder alone: dev accuracy" in out and "RESULT dev_acc=" in out and " bag_dev_acc=" in out
    assert " bag_alone_dev_acc=" in out


def test_student_dev_distils_each_arm_on_the_development_set(parquet_dir, monkeypatch, capsys):
    monkeypatch.setattr(student_dev, "DEV_SIZE", 60)
    monkeypatch.setattr(student_dev, "DEV_BLOCK", 10)
    monkeypatch.setattr(student_dev, "POOL_SIZE", 200)
    small = common.PRESETS["smoke"]
    monkeypatch.setitem(common.PRESETS, "quick", common.PRESETS["quick"] | {
        k: small[k] for k in ("vocab_size", "max_len", "teacher_size", "student_size", "epochs", "distill_epochs")})
    out = student_dev.main(["--data", str(parquet_dir), "--labels", "80", "--no-progress"])
    assert set(out) == {"hybrid", "copy_bag"} and all(0 <= acc <= 1 for acc in out.values())
    assert capsys.readouterr().out.count("RESULT arm=") == 2
    with pytest.raises(SystemExit):
        student_dev.main(["--data", str(parquet_dir), "--arms", "today"])
