"""labelless.timing: run statistics against a fake clock, the sample, what may be compared."""

import numpy as np
import pytest

from labelless import timing
from labelless.sources import load_imdb


class FakeClock:
    """Stands in for time.perf_counter: only the fake model's work advances it."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_time_runs_statistics_with_a_model_of_known_cost(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(timing.time, "perf_counter", clock)
    calls = []

    def fake_model(batch):
        calls.append(batch)
        # Warm-up calls are slow (first-call overheads); a timed call costs 1 ms per review.
        clock.now += 1.0 if len(calls) <= 4 else 0.001 * batch

    batches = [10, 10, 20, 40]  # batch sizes: 80 reviews per run
    runs = timing.time_runs(fake_model, batches, warmup=1, repeats=3)
    assert len(calls) == 16  # 1 warm-up run + 3 timed runs, 4 batches each
    assert runs["run_seconds"] == pytest.approx([0.08, 0.08, 0.08])
    assert sorted(runs["latencies"]) == pytest.approx(sorted([0.01, 0.01, 0.02, 0.04] * 3))
    stats = timing.summarise(runs, n_items=80, n_tokens=8000)
    assert stats["reviews_per_s"] == pytest.approx(1000)
    assert stats["tokens_per_s"] == pytest.approx(100_000)
    assert stats["latency_ms_p50"] == pytest.approx(15.0)  # median of 10,10,10,10,10,10,20,20,20,40,40,40
    assert stats["latency_ms_p95"] == pytest.approx(40.0)


def test_throughput_is_the_median_run(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(timing.time, "perf_counter", clock)
    costs = iter([0.1, 0.5, 0.1, 0.2])  # one run disturbed by another process

    def fake_model(batch):
        clock.now += next(costs)

    stats = timing.summarise(timing.time_runs(fake_model, [1], warmup=0, repeats=4), n_items=10, n_tokens=10)
    assert stats["reviews_per_s"] == pytest.approx(10 / 0.15)


def test_short_runs_are_repeated_until_min_seconds_add_up(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(timing.time, "perf_counter", clock)

    def fake_model(batch):
        clock.now += 0.3

    assert len(timing.time_runs(fake_model, [1], 1, 3, min_seconds=2.0)["run_seconds"]) == 7  # 7 x 0.3 >= 2
    assert len(timing.time_runs(fake_model, [1], 1, 3, min_seconds=0.5)["run_seconds"]) == 3  # repeats first
    assert len(timing.time_runs(fake_model, [1], 1, 3)["run_seconds"]) == 3


class DriftingModel:
    """A served model on a machine that gets twice as slow at ``slow_from`` seconds: ``per_review`` seconds
    a review before that, twice that after. Logs its name on every request."""

    def __init__(self, name, per_review, clock, log, slow_from):
        self.name, self.per_review, self.clock, self.log, self.slow_from = name, per_review, clock, log, slow_from

    def cost(self, texts):
        return self.per_review * len(texts) * (2.0 if self.clock.now >= self.slow_from else 1.0)

    def predict(self, texts):
        self.log.append(self.name)
        self.clock.now += self.cost(texts)

    # Model-only measures: inputs prepared beforehand, the model alone at 0.2 of the end-to-end cost.
    def inputs(self, texts):
        return list(texts)

    def lengths(self, inputs):
        return [len(t) for t in inputs]

    def batch(self, inputs, rows):
        return [inputs[i] for i in rows]

    def scores(self, batch):
        self.clock.now += 0.2 * self.cost(batch)


def test_paired_passes_cancel_drift_and_alternate(monkeypatch):
    clock, log = FakeClock(), []
    monkeypatch.setattr(timing.time, "perf_counter", clock)
    student = DriftingModel("s", 0.001, clock, log, slow_from=1.0)
    bar = DriftingModel("b", 0.00125, clock, log, slow_from=1.0)  # the student is 1.25x the bar's speed

    def e2e(served):
        return lambda: timing.time_runs(served.predict, [["a review"] * 32] * 2, 0, 1)["run_seconds"][0]

    student_s, bar_s = timing.paired_passes(e2e(student), e2e(bar), min_seconds=2.0)
    # Passes of 64 reviews in requests of 32: 0.064 s and 0.08 s, then twice as long once the machine slows.
    assert len(student_s) == len(bar_s) >= timing.MIN_PAIRS and student_s.sum() + bar_s.sum() >= 2.0 - 0.2
    ratios = bar_s / student_s
    assert np.median(ratios) == pytest.approx(1.25)  # whatever the drift: only a pair across the change differs
    assert set(student_s.round(3)) >= {0.064, 0.128}  # the drift was there
    passes = log[4:][::2]  # one name per pass of two requests, after the warm-up pass of each
    assert passes[:6] == ["s", "b", "b", "s", "s", "b"]  # neither always runs right after the other
    assert len(timing.paired_passes(e2e(student), e2e(bar), min_seconds=0.0)[0]) == timing.MIN_PAIRS


def test_every_measure_of_both_times_the_model_its_way(monkeypatch, tmp_path):
    clock, log = FakeClock(), []
    monkeypatch.setattr(timing.time, "perf_counter", clock)
    model = DriftingModel("s", 0.001, clock, log, slow_from=1e9)
    settings = timing.TimingSettings(tmp_path, tmp_path / "r.txt", None, 1, 64, (1, 16), e2e_batch_size=32)
    passes = timing.timed_passes(model, ["a review"] * 64, settings)
    assert list(passes) == ["bs1", "bs16", "e2e", "e2e_latency"]
    assert passes["bs1"]() == pytest.approx(passes["bs16"]()) == pytest.approx(0.2 * 0.064)  # the model alone
    assert not log  # model-only passes send no request
    assert passes["e2e"]() == pytest.approx(0.064) and log == ["s", "s"]  # two requests of 32
    assert passes["e2e_latency"]() == pytest.approx(0.001) and len(log) == 2 + 64  # one review at a time


def test_sample_is_seeded_stratified_and_fingerprinted(parquet_dir):
    _, test = load_imdb(str(parquet_dir))
    a = timing.inference_sample(test, 40, seed=1)
    b = timing.inference_sample(test, 40, seed=1)
    c = timing.inference_sample(test, 40, seed=2)
    assert np.array_equal(a[0], b[0]) and a[3] == b[3]
    assert a[3] != c[3]
    assert np.bincount(a[2]).tolist() == [20, 20]


def test_comparison_refuses_other_data_threads_or_device():
    base = {"data_fingerprint": "abc", "threads": 2, "device": "cpu", "n_reviews": 100}
    assert timing.comparable(base, dict(base)) is None
    assert "other data" in timing.comparable(base, base | {"data_fingerprint": "xyz"})
    assert "other threads" in timing.comparable(base, base | {"threads": 1})
    assert "other device" in timing.comparable(base, base | {"device": "cuda"})
    assert "other sample size" in timing.comparable(base, base | {"n_reviews": 10})


def test_latest_run_takes_the_last_measurement_of_a_model():
    records = [{"model": "student", "run_id": "a", "batch_size": 1}, {"model": "vanilla", "run_id": "b", "batch_size": 1},
               {"model": "student", "run_id": "c", "batch_size": 1}, {"model": "student", "run_id": "c", "batch_size": 8},
               {"model": "pair", "run_id": "d"}]
    assert {bs: r["run_id"] for bs, r in timing.latest_run(records, "student").items()} == {1: "c", 8: "c"}
    assert timing.latest_run(records, "nobody") is None
