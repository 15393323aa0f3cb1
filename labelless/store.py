"""What the scripts write and read back: checkpoint folders, JSON, ``results.txt`` and the
``al_history.json`` schema.

Every write is atomic (a temporary sibling renamed into place), so an interrupted script leaves the
previous file or folder as it was. Checkpoints are Hugging Face folders: config, safetensors weights,
tokenizer, and ``training_info.json``; never a pickle.
"""

import dataclasses
import fcntl
import hashlib
import json
import os
import re
import shutil
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from . import UserError

INFO_FILE = "training_info.json"
HISTORY_FILE = "al_history.json"
CHECKPOINT_FILES = ("config.json", "model.safetensors", "tokenizer.json", INFO_FILE)


# ---------------------------------------------------------------------------------------------
# Checkpoints


def save_checkpoint(model, tokenizer, folder, info):
    """Write a Hugging Face model folder (config, safetensors, tokenizer, ``training_info.json``).

    Atomic: everything goes to a temporary sibling first and is renamed into place only when
    complete, so an interrupted save leaves the previous checkpoint as it was.
    """
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.parent / f".{folder.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        write_json(tmp / INFO_FILE, info)
        old = None
        if folder.exists():
            old = folder.parent / f".{folder.name}.old-{uuid.uuid4().hex[:8]}"
            folder.rename(old)
        tmp.rename(folder)
        if old is not None:
            shutil.rmtree(old)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return folder


def load_checkpoint(folder, made_by, device="cpu", what="checkpoint"):
    """``(model, tokenizer, info)`` from a folder written by ``save_checkpoint``.

    ``made_by`` names the script that creates the folder and ``what`` the model, for the error message.
    """
    import transformer  # noqa: F401  (registers the architecture with the Auto classes)
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    folder = check_checkpoint(folder, made_by, what)
    model = AutoModelForSequenceClassification.from_pretrained(folder).to(device).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    return model, tokenizer, read_json(folder / INFO_FILE)


def check_checkpoint(folder, made_by, what="checkpoint"):
    """``folder`` as a Path if it is a complete model folder, else a ``UserError`` naming the fix."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"no {what} at {folder}: run `python {made_by}` first (or pass --out-dir)")
    missing = [f for f in CHECKPOINT_FILES if not (folder / f).is_file()]
    if missing:
        raise UserError(f"incomplete {what} at {folder} (missing {', '.join(missing)}): "
                        f"run `python {made_by}` again")
    return folder


# ---------------------------------------------------------------------------------------------
# JSON


def write_json(path, obj):
    """Write JSON atomically (temporary file, then rename)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.write_text(json.dumps(obj, indent=1, default=_json_default) + "\n")
    os.replace(tmp, path)


def read_json(path):
    return json.loads(Path(path).read_text())


def _json_default(obj):
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


@dataclass
class ALHistory:
    """``<teacher>/al_history.json``: what ``training.py`` did, and all ``origi.py`` reads back.

    Indices are rows of the IMDB splits. ``revealed_index``: the training rows whose labels the
    teacher's run revealed (seed set and queries; validation labels are counted in ``labels_used``
    but listed in ``val_index``). ``runs``: per strategy and seed, the rounds and the ensemble step.
    The two comparisons with random exist only when random ran beside the strategy.
    """

    settings: dict
    seeds: list
    teacher_strategy: str
    teacher_seed: int
    pool_index: list
    val_index: list
    pool_fingerprint: str
    test_index: list
    revealed_index: list
    labels_used: int
    curve_metric: str
    summary: dict
    runs: list
    label_fraction_to_match_random: float | None = None
    gain_over_random_at_budget: float | None = None

    def save(self, folder):
        record = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        if self.gain_over_random_at_budget is None:  # no random run to compare with
            del record["label_fraction_to_match_random"], record["gain_over_random_at_budget"]
        write_json(Path(folder) / HISTORY_FILE, record)

    @classmethod
    def load(cls, folder):
        path = Path(folder) / HISTORY_FILE
        if not path.is_file():
            raise UserError(f"no {path}: the teacher lacks its active-learning history; run `python training.py` again")
        record = read_json(path)
        names = [f.name for f in dataclasses.fields(cls)]
        missing = [n for n in names[:13] if n not in record]
        if missing:
            raise UserError(f"{path} lacks {', '.join(missing)}: it was written by another version; "
                            "run `python training.py` again")
        return cls(**{n: record[n] for n in names if n in record})  # keys of older versions are left out


# ---------------------------------------------------------------------------------------------
# results.txt


def append_result(path, script, **metrics):
    """Append one line ``<UTC time> <script> key=value ...`` to ``path``, under an exclusive lock.

    Floats get 4 decimals; values must not contain whitespace. Returns the line written.
    """
    parts = [datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), script]
    for key, value in metrics.items():
        if isinstance(value, (float, np.floating)):
            value = f"{value:.4f}"
        value = str(value)
        if not value or re.search(r"\s|=", value) or re.search(r"\s|=", key):
            raise ValueError(f"results value {key}={value!r} must be non-empty, without whitespace or '='")
        parts.append(f"{key}={value}")
    line = " ".join(parts) + "\n"
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            f.write(line)
            f.flush()
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
    return line.rstrip("\n")


def read_results(path):
    """The records of a results file: dicts with ``time``, ``script`` and the parsed metrics."""
    path = Path(path)
    if not path.exists():
        return []
    records = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) < 3 or not re.match(r"\d{4}-\d\d-\d\dT", fields[0]) or any("=" not in f for f in fields[2:]):
            raise UserError(f"{path}:{n} is not a results line (<time> <script> key=value ...): fix or remove it")
        record = {"time": fields[0], "script": fields[1]}
        for field in fields[2:]:
            key, value = field.split("=", 1)
            record[key] = _parse_value(value)
        records.append(record)
    return records


def _parse_value(value):
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


def fingerprint(*parts):
    """A short, stable hash of arrays and strings (data identity in results lines)."""
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, np.ndarray):
            h.update(np.ascontiguousarray(part).tobytes())
            continue
        # Any other iterable (a list, a datasets Column) is hashed item by item, never by its repr.
        for item in [part] if isinstance(part, (str, bytes, int, float)) else part:
            h.update(str(item).encode("utf-8", errors="replace"))
            h.update(b"\0")
    return h.hexdigest()[:16]
