"""A person in the loop: a round's queries written for labelling, and the answers read back and checked.

With ``training.py --oracle files`` each round ends by writing its queries to
``<out-dir>/queries/round_<k>.csv`` (``id,text,label``, the label left empty, for a spreadsheet) and to
``round_<k>.tasks.json`` (Label Studio tasks, imported as they are with ``label_studio.xml`` as the
labelling interface). The answers come back as that CSV filled in, or as a Label Studio export (JSON,
or its JSON-MIN and CSV variants); ``read_answers`` accepts each answer only if its id was asked and its
label is one of the classes, and every question has exactly one answer. ``ask`` and ``answer`` do both
for a run's waiting questions (``active.unanswered``).
"""

import csv
import io
import json
from pathlib import Path
from xml.sax.saxutils import quoteattr

import numpy as np

from . import UserError
from .active import unanswered
from .store import write_json, write_text

QUERIES_DIR = "queries"
LABEL_STUDIO_CONFIG = "label_studio.xml"


def queries_file(out_dir, k):
    """Where round ``k``'s queries are written (the CSV; its Label Studio tasks lie beside it)."""
    return Path(out_dir) / QUERIES_DIR / f"round_{k}.csv"


def write_queries(out_dir, k, ids, texts, label_names):
    """Write round ``k``'s queries (ids and texts) as a CSV to fill in and as Label Studio tasks, and the
    Label Studio labelling interface for ``label_names``. Returns the CSV's path."""
    path = queries_file(out_dir, k)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["id", "text", "label"])
    writer.writerows([i, text, ""] for i, text in zip(ids, texts))
    write_text(path, buffer.getvalue())
    write_json(path.with_suffix(".tasks.json"), [{"data": {"row_id": i, "text": text}} for i, text in zip(ids, texts)])
    choices = "\n".join(f"    <Choice value={quoteattr(name)}/>" for name in label_names)
    write_text(path.parent / LABEL_STUDIO_CONFIG, f'<View>\n  <Text name="text" value="$text"/>\n  <Choices name="label" '
               f'toName="text" choice="single" showInline="true">\n{choices}\n  </Choices>\n</View>\n')
    return path


def asked_rows(state, data):
    """``(training rows, pool positions, validation positions)`` of the questions that wait for a
    person's answers (``active.unanswered``): validation first, then pool."""
    pool_rows, val_rows = unanswered(state, data)
    return np.concatenate([data.val.index[val_rows], data.pool.index[pool_rows]]), pool_rows, val_rows


def ask(out_dir, state, data, corpus):
    """Write the waiting round's questions (``write_queries``). Returns ``(CSV path, questions, of them
    validation)``."""
    rows, _, val_rows = asked_rows(state, data)
    path = write_queries(out_dir, len(state["rounds"]), corpus.ids[rows].tolist(), corpus.train.select(rows)["text"],
                         corpus.label_names)
    return path, len(rows), len(val_rows)


def answer(path, state, data, corpus):
    """Read the answers to the waiting questions from ``path`` into ``data``'s labels, all checked first:
    a bad file changes nothing."""
    rows, pool_rows, val_rows = asked_rows(state, data)
    k = len(state["rounds"])
    if not len(rows):
        raise UserError(f"no questions wait for answers (round {k} has its labels): drop --answers {path}")
    labels = np.asarray(read_answers(path, corpus.ids[rows].tolist(), corpus.label_names, k))
    data.val.labels[val_rows], data.pool.labels[pool_rows] = labels[:len(val_rows)], labels[len(val_rows):]


def read_answers(path, asked, label_names, k):
    """The class ids answered for the ``asked`` ids of round ``k``, in their order, read from ``path``.

    Anything wrong is one ``UserError`` naming the row: an id that was not asked, a label that is no
    class, an id answered twice, a question left unanswered, a file that cannot be read."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"no answers file at {path}: fill in the label column of round {k}'s queries CSV (or export "
                        "its Label Studio tasks) and pass that file to --answers")
    rows = _rows(path)
    classes = {name: c for c, name in enumerate(label_names)}
    wanted, answers, line_of = set(asked), {}, {}
    for line, row_id, label in rows:
        where = f"{path} {line} (id {row_id!r})"
        if row_id not in wanted:
            raise UserError(f"{where} was not asked in round {k}: keep only the rows of {queries_file('.', k).name}")
        if row_id in answers:
            raise UserError(f"{where} is answered twice ({line_of[row_id]} too): keep one answer per id")
        if label is None:
            continue  # left blank: reported as unanswered below, with the count
        c = classes.get(label, None)
        if c is None and label.lstrip("-").isdigit() and 0 <= int(label) < len(label_names):
            c = int(label)  # a class id instead of its name
        if c is None:
            raise UserError(f"{where} has label {label!r}, which is no class ({', '.join(label_names)}): fix that row")
        answers[row_id], line_of[row_id] = c, line
    missing = [i for i in asked if i not in answers]
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise UserError(f"{path} has no answer for id {missing[0]!r}{more} of round {k}: label every row, then "
                        "pass the file again")
    return [answers[i] for i in asked]


def _rows(path):
    """``(where, id, label or None)`` of each answer in ``path``: a CSV with ``id`` (or Label Studio's
    ``row_id``) and ``label``; or JSON, a Label Studio export or a list of ``{"row_id"/"id", "label"}``."""
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".json":
            return [_json_answer(n, task) for n, task in enumerate(json.loads(text), 1)]
        reader = csv.DictReader(io.StringIO(text))
        key = "row_id" if "row_id" in (reader.fieldnames or []) else "id"
        if key not in (reader.fieldnames or []) or "label" not in reader.fieldnames:
            raise UserError(f"{path} needs the columns id and label (it has {', '.join(reader.fieldnames or [])}): "
                            "fill in the queries CSV as it was written")
        return [(f"line {reader.line_num}", str(row[key]).strip(), (row["label"] or "").strip() or None)
                for row in reader]
    except UserError:
        raise
    except (ValueError, TypeError, KeyError, AttributeError, UnicodeDecodeError, csv.Error) as e:
        raise UserError(f"cannot read the answers in {path} ({type(e).__name__}: {str(e).splitlines()[0]}): pass the "
                        "queries CSV filled in, or a Label Studio JSON export") from None


def _json_answer(n, task):
    """``(where, id, label)`` of one JSON answer: a Label Studio task with annotations (its latest one
    not cancelled), or a flat record (JSON-MIN)."""
    if "annotations" in task or "data" in task:
        row_id = task["data"]["row_id"]
        done = [a for a in task.get("annotations", []) if not a.get("was_cancelled")]
        choices = [r["value"]["choices"] for r in (done[-1]["result"] if done else []) if r.get("type") == "choices"]
        label = choices[0][0] if choices and choices[0] else None
    else:
        row_id, label = task.get("row_id", task.get("id")), task.get("label")
        if isinstance(label, dict):  # JSON-MIN writes a multi-choice answer as {"choices": [...]}
            label = (label.get("choices") or [None])[0]
    label = None if label is None or not str(label).strip() else str(label).strip()
    return f"task {n}", str(row_id), label
