"""Pool-based active learning (Settles 2009) and the ensemble step after it.

The training split is an unlabeled pool: its labels are read only for the seed set and for the texts
a strategy queries. Each round trains a fresh model on every labeled text, scores the unlabeled pool
and asks for the labels of the ``query_size`` most uncertain texts: initialize -> (reveal, train,
query)* -> ensemble step. The questions wait in the state as ``pending`` until every one has a label:
the dataset's own (the simulated annotator) or a person's answers, written into ``data`` by the
caller (``oracle``), so a run with a person stops after each query and goes on when the answers come.
Every round's randomness derives from the run's seed and the round number, and each round is saved,
so a run can resume after any round and ends with the same labeled set.
"""

import time
import uuid
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from .data import Reviews
from .distill import distil_ensemble
from .distributed import World, broadcast
from .fit import accuracy, evaluate, fit, mean_probs, new_model, predict_logits
from .runtime import say
from .store import save_checkpoint
from .strategies import score, seed_set, select


@dataclass(frozen=True)
class ALSettings:
    """One active-learning run. ``budget``: pool labels it may reveal (the label budget less the
    validation labels); ``rounds``: stop after this many queries (None: when the budget is spent);
    ``pool_sample``: score a random subset of this many unlabeled reviews per round (0: all);
    ``ensemble``: after the last round, train ``ensemble - 1`` more models on the final labels and
    distil all of them into the teacher (1: no ensemble step). ``balanced_start``: draw the seed set
    class-balanced, which looks at labels before anyone gave them (the IMDB benchmark's simulation);
    else at random. ``stop_when_stable``: end the run before its budget once fewer than this share of
    the predictions on the stop set changed since the last round (None: never)."""

    strategy: str
    initial_labels: int
    query_size: int
    budget: int
    rounds: int | None = None
    pool_sample: int = 0
    ensemble: int = 1
    eval_test_each_round: bool = False
    balanced_start: bool = True
    stop_when_stable: float | None = None


class ALData(NamedTuple):
    """What every run reads: encoded pool, validation and test ``Reviews``, the tokenizer (saved with
    each model), word vectors that start every fresh model (or None), the device, unlabeled
    ``Reviews`` that join the ensemble step's transfer set (or None; never queried), and the ``World``
    of processes the run is shared by (rank 0 saves the state)."""

    pool: Reviews
    val: Reviews
    test: Reviews
    tokenizer: Any
    vectors: torch.Tensor | None
    device: torch.device
    unlabeled: Reviews | None = None
    world: World = World()


# Pool texts whose predictions are compared from round to round, the stopping signal: when a new
# round's model changes few of them, more labels change little (Bloodgood & Vijay-Shanker 2009). It
# needs no labels, so it works where there is no test split and the validation set is small.
STOP_SET = 1000


def stop_set(pool, seed):
    """The stop set: a seeded sample of ``STOP_SET`` pool positions, the same every round."""
    return np.sort(np.random.default_rng([seed, 3]).choice(len(pool), min(STOP_SET, len(pool)), replace=False))


def derived_seed(*keys):
    """A seed for one step of a run, from the run's seed and the step's numbers (round, member)."""
    return int(np.random.default_rng(list(keys)).integers(2**31))


def train_round(model, pool, labeled, val, train, seed, desc, w=World()):
    """Train ``model`` on the ``labeled`` pool positions; keeps the best validation epoch."""
    ids = [pool.ids[i] for i in labeled]
    y = torch.from_numpy(pool.labels[labeled]).long().to(model.device)
    return fit(model, ids, lambda logits, idx: F.cross_entropy(logits, y[idx]), train, seed,
               val=(val.ids, val.labels), desc=desc, w=w)


def initialize(al, seed, pool, settings):
    """A fresh run's state: the seed set asked for (``pending``), no round yet. ``settings``: what defines
    the run, saved with every round so that a resume can check it; ``run_id`` names the run in results lines."""
    rng = np.random.default_rng([seed, 0])
    labeled = (seed_set(pool.labels, np.arange(len(pool)), al.initial_labels, rng) if al.balanced_start
               else np.sort(rng.choice(len(pool), al.initial_labels, replace=False)))
    return {"settings": settings, "run_id": uuid.uuid4().hex[:8], "labeled": labeled.tolist(), "labels": [],
            "pending": labeled.tolist(), "rounds": [], "done": False, "seconds": 0.0}


