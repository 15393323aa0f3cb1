"""IMDB as two ``datasets.Dataset`` splits and its unlabeled reviews, stratified subsets, and a run's partition.

A run's partition: the training rows it uses (a stratified subset on the small presets), the
validation set held out of them in whole runs of adjacent rows, the pool (the rest: texts whose
labels stay hidden until queried) and the stratified test rows (final evaluation only).
"""

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pyarrow as pa

from . import UserError

DEFAULT_SOURCE = "stanfordnlp/imdb"
UNLABELED_SPLIT = "unsupervised"  # the hub's name for the 50,000 unlabeled reviews
LABEL_NAMES = ("neg", "pos")
# IMDB lists the reviews of one movie next to each other (benchmarks/movie_grouping.py): validation
# takes whole runs of this many adjacent training rows, so most of its movies are not in the pool, as
# the test split's are not.
VAL_BLOCK = 100


def data_source(arg=None):
    """``--data`` if given, else ``$IMDB_DATA``, else the hub id."""
    return arg or os.environ.get("IMDB_DATA") or DEFAULT_SOURCE


def load_imdb(source=None):
    """IMDB as ``(train, test)`` ``datasets.Dataset`` with ``text`` and ``label`` (0 = neg, 1 = pos).

    ``source``: a folder with ``train.parquet`` and ``test.parquet``; an extracted ``aclImdb/``
    folder (``train/pos/*.txt`` ...); or a hub id (default ``stanfordnlp/imdb``, needs internet).
    """
    source = str(data_source(source))
    path = Path(source).expanduser()
    if path.is_dir():
        if (path / "train").is_dir() or (path / "aclImdb").is_dir():
            root = path if (path / "train").is_dir() else path / "aclImdb"
            splits = [_load_aclimdb_split(root / name) for name in ("train", "test")]
        else:
            splits = [_load_parquet_split(path / f"{name}.parquet") for name in ("train", "test")]
    elif path.exists() or not re.fullmatch(r"[\w-][\w.-]*(/[\w.-]+)?", source):
        raise UserError(f"no IMDB folder at {source}: pass --data (or set IMDB_DATA) to a folder holding "
                        "train.parquet and test.parquet, or to an extracted aclImdb/ folder")
    else:
        splits = _load_hub(source)
    return tuple(_check_split(ds, f"{source} ({name})") for ds, name in zip(splits, ("train", "test")))


def load_unlabeled(source=None):
    """IMDB's 50,000 unlabeled reviews as a ``datasets.Dataset`` with ``text``, from the same kinds of
    ``source`` as ``load_imdb``: ``unsupervised.parquet`` beside the labeled splits, an aclImdb folder's
    ``train/unsup/``, or the hub dataset's ``unsupervised`` split. Texts only: they are never labeled."""
    source = str(data_source(source))
    path = Path(source).expanduser()
    fix = "or pass --unlabeled none to run without them"
    if path.is_dir():
        if (path / "train").is_dir() or (path / "aclImdb").is_dir():
            folder = (path if (path / "train").is_dir() else path / "aclImdb") / "train" / "unsup"
            if not folder.is_dir():
                raise UserError(f"missing {folder}: the unlabeled reviews of an aclImdb folder are in train/unsup/ "
                                f"(extract aclImdb_v1.tar.gz as it comes), {fix}")
            texts = _read_texts(folder)
            if not texts:
                raise UserError(f"{folder} holds no .txt reviews: extract aclImdb_v1.tar.gz again, {fix}")
            from datasets import Dataset

            ds = Dataset.from_dict({"text": texts})
        else:
            ds = _load_parquet_split(path / f"{UNLABELED_SPLIT}.parquet", columns=["text"], fix=fix)
    elif path.exists() or not re.fullmatch(r"[\w-][\w.-]*(/[\w.-]+)?", source):
        raise UserError(f"no IMDB folder at {source}: pass --data (or set IMDB_DATA) to a folder holding "
                        f"train.parquet, test.parquet and unsupervised.parquet, or to an extracted aclImdb/ folder")
    else:
        ds = _load_hub(source, UNLABELED_SPLIT)
    return _check_texts(ds, f"{source} ({UNLABELED_SPLIT})")


