"""Your own data: a 3-class CSV through the four scripts, data without a test split, and bad data."""

import json

import pytest
from conftest import write_topics_csv

import compare_student
import origi
import training
import vanilla_inference
from labelless.store import read_results

NAMES = {0: "politics", 1: "sports", 2: "tech"}  # the topic column's names, sorted


def args(data, tmp_path, *extra):
    return ["--preset", "smoke", "--data", str(data), "--label-column", "topic", "--out-dir", str(tmp_path / "ck"),
            "--results", str(tmp_path / "results.txt"), "--no-progress", *extra]


def test_three_classes_from_a_csv_through_the_four_scripts(tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    data = write_topics_csv(tmp_path / "news")
    out = training.main(args(data, tmp_path, "--epochs", "4"))
    assert out["labels_used"] == 180
    origi.main(args(data, tmp_path, "--distill-epochs", "4"))
    compare_student.main(args(data, tmp_path))
    vanilla_inference.main(args(data, tmp_path))

    records = read_results(tmp_path / "results.txt")
    by_model = {(r["script"], r["model"]): r for r in records}
    assert by_model[("training.py", "bar")]["test_acc"] >= 0.8  # three classes, learned from the revealed labels
    assert by_model[("training.py", "teacher")]["test_acc"] > 0.5  # above chance (1/3)
    assert by_model[("origi.py", "student")]["scored_on"] == "test"
    assert {("compare_student.py", "student"), ("vanilla_inference.py", "vanilla")} <= set(by_model)
    for folder in ("teacher", "student"):
        config = json.loads((tmp_path / "ck" / folder / "config.json").read_text())
        assert {int(k): v for k, v in config["id2label"].items()} == NAMES
    folder = tmp_path / "ck" / "student"
    classify = pipeline("text-classification", model=AutoModelForSequenceClassification.from_pretrained(folder),
                        tokenizer=AutoTokenizer.from_pretrained(folder))
    assert {row["label"] for row in classify(["the team won the match", "senate vote on the bill",
                                              "a startup ships a new chip"])} <= set(NAMES.values())


def test_data_without_a_test_split_reports_validation(tmp_path, capsys):
    data = write_topics_csv(tmp_path / "news", n_test=0)
    training.main(args(data, tmp_path))
    assert "no test split, val_acc" in capsys.readouterr().out
    result = origi.main(args(data, tmp_path, "--skip-baseline"))
    assert set(result) == {"teacher_val_acc", "student"} and "val_acc" in result["student"]
    records = read_results(tmp_path / "results.txt")
    assert records and not any("test_acc" in r for r in records)
    assert [r["scored_on"] for r in records if r["script"] == "origi.py"] == ["val"]
    with pytest.raises(SystemExit) as e:
        training.main(args(data, tmp_path, "--eval-test-each-round"))
    assert e.value.code == 2 and "--eval-test-each-round needs a test split" in capsys.readouterr().err


def test_rows_without_a_label_are_refused_by_the_simulated_annotator(tmp_path, capsys):
    data = write_topics_csv(tmp_path / "news")
    text = (data / "train.csv").read_text().splitlines()
    text[5] = text[5].rsplit(",", 1)[0] + ","  # row 4 loses its label
    (data / "train.csv").write_text("\n".join(text) + "\n")
    with pytest.raises(SystemExit) as e:
        training.main(args(data, tmp_path))
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1
    assert "1 training rows of" in err and "have no label: the simulated annotator answers from the labels" in err
    assert not (tmp_path / "ck").exists() and not (tmp_path / "results.txt").exists()


@pytest.mark.parametrize("flags, message", [
    (["--text-column", "body"], "has no column 'body' (it has id, text, topic): name the texts' column with --text-column"),
    (["--label-column", "label"], "has no column 'label' (it has id, text, topic): name the labels' column with "
                                  "--label-column"),
])
def test_an_unknown_column_is_one_line(tmp_path, capsys, flags, message):
    data = write_topics_csv(tmp_path / "news")
    argv = args(data, tmp_path)
    argv.remove("--label-column"), argv.remove("topic")
    with pytest.raises(SystemExit) as e:
        training.main(argv + flags)
    err = capsys.readouterr().err
    assert e.value.code == 2 and message in err and err.count("\n") == 1
    assert not (tmp_path / "ck").exists()


def test_full_reads_no_unlabeled_reviews_from_data_without_them_unless_asked(tmp_path, monkeypatch, capsys):
    import common

    data = write_topics_csv(tmp_path / "news")
    training.main(args(data, tmp_path))
    # smoke's sizes with full's student defaults (full itself trains for minutes)
    monkeypatch.setitem(common.PRESETS["smoke"], "student_unlabeled", "imdb")
    origi.main(args(data, tmp_path, "--skip-baseline"))
    assert "has no unlabeled reviews: the student's transfer set is the pool alone" in capsys.readouterr().out
    student = [r for r in read_results(tmp_path / "results.txt") if r["model"] == "student"][0]
    assert student["unlabeled"] == 0
    with pytest.raises(SystemExit) as e:
        origi.main(args(data, tmp_path, "--skip-baseline", "--unlabeled", "imdb"))
    assert e.value.code == 2 and "--unlabeled none" in capsys.readouterr().err
