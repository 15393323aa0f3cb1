"""benchmarks/ngram_baseline.py: the TF-IDF n-gram baseline on the teacher's data split."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import common  # noqa: E402
import ngram_baseline  # noqa: E402


def args(parquet_dir, results, *extra):
    return ["--preset", "smoke", "--data", str(parquet_dir), "--results", str(results), "--no-progress", *extra]


def test_baseline_learns_on_the_teachers_split_and_writes_a_line_per_label_count(parquet_dir, tmp_path):
    # smoke: 300 training reviews, 60 of them validation, so a pool of 240; its teacher asks 180 - 60 = 120.
    out = ngram_baseline.main(args(parquet_dir, tmp_path / "r.txt"))
    lines = common.read_results(tmp_path / "r.txt")
    assert [x["pool_labels"] for x in lines] == [120, 240] and [x["labels_used"] for x in lines] == [180, 300]
    assert [r["test_acc"] for r in out["runs"]] == [x["test_acc"] for x in lines]
    assert all(x["model"] == "ngram_baseline" and x["test_acc"] >= 0.9 for x in lines)  # the reviews are learnable
    few = ngram_baseline.main(args(parquet_dir, tmp_path / "few.txt", "--labels", "4"))["runs"]
    assert few[0]["labels_used"] == 64 and few[0]["test_acc"] < lines[-1]["test_acc"]  # labels matter


@pytest.mark.parametrize("labels", ["1", "241", "2,x", ""])
def test_bad_label_counts_exit_2_and_write_nothing(parquet_dir, tmp_path, capsys, labels):
    with pytest.raises(SystemExit) as e:
        ngram_baseline.main(args(parquet_dir, tmp_path / "r.txt", "--labels", labels))
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--labels" in err
    assert not (tmp_path / "r.txt").exists()
