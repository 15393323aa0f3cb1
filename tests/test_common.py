"""common.py, the command-line shell: presets, the range check, one-line errors of every script."""

import argparse
import importlib
import os
import subprocess
import sys

import pytest
from conftest import ROOT

import common


def test_presets_fill_only_what_is_unset():
    args = common.add_common_args(argparse.ArgumentParser()).parse_args(["--preset", "smoke"])
    args.max_len, args.vocab_size = None, 123
    common.apply_preset(args)
    assert args.max_len == common.PRESETS["smoke"]["max_len"] and args.vocab_size == 123
    auto = common.apply_preset(common.add_common_args(argparse.ArgumentParser()).parse_args([]))
    assert auto.preset == "quick"  # no GPU here
    with pytest.raises(common.UserError, match="--max-test-samples must be at least 1"):
        parser = common.add_common_args(argparse.ArgumentParser(), subsets=("train", "test"))
        common.apply_preset(parser.parse_args(["--max-test-samples", "0"]))


@pytest.mark.parametrize("value, low, high, open_ends, message", [
    (0, 1, None, {}, "--x must be at least 1, got 0"),
    (0.0, 0, None, {"low_open": True}, "--x must be positive, got 0.0"),
    (-1, 0, None, {}, "--x must not be negative, got -1"),
    (1.0, 0, 1, {"high_open": True}, "--x must be in [0, 1), got 1.0"),
    (1.5, 0, 1, {}, "--x must be between 0 and 1, got 1.5"),
])
def test_range_check_names_the_flag_the_range_and_the_value(value, low, high, open_ends, message):
    with pytest.raises(common.UserError) as e:
        common.check_range(argparse.Namespace(x=value), "x", low, high, **open_ends)
    assert str(e.value) == message
    common.check_range(argparse.Namespace(x=None), "x", low, high, **open_ends)  # unset: nothing to check
    inside = (low + (high if high is not None else low + 2)) / 2 if open_ends else low
    common.check_range(argparse.Namespace(x=inside), "x", low, high, **open_ends)


@pytest.mark.parametrize("script", ["training.py", "origi.py", "compare_student.py", "vanilla_inference.py"])
def test_cli_bad_data_path_is_one_line_exit_2(script, tmp_path):
    results = tmp_path / "results.txt"
    results.write_text("keep me\n")
    proc = subprocess.run([sys.executable, str(ROOT / script), "--data", "/no/such/imdb", "--preset", "smoke",
                           "--out-dir", str(tmp_path), "--results", str(results), "--no-progress"],
                          capture_output=True, text=True, cwd=tmp_path, env=os.environ | {"IMDB_DATA": ""})
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert lines[0].startswith(f"{script}: error:")
    assert results.read_text() == "keep me\n"


@pytest.mark.parametrize("script", ["training", "origi", "compare_student", "vanilla_inference"])
@pytest.mark.parametrize("seed", ["-1", "4294967296"])
def test_a_seed_out_of_range_is_one_line_in_every_script(script, seed, parquet_dir, tmp_path, capsys):
    module = importlib.import_module(script)
    with pytest.raises(SystemExit) as e:
        module.main(["--preset", "smoke", "--data", str(parquet_dir), "--out-dir", str(tmp_path / "ck"),
                     "--results", str(tmp_path / "r.txt"), "--seed", seed, "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1
    assert f"--seed must be between 0 and 4294967295, got {seed}" in err
    assert not (tmp_path / "r.txt").exists()
