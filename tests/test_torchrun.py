"""training.py and origi.py under ``torchrun --nproc_per_node 2`` (gloo on CPU): one report, files written
by rank 0 only, the same labeled set on every rank, resume, and a failing rank that ends the job."""

import json
import os
import subprocess
import sys

import pytest
from conftest import ROOT

from labelless.store import read_results

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="torchrun's standalone rendezvous")


def torchrun(record, parquet_dir, out, *extra, script="training", env=None):
    """Two ranks of tests/ranks.py on the smoke preset, one thread each; returns the finished process."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               str(ROOT / "tests" / "ranks.py"), str(record), script, "--preset", "smoke", "--data", str(parquet_dir),
               "--out-dir", str(out / "ck"), "--results", str(out / "results.txt"), "--no-progress", *extra]
    record.mkdir(parents=True, exist_ok=True)
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env=os.environ | {"OMP_NUM_THREADS": "1"} | (env or {}))


def ranks(record, script="training"):
    return [json.loads((record / f"{script}_rank{r}.json").read_text()) for r in (0, 1)]


def labeled(rank):
    return rank["out"]["runs"][0]["labeled_index"]


def test_two_ranks_learn_as_one_run_and_rank_0_alone_writes(parquet_dir, tmp_path):
    done = torchrun(tmp_path / "a", parquet_dir, tmp_path / "a")
    assert done.returncode == 0, done.stderr[-3000:]
    zero, one = ranks(tmp_path / "a")
    rounds = zero["out"]["runs"][0]["rounds"]
    assert [r["n_labeled"] for r in rounds] == [40, 80, 120]  # --query-size per round
    assert len(set(labeled(zero))) == 120 and labeled(zero) == labeled(one)  # none twice, the same on every rank
    assert one["saved"] == [] and len(zero["saved"]) == 5  # a state per round, its result, the teacher, ...
    assert done.stdout.count("final val_acc") == 1  # ... one report
    reference = labeled(zero)
    distilled = torchrun(tmp_path / "a", parquet_dir, tmp_path / "a", "--skip-baseline", script="origi")
    assert distilled.returncode == 0, distilled.stderr[-3000:]
    zero, one = ranks(tmp_path / "a", "origi")
    assert zero["out"] == one["out"] and one["saved"] == [] and len(zero["saved"]) == 1
    assert [r["model"] for r in read_results(tmp_path / "a" / "results.txt")] == ["teacher", "bar", "student"]

    # Killed in round 2, then resumed with two ranks again: the same labeled set as the run never killed.
    killed = torchrun(tmp_path / "b", parquet_dir, tmp_path / "b", env={"STOP_AT_ROUND": "2"})
    assert killed.returncode != 0 and not (tmp_path / "b" / "ck" / "teacher").exists()
    resumed = torchrun(tmp_path / "b", parquet_dir, tmp_path / "b", "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming margin seed 1 after round 1" in resumed.stdout
    assert labeled(ranks(tmp_path / "b")[0]) == labeled(ranks(tmp_path / "b")[1]) == reference
    assert [r["model"] for r in read_results(tmp_path / "b" / "results.txt")] == ["teacher", "bar"]


def test_a_failing_rank_ends_the_job_with_its_message(parquet_dir, tmp_path):
    failed = torchrun(tmp_path / "r", parquet_dir, tmp_path, env={"FAIL_RANK": "1"})
    assert failed.returncode != 0
    assert "training.py: rank 1 of 2 failed (RuntimeError: planted failure); the job ends" in failed.stderr
    assert not (tmp_path / "results.txt").exists()
