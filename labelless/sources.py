"""Where the data comes from: IMDB from its three layouts, or your own texts, as ``datasets.Dataset``.

``load_corpus`` reads IMDB (the hub, its parquet files, an extracted aclImdb folder) or your texts
(a CSV, JSON Lines, JSON or parquet file, a folder of them, or a hub id): any text and label columns,
labels as class names or integers, any number of classes, rows without a label (the pool a person
labels). ``load_unlabeled`` reads IMDB's 50,000 unlabeled reviews. Bad data is one ``UserError`` line.
"""

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa

from . import UserError

DEFAULT_SOURCE = "stanfordnlp/imdb"
UNLABELED_SPLIT = "unsupervised"  # the hub's name for the 50,000 unlabeled reviews
LABEL_NAMES = ("neg", "pos")


def data_source(arg=None):
    """``--data`` if given, else ``$IMDB_DATA``, else the hub id."""
    return arg or os.environ.get("IMDB_DATA") or DEFAULT_SOURCE


class Corpus(NamedTuple):
    """A text-classification dataset. ``train`` and ``test`` (None: the data has no test split) are
    ``datasets.Dataset`` with ``text`` and ``label``: class ids 0..K-1, and -1 where a row has no label
    (the pool a person labels). ``ids``: each training row's id (the data's ``id`` column, else its row
    number), as strings. ``label_names``: the K class names, in id order. ``benchmark``: the data came
    in a layout IMDB ships in, where the simulated annotator draws as the benchmark always has
    (``DataSettings.stratify``)."""

    train: Any
    test: Any
    ids: np.ndarray
    label_names: tuple
    benchmark: bool = False  # in one of IMDB's layouts (aclImdb/, the hub's parquet files, a hub id)


@dataclass(frozen=True)
class Columns:
    """Where a dataset keeps its texts and labels. ``label`` None: the column ``label`` if there is one,
    else no row has a label. ``classes``: the class names in id order, when the data does not declare
    them (None: the distinct labels, which unlabeled data has none of)."""

    text: str = "text"
    label: str | None = None
    classes: tuple | None = None


def load_corpus(source=None, columns=Columns()):
    """The ``Corpus`` at ``source`` (``data_source``'s default): IMDB from any of its layouts, or your own
    texts. A CSV, JSON Lines, JSON or parquet file is the training split; a folder holds ``train.*`` and
    optionally ``test.*`` and ``unlabeled.*`` (rows without labels, added to the training rows); any other
    name is a hub dataset id (its ``train`` and ``test`` splits). Labels may be integers or class names."""
    source = str(data_source(source))
    path = Path(source).expanduser()
    fix = ("pass --data (or set IMDB_DATA) to a CSV, JSON Lines or parquet file, a folder holding train.* "
           "(and test.*), an extracted aclImdb/ folder, or a hub dataset id")
    benchmark = True
    if path.is_file():
        tables, benchmark = {"train": _read_table(path)}, False
    elif path.is_dir():
        if (path / "train").is_dir() or (path / "aclImdb").is_dir():
            root = path if (path / "train").is_dir() else path / "aclImdb"
            tables = {name: _load_aclimdb_split(root / name) for name in ("train", "test")}
        else:
            tables = {name: _read_table(file) for name in ("train", "test", "unlabeled")
                      if (file := _table_file(path, name, required=name == "train"))}
            benchmark = (path / "train.parquet").is_file()
    elif path.exists() or path.suffix in TABLE_SUFFIXES or not re.fullmatch(r"[\w-][\w.-]*(/[\w.-]+)?", source):
        raise UserError(f"no data at {source}: {fix}")  # a file name is never a hub id
    else:
        tables = _load_hub(source)
    return _corpus(tables, columns, source)._replace(benchmark=benchmark)


def load_imdb(source=None):
    """IMDB as ``(train, test)`` ``datasets.Dataset`` with ``text`` and ``label`` (0 = neg, 1 = pos), from
    the sources of ``load_corpus``; both splits must be there."""
    corpus = load_corpus(source)
    if corpus.test is None:
        raise UserError(f"{data_source(source)} has no test split: IMDB needs train and test")
    return corpus.train, corpus.test


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
            file = path / f"{UNLABELED_SPLIT}.parquet"
            if not file.is_file():
                raise UserError(f"missing {file}: IMDB's unlabeled reviews, as the hub dataset's "
                                f"{UNLABELED_SPLIT} split, {fix}")
            ds = _read_table(file, columns=["text"])
    elif path.exists() or not re.fullmatch(r"[\w-][\w.-]*(/[\w.-]+)?", source):
        raise UserError(f"no IMDB folder at {source}: pass --data (or set IMDB_DATA) to a folder holding "
                        f"unsupervised.parquet or to an extracted aclImdb/ folder, {fix}")
    else:
        ds = _load_hub(source, UNLABELED_SPLIT)
    return _check_texts(ds, f"{source} ({UNLABELED_SPLIT})")



