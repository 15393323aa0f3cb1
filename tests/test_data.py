"""labelless.data: the three IMDB sources, their errors, stratified subsets, validation held out, partitions."""

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import make_reviews

from labelless import UserError
from labelless.data import (LABEL_NAMES, VAL_BLOCK, DataSettings, data_source, encode_rows, hold_out, load_imdb,
                            load_unlabeled, partition, stratified_subset, unlabeled_subset)


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


@pytest.mark.parametrize("source", ["/no/such/imdb", "./missing-folder"])
def test_missing_path_names_it_and_the_fix(source):
    with pytest.raises(UserError, match="no IMDB folder at .*missing-folder|no IMDB folder at /no/such") as e:
        load_imdb(source)
    assert "--data" in str(e.value) and "\n" not in str(e.value)


def test_missing_split(parquet_dir):
    (parquet_dir / "test.parquet").unlink()
    with pytest.raises(UserError, match="missing .*test.parquet"):
        load_imdb(str(parquet_dir))


def test_label_outside_0_1(parquet_dir):
    pq.write_table(pa.table({"text": ["a", "b"], "label": [0, 2]}), parquet_dir / "train.parquet")
    with pytest.raises(UserError, match="label 2 outside"):
        load_imdb(str(parquet_dir))


def test_missing_column(parquet_dir):
    pq.write_table(pa.table({"review": ["a"], "label": [0]}), parquet_dir / "train.parquet")
    with pytest.raises(UserError, match="text and label"):
        load_imdb(str(parquet_dir))


def test_not_parquet(parquet_dir):
    (parquet_dir / "train.parquet").write_text("not parquet")
    with pytest.raises(UserError, match="cannot read"):
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
    with pytest.raises(UserError, match=r"\(test\) holds pos reviews only: accuracy on one class measures nothing"):
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
