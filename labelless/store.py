"""What the scripts write and read back: checkpoint folders, JSON, ``results.txt`` and the
``al_history.json`` schema.

Every write is atomic (a temporary sibling renamed into place), so an interrupted script leaves the
previous file or folder as it was. Checkpoints are Hugging Face folders: config, safetensors weights,
tokenizer, and ``training_info.json``; never a pickle.
"""

import contextlib
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


def save_checkpoint(model, tokenizer, folder, info, extra=None, onnx=False):
    """Write a Hugging Face model folder (config, safetensors, tokenizer, ``training_info.json``, and
    ``extra``: a dict of file name -> object written as JSON beside them), atomically (``atomic_folder``).
    With ``onnx``, ONNX Runtime copies of the model too (``export.export_onnx``)."""
    with atomic_folder(folder) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        if onnx:
            from .export import export_onnx

            export_onnx(model, tmp)
        for name, obj in (extra or {}).items():
            write_json(tmp / name, obj)
        write_json(tmp / INFO_FILE, info)
    return Path(folder)


@contextlib.contextmanager
def atomic_folder(folder):
    """Yield a temporary sibling of ``folder`` to write into, which replaces ``folder`` only when the
    block ends without error; ``training_info.json`` must be written last (it marks a copy complete).
    An interrupted write leaves the previous folder as it was; a kill between the two renames leaves it
    under a temporary name, which ``recover`` puts back at the next start."""
    folder = Path(folder)
    recover(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = _sibling(folder, "tmp")
    tmp.mkdir()
    try:
        yield tmp
        old = None
        if folder.exists():
            old = _sibling(folder, "old")
            folder.rename(old)
        tmp.rename(folder)
        if old is not None:
            shutil.rmtree(old)
    finally:
        if tmp.exists() and (folder.exists() or not _complete(tmp)):
            shutil.rmtree(tmp)


def recover(folder):
    """Undo what an interrupted ``atomic_folder`` left: with no folder under its name, the complete new
    copy (or else the old one) is renamed into place; every other leftover copy is removed."""
    folder = Path(folder)
    if not folder.parent.is_dir():
        return
    leftovers = {kind: sorted(folder.parent.glob(f".{folder.name}.{kind}-*"), key=lambda p: p.stat().st_mtime)
                 for kind in ("tmp", "old")}
    if not folder.exists():
        candidates = [p for p in reversed(leftovers["tmp"]) if _complete(p)] + leftovers["old"][::-1]
        if candidates:
            candidates[0].rename(folder)
    for path in leftovers["tmp"] + leftovers["old"]:
        if path.exists():
            shutil.rmtree(path)


def _sibling(folder, kind):
    return folder.parent / f".{folder.name}.{kind}-{uuid.uuid4().hex[:8]}"


def _complete(folder):
    return (folder / INFO_FILE).is_file()


def load_checkpoint(folder, made_by, device="cpu", what="checkpoint"):
    """``(model, tokenizer, info)`` from a folder written by ``save_checkpoint``.

    ``made_by`` names the script that creates the folder and ``what`` the model, for the error message.
    """
    import transformer  # noqa: F401  (registers the architecture with the Auto classes)
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    folder = check_checkpoint(folder, made_by, what)
    try:
        model = AutoModelForSequenceClassification.from_pretrained(folder).to(device).eval()
        tokenizer = AutoTokenizer.from_pretrained(folder)
        info = read_json(folder / INFO_FILE)
    except Exception as e:  # truncated weights, malformed JSON...: each library raises its own types
        raise UserError(f"cannot read the {what} at {folder} ({type(e).__name__}: {_first_line(e)}): "
                        f"it is damaged; run `python {made_by}` again") from None
    return model, tokenizer, info


def check_checkpoint(folder, made_by, what="checkpoint"):
    """``folder`` as a Path if it is a complete model folder, else a ``UserError`` naming the fix."""
    folder = Path(folder)
    recover(folder)
    if not folder.is_dir():
        raise UserError(f"no {what} at {folder}: run `python {made_by}` first (or pass --out-dir)")
    missing = missing_files(folder)
    if missing:
        raise UserError(f"incomplete {what} at {folder} (missing {', '.join(missing)}): "
                        f"run `python {made_by}` again")
    return folder


def missing_files(folder):
    """The files of ``CHECKPOINT_FILES`` that ``folder`` lacks (empty: a complete checkpoint)."""
    return [f for f in CHECKPOINT_FILES if not (Path(folder) / f).is_file()]


def _first_line(error):
    return (str(error).strip().splitlines() or [""])[0][:200]


def file_digest(path):
    """A short SHA-256 of a file's bytes (the identity of a model's weights)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()[:16]


def check_writable(path, flag, folder=False):
    """A one-line ``UserError`` unless ``path`` (a file, or with ``folder`` a folder) can be written:
    checked before any work, so that no run ends on a path found bad after hours."""
    path = Path(path)
    if folder and path.exists() and not path.is_dir():
        raise UserError(f"{flag} {path} is a file, not a folder: pass a folder (it is created if missing)")
    if not folder and path.is_dir():
        raise UserError(f"{flag} {path} is a folder, not a file: pass a file in it, e.g. {path / 'results.txt'}")
    existing = path
    while not existing.exists():
        existing = existing.parent
    if existing != path and not existing.is_dir():
        raise UserError(f"{flag} {path} lies under {existing}, which is a file: pass a path in a folder")
    if not os.access(existing, os.W_OK | (os.X_OK if existing.is_dir() else 0)):
        raise UserError(f"{flag} {path} cannot be written ({existing} is not writable): pass a path you can "
                        "write, or change its permissions")


def write_json(path, obj):
    """Write JSON atomically (``write_text``)."""
    write_text(path, json.dumps(obj, indent=1, default=_json_default) + "\n")


def write_text(path, text):
    """Write ``text`` atomically (temporary file, then rename); temporary files of interrupted writes go."""
    path = Path(path)
    for stale in path.parent.glob(f".{path.name}.tmp-*"):
        stale.unlink()
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.write_text(text, encoding="utf-8")
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
    ``unlabeled_used``: how many unlabeled reviews (texts only, no labels) the run read. Where each
    label came from: ``oracle`` (``simulated``: the data's labels; ``files``: a person's answers),
    ``revealed_labels`` and ``revealed_round`` (0: the seed set; k: asked after round k - 1) beside
    ``revealed_index``, and ``val_labels`` beside ``val_index`` (histories of earlier versions lack
    them: their labels are the data's). The two comparisons with random exist only when random ran
    beside the strategy.
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
    unlabeled_used: int = 0
    oracle: str = "simulated"
    revealed_labels: list | None = None
    revealed_round: list | None = None
    val_labels: list | None = None
    label_fraction_to_match_random: float | None = None
    gain_over_random_at_budget: float | None = None

    def record(self):
        """The JSON object (``save_checkpoint(..., extra={HISTORY_FILE: history.record()})`` writes it)."""
        record = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        if self.gain_over_random_at_budget is None:  # no random run to compare with
            del record["label_fraction_to_match_random"], record["gain_over_random_at_budget"]
        return record

    def save(self, folder):
        write_json(Path(folder) / HISTORY_FILE, self.record())

    @classmethod
    def load(cls, folder):
        path = Path(folder) / HISTORY_FILE
        if not path.is_file():
            raise UserError(f"no {path}: the teacher lacks its active-learning history; run `python training.py` again")
        try:
            record = read_json(path)
        except ValueError as e:
            raise UserError(f"cannot read {path} ({_first_line(e)}): it is damaged; run `python training.py` again") from None
        names = [f.name for f in dataclasses.fields(cls)]
        missing = [n for n in names[:13] if n not in record]
        if missing:
            raise UserError(f"{path} lacks {', '.join(missing)}: it was written by another version; "
                            "run `python training.py` again")
        return cls(**{n: record[n] for n in names if n in record})  # keys of older versions are left out


# ---------------------------------------------------------------------------------------------
# results.txt


def append_result(path, script, **metrics):
    """Append one line ``<UTC time> <script> key=value ...`` to ``path`` (``append_results``)."""
    return append_results(path, script, [metrics])[0]


def append_results(path, script, records, once=False):
    """Append one line ``<UTC time> <script> key=value ...`` per record (a dict) to ``path``, all in one
    write under an exclusive lock, so a kill leaves all of them or none. With ``once``, a record whose
    ``run_id`` and ``model`` already have a line is not written again (a resumed run reports once).

    Floats get 4 decimals; values must not contain whitespace. Returns the lines written.
    """
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    lines = [" ".join([now, script] + [_field(k, v) for k, v in metrics.items()]) for metrics in records]
    with open(path, "a+b") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            if once:  # only then is the whole file read
                f.seek(0)
                text = f.read().decode("utf-8", errors="replace")
                lines = [line for line, r in zip(lines, records) if not _reported(text, r.get("run_id"), r.get("model"))]
            end = f.seek(0, os.SEEK_END)
            if end:
                f.seek(end - 1)
            prefix = b"\n" if end and f.read(1) != b"\n" else b""  # a last line cut short stays alone
            if lines:
                f.write(prefix + "".join(line + "\n" for line in lines).encode())
                f.flush()
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
    return lines


def _reported(text, run_id, model):
    """Whether ``text`` (a results file) has a line of ``run_id`` for ``model``."""
    fields = (f" run_id={run_id} ", f" model={model} ")
    return any(all(f in f" {line} " for f in fields) for line in text.splitlines())


def _field(key, value):
    if isinstance(value, (float, np.floating)):
        value = f"{value:.4f}"
    value = str(value)
    if not value or re.search(r"\s|=", value) or re.search(r"\s|=", key):
        raise ValueError(f"results value {key}={value!r} must be non-empty, without whitespace or '='")
    return f"{key}={value}"


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