TABLE_SUFFIXES = (".csv", ".jsonl", ".json", ".parquet")


def _table_file(folder, name, required):
    """``folder/name.<suffix>`` for the one suffix of ``TABLE_SUFFIXES`` present (None if optional and absent)."""
    found = [folder / f"{name}{suffix}" for suffix in TABLE_SUFFIXES if (folder / f"{name}{suffix}").is_file()]
    if len(found) > 1:
        raise UserError(f"{folder} holds {' and '.join(f.name for f in found)}: keep one {name} file")
    if not found and required:
        raise UserError(f"missing {folder}/{name}.*: a data folder needs train.csv, train.jsonl, train.json or "
                        "train.parquet (IMDB's parquet folder: train.parquet and test.parquet)")
    return found[0] if found else None


def _read_table(file, columns=None):
    """A CSV, JSON Lines, JSON (a list of records) or parquet ``file`` as a ``datasets.Dataset``."""
    import json

    import pyarrow.csv
    import pyarrow.json
    import pyarrow.parquet as pq
    from datasets import Dataset

    if file.suffix not in TABLE_SUFFIXES:
        raise UserError(f"cannot read {file}: name a .csv, .jsonl, .json or .parquet file")
    if file.stat().st_size == 0:
        raise UserError(f"{file} is empty: point --data at a file with a header and rows")
    try:
        if file.suffix == ".csv":
            table = pyarrow.csv.read_csv(file)
        elif file.suffix == ".jsonl":
            table = pyarrow.json.read_json(file)
        elif file.suffix == ".json":
            table = pa.Table.from_pylist(json.loads(file.read_text(encoding="utf-8")))
        else:
            table = pq.read_table(file, columns=columns)
    except Exception as e:  # pyarrow and json raise many types for malformed files
        raise UserError(f"cannot read {file} as {file.suffix[1:]}: {str(e).splitlines()[0]}") from None
    return Dataset(table)


def _load_aclimdb_split(folder):
    from datasets import ClassLabel, Dataset, Features, Value

    if not all((folder / label).is_dir() for label in LABEL_NAMES):
        raise UserError(f"missing {folder}/pos or {folder}/neg: an aclImdb folder needs train/ and test/ "
                        "with pos/ and neg/ inside (extract aclImdb_v1.tar.gz as it comes)")
    texts, labels = [], []
    for label, name in enumerate(LABEL_NAMES):
        texts += _read_texts(folder / name)
        labels += [label] * (len(texts) - len(labels))
    return Dataset.from_dict({"text": texts, "label": labels},
                             features=Features(text=Value("string"), label=ClassLabel(names=list(LABEL_NAMES))))


def _read_texts(folder):
    # Files are <id>_<rating>.txt; sorting by id keeps the hub's row order.
    files = sorted(folder.glob("*.txt"), key=lambda f: (len(f.stem), f.stem))
    return [file.read_bytes().decode("utf-8", errors="replace") for file in files]


def _load_hub(source, split=None):
    """The hub dataset ``source``: its ``split``, or (None) a dict of its ``train`` and ``test`` splits."""
    from datasets import load_dataset

    try:
        ds = load_dataset(source, split=split)
    except Exception as e:  # offline, unknown id, no such split...: the library raises many types
        raise UserError(f"cannot load {f'split {split!r} of ' if split else ''}the hub dataset {source!r} "
                        f"({type(e).__name__}); no local file or folder has that name either: pass --data (or set "
                        "IMDB_DATA) to a data file or folder, or connect to the internet"
                        + (", or pass --unlabeled none" if split else "")) from None
    if split:
        return ds
    if "train" not in ds:
        raise UserError(f"the hub dataset {source!r} has no train split (it has {', '.join(ds)}): choose another")
    return {name: ds[name] for name in ("train", "test") if name in ds}


def _check_texts(ds, where, column="text"):
    if column not in ds.column_names:
        raise UserError(f"{where} has no column {column!r} (it has {', '.join(ds.column_names)}): name the texts' "
                        "column with --text-column")
    if len(ds) == 0:
        raise UserError(f"{where} is empty: point --data at data with rows")
    texts = ds.data.column(column)
    if not (pa.types.is_string(texts.type) or pa.types.is_large_string(texts.type)):
        raise UserError(f"{where} has {texts.type} in its text column, not strings: fix or re-export the data")
    if texts.null_count:
        row = texts.to_pylist().index(None)
        raise UserError(f"{where} row {row} has no text (null): drop or fill such rows and export the data again")
    return ds


