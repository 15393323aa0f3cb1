import numpy as np
import pytest

import common
import compare_student
import origi
import training
import vanilla_inference


class FakeClock:
    """Stands in for time.perf_counter: only the fake model's work advances it."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_time_runs_statistics_with_a_model_of_known_cost(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(common.time, "perf_counter", clock)
    calls = []

    def fake_model(batch):
        calls.append(batch)
        # Warm-up calls are slow (first-call overheads); a timed call costs 1 ms per review.
        clock.now += 1.0 if len(calls) <= 4 else 0.001 * batch

    batches = [10, 10, 20, 40]  # batch sizes: 80 reviews per run
    timing = common.time_runs(fake_model, batches, warmup=1, repeats=3)
    assert len(calls) == 16  # 1 warm-up run + 3 timed runs, 4 batches each
    assert timing["run_seconds"] == pytest.approx([0.08, 0.08, 0.08])
    assert sorted(timing["latencies"]) == pytest.approx(sorted([0.01, 0.01, 0.02, 0.04] * 3))
    stats = common.summarise(timing, n_items=80, n_tokens=8000)
    assert stats["reviews_per_s"] == pytest.approx(1000)
    assert stats["tokens_per_s"] == pytest.approx(100_000)
    assert stats["latency_ms_p50"] == pytest.approx(15.0)  # median of 10,10,10,10,10,10,20,20,20,40,40,40
    assert stats["latency_ms_p95"] == pytest.approx(40.0)


def test_throughput_is_the_median_run(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(common.time, "perf_counter", clock)
    costs = iter([0.1, 0.5, 0.1, 0.2])  # one run disturbed by another process

    def fake_model(batch):
        clock.now += next(costs)

    stats = common.summarise(common.time_runs(fake_model, [1], warmup=0, repeats=4), n_items=10, n_tokens=10)
    assert stats["reviews_per_s"] == pytest.approx(10 / 0.15)


def test_sample_is_seeded_stratified_and_fingerprinted(parquet_dir):
    _, test = common.load_imdb(str(parquet_dir))
    a = common.inference_sample(test, 40, seed=1)
    b = common.inference_sample(test, 40, seed=1)
    c = common.inference_sample(test, 40, seed=2)
    assert np.array_equal(a[0], b[0]) and a[3] == b[3]
    assert a[3] != c[3]
    assert np.bincount(a[2]).tolist() == [20, 20]


def test_comparison_refuses_other_data_threads_or_device():
    base = {"data_fingerprint": "abc", "threads": 2, "device": "cpu", "n_reviews": 100}
    assert common.comparable(base, dict(base)) is None
    assert "other data" in common.comparable(base, base | {"data_fingerprint": "xyz"})
    assert "other threads" in common.comparable(base, base | {"threads": 1})
    assert "other device" in common.comparable(base, base | {"device": "cuda"})


def args_for(data, ck, results, *extra):
    return ["--preset", "smoke", "--data", str(data), "--out-dir", str(ck), "--results", str(results),
            "--no-progress", *extra]


@pytest.mark.parametrize("script, folder", [(compare_student, "student"), (vanilla_inference, "teacher")])
def test_missing_checkpoint_exits_2_and_leaves_results(script, folder, parquet_dir, tmp_path, capsys):
    results = tmp_path / "results.txt"
    results.write_text("2026-01-01T00:00:00Z origi.py model=student\n")
    with pytest.raises(SystemExit) as e:
        script.main(args_for(parquet_dir, tmp_path / "ck", results))
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"no {'student' if folder == 'student' else 'vanilla'} model at" in err[0]
    assert str(tmp_path / "ck" / folder) in err[0]
    assert results.read_text() == "2026-01-01T00:00:00Z origi.py model=student\n"


def test_bad_batch_sizes(parquet_dir, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        compare_student.main(args_for(parquet_dir, tmp_path, tmp_path / "r.txt", "--batch-sizes", "0,x"))
    assert e.value.code == 2 and "--batch-sizes takes comma-separated positive integers" in capsys.readouterr().err


def test_whole_pipeline_smoke(parquet_dir, tmp_path, capsys):
    ck, results = tmp_path / "ck", tmp_path / "results.txt"
    training.main(args_for(parquet_dir, ck, results))
    origi.main(args_for(parquet_dir, ck, results, "--skip-baseline"))
    student = compare_student.main(args_for(parquet_dir, ck, results))
    assert "not compared: no vanilla measurement" in capsys.readouterr().out
    vanilla = vanilla_inference.main(args_for(parquet_dir, ck, results))
    out = capsys.readouterr().out
    assert vanilla.get("compared") and "student vs vanilla" in out and "end to end" in out
    records = common.read_results(results)
    assert [r["script"] for r in records] == ["training.py", "origi.py"] + ["compare_student.py"] * 2 + \
        ["vanilla_inference.py"] * 2  # smoke times batch sizes 1 and 8
    s, v = records[2], records[4]
    assert s["model"] == "student" and v["model"] == "vanilla"
    assert s["data_fingerprint"] == v["data_fingerprint"] and s["n_reviews"] == 40
    assert s["accuracy"] == pytest.approx(student["accuracy"], abs=1e-4)
    assert s["params"] == records[1]["params"] and v["params"] == records[0]["params"]
    for key in ("reviews_per_s", "latency_ms_p50", "latency_ms_p95", "e2e_reviews_per_s", "threads", "device"):
        assert key in s and key in v

    # A vanilla measurement on other data is not compared.
    compare_student.main(args_for(parquet_dir, ck, results, "--seed", "2"))
    assert "not compared: the latest vanilla measurement was measured on other data" in capsys.readouterr().out

    pair = compare_student.main(args_for(parquet_dir, ck, results, "--both", "--repeats", "2"))
    assert len(pair["ratios"]["speedup_bs8"]) == 2
    last = common.read_results(results)[-1]
    assert last["model"] == "pair" and last["pairs"] == 2 and last["speedup_bs8"] > 0