def unanswered(state, data):
    """``(pool positions, validation positions)`` asked for and still without a label in ``data``: what
    a person must label before the run can go on (the validation set is asked for with the seed set)."""
    pending = np.asarray(state.get("pending", []), dtype=np.int64)
    val = np.flatnonzero(data.val.labels < 0) if "val_labels" not in state else np.zeros(0, dtype=np.int64)
    return pending[data.pool.labels[pending] < 0], val


def restore_labels(state, data):
    """Put the labels a run has revealed so far back into ``data`` (a person's answers are nowhere else).
    A state saved before labels were kept reads them from the data, as its simulated annotator did."""
    labeled = np.asarray(state["labeled"], dtype=np.int64)
    if "labels" not in state:
        state["labels"] = data.pool.labels[labeled].tolist()
        state["val_labels"] = data.val.labels.tolist()
    data.pool.labels[labeled[:len(state["labels"])]] = state["labels"]
    if "val_labels" in state:
        data.val.labels[:] = state["val_labels"]


def reveal(state, data):
    """The pending questions, all answered in ``data`` now, join the labeled set's labels in ``state``."""
    pending = state.pop("pending", [])
    state["labels"] += data.pool.labels[pending].tolist()
    state.setdefault("val_labels", data.val.labels.tolist())


def revealed_round(run):
    """When each label of ``run["labeled_index"]`` was revealed: 0 for the seed set, k for a query after round k - 1."""
    asked = {row: record["round"] + 1 for record in run["rounds"] for row in record.get("queried", [])}
    return [asked.get(row, 0) for row in run["labeled_index"]]


def save_state(model, data, folder, state, since):
    """Save the run's ``model`` and ``state`` to ``folder`` (rank 0 does), adding the seconds worked
    ``since`` then (a ``perf_counter`` reading) to the run's total, which so survives interruptions.
    Returns a new reading."""
    now = time.perf_counter()
    state["seconds"] = state.get("seconds", 0.0) + now - since
    if data.world.main:
        save_checkpoint(model, data.tokenizer, folder, state)
    return now


def query(model, pool, labeled, k, al, rng, progress_bar, w=World()):
    """The ``k`` pool positions ``al.strategy`` asks about, among the unlabeled ones (or a sample of them).
    Every rank scores its shard; rank 0's choice is every rank's."""
    unlabeled = np.setdiff1d(np.arange(len(pool)), labeled)
    candidates = unlabeled
    if 0 < al.pool_sample < len(unlabeled):
        candidates = np.sort(rng.choice(unlabeled, al.pool_sample, replace=False))
    scores = score(model, pool.ids, candidates, al.strategy, rng, progress_bar and w.main, w=w)
    return broadcast(select(candidates, scores, k, rng), w)


