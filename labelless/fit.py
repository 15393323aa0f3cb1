"""Models made, trained and read: the model factory, the one training loop, prediction and accuracy.

In a multi-process ``World`` (``distributed``) training is data-parallel and prediction sharded: every
rank calls the same functions in the same order.
"""

import copy
import dataclasses
import math
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from transformers.modeling_outputs import SequenceClassifierOutput

import transformer

from .distributed import World, sharded_scores
from .runtime import autocast, progress, release_heap
from .text import collate, length_batches
from .vectors import init_embeddings


@dataclass(frozen=True)
class ModelSettings:
    """A model of one of ``transformer.SIZES`` for a tokenizer's vocabulary and length."""

    size: str
    vocab_size: int
    max_len: int
    pad_token_id: int
    dropout: float
    ngram_buckets: int = 0  # hashed n-gram embeddings (transformer.TransformerConfig); 0: none
    label_names: tuple = ("neg", "pos")  # the classes, in id order: the config's id2label


def new_model(settings, seed, vectors=None):
    """A fresh ``TransformerClassifier`` initialised from ``seed``; ``vectors`` (``vectors.word_vectors``)
    start its token embeddings."""
    torch.manual_seed(seed)
    config = transformer.TransformerConfig.from_size(
        settings.size, vocab_size=settings.vocab_size, max_len=settings.max_len,
        pad_token_id=settings.pad_token_id, dropout=settings.dropout, ngram_buckets=settings.ngram_buckets,
        id2label=dict(enumerate(settings.label_names)), label2id={name: i for i, name in enumerate(settings.label_names)})
    model = transformer.TransformerClassifier(config)
    if vectors is not None:
        init_embeddings(model, vectors)
    return model


@dataclass(frozen=True)
class TrainSettings:
    """AdamW with a one-cycle schedule: ``epochs`` over the data, peak ``lr``."""

    epochs: int
    lr: float
    batch_size: int
    progress: bool = True
    weight_decay: float = 0.01


def fit(model, ids, loss_fn, train, seed, val=None, desc="train", w=World()):
    """Train ``model`` on token ids ``ids`` with ``TrainSettings`` ``train``.

    ``loss_fn(logits, idx)`` gives the mean loss of a batch, ``idx`` indexing ``ids``. With
    ``val=(val_ids, val_labels)`` the weights of the best validation epoch are kept (and restored);
    without it, the last epoch's. In a multi-process ``World`` the model is wrapped in
    DistributedDataParallel and each rank takes its share of every batch: the same batches, effective
    batch size and learning rate as one process. Returns a dict: per-epoch train loss and val accuracy,
    best epoch, seconds.
    """
    device = next(model.parameters()).device
    rng = np.random.default_rng(seed)  # the same on every rank: every rank walks the same batches
    torch.manual_seed(seed)  # dropout masks: a round is reproducible whatever ran before it
    lengths = np.array([len(x) for x in ids])
    steps = train.epochs * math.ceil(len(ids) / train.batch_size)
    optimizer, schedule = make_optimizer(model.named_parameters(), train.lr, train.weight_decay, steps)
    net = model if w.size == 1 else torch.nn.parallel.DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None)  # starts from rank 0's weights
    history = {"train_loss": [], "val_acc": [], "best_epoch": None}
    best_acc, best_state = -1.0, None
    start = time.perf_counter()
    for epoch in range(train.epochs):
        model.train()
        total, count = 0.0, 0
        bar = progress(length_batches(lengths, train.batch_size, rng), train.progress and w.main,
                       desc=f"{desc} epoch {epoch + 1}/{train.epochs}", leave=False)
        for batch in bar:
            idx, weight = rank_share(batch, w)
            input_ids, mask = collate([ids[i] for i in idx], model.config.pad_token_id, device)
            with autocast(device):
                logits = net(input_ids, attention_mask=mask).logits
            loss = loss_fn(logits.float(), idx)
            optimizer.zero_grad(set_to_none=True)
            (loss * weight).backward()  # DDP averages the ranks' gradients: the batch's mean loss
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            total, count = total + loss.item() * len(idx), count + len(idx)
            bar.set_postfix(loss=f"{total / count:.4f}")
        history["train_loss"].append(total / max(count, 1))
        if val is not None:
            acc = evaluate(model, *val, w=w)
            history["val_acc"].append(acc)
            if acc > best_acc:
                best_acc, best_state = acc, copy.deepcopy(model.state_dict())
                history["best_epoch"] = epoch + 1
    if best_state is not None:
        model.load_state_dict(best_state)
    else:
        history["best_epoch"] = train.epochs
    history["seconds"] = time.perf_counter() - start
    return history


# The bag of n-grams (``with_bag``): fastText's dimension, and 10x the teacher's learning rate, for each bucket
# sees a few reviews an epoch (JOURNAL, "A bag of n-grams beside the encoder"); 4 epochs, for at 2 it was
# under-fitted beside the encoder (JOURNAL, "The bag's fit: more epochs").
BAG_DIM, BAG_BUCKETS = 16, 131072
BAG_TRAIN = TrainSettings(epochs=4, lr=1e-2, batch_size=32)


class BagAlone(torch.nn.Module):
    """A model's bag of n-grams as a model of its own, for ``fit``: the encoder is neither run nor changed."""

    def __init__(self, model):
        super().__init__()
        self.bag, self.config = model.bag, model.config

    def forward(self, input_ids, attention_mask):
        return SequenceClassifierOutput(logits=self.bag(input_ids, attention_mask.bool()))


