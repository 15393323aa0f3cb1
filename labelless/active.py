"""Pool-based active learning (Settles 2009) and the ensemble step after it.

The training split is an unlabeled pool: its labels are read only for the seed set and for the
reviews a strategy queries (the dataset plays the annotator). Each round trains a fresh model on
every labeled review, scores the unlabeled pool and reveals the ``query_size`` most uncertain
reviews: initialize -> (train, query, update)* -> ensemble step. Every round's randomness derives
from the run's seed and the round number, and each round is saved, so a run can resume after any
round and ends with the same labeled set.
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
from .fit import accuracy, evaluate, fit, mean_probs, new_model
from .runtime import say
from .store import save_checkpoint
from .strategies import score, seed_set, select


@dataclass(frozen=True)
class ALSettings:
    """One active-learning run. ``budget``: pool labels it may reveal (the label budget less the
    validation labels); ``rounds``: stop after this many queries (None: when the budget is spent);
    ``pool_sample``: score a random subset of this many unlabeled reviews per round (0: all);
    ``ensemble``: after the last round, train ``ensemble - 1`` more models on the final labels and
    distil all of them into the teacher (1: no ensemble step)."""

    strategy: str
    initial_labels: int
    query_size: int
    budget: int
    rounds: int | None = None
    pool_sample: int = 0
    ensemble: int = 1
    eval_test_each_round: bool = False


class ALData(NamedTuple):
    """What every run reads: encoded pool, validation and test ``Reviews``, the tokenizer (saved with
    each model), word vectors that start every fresh model (or None), the device, and unlabeled
    ``Reviews`` that join the ensemble step's transfer set (or None; never queried)."""

    pool: Reviews
    val: Reviews
    test: Reviews
    tokenizer: Any
    vectors: torch.Tensor | None
    device: torch.device
    unlabeled: Reviews | None = None


def derived_seed(*keys):
    """A seed for one step of a run, from the run's seed and the step's numbers (round, member)."""
    return int(np.random.default_rng(list(keys)).integers(2**31))


def train_round(model, pool, labeled, val, train, seed, desc):
    """Train ``model`` on the ``labeled`` pool positions; keeps the best validation epoch."""
    ids = [pool.ids[i] for i in labeled]
    y = torch.from_numpy(pool.labels[labeled]).long().to(model.device)
    return fit(model, ids, lambda logits, idx: F.cross_entropy(logits, y[idx]), train, seed,
               val=(val.ids, val.labels), desc=desc)


def initialize(al, seed, pool, settings):
    """A fresh run's state: the seed set labeled, no round yet. ``settings``: what defines the run,
    saved with every round so that a resume can check it; ``run_id`` names the run in results lines."""
    labeled = seed_set(pool.labels, np.arange(len(pool)), al.initial_labels, np.random.default_rng([seed, 0]))
    return {"settings": settings, "run_id": uuid.uuid4().hex[:8], "labeled": labeled.tolist(), "rounds": [],
            "done": False, "seconds": 0.0}


def save_state(model, tokenizer, folder, state, since):
    """Save the run's ``model`` and ``state`` to ``folder``, adding the seconds worked ``since`` then (a
    ``perf_counter`` reading) to the run's total, which so survives interruptions. Returns a new reading."""
    now = time.perf_counter()
    state["seconds"] = state.get("seconds", 0.0) + now - since
    save_checkpoint(model, tokenizer, folder, state)
    return now


def query(model, pool, labeled, k, al, rng, progress_bar):
    """The ``k`` pool positions ``al.strategy`` asks about, among the unlabeled ones (or a sample of them)."""
    unlabeled = np.setdiff1d(np.arange(len(pool)), labeled)
    candidates = unlabeled
    if 0 < al.pool_sample < len(unlabeled):
        candidates = np.sort(rng.choice(unlabeled, al.pool_sample, replace=False))
    return select(candidates, score(model, pool.ids, candidates, al.strategy, rng, progress_bar), k, rng)


def learn(al, seed, data, model_settings, train, folder, state, model=None):
    """Run (or, given a saved ``state`` and its ``model``, resume) one active-learning run; each round
    is saved to ``folder``. Returns ``(teacher, state)``."""
    labeled, since = np.asarray(state["labeled"]), time.perf_counter()
    max_rounds = al.rounds if al.rounds is not None else np.inf
    while not state["done"]:
        r = len(state["rounds"])
        round_seed = derived_seed(seed, r)
        desc = f"{al.strategy} s{seed} r{r}"
        model = new_model(model_settings, round_seed, data.vectors).to(data.device)
        history = train_round(model, data.pool, labeled, data.val, train, round_seed, desc)
        record = {"round": r, "n_labeled": len(labeled), "labels_used": len(labeled) + len(data.val),
                  "val_acc": max(history["val_acc"]), "train_seconds": history["seconds"], "epochs": history}
        if al.eval_test_each_round:
            record["test_acc"] = evaluate(model, data.test.ids, data.test.labels)
        k = min(al.query_size, al.budget - len(labeled))
        if k > 0 and r < max_rounds:
            start = time.perf_counter()
            torch.manual_seed(round_seed)  # MC-dropout masks
            chosen = query(model, data.pool, labeled, k, al, np.random.default_rng([seed, r, 1]), train.progress)
            labeled = np.concatenate([labeled, chosen])  # revealing = adding to the labeled set
            record["queried"] = data.pool.index[chosen].tolist()
            record["query_seconds"] = time.perf_counter() - start
        else:
            state["done"] = True
        state["rounds"].append(record)
        state["labeled"] = labeled.tolist()
        since = save_state(model, data.tokenizer, folder, state, since)
        say(f"{al.strategy} seed {seed} round {r}: labels_used={record['labels_used']} val_acc={record['val_acc']:.4f}"
            + (f" test_acc={record['test_acc']:.4f}" if "test_acc" in record else "")
            + f" seconds={record['train_seconds'] + record.get('query_seconds', 0):.1f}")

    if al.ensemble > 1 and "ensemble_step" not in state:
        model, state["ensemble_step"] = ensemble_step(model, labeled, state["rounds"], al, seed, data,
                                                      model_settings, train)
        save_state(model, data.tokenizer, folder, state, since)
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
                              desc=f"{al.strategy} s{seed} member {k + 1}/{al.ensemble}")
        member_val_acc.append(max(history["val_acc"]))
    record = {"labels_used": rounds[-1]["labels_used"], "member_val_acc": member_val_acc,
              "ensemble_val_acc": accuracy(mean_probs(members, data.val.ids), data.val.labels)}
    model, history = distil_ensemble(members, data.pool, labeled, data.val, model_settings, train, derived_seed(seed, r),
                                     data.vectors, desc=f"{al.strategy} s{seed} distil ensemble", unlabeled=data.unlabeled)
    record |= {"val_acc": max(history["val_acc"]), "train_seconds": time.perf_counter() - start, "epochs": history}
    if al.eval_test_each_round:
        record["test_acc"] = evaluate(model, data.test.ids, data.test.labels)
    say(f"{al.strategy} seed {seed} ensemble of {al.ensemble} (val_acc {record['ensemble_val_acc']:.4f}) distilled on "
        f"the whole pool: val_acc={record['val_acc']:.4f}"
        + (f" test_acc={record['test_acc']:.4f}" if "test_acc" in record else "")
        + f" seconds={record['train_seconds']:.1f}")
    return model, record