def unlabeled_subset(n, size, seed):
    """Sorted indices of a seeded random subset of ``size`` of ``n`` unlabeled reviews (None: all)."""
    if size is None or size >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng([seed, 2]).choice(n, size, replace=False))


def _load_parquet_split(file, columns=("text", "label"), fix=None):
    import pyarrow.parquet as pq
    from datasets import Dataset

    if not file.is_file():
        raise UserError(f"missing {file}: an IMDB parquet folder needs train.parquet and test.parquet "
                        "(the layout of the hub dataset stanfordnlp/imdb)" + (f", and {file.name} {fix}" if fix else ""))
    try:
        table = pq.read_table(file, columns=list(columns))
    except Exception as e:  # pyarrow raises several types for bad files and missing columns
        raise UserError(f"cannot read {file} as IMDB parquet with column(s) {' and '.join(columns)}: "
                        f"{str(e).splitlines()[0]}") from None
    return Dataset(table)


def _load_aclimdb_split(folder):
    from datasets import Dataset

    if not all((folder / label).is_dir() for label in LABEL_NAMES):
        raise UserError(f"missing {folder}/pos or {folder}/neg: an aclImdb folder needs train/ and test/ "
                        "with pos/ and neg/ inside (extract aclImdb_v1.tar.gz as it comes)")
    texts, labels = [], []
    for label, name in enumerate(LABEL_NAMES):
        texts += _read_texts(folder / name)
        labels += [label] * (len(texts) - len(labels))
    return Dataset.from_dict({"text": texts, "label": labels})


def _read_texts(folder):
    # Files are <id>_<rating>.txt; sorting by id keeps the hub's row order.
    files = sorted(folder.glob("*.txt"), key=lambda f: (len(f.stem), f.stem))
    return [file.read_bytes().decode("utf-8", errors="replace") for file in files]


def _load_hub(source, split=None):
    from datasets import load_dataset

    try:
        ds = load_dataset(source, split=split)
    except Exception as e:  # offline, unknown id, no such split...: the library raises many types
        raise UserError(f"cannot load IMDB{f' split {split!r}' if split else ''} from the hub id {source!r} "
                        f"({type(e).__name__}); no local folder has that name either: pass --data (or set "
                        "IMDB_DATA) to a folder with train.parquet and test.parquet, or connect to the internet"
                        + (", or pass --unlabeled none" if split else "")) from None
    return ds if split else (ds["train"], ds["test"])


def _check_texts(ds, where):
    if "text" not in ds.column_names:
        raise UserError(f"{where} lacks column text: IMDB needs text and label")
    if len(ds) == 0:
        raise UserError(f"{where} is empty: point --data at the full IMDB copy")
    texts = ds.data.column("text")
    if not (pa.types.is_string(texts.type) or pa.types.is_large_string(texts.type)):
        raise UserError(f"{where} has {texts.type} in its text column, not strings: fix or re-export the data")
    if texts.null_count:
        row = texts.to_pylist().index(None)
        raise UserError(f"{where} row {row} has no text (null): drop or fill such rows and export the data again")
    return ds


def _check_split(ds, where):
    missing = {"text", "label"} - set(ds.column_names)
    if missing:
        raise UserError(f"{where} lacks column(s) {', '.join(sorted(missing))}: IMDB needs text and label")
    _check_texts(ds, where)
    labels = np.asarray(ds["label"])
    bad = labels[(labels != 0) & (labels != 1)]
    if bad.size:
        raise UserError(f"{where} has label {bad[0]} outside {{0, 1}} (0 = neg, 1 = pos): fix or re-export the data")
    if len(np.unique(labels)) < 2:
        raise UserError(f"{where} holds {LABEL_NAMES[labels[0]]} reviews only: accuracy on one class measures "
                        "nothing; point --data at a copy with both classes")
    return ds