def beside(model, bag=None, seed=0):
    """A copy of ``model`` with a bag of n-grams beside its encoder: a copy of ``bag`` (another model's, for the same
    tokenizer), else a fresh one drawn from ``seed``. A copied bag reads as many tokens as it did in its model, the
    encoder still the last ``max_len`` of them."""
    config = copy.deepcopy(model.config)
    config.bag_dim, config.bag_buckets = (bag.config.bag_dim, bag.config.bag_buckets) if bag else (BAG_DIM, BAG_BUCKETS)
    reads = (bag.config.bag_max_len or bag.config.max_len) if bag else 0
    config.bag_max_len = reads if reads > config.max_len else 0  # a copied bag reads what it was fitted on
    torch.manual_seed(seed)
    hybrid = transformer.TransformerClassifier(config).to(model.device)
    missing, unexpected = hybrid.load_state_dict(model.state_dict(), strict=False)
    assert not unexpected and all(k.startswith("bag.") for k in missing)
    if bag is not None:
        hybrid.bag.load_state_dict(bag.state_dict())
    return hybrid


def with_bag(model, ids, labels, seed, progress=False, w=World(), train=BAG_TRAIN):
    """A copy of ``model`` with a bag of n-grams beside its encoder, the bag fitted on token ids ``ids`` and
    ``labels`` by itself (``train``: its schedule): two different models of the same labels, their logits added in
    one."""
    hybrid = beside(model, seed=seed)
    y = torch.as_tensor(np.asarray(labels)).long().to(model.device)
    fit(BagAlone(hybrid), ids, lambda logits, idx: F.cross_entropy(logits, y[idx]),
        dataclasses.replace(train, progress=progress), seed, desc="bag of n-grams", w=w)
    return hybrid


def encoder_logits(model, ids, **kwargs):
    """``predict_logits`` of ``model``'s encoder alone, without its bag of n-grams (if it has one): the model run
    with its bag set aside, so the logits are the encoder's to the last bit."""
    bag, model.bag = model.bag, None
    try:
        return predict_logits(model, ids, **kwargs)
    finally:
        model.bag = bag


def rank_share(batch, w):
    """``(rows, weight)``: this rank's rows of a batch, and the factor that makes the ranks' averaged
    mean losses the batch's mean loss. A rank left without a row takes the first with weight 0, for it
    must still join the gradients' all-reduce."""
    if w.size == 1:
        return batch, 1.0
    mine = batch[w.rank::w.size]
    return (mine, len(mine) * w.size / len(batch)) if len(mine) else (batch[:1], 0.0)


def make_optimizer(named_parameters, lr, weight_decay, steps):
    """AdamW with a one-cycle schedule over ``steps``; biases, norms and embeddings are not decayed."""
    named = list(named_parameters)
    decay = [p for n, p in named if p.dim() >= 2 and "emb" not in n]
    no_decay = [p for n, p in named if p.dim() < 2 or "emb" in n]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=lr)
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_linear_decay(steps))


def warmup_linear_decay(steps, warmup_fraction=0.1):
    """LR factor per step: linear warm-up over the first 10% of steps, then linear decay to 0 (one cycle)."""
    warmup = max(1, int(warmup_fraction * steps))
    return lambda step: (step + 1) / warmup if step < warmup else max(0.0, (steps - step) / max(1, steps - warmup))


# Prediction batches between two trims of the heap (``release_heap``): a trim hands back pages that the
# next batches fault in again, so trimming after every batch costs speed (JOURNAL, "the heap trimmed").
TRIM_EVERY = 16


def predict_logits(model, ids, batch_size=128, device=None, progress_bar=False, mc_dropout=False, desc="predict",
                   w=World()):
    """Logits ``(N, num_labels)`` as float32 numpy, in the order of ``ids``.

    ``mc_dropout=True`` keeps dropout active (one Monte Carlo sample per call, for BALD). In a
    multi-process ``World`` each rank predicts its shard and every rank gets all rows.
    """
    if w.size == 1:
        return _predict(model, ids, batch_size, device, progress_bar, mc_dropout, desc)
    return sharded_scores(lambda rows: _predict(model, [ids[i] for i in rows], batch_size, device,
                                                progress_bar and w.main, mc_dropout, desc), np.arange(len(ids)), w)


@torch.inference_mode()
def _predict(model, ids, batch_size, device, progress_bar, mc_dropout, desc):
    device = device or next(model.parameters()).device
    model.train(mc_dropout)
    out = np.empty((len(ids), model.config.num_labels), dtype=np.float32)
    batches = length_batches([len(x) for x in ids], batch_size)
    for k, idx in enumerate(progress(batches, progress_bar, desc=desc, leave=False)):
        input_ids, mask = collate([ids[i] for i in idx], model.config.pad_token_id, device)
        with autocast(device):
            logits = model(input_ids, attention_mask=mask).logits
        out[idx] = logits.float().cpu().numpy()
        del input_ids, mask, logits
        if k % TRIM_EVERY == TRIM_EVERY - 1:
            release_heap()
    model.eval()
    return out


def mean_probs(models, ids, progress_bar=False, w=World()):
    """The models' mean class probabilities on ``ids``, an ``(N, num_labels)`` tensor."""
    probs = [torch.from_numpy(predict_logits(m, ids, progress_bar=progress_bar, desc=f"logits {i + 1}/{len(models)}", w=w))
             .softmax(-1) for i, m in enumerate(models)]
    return torch.stack(probs).mean(0)


def accuracy(scores, labels):
    """Share of rows of ``scores`` (logits or probabilities, ``(N, C)``) whose largest entry is the label;
    a tie goes to the lower class."""
    return float((np.asarray(scores).argmax(1) == np.asarray(labels)).mean())


def evaluate(model, ids, labels, batch_size=128, progress_bar=False, w=World()):
    """Accuracy of ``model`` on token ids ``ids`` with gold ``labels``."""
    return accuracy(predict_logits(model, ids, batch_size, progress_bar=progress_bar, desc="evaluate", w=w), labels)
