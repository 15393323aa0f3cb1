"""Knowledge distillation (Hinton et al. 2015): a model trained on a teacher's soft labels.

``distil`` trains any model on given teacher logits (``origi.py``: the teacher into the student);
``distil_ensemble`` distils the mean of several teachers into one fresh model on the whole pool (the
ensemble step after active learning).
"""

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .distributed import World
from .fit import fit, mean_probs, new_model

# Chosen on validation by benchmarks/distill_sweep.sh (benchmarks/RESULTS.md, "Distillation sweep").
TEMPERATURE, ALPHA = 4.0, 0.9


@dataclass(frozen=True)
class DistillSettings:
    """The loss's temperature T and the weight alpha of its soft (teacher) term."""

    temperature: float = TEMPERATURE
    alpha: float = ALPHA


def distillation_loss(student_logits, teacher_logits, labels, revealed, temperature, alpha):
    """alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T)) + (1 - alpha) * CE(student, y).
    ``revealed`` marks the rows whose label may be used; the hard-label term is the mean cross-entropy
    over those rows (0 when a batch has none)."""
    T = temperature
    soft = F.kl_div(F.log_softmax(student_logits / T, -1), F.softmax(teacher_logits / T, -1),
                    reduction="batchmean") * T**2  # T^2 keeps the gradient scale independent of T
    if revealed.any() and alpha < 1:
        hard = F.cross_entropy(student_logits[revealed], labels[revealed])
    else:
        hard = student_logits.new_zeros(())
    return alpha * soft + (1 - alpha) * hard


def distil(model, ids, teacher_logits, labels, distill, train, seed, val=None, desc="distil", w=World()):
    """Train ``model`` on ``ids`` with ``distillation_loss`` against ``teacher_logits`` (numpy, one row
    per review); ``labels`` holds -1 where no label was revealed. Returns ``fit``'s history."""
    device = next(model.parameters()).device
    targets = torch.from_numpy(np.asarray(teacher_logits, dtype=np.float32)).to(device)
    labels = torch.from_numpy(np.asarray(labels)).long().to(device)
    revealed = labels >= 0

    def loss(logits, idx):
        return distillation_loss(logits, targets[idx], labels[idx].clamp(min=0), revealed[idx],
                                 distill.temperature, distill.alpha)

    return fit(model, ids, loss, train, seed, val=val, desc=desc, w=w)


def distil_ensemble(teachers, pool, labeled, val, model, train, seed, vectors=None, distill=DistillSettings(),
                    desc="distil ensemble", unlabeled=None, w=World()):
    """A fresh model (``ModelSettings`` ``model``) distilled from the mean class probabilities of
    ``teachers`` on the whole ``pool`` and the ``unlabeled`` reviews (``Reviews`` or None): their soft
    labels on every review, the hard label only at the ``labeled`` pool positions. The transfer set adds
    the reviews active learning left unlabeled. Returns ``(model, fit history)``."""
    labels = np.full(len(pool), -1)
    labels[labeled] = pool.labels[labeled]  # what active learning revealed, and nothing else
    ids = pool.ids + (unlabeled.ids if unlabeled is not None else [])
    labels = np.concatenate([labels, np.full(len(ids) - len(pool), -1)])
    logits = mean_probs(teachers, ids, train.progress, w=w).log().numpy()
    student = new_model(model, seed, vectors).to(next(teachers[0].parameters()).device)
    history = distil(student, ids, logits, labels, distill, train, seed, val=(val.ids, val.labels), desc=desc, w=w)
    return student, history
