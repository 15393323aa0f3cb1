"""benchmarks/teacher_dev.py --members: the ensemble's members are trained once and reused exactly."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import teacher_dev  # noqa: E402
import training  # noqa: E402


@pytest.fixture
def tiny_dev(monkeypatch, parquet_dir):
    """teacher_dev.main on a tiny synthetic copy, counting the models it trains."""
    monkeypatch.setattr(teacher_dev, "DEV_SIZE", 60)
    monkeypatch.setattr(teacher_dev, "DEV_BLOCK", 10)
    monkeypatch.setattr(teacher_dev, "POOL_SIZE", 200)
    trained = []
    real = training.train_round

    def counted(model, *args, **kwargs):
        trained.append(model)
        return real(model, *args, **kwargs)

    monkeypatch.setattr(training, "train_round", counted)

    def run(*extra):
        argv = ["--data", str(parquet_dir), "--labels", "80", "--epochs", "1", "--batch-size", "16",
                "--vocab-size", "300", "--max-len", "32", "--teacher-size", "tiny", "--lr", "3e-3",
                "--ensemble", "2", "--self-distil", "--no-progress", *extra]
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
    assert out.count("(loaded from") == 2


def test_members_of_other_settings_are_refused(tiny_dev, tmp_path, capsys):
    tiny_dev("--members", str(tmp_path / "m"))
    before = sorted(p.name for p in (tmp_path / "m").rglob("*"))
    with pytest.raises(SystemExit) as e:
        tiny_dev("--members", str(tmp_path / "m"), "--dropout", "0.3")
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "other settings" in err and "--members" in err
    assert sorted(p.name for p in (tmp_path / "m").rglob("*")) == before
    # A distillation setting is not a member's: the same members serve another temperature, or an n-gram member.
    assert tiny_dev("--members", str(tmp_path / "m"), "--temperature", "8")[1] == 0
    capsys.readouterr()
    assert tiny_dev("--members", str(tmp_path / "m"), "--ngram-weight", "0.5")[1] == 0
    assert "n-gram member: dev accuracy C=3 " in capsys.readouterr().out


@pytest.mark.parametrize("labels", ["0", "-1", "201"])
def test_labels_out_of_range_are_refused_before_anything_is_written(monkeypatch, tmp_path, capsys, labels):
    monkeypatch.setattr(teacher_dev, "POOL_SIZE", 200)
    with pytest.raises(SystemExit) as e:
        teacher_dev.main(["--labels", labels, "--members", str(tmp_path / "m")])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "--labels must be between 1 and the pool's 200 reviews" in err
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("weight", ["-0.5", "1.5"])
def test_ngram_weight_out_of_range_is_refused_before_anything_is_written(tmp_path, capsys, weight):
    with pytest.raises(SystemExit) as e:
        teacher_dev.main(["--ngram-weight", weight, "--members", str(tmp_path / "m")])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"--ngram-weight must be between 0 and 1, got {float(weight)}" in err
    assert not (tmp_path / "m").exists()
