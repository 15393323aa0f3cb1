"""labelless.data: the three IMDB sources, their errors, stratified subsets, validation held out, partitions."""

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import make_reviews

from labelless import UserError
from labelless.data import (VAL_BLOCK, DataSettings, encode_rows, hold_out, partition, stratified_subset,
                            unlabeled_subset)
from labelless.sources import LABEL_NAMES, Columns, data_source, load_corpus, load_imdb, load_unlabeled


def write_aclimdb(root, n=20):
    for split in ("train", "test"):
        texts, labels = make_reviews(n, 0)
        for i, (text, label) in enumerate(zip(texts, labels)):
            folder = root / split / LABEL_NAMES[label]
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{i}_{7 if label else 2}.txt").write_text(text)
    # Invalid UTF-8 and non-ASCII text must load, decoded with replacement.
    (root / "train" / "pos" / "999_10.txt").write_bytes(b"caf\xc3\xa9 na\xefve \xff\xfe great")
    return root


def test_parquet_source(parquet_dir):
    train, test = load_imdb(str(parquet_dir))
    assert (len(train), len(test)) == (300, 100)
    assert set(train.column_names) >= {"text", "label"}
    assert sorted(set(train["label"])) == [0, 1]


def test_aclimdb_source(tmp_path):
    root = write_aclimdb(tmp_path / "aclImdb")
    for source in (root, tmp_path):  # the folder itself, or the folder it was extracted into
        train, test = load_imdb(str(source))
        assert (len(train), len(test)) == (21, 20)
        assert train["label"].count(1) == 11
        assert "\ufffd" in train["text"][-1] and "café" in train["text"][-1]


def test_imdb_data_environment_variable(parquet_dir, monkeypatch):
    monkeypatch.setenv("IMDB_DATA", str(parquet_dir))
    train, _ = load_imdb()
    assert len(train) == 300
    assert data_source("other") == "other"  # --data wins over the environment


@pytest.mark.parametrize("source", ["/no/such/imdb", "./missing-folder", "missing-folder/news.csv"])
def test_missing_path_names_it_and_the_fix(source):
    with pytest.raises(UserError, match="no data at .*missing-folder|no data at /no/such") as e:
        load_imdb(source)
    assert "--data" in str(e.value) and "\n" not in str(e.value)


def test_missing_split(parquet_dir):
    (parquet_dir / "test.parquet").unlink()
    with pytest.raises(UserError, match="has no test split: IMDB needs train and test"):
        load_imdb(str(parquet_dir))
    assert load_corpus(str(parquet_dir)).test is None  # your own data may have none
    (parquet_dir / "train.parquet").unlink()
    with pytest.raises(UserError, match=r"missing .*/train\.\*: a data folder needs train.csv"):
        load_corpus(str(parquet_dir))


def test_imdb_class_names_come_from_the_parquet_schema(real_imdb):
    assert load_corpus(real_imdb).label_names == ("neg", "pos")


def test_missing_column(parquet_dir):
    pq.write_table(pa.table({"review": ["a"], "label": [0]}), parquet_dir / "train.parquet")
    with pytest.raises(UserError, match="has no column 'text' \\(it has review, label\\): name the texts' column with "
                                        "--text-column"):
        load_imdb(str(parquet_dir))


def test_not_parquet(parquet_dir):
    (parquet_dir / "train.parquet").write_text("not parquet")
    with pytest.raises(UserError, match="cannot read .*train.parquet as parquet"):
        load_imdb(str(parquet_dir))


def test_real_imdb_copy(real_imdb):
    train, test = load_imdb(real_imdb)
    assert (len(train), len(test)) == (25000, 25000)


def test_stratified_subset_keeps_both_classes_in_proportion():
    labels = np.array([0] * 750 + [1] * 250)  # sorted, like IMDB: a head slice is one class
    idx = stratified_subset(labels, 100, seed=3)
    assert len(idx) == len(set(idx)) == 100
    assert np.bincount(labels[idx]).tolist() == [75, 25]
    assert np.array_equal(idx, stratified_subset(labels, 100, seed=3))
    assert not np.array_equal(idx, stratified_subset(labels, 100, seed=4))
    assert np.array_equal(stratified_subset(labels, None, 0), np.arange(1000))