def learn(al, seed, data, model_settings, train, folder, state, model=None):
    """Run (or, given a saved ``state`` and its ``model``, resume) one active-learning run; each round
    is saved to ``folder``. Returns ``(teacher, state)``; the run stopped to wait for answers if
    ``state["pending"]`` is not empty then (``unanswered`` says to which questions)."""
    labeled, since = np.asarray(state["labeled"]), time.perf_counter()
    max_rounds = al.rounds if al.rounds is not None else np.inf
    while not state["done"]:
        if any(len(rows) for rows in unanswered(state, data)):
            if model is None:  # a fresh run: saved with an untrained model until round 0 (later states are saved)
                model = new_model(model_settings, derived_seed(seed, 0), data.vectors).to(data.device)
                save_state(model, data, folder, state, since)
            return model, state
        reveal(state, data)
        r = len(state["rounds"])
        round_seed = derived_seed(seed, r)
        desc = f"{al.strategy} s{seed} r{r}"
        model = new_model(model_settings, round_seed, data.vectors).to(data.device)
        history = train_round(model, data.pool, labeled, data.val, train, round_seed, desc, data.world)
        record = {"round": r, "n_labeled": len(labeled), "labels_used": len(labeled) + len(data.val),
                  "val_acc": max(history["val_acc"]), "train_seconds": history["seconds"], "epochs": history}
        if al.eval_test_each_round:
            record["test_acc"] = evaluate(model, data.test.ids, data.test.labels, w=data.world)
        stop_ids = [data.pool.ids[i] for i in stop_set(data.pool, seed)]
        predictions = predict_logits(model, stop_ids, w=data.world).argmax(1)
        if "stop_predictions" in state:
            record["changed"] = float((predictions != np.asarray(state["stop_predictions"])).mean())
        state["stop_predictions"] = predictions.tolist()
        stable = al.stop_when_stable is not None and record.get("changed", 1.0) < al.stop_when_stable
        k = min(al.query_size, al.budget - len(labeled))
        if k > 0 and r < max_rounds and not stable:
            start = time.perf_counter()
            torch.manual_seed(round_seed)  # MC-dropout masks
            chosen = query(model, data.pool, labeled, k, al, np.random.default_rng([seed, r, 1]), train.progress,
                           data.world)
            labeled = np.concatenate([labeled, chosen])  # labeled once answered (``reveal``)
            state["pending"] = chosen.tolist()
            record["queried"] = data.pool.index[chosen].tolist()
            record["query_seconds"] = time.perf_counter() - start
        else:
            state["done"] = True
            record["stopped_when_stable"] = bool(stable and k > 0)
        state["rounds"].append(record)
        state["labeled"] = labeled.tolist()
        since = save_state(model, data, folder, state, since)
        say(f"{al.strategy} seed {seed} round {r}: labels_used={record['labels_used']} val_acc={record['val_acc']:.4f}"
            + (f" test_acc={record['test_acc']:.4f}" if "test_acc" in record else "")
            + (f" changed={record['changed']:.1%}" if "changed" in record else "")
            + f" seconds={record['train_seconds'] + record.get('query_seconds', 0):.1f}"
            + (" (stable: stopped before the budget)" if record.get("stopped_when_stable") else ""))

    if al.ensemble > 1 and "ensemble_step" not in state:
        model, state["ensemble_step"] = ensemble_step(model, labeled, state["rounds"], al, seed, data,
                                                      model_settings, train)
        save_state(model, data, folder, state, since)
    return model, state


def ensemble_step(model, labeled, rounds, al, seed, data, model_settings, train):
    """After the last of ``rounds``: ``al.ensemble - 1`` more models trained afresh on the final
    ``labeled`` set, and the mean of all their probabilities, the last round's ``model`` included,
    distilled into a fresh model on the whole pool and ``data.unlabeled``. Two models trained on the
    same labels disagree on a few percent of reviews, and their mean is right more often than either;
    the distillation keeps the teacher one model of its size. Returns ``(distilled model, record)``."""
    r = len(rounds)
    members, member_val_acc, start = [model], [rounds[-1]["val_acc"]], time.perf_counter()
    for k in range(1, al.ensemble):
        member_seed = derived_seed(seed, r, k)
        members.append(new_model(model_settings, member_seed, data.vectors).to(data.device))
        history = train_round(members[-1], data.pool, labeled, data.val, train, member_seed,
                              desc=f"{al.strategy} s{seed} member {k + 1}/{al.ensemble}", w=data.world)
        member_val_acc.append(max(history["val_acc"]))
    record = {"labels_used": rounds[-1]["labels_used"], "member_val_acc": member_val_acc,
              "ensemble_val_acc": accuracy(mean_probs(members, data.val.ids, w=data.world), data.val.labels)}
    model, history = distil_ensemble(members, data.pool, labeled, data.val, model_settings, train, derived_seed(seed, r),
                                     data.vectors, desc=f"{al.strategy} s{seed} distil ensemble", unlabeled=data.unlabeled,
                                     w=data.world)
    record |= {"val_acc": max(history["val_acc"]), "train_seconds": time.perf_counter() - start, "epochs": history}
    if al.eval_test_each_round:
        record["test_acc"] = evaluate(model, data.test.ids, data.test.labels, w=data.world)
    say(f"{al.strategy} seed {seed} ensemble of {al.ensemble} (val_acc {record['ensemble_val_acc']:.4f}) distilled on "
        f"the whole pool: val_acc={record['val_acc']:.4f}"
        + (f" test_acc={record['test_acc']:.4f}" if "test_acc" in record else "")
        + f" seconds={record['train_seconds']:.1f}")
    return model, record
