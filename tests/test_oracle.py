"""A person in the loop: queries written, answers read and checked, and training.py --oracle files driven
by a scripted annotator to the same labeled set as the simulated one."""

import csv
import json
import shlex
import subprocess
import sys

import pytest
from conftest import write_topics_csv

import origi
import training
from labelless import UserError
from labelless.oracle import LABEL_STUDIO_CONFIG, read_answers, write_queries
from labelless.store import read_json

NAMES = ("politics", "sports", "tech")


def filled(path, answers, out):
    """The queries CSV at ``path`` with its label column filled from ``answers`` (id -> label), at ``out``."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    with open(out, "w", newline="") as f:
        writer = csv.DictWriter(f, ["id", "text", "label"])
        writer.writeheader()
        writer.writerows({**row, "label": answers.get(row["id"], "")} for row in rows)
    return out


def test_queries_are_a_csv_to_fill_and_label_studio_tasks(tmp_path):
    path = write_queries(tmp_path, 2, ["a7", "b9"], ['a "quoted", text', "line\nbreak"], NAMES)
    assert path == tmp_path / "queries" / "round_2.csv"
    with open(path, newline="") as f:
        assert list(csv.DictReader(f)) == [{"id": "a7", "text": 'a "quoted", text', "label": ""},
                                           {"id": "b9", "text": "line\nbreak", "label": ""}]
    tasks = json.loads((tmp_path / "queries" / "round_2.tasks.json").read_text())
    assert tasks == [{"data": {"row_id": "a7", "text": 'a "quoted", text'}}, {"data": {"row_id": "b9", "text": "line\nbreak"}}]
    config = (tmp_path / "queries" / LABEL_STUDIO_CONFIG).read_text()
    assert '<Text name="text" value="$text"/>' in config and all(f'<Choice value="{n}"/>' in config for n in NAMES)


def test_answers_from_the_csv_names_or_class_ids(tmp_path):
    path = write_queries(tmp_path, 1, ["a", "b", "c"], ["x", "y", "z"], NAMES)
    answers = filled(path, {"a": "tech", "b": " sports ", "c": "0"}, tmp_path / "answers.csv")
    assert read_answers(answers, ["c", "a", "b"], NAMES, 1) == [0, 2, 1]  # in the order asked


def test_answers_from_a_label_studio_export(tmp_path):
    # Label Studio's JSON export (documented format): each task with its data and annotations, a cancelled
    # annotation skipped, the latest one kept.
    export = [
        {"id": 11, "data": {"row_id": "a", "text": "x"}, "project": 3, "annotations": [
            {"id": 1, "was_cancelled": False, "ground_truth": False, "lead_time": 3.2, "result": [
                {"id": "r1", "from_name": "label", "to_name": "text", "type": "choices", "origin": "manual",
                 "value": {"choices": ["sports"]}}]}]},
        {"id": 12, "data": {"row_id": "b", "text": "y"}, "project": 3, "annotations": [
            {"id": 2, "was_cancelled": False, "result": [
                {"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": ["tech"]}}]},
            {"id": 3, "was_cancelled": True, "result": []}]},
    ]
    (tmp_path / "export.json").write_text(json.dumps(export))
    assert read_answers(tmp_path / "export.json", ["a", "b"], NAMES, 0) == [1, 2]
    json_min = [{"id": 11, "row_id": "a", "text": "x", "label": "politics", "annotator": 1, "lead_time": 2.0},
                {"id": 12, "row_id": "b", "text": "y", "label": "tech"}]
    (tmp_path / "min.json").write_text(json.dumps(json_min))
    assert read_answers(tmp_path / "min.json", ["a", "b"], NAMES, 0) == [0, 2]


def test_label_studio_tasks_round_trip(tmp_path):
    # Label Studio keeps each imported task's data and adds its id and annotations (its JSON export).
    path = write_queries(tmp_path, 0, ["a", "b", "c"], ["x", "y", "z"], NAMES)
    tasks = json.loads(path.with_suffix(".tasks.json").read_text())
    answer = {"a": "tech", "b": "politics", "c": "sports"}
    export = [{"id": n, "project": 1, "data": task["data"], "annotations": [{
        "id": 100 + n, "completed_by": 1, "was_cancelled": False, "ground_truth": False, "task": n, "result": [{
            "id": f"r{n}", "from_name": "label", "to_name": "text", "type": "choices", "origin": "manual",
            "value": {"choices": [answer[task["data"]["row_id"]]]}}]}]} for n, task in enumerate(tasks, 1)]
    (tmp_path / "export.json").write_text(json.dumps(export))
    assert read_answers(tmp_path / "export.json", ["a", "b", "c"], NAMES, 0) == [2, 0, 1]


@pytest.mark.parametrize("answers, message", [
    ({"a": "tech", "b": "sprots", "c": "tech"}, r"line 3 \(id 'b'\) has label 'sprots', which is no class "
                                                r"\(politics, sports, tech\): fix that row"),
    ({"a": "tech", "c": "tech"}, r"has no answer for id 'b' of round 4: label every row"),
    ({"c": "tech"}, r"has no answer for id 'a' and 1 more of round 4"),
    ({"a": "tech", "b": "tech", "c": "tech", "zz": "tech"}, r"line 5 \(id 'zz'\) was not asked in round 4"),
    ({"a": "tech", "b": "tech", "c": "tech", "a2": "tech"}, r"line 5 \(id 'a'\) is answered twice \(line 2 too\)"),
])
def test_bad_answers_are_one_line_naming_the_row(tmp_path, answers, message):
    path = write_queries(tmp_path, 4, ["a", "b", "c"], ["x", "y", "z"], NAMES)
    out = filled(path, answers, tmp_path / "answers.csv")
    if "zz" in answers or "a2" in answers:  # a row that was not in the queries
        with open(out, "a", newline="") as f:
            csv.writer(f).writerow(["zz" if "zz" in answers else "a", "extra", "tech"])
    with pytest.raises(UserError, match=message) as e:
        read_answers(out, ["a", "b", "c"], NAMES, 4)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("content, message", [
    (None, "no answers file at"),
    ("name,label\na,tech\n", "needs the columns id and label"),
    ("[{", "cannot read the answers in"),
])
def test_unreadable_answers_are_one_line(tmp_path, content, message):
    path = tmp_path / ("answers.json" if content == "[{" else "answers.csv")
    if content is not None:
        path.write_text(content)
    with pytest.raises(UserError, match=message):
        read_answers(path, ["a"], NAMES, 0)


# --- training.py --oracle files, driven by a scripted annotator -------------------------------------

ANNOTATOR = """
import csv, json, sys
key = json.load(open(sys.argv[1]))
with open(sys.argv[2], newline="") as f:
    rows = list(csv.DictReader(f))