def test_hold_out_is_disjoint_and_stratified():
    labels = np.array([0, 1] * 100)
    rest, held = hold_out(np.arange(200), labels, 40, seed=0)
    assert len(rest) == 160 and len(held) == 40 and not set(rest) & set(held)
    assert np.bincount(labels[held]).tolist() == [20, 20]
    with pytest.raises(UserError, match="cannot hold out"):
        hold_out(np.arange(10), labels[:10], 10, seed=0)


def test_hold_out_in_blocks_holds_out_whole_runs_of_adjacent_rows():
    labels = np.repeat([0, 1], 500)  # sorted by class, as IMDB is
    rows = np.arange(0, 1000, 2)  # a subset: every other row
    rest, held = hold_out(rows, labels, 100, seed=3, block=50)  # 25 subset rows per run
    runs = np.unique(held // 50)
    assert len(runs) == 4 and np.bincount(labels[held]).tolist() == [50, 50]
    for run in runs:  # every subset row of a held-out run is held out
        assert set(rows[rows // 50 == run]) <= set(held)
    assert not set(rest) & set(held) and len(rest) + len(held) == len(rows)
    one_by_one = hold_out(rows, labels, 100, seed=3)[1]
    assert len(np.unique(one_by_one // 50)) > 4


def test_partition_uses_a_stratified_subset_and_holds_out_validation_in_blocks():
    train_labels, test_labels = np.repeat([0, 1], 1000), np.repeat([0, 1], 300)
    part = partition(train_labels, test_labels, DataSettings(1200, 200, 200, seed=1))
    assert len(part.texts) == 1200 and set(part.pool) | set(part.val) == set(part.texts)
    assert not set(part.pool) & set(part.val) and len(part.val) == 200
    assert len(np.unique(part.val // VAL_BLOCK)) <= 4  # whole runs of adjacent rows (at most 2 per class)
    assert len(part.test) == 200 and np.bincount(test_labels[part.test]).tolist() == [100, 100]
    np.testing.assert_array_equal(partition(train_labels, test_labels, DataSettings(1200, 200, 200, 1)).pool, part.pool)
    with pytest.raises(UserError, match="--val-size 1200 leaves no pool out of 1200 reviews"):
        partition(train_labels, test_labels, DataSettings(1200, 200, 1200, seed=1))


def test_encode_rows_keeps_indices_and_labels(parquet_dir, tiny_model_and_tokenizer):
    _, tok = tiny_model_and_tokenizer
    train, _ = load_imdb(str(parquet_dir))
    reviews = encode_rows(train, [3, 160, 7], tok, progress_bar=False)
    assert len(reviews) == 3 and reviews.index.tolist() == [3, 160, 7]
    assert reviews.labels.tolist() == [train["label"][i] for i in (3, 160, 7)]
    assert reviews.ids[1].tolist() == tok(train["text"][160], truncation=True)["input_ids"]


@pytest.mark.parametrize("texts, message", [
    (["a good film", None, "bad"], r"\(train\) row 1 has no text \(null\)"),
    ([1.5, 2.5, 3.5], r"\(train\) has double in its text column, not strings"),
])
def test_reviews_without_text_are_refused(parquet_dir, texts, message):
    pq.write_table(pa.table({"text": texts, "label": [0, 1, 0]}), parquet_dir / "train.parquet")
    with pytest.raises(UserError, match=message):
        load_imdb(str(parquet_dir))


def test_a_split_of_one_class_is_refused(parquet_dir):
    pq.write_table(pa.table({"text": ["a", "b"], "label": [1, 1]}), parquet_dir / "test.parquet")
    with pytest.raises(UserError, match=r"\(test\) holds 1 texts only: accuracy on one class measures nothing"):
        load_imdb(str(parquet_dir))


def write_unsup(root, n=5):
    folder = root / "train" / "unsup"
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (folder / f"{i}_0.txt").write_text(f"unlabeled review number {i}")
    return root


def test_unlabeled_from_parquet(parquet_dir):
    unsup = load_unlabeled(str(parquet_dir))
    assert len(unsup) == 160 and "text" in unsup.column_names


def test_unlabeled_from_aclimdb_in_id_order(tmp_path):
    root = write_unsup(write_aclimdb(tmp_path / "aclImdb"), n=12)
    for source in (root, tmp_path):
        assert load_unlabeled(str(source))["text"][:3] == [f"unlabeled review number {i}" for i in range(3)]
        assert len(load_unlabeled(str(source))) == 12


def test_unlabeled_from_the_hub_split(monkeypatch):
    from datasets import Dataset

    asked = {}

    def fake_load_dataset(source, split=None):
        asked.update(source=source, split=split)
        return Dataset.from_dict({"text": ["a", "b"], "label": [-1, -1]})

    monkeypatch.setattr("datasets.load_dataset", fake_load_dataset)
    assert len(load_unlabeled("stanfordnlp/imdb")) == 2
    assert asked == {"source": "stanfordnlp/imdb", "split": "unsupervised"}


@pytest.mark.parametrize("layout", ["parquet", "aclimdb"])
def test_missing_unlabeled_split_names_the_fix(parquet_dir, tmp_path, layout):
    if layout == "parquet":
        (parquet_dir / "unsupervised.parquet").unlink()
        source = parquet_dir
    else:
        source = write_aclimdb(tmp_path / "aclImdb")
    with pytest.raises(UserError, match="missing .*(unsupervised.parquet|unsup)") as e:
        load_unlabeled(str(source))
    assert "--unlabeled none" in str(e.value) and "\n" not in str(e.value)


def test_unlabeled_without_text_column_is_refused(parquet_dir):
    pq.write_table(pa.table({"review": ["x"]}), parquet_dir / "unsupervised.parquet")
    with pytest.raises(UserError, match="cannot read .*unsupervised.parquet"):
        load_unlabeled(str(parquet_dir))


def test_unlabeled_subset_is_seeded_sorted_and_all_when_none():
    a = unlabeled_subset(1000, 100, seed=3)
    assert len(set(a)) == 100 and (np.diff(a) > 0).all() and np.array_equal(a, unlabeled_subset(1000, 100, seed=3))
    assert not np.array_equal(a, unlabeled_subset(1000, 100, seed=4))
    assert np.array_equal(unlabeled_subset(50, None, seed=3), np.arange(50))


def test_real_unlabeled_copy(real_imdb):
    if not Path(real_imdb, "unsupervised.parquet").is_file():
        pytest.skip("no unsupervised.parquet in IMDB_DATA")
    assert len(load_unlabeled(real_imdb)) == 50000


# --- your own data ----------------------------------------------------------------------------


def test_csv_with_class_names_and_rows_without_a_label(tmp_path):
    file = tmp_path / "news.csv"
    file.write_text('id,body,topic\na1,"goal, and a win",sports\na2,a new chip,tech\na3,vote today,\n'
                    "a4,the senate,politics\n")
    corpus = load_corpus(str(file), Columns("body", "topic"))
    assert corpus.label_names == ("politics", "sports", "tech")  # names in sorted order
    assert list(corpus.train["label"]) == [1, 2, -1, 0]  # no label: -1, the pool a person labels
    assert list(corpus.train["text"])[0] == "goal, and a win" and corpus.test is None
    assert corpus.ids.tolist() == ["a1", "a2", "a3", "a4"]


def test_jsonl_json_and_parquet_read_alike(tmp_path):
    rows = [{"text": "a", "label": 3}, {"text": "b", "label": 1}, {"text": "c", "label": None}, {"text": "d", "label": 3}]
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    (tmp_path / "d.json").write_text(json.dumps(rows))
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "d.parquet")
    for name in ("d.jsonl", "d.json", "d.parquet"):
        corpus = load_corpus(str(tmp_path / name))
        assert corpus.label_names == ("1", "3")  # integers are class names too, in numeric order
        assert list(corpus.train["label"]) == [1, 0, -1, 1] and corpus.ids.tolist() == ["0", "1", "2", "3"]


def test_a_folder_of_train_test_and_unlabeled(tmp_path):
    (tmp_path / "train.csv").write_text("text,label\ngood,pos\nbad,neg\nfine,pos\n")
    (tmp_path / "test.jsonl").write_text('{"text": "great", "label": "pos"}\n{"text": "awful", "label": "neg"}\n')
    (tmp_path / "unlabeled.csv").write_text("text\nso-so\nmeh\n")
    corpus = load_corpus(str(tmp_path))
    assert list(corpus.train["text"]) == ["good", "bad", "fine", "so-so", "meh"]
    assert list(corpus.train["label"]) == [1, 0, 1, -1, -1] and list(corpus.test["label"]) == [1, 0]
    assert corpus.ids.tolist() == ["0", "1", "2", "3", "4"]


def test_a_hub_dataset_keeps_its_class_names(monkeypatch):
    import datasets

    features = datasets.Features(text=datasets.Value("string"), label=datasets.ClassLabel(names=["a", "b", "c"]))
    splits = datasets.DatasetDict({
        "train": datasets.Dataset.from_dict({"text": ["x", "y", "z"], "label": [0, 2, 1]}, features=features),
        "test": datasets.Dataset.from_dict({"text": ["u", "v"], "label": [2, 0]}, features=features)})
    monkeypatch.setattr(datasets, "load_dataset", lambda source, split=None: splits)
    corpus = load_corpus("someone/news")
    assert corpus.label_names == ("a", "b", "c") and list(corpus.test["label"]) == [2, 0]


@pytest.mark.parametrize("content, columns, message", [
    ("text,label\na,x\nb,y\n", Columns("body"), "has no column 'body' \\(it has text, label\\): name the texts' "
                                               "column with --text-column"),
    ("text,label\na,x\nb,y\n", Columns(label="topic"), "has no column 'topic' .*--label-column"),
    ("text,label\na,x\nb,x\nc,\n", Columns(), "has one class only \\(x\\): a classifier needs two classes or more"),
    ("text,label\na,1\nb,0.5\n", Columns(), "\\(train\\) has label 0.5 in row 1, neither a class name nor an integer"),
    ("", Columns(), "is empty: point --data at a file with a header and rows"),
    ("text\n", Columns(), "is empty: point --data at data with rows"),
    ("id,text,label\n7,a,x\n8,b,y\n7,c,x\n", Columns(), "has id '7' twice \\(training rows 0 and 2\\): ids must be "
                                                       "unique"),
    ("", Columns(), "\\(test\\) row 1 has no label: a test split needs one on every row"),
])
def test_bad_data_is_one_line_naming_the_fix(tmp_path, content, columns, message):
    source = tmp_path / "d.csv"
    source.write_text(content)
    if "test split" in message:  # a folder whose test split has a row without a label
        source = tmp_path / "folder"
        source.mkdir()
        (source / "train.csv").write_text("text,label\na,x\nb,y\n")
        (source / "test.csv").write_text("text,label\na,x\nb,\nc,y\n")
    with pytest.raises(UserError, match=message) as e:
        load_corpus(str(source), columns)
    assert "\n" not in str(e.value)


def test_a_label_outside_the_declared_class_names_is_refused(tmp_path, parquet_dir):
    import datasets

    features = datasets.Features(text=datasets.Value("string"), label=datasets.ClassLabel(names=["neg", "pos"]))
    datasets.Dataset.from_dict({"text": ["a", "b"], "label": [0, 1]}, features=features).to_parquet(
        tmp_path / "train.parquet")
    pq.write_table(pa.table({"text": ["a", "b"], "label": [0, 2]}, metadata=pq.read_schema(
        tmp_path / "train.parquet").metadata), parquet_dir / "train.parquet")
    with pytest.raises(UserError, match=r"\(train\) row 1 has label 2, neither a class name \(neg, pos\) nor an "
                                        "integer class id: fix that row"):
        load_corpus(str(parquet_dir))