def _corpus(splits, columns, source):
    """The ``Corpus`` of the ``datasets.Dataset`` ``splits`` (train, and maybe test and unlabeled)."""
    label = columns.label or "label"
    for name, ds in splits.items():
        where = f"{source} ({name})"
        _check_texts(ds, where, columns.text)
        has_label = label in ds.column_names
        if not has_label and name == "test":
            raise UserError(f"{where} has no column {label!r}: a test split needs labels; name their column with "
                            "--label-column, or remove the test file")
        if not has_label and name == "train" and columns.label:
            raise UserError(f"{where} has no column {label!r} (it has {', '.join(ds.column_names)}): name the "
                            "labels' column with --label-column")
    known = columns.classes or next((ds.features[label].names for ds in splits.values()
                                     if label in ds.column_names and hasattr(ds.features[label], "names")), None)
    raw = {name: ds.data.column(label).to_pylist() if label in ds.column_names and name != "unlabeled"
           else [None] * len(ds) for name, ds in splits.items()}
    label_names, labels = _label_ids(raw, known, source)
    if len(label_names) == 1:  # none: unlabeled texts, named by --classes where needed
        raise UserError(f"{source} has one class only ({label_names[0]}): a classifier needs two classes or more; "
                        "add texts of another class (or name them all with --classes)")
    test = None
    if "test" in splits:
        seen, blank = np.unique(labels["test"][labels["test"] >= 0]), np.flatnonzero(labels["test"] < 0)
        if len(blank):
            raise UserError(f"{source} (test) row {blank[0]} has no label: a test split needs one on every row; "
                            "label it or move it to the training rows")
        if len(seen) < 2:
            raise UserError(f"{source} (test) holds {label_names[seen[0]] if len(seen) else 'no labeled'} texts only: "
                            "accuracy on one class measures nothing; give the test split two classes or more")
        test = _with_labels(splits["test"], columns.text, labels["test"])
    rows = [name for name in ("train", "unlabeled") if name in splits]
    train = _with_labels(splits["train"], columns.text, labels["train"])
    if "unlabeled" in splits:
        from datasets import concatenate_datasets

        train = concatenate_datasets([train, _with_labels(splits["unlabeled"], columns.text, labels["unlabeled"])])
    ids = _row_ids([splits[name] for name in rows], source)
    return Corpus(train, test, ids, tuple(label_names))


def _with_labels(ds, text_column, labels):
    from datasets import Dataset

    text = ds.data.column(text_column)
    return Dataset(pa.table({"text": text.cast(pa.large_string()), "label": pa.array(labels, pa.int64())}))


def _row_ids(splits, source):
    """The training rows' ids as strings: the ``id`` column where the data has one, else row numbers."""
    ids, offset = [], 0
    for ds in splits:
        named = "id" in ds.column_names
        ids += [str(i) for i in (ds.data.column("id").to_pylist() if named else range(offset, offset + len(ds)))]
        offset += len(ds)
    ids = np.asarray(ids, dtype=object)
    unique, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        dup = unique[counts > 1][0]
        rows = np.flatnonzero(ids == dup)[:2]
        raise UserError(f"{source} has id {dup!r} twice (training rows {rows[0]} and {rows[1]}): ids must be unique")
    return ids


def _label_ids(raw, known, source):
    """``(label names, {split: class ids})`` of the raw label values of each split. ``known``: the class
    names the data declares (a ``ClassLabel``), whose ids are integers and -1 for no label; else the names
    are the distinct values (integers in numeric order, or strings). Missing values get -1."""

    def missing(v):
        return v is None or (isinstance(v, str) and not v.strip()) or (isinstance(v, float) and math.isnan(v))

    def integral(v):
        return isinstance(v, (int, np.integer)) or isinstance(v, float) and v.is_integer()

    if known is None:
        values = {v for vals in raw.values() for v in vals if not missing(v)}
        fraction = next((v for v in values if isinstance(v, float) and not integral(v)), None)
        if fraction is not None:
            split, row = next((name, vals.index(fraction)) for name, vals in raw.items() if fraction in vals)
            raise UserError(f"{source} ({split}) has label {fraction!r} in row {row}, neither a class name nor an integer "
                            "class id: fix that row")
        if all(integral(v) for v in values):
            names = [str(v) for v in sorted({int(v) for v in values})]  # numeric order: 2 before 10
        else:
            names = sorted({str(int(v)) if integral(v) else str(v).strip() for v in values})
        lookup = {name: i for i, name in enumerate(names)}
    else:
        names, lookup = list(known), {name: i for i, name in enumerate(known)}
    out = {}
    for split, vals in raw.items():
        ids = np.full(len(vals), -1, dtype=np.int64)
        for row, v in enumerate(vals):
            if missing(v) or known is not None and integral(v) and int(v) == -1:
                continue
            if known is not None and integral(v):
                i = int(v) if 0 <= int(v) < len(names) else None
            elif isinstance(v, float) and not integral(v):
                i = None
            else:
                i = lookup.get(str(int(v)) if integral(v) else str(v).strip())
            if i is None:
                raise UserError(f"{source} ({split}) row {row} has label {v!r}, neither a class name "
                                f"({', '.join(names) or 'none yet'}) nor an integer class id: fix that row")
            ids[row] = i
        out[split] = ids
    return names, out
