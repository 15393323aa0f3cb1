"""training.py and origi.py under ``torchrun --nproc_per_node 2`` (gloo on CPU): one report, files written
by rank 0 only, the same labeled set on every rank, resume, a failing rank that ends the job, and a
launch as two machines (``--nnodes 2``) that meet at a rendezvous address."""

import json
import os
import socket
import subprocess
import sys

import pytest
from conftest import ROOT

from labelless.store import read_results

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="torchrun's standalone rendezvous")


def ranks_command(record, parquet_dir, out, *extra, script="training", launch=("--standalone", "--nproc_per_node", "2")):
    """torchrun running tests/ranks.py on the smoke preset."""
    record.mkdir(parents=True, exist_ok=True)
    return [sys.executable, "-m", "torch.distributed.run", *launch, str(ROOT / "tests" / "ranks.py"), str(record),
            script, "--preset", "smoke", "--data", str(parquet_dir), "--out-dir", str(out / "ck"),
            "--results", str(out / "results.txt"), "--no-progress", *extra]


ONE_THREAD = os.environ | {"OMP_NUM_THREADS": "1"}


def torchrun(record, parquet_dir, out, *extra, script="training", env=None):
    """Two ranks of tests/ranks.py on the smoke preset, one thread each; returns the finished process."""
    return subprocess.run(ranks_command(record, parquet_dir, out, *extra, script=script), cwd=ROOT,
                          capture_output=True, text=True, timeout=300, env=ONE_THREAD | (env or {}))


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


def test_two_machines_meet_at_a_rendezvous_address(parquet_dir, tmp_path):
    """``--nnodes 2 --node_rank k --master_addr --master_port``, one process per "machine" (two launchers
    here): global ranks 0 and 1, the same labeled set, one report, files from rank 0 only."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    nodes = [subprocess.Popen(
        ranks_command(tmp_path / "r", parquet_dir, tmp_path, launch=(
            "--nnodes", "2", "--node_rank", str(k), "--nproc_per_node", "1", "--master_addr", "127.0.0.1",
            "--master_port", port)),
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ONE_THREAD) for k in (0, 1)]
    done = [node.communicate(timeout=300) for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], done[0][1][-2000:] + done[1][1][-2000:]
    zero, one = ranks(tmp_path / "r")
    assert len(set(labeled(zero))) == 120 and labeled(zero) == labeled(one)
    assert one["saved"] == [] and len(zero["saved"]) == 5
    assert done[0][0].count("final val_acc") == 1 and "final val_acc" not in done[1][0]
