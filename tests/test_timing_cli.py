"""compare_student.py and vanilla_inference.py in process: the whole pipeline on smoke, refusals."""

import pytest

import compare_student
import origi
import training
import vanilla_inference
from benchmarks import bag_ablation
from labelless import timing
from labelless.store import read_results


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


@pytest.mark.parametrize("extra, message", [
    (["--batch-sizes", "0,x"], "--batch-sizes takes comma-separated positive integers"),
    (["--repeats", "0"], "--repeats must be at least 1, got 0"),
    (["--warmup", "-1"], "--warmup must not be negative, got -1"),
    (["--both", "--pair-seconds", "-5"], "--pair-seconds must not be negative, got -5.0"),
])
def test_bad_options(parquet_dir, tmp_path, capsys, extra, message):
    with pytest.raises(SystemExit) as e:
        compare_student.main(args_for(parquet_dir, tmp_path, tmp_path / "r.txt", *extra))
    err = capsys.readouterr().err
    assert e.value.code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r.txt").exists()


def test_whole_pipeline_smoke(parquet_dir, tmp_path, capsys):
    ck, results = tmp_path / "ck", tmp_path / "results.txt"
    training.main(args_for(parquet_dir, ck, results))
    origi.main(args_for(parquet_dir, ck, results, "--skip-baseline"))
    student = compare_student.main(args_for(parquet_dir, ck, results))
    assert "not compared: no vanilla measurement" in capsys.readouterr().out
    vanilla = vanilla_inference.main(args_for(parquet_dir, ck, results))
    out = capsys.readouterr().out
    assert vanilla["compared"] and "side by side" in out and "end to end, one review, p50 ms" in out
    assert "student/vanilla" in out and "student/bar" in out
    records = read_results(results)
    assert [(r["script"], r["model"]) for r in records] == [
        ("training.py", "teacher"), ("training.py", "bar"), ("origi.py", "student")] + \
        [("compare_student.py", "student")] * 2 + [("compare_student.py", "bar")] * 2 + \
        [("vanilla_inference.py", "vanilla")] * 2 + [("vanilla_inference.py", "bar")] * 2  # batch sizes 1 and 8
    s, b, v = records[3], records[5], records[7]
    assert (s["runtime"], v["runtime"], b["runtime"]) == ("torch", "torch", "sklearn")
    assert s["data_fingerprint"] == v["data_fingerprint"] == b["data_fingerprint"] and s["n_reviews"] == 40
    assert s["accuracy"] == pytest.approx(student["accuracy"], abs=1e-4)
    assert b["accuracy"] == pytest.approx(records[1]["test_acc"], abs=0.15)  # a sample of the same test split
    assert s["params"] == records[2]["params"] and v["params"] == records[0]["params"]
    for key in ("reviews_per_s", "latency_ms_p50", "latency_ms_p95", "e2e_reviews_per_s", "e2e_latency_ms_p50",
                "e2e_latency_ms_p95", "threads", "device"):
        assert key in s and key in v and key in b
    # A vanilla measurement on other data, or run by another runtime, is not compared.
    compare_student.main(args_for(parquet_dir, ck, results, "--seed", "2"))
    assert "not compared: the latest student and vanilla measurements were measured on other data" in capsys.readouterr().out
    compare_student.main(args_for(parquet_dir, ck, results, "--runtime", "onnx"))
    assert "measured on other runtime (runtime onnx vs torch)" in capsys.readouterr().out
    paired = compare_student.main(args_for(parquet_dir, ck, results, "--both"))
    last = read_results(results)[-1]
    assert last["model"] == "pair" and set(paired["ratios"]) == {
        f"{prefix}_{measure}" for prefix in ("speedup", "vs_bar") for measure in ("bs1", "bs8", "e2e", "e2e_latency")}
    for key, ratios in paired["ratios"].items():
        assert len(ratios) == last[key + "_pairs"] >= timing.MIN_PAIRS
        assert 0 < last[key + "_q1"] <= last[key] <= last[key + "_q3"]
    # The bag's ablation repeats the scripts' test accuracies, with the bag and without.
    ablation = bag_ablation.main(args_for(parquet_dir, ck, results, "--pair-seconds", "0"))
    assert ablation["teacher"]["accuracy"] == pytest.approx(records[0]["test_acc"], abs=1e-4)
    assert ablation["teacher"]["accuracy_encoder"] == pytest.approx(records[0]["encoder_test_acc"], abs=1e-4)
    assert ablation["student"]["accuracy"] == pytest.approx(records[2]["test_acc"], abs=1e-4)
    assert all(row["bag_time_bs32"] > 0 and row["bag_time_e2e"] > 0 for row in ablation.values())


@pytest.mark.parametrize("extra, message", [([], "no teacher at"),
                                            (["--pair-seconds", "-1"], "--pair-seconds must not be negative")])
def test_bag_ablation_without_a_pipeline_or_with_a_bad_option_is_one_line(parquet_dir, tmp_path, capsys, extra, message):
    with pytest.raises(SystemExit) as e:
        bag_ablation.main(args_for(parquet_dir, tmp_path / "ck", tmp_path / "r.txt", *extra))
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and message in err[0]
    assert not (tmp_path / "r.txt").exists()


def test_a_damaged_student_is_one_line(parquet_dir, tmp_path, capsys):
    ck, results = tmp_path / "ck", tmp_path / "results.txt"
    training.main(args_for(parquet_dir, ck, results))
    origi.main(args_for(parquet_dir, ck, results, "--skip-baseline"))
    weights = ck / "student" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:3000])
    before = results.read_text()
    with pytest.raises(SystemExit) as e:
        compare_student.main(args_for(parquet_dir, ck, results))
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1 and "cannot read the student model at" in err
    assert results.read_text() == before


def test_a_measurement_writes_all_its_lines_at_once(parquet_dir, tmp_path, monkeypatch):
    ck, results = tmp_path / "ck", tmp_path / "results.txt"
    training.main(args_for(parquet_dir, ck, results))
    writes, real = [], timing.append_results

    def recording(path, script, records, *args, **kwargs):
        writes.append(len(records))
        return real(path, script, records, *args, **kwargs)

    monkeypatch.setattr(timing, "append_results", recording)
    vanilla_inference.main(args_for(parquet_dir, ck, results))
    assert writes == [4]  # vanilla and the bar at batch sizes 1 and 8, in one write: all lines or none
