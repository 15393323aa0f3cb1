"""Query strategies (Settles 2009) and the two choices around them: the seed set and the query.

A strategy is a pure function from class probabilities ``(N, C)`` to scores ``(N,)``: higher = ask first.
"""

import numpy as np
import torch

from . import UserError
from .distributed import World, sharded_scores
from .fit import predict_logits

# Monte Carlo dropout samples per BALD score.
MC_SAMPLES = 10


def least_confidence(probs):
    return 1.0 - probs.max(axis=1)


def margin(probs):
    """Breaking ties (Scheffer et al. 2001): a small gap between the top two classes is uncertain."""
    top2 = np.sort(probs, axis=1)[:, -2:]
    return 1.0 - (top2[:, 1] - top2[:, 0])


def entropy(probs):
    p = np.clip(probs, 1e-12, 1.0)
    return -(p * np.log(p)).sum(axis=1)


def bald(mc_probs):
    """Mutual information between label and weights (Houlsby et al. 2011) from MC-dropout samples
    ``(S, N, C)``: entropy of the mean prediction minus the mean entropy of the samples."""
    return entropy(mc_probs.mean(axis=0)) - np.mean([entropy(p) for p in mc_probs], axis=0)


STRATEGIES = {"least_confidence": least_confidence, "margin": margin, "entropy": entropy,
              "bald": bald, "random": None}


def seed_set(labels, pool, n, rng):
    """``n`` random pool positions, class-balanced (the cold start needs every class): the first
    ``n % K`` of the ``K`` classes get one more."""
    classes = np.unique(labels[pool])
    per_class = [rng.permutation(np.flatnonzero(labels[pool] == c)) for c in classes]
    take = [n // len(classes) + (i < n % len(classes)) for i in range(len(classes))]
    if any(len(p) < k for p, k in zip(per_class, take)):
        raise UserError(f"the pool has too few texts of one class for a balanced seed set of {n}: "
                        "lower --initial-labels")
    return np.sort(np.concatenate([pool[p[:k]] for p, k in zip(per_class, take)]))


def score(model, ids, candidates, strategy, rng, progress_bar=False, w=World()):
    """``strategy``'s scores of the ``candidates`` (positions into ``ids``); ``random``: uniform draws.
    In a multi-process ``World`` each rank scores its shard of the candidates and all get every score
    (BALD's dropout masks then differ from one process's)."""
    if strategy == "random":
        return rng.random(len(candidates))

    def scores_of(part):
        part_ids = [ids[i] for i in part]
        if strategy == "bald":
            samples = [predict_logits(model, part_ids, mc_dropout=True, progress_bar=progress_bar,
                                      desc=f"score pool (MC sample {s + 1}/{MC_SAMPLES})") for s in range(MC_SAMPLES)]
            return bald(torch.softmax(torch.from_numpy(np.stack(samples)), -1).numpy())
        logits = predict_logits(model, part_ids, progress_bar=progress_bar, desc="score pool")
        return STRATEGIES[strategy](torch.softmax(torch.from_numpy(logits), -1).numpy())

    return sharded_scores(scores_of, candidates, w)


def select(candidates, scores, k, rng):
    """The ``k`` highest-scoring candidates; equal scores are ordered at random."""
    order = np.lexsort((rng.random(len(scores)), -scores))
    return candidates[order[:k]]