def class_counts(labels, n):
    """``(classes, counts)``: how many of ``n`` items each class gets to keep the proportions of ``labels``."""
    labels = np.asarray(labels)
    classes, counts = np.unique(labels, return_counts=True)
    take = np.floor(counts / len(labels) * n).astype(int)
    # Hand out what flooring left over to the classes with the largest remainders.
    rest = counts / len(labels) * n - take
    take[np.argsort(-rest, kind="stable")[: n - take.sum()]] += 1
    return classes, take


def stratified_subset(labels, n, seed):
    """Sorted indices of a seeded random subset of ``n`` items with the class proportions of ``labels``."""
    labels = np.asarray(labels)
    if n is None or n >= len(labels):
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    picked = [rng.choice(np.flatnonzero(labels == c), size=k, replace=False) for c, k in zip(*class_counts(labels, n))]
    return np.sort(np.concatenate(picked))


def hold_out(indices, labels, n, seed, block=1):
    """Split the row numbers ``indices`` into (rest, held_out), ``n`` stratified, seeded items held out.

    ``block > 1`` holds out whole runs of adjacent rows (rows ``r`` with equal ``r // block``): reviews
    held out one by one share their movies with the rest, and accuracy on them overrates accuracy on
    the test split's unseen movies.
    """
    indices, labels = np.asarray(indices), np.asarray(labels)
    if not 0 < n < len(indices):
        raise UserError(f"cannot hold out {n} of {len(indices)} reviews: choose a size between 1 and {len(indices) - 1}")
    if block < 1:
        raise UserError(f"block must be at least 1 row, got {block}")
    rng = np.random.default_rng(seed)
    held = []
    held_labels = labels[indices]
    for c, k in zip(*class_counts(held_labels, n)):
        rows = indices[held_labels == c]
        runs, run_of_row = np.unique(rows // block, return_inverse=True)
        # Runs in random order, rows in random order within a run; the last run taken may be cut.
        order = np.lexsort((rng.random(len(rows)), rng.permutation(len(runs))[run_of_row]))
        held.append(rows[order[:k]])
    held = np.sort(np.concatenate(held))
    return np.setdiff1d(indices, held), held


@dataclass(frozen=True)
class DataSettings:
    """How much of IMDB a run uses (None: all) and how its validation set is held out."""

    max_train_samples: int | None
    max_test_samples: int | None
    val_size: int
    seed: int


class Partition(NamedTuple):
    """Row indices of a run's data. ``texts``: the training rows it uses, whose texts (never labels)
    train the tokenizer and the word vectors; ``pool`` and ``val`` split them; ``test``: test-split rows."""

    texts: np.ndarray
    pool: np.ndarray
    val: np.ndarray
    test: np.ndarray


def partition(train_labels, test_labels, settings):
    """The ``Partition`` of a run with these ``DataSettings``: stratified subsets, validation held out
    in runs of ``VAL_BLOCK`` rows."""
    train_labels = np.asarray(train_labels)
    texts = stratified_subset(train_labels, settings.max_train_samples, settings.seed)
    if settings.val_size >= len(texts):
        raise UserError(f"--val-size {settings.val_size} leaves no pool out of {len(texts)} reviews")
    pool, val = hold_out(texts, train_labels, settings.val_size, settings.seed, VAL_BLOCK)
    return Partition(texts, pool, val, stratified_subset(test_labels, settings.max_test_samples, settings.seed))


@dataclass
class Reviews:
    """Token ids and labels of some reviews, with their row indices into their IMDB split."""

    index: np.ndarray
    ids: list
    labels: np.ndarray

    def __len__(self):
        return len(self.index)


def encode_rows(dataset, index, tokenizer, progress_bar=True):
    """``Reviews`` of the rows ``index`` of an IMDB split (labels -1 where it has none: the unlabeled reviews)."""
    from .text import encode

    index = np.asarray(index, dtype=np.int64)
    rows = dataset.select(index)
    labels = np.asarray(rows["label"]) if "label" in rows.column_names else np.full(len(index), -1)
    return Reviews(index, encode(tokenizer, rows["text"], progress_bar), labels)
