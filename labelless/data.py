"""A run's data: stratified subsets, the held-out validation set, a run's partition, encoded rows.

A run's partition: the training rows it uses (a stratified subset on the small presets), the
validation set held out of them in whole runs of adjacent rows, the pool (the rest: texts whose
labels stay hidden until queried) and the stratified test rows (final evaluation only). The splits
themselves come from ``sources``.
"""

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from . import UserError

# IMDB lists the reviews of one movie next to each other (benchmarks/movie_grouping.py): validation
# takes whole runs of this many adjacent training rows, so most of its movies are not in the pool, as
# the test split's are not.
VAL_BLOCK = 100


def unlabeled_subset(n, size, seed):
    """Sorted indices of a seeded random subset of ``size`` of ``n`` unlabeled reviews (None: all)."""
    if size is None or size >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng([seed, 2]).choice(n, size, replace=False))


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
    """How much of the data a run uses (None: all) and how its validation set is held out. ``stratify``:
    the training subset and the validation set keep the class proportions, which reads the training
    labels (the IMDB benchmark's simulation); else both are drawn at random, as a person's run must."""

    max_train_samples: int | None
    max_test_samples: int | None
    val_size: int
    seed: int
    stratify: bool = True


class Partition(NamedTuple):
    """Row indices of a run's data. ``texts``: the training rows it uses, whose texts (never labels)
    train the tokenizer and the word vectors; ``pool`` and ``val`` split them; ``test``: test-split rows."""

    texts: np.ndarray
    pool: np.ndarray
    val: np.ndarray
    test: np.ndarray


def partition(train_labels, test_labels, settings):
    """The ``Partition`` of a run with these ``DataSettings``: stratified subsets, validation held out
    in runs of ``VAL_BLOCK`` rows; ``test_labels`` None: no test split, no test rows."""
    train_labels = np.asarray(train_labels)
    if not settings.stratify:
        train_labels = np.zeros_like(train_labels)  # one class: random draws
    texts = stratified_subset(train_labels, settings.max_train_samples, settings.seed)
    if settings.val_size >= len(texts):
        raise UserError(f"--val-size {settings.val_size} leaves no pool out of {len(texts)} reviews")
    pool, val = hold_out(texts, train_labels, settings.val_size, settings.seed, VAL_BLOCK)
    test = (np.zeros(0, dtype=np.int64) if test_labels is None
            else stratified_subset(test_labels, settings.max_test_samples, settings.seed))
    return Partition(texts, pool, val, test)


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