with open(sys.argv[3], "w", newline="") as f:
    w = csv.DictWriter(f, ["id", "text", "label"])
    w.writeheader()
    w.writerows({**r, "label": key[r["id"]]} for r in rows)
"""


def run_args(data, out, *extra):
    return ["--preset", "smoke", "--data", str(data), "--label-column", "topic", "--out-dir", str(out / "ck"),
            "--results", str(out / "results.txt"), "--no-progress", "--threads", "1", *extra]


def hide_labels(folder):
    """The training CSV with its labels removed, and the answer key (id -> label) the annotator keeps."""
    with open(folder / "train.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    with open(folder / "train.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, ["id", "text", "topic"])
        writer.writeheader()
        writer.writerows({**row, "topic": ""} for row in rows)
    return {row["id"]: row["topic"] for row in rows}


def test_a_person_labels_three_rounds_and_gets_the_simulated_run(tmp_path, capsys):
    simulated = training.main(run_args(write_topics_csv(tmp_path / "labeled"), tmp_path / "sim"))

    data = write_topics_csv(tmp_path / "unlabeled")
    (tmp_path / "key.json").write_text(json.dumps(hide_labels(data)))
    out = training.main(run_args(data, tmp_path / "person", "--oracle", "files"))
    asked = []
    while "queries" in out:
        printed = capsys.readouterr().out
        command = shlex.split(printed.strip().splitlines()[-1])  # the command the run printed to go on
        assert command[:2] == ["python", "training.py"] and command[-3:-1] == ["--resume", "--answers"]
        with open(out["queries"], newline="") as f:
            asked.append(len(list(csv.DictReader(f))))
        subprocess.run([sys.executable, "-c", ANNOTATOR, str(tmp_path / "key.json"), out["queries"], command[-1]],
                       check=True)
        out = training.main(command[2:])
    assert asked == [100, 40, 40]  # round 0: the 60 validation and 40 seed labels; then two queries of 40
    assert out["test_acc"] == simulated["test_acc"] and out["labels_used"] == simulated["labels_used"] == 180

    sim = read_json(tmp_path / "sim" / "ck" / "teacher" / "al_history.json")
    person = read_json(tmp_path / "person" / "ck" / "teacher" / "al_history.json")
    for key in ("pool_index", "val_index", "revealed_index", "revealed_labels", "revealed_round", "val_labels"):
        assert person[key] == sim[key], key
    assert (person["oracle"], sim["oracle"]) == ("files", "simulated")
    assert sorted(set(person["revealed_round"])) == [0, 1, 2]
    # Downstream, the person's labels come from the run's history (the data has none): the same students.
    students = [origi.main(run_args(folder, tmp_path / name, "--distill-epochs", "1"))
                for folder, name in ((tmp_path / "labeled", "sim"), (data, "person"))]
    assert students[0]["student"]["test_acc"] == students[1]["student"]["test_acc"]
    assert students[0]["student_no_kd"]["test_acc"] == students[1]["student_no_kd"]["test_acc"]


def test_bad_answers_leave_the_run_as_it_was(tmp_path, capsys):
    data = write_topics_csv(tmp_path / "unlabeled")
    key = hide_labels(data)
    out = training.main(run_args(data, tmp_path, "--oracle", "files"))
    state = tmp_path / "ck" / "al_state" / "margin_seed1" / "training_info.json"
    before = state.read_bytes()
    with open(out["queries"], newline="") as f:
        first = next(csv.DictReader(f))["id"]
    answers = filled(out["queries"], key | {first: "weather"}, tmp_path / "answers.csv")
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        training.main(run_args(data, tmp_path, "--oracle", "files", "--resume", "--answers", str(answers)))
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1 and "has label 'weather', which is no class" in err
    assert state.read_bytes() == before
    # Without answers, a resume asks the same questions again.
    again = training.main(run_args(data, tmp_path, "--oracle", "files", "--resume"))
    assert again["queries"] == out["queries"] and state.read_bytes() == before


@pytest.mark.parametrize("flags, message", [
    (["--answers", "a.csv"], "--answers goes with --resume and --oracle files"),
    (["--oracle", "files", "--compare-random"], "--oracle files runs one strategy with one seed"),
])
def test_oracle_flags_that_cannot_go_together(tmp_path, capsys, flags, message):
    data = write_topics_csv(tmp_path / "news")
    with pytest.raises(SystemExit) as e:
        training.main(run_args(data, tmp_path, *flags))
    assert e.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "ck").exists()


def test_texts_without_any_label_need_their_class_names(tmp_path, capsys):
    data = write_topics_csv(tmp_path / "unlabeled", n_test=0)
    hide_labels(data)
    with pytest.raises(SystemExit) as e:
        training.main(run_args(data, tmp_path, "--oracle", "files"))
    assert e.value.code == 2 and "has no labels to name the classes by: pass them with --classes" in capsys.readouterr().err
    out = training.main(run_args(data, tmp_path, "--oracle", "files", "--classes", "politics,sports,tech"))
    assert out["queries"].endswith("round_0.csv")
    assert '<Choice value="sports"/>' in (tmp_path / "ck" / "queries" / LABEL_STUDIO_CONFIG).read_text()
    with pytest.raises(SystemExit) as e:
        training.main(run_args(data, tmp_path / "again", "--oracle", "files", "--classes", "politics"))
    assert e.value.code == 2 and "--classes takes two or more distinct comma-separated names" in capsys.readouterr().err


def test_each_round_logs_the_stopping_signal_and_stable_runs_end_early(tmp_path, capsys):
    data = write_topics_csv(tmp_path / "news")
    full = training.main(run_args(data, tmp_path / "full"))
    rounds = full["runs"][0]["rounds"]
    assert "changed" not in rounds[0] and all(0 <= r["changed"] <= 1 for r in rounds[1:])
    assert "changed=" in capsys.readouterr().out
    early = training.main(run_args(data, tmp_path / "early", "--stop-when-stable", "1"))  # any round is stable
    assert [r["labels_used"] for r in early["runs"][0]["rounds"]] == [100, 140] and early["labels_used"] == 140
    assert early["runs"][0]["rounds"][-1]["stopped_when_stable"] and "queried" not in early["runs"][0]["rounds"][-1]
    assert "stable: stopped before the budget" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        training.main(run_args(data, tmp_path / "bad", "--stop-when-stable", "0"))
    assert e.value.code == 2 and "--stop-when-stable must be between 0 and 1" in capsys.readouterr().err
