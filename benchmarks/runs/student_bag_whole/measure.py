"""The proxy of JOURNAL's "The `full` student's bag reading the whole review": on each kept development encoder
(a 512-token teacher, 8,000 labels) and its bag refitted as `teacher_dev --bag` fits it, the encoder reads the last
256 tokens of each development review (as the `full` student's does) and the bag reads the same 256, or all 512.

    PYTHONPATH=. python benchmarks/runs/student_bag_whole/measure.py /work/dev_members 1 2 3
"""

import functools
import sys
from pathlib import Path

import numpy as np

from benchmarks.teacher_dev import DEV_BLOCK, DEV_SIZE, POOL_SIZE
from labelless import store
from labelless.data import encode_rows, hold_out, stratified_subset
from labelless.fit import BagAlone, accuracy, encoder_logits, predict_logits, with_bag
from labelless.sources import load_imdb

STUDENT_LEN = 256


def tail(x, n):
    """The last ``n`` ids, ``[CLS]`` kept in front: what a tokenizer truncating at ``n`` gives (``origi.shorten``)."""
    return x if len(x) <= n else np.concatenate([x[:1], x[len(x) - n + 1:]])


@functools.cache
def split():
    """``(train split, labels, rest, development rows)``: IMDB read and `teacher_dev`'s development set held out, once
    for all seeds."""
    train, _ = load_imdb(None)
    labels = np.asarray(train["label"])
    rest, dev_index = hold_out(np.arange(len(labels)), labels, DEV_SIZE, seed=0, block=DEV_BLOCK)
    return train, labels, rest, dev_index


def development(members, seed, length=None):
    """``(encoder, pool, dev, labeled)``: the kept development encoder of ``seed``, `teacher_dev`'s pool and
    development reviews encoded by its tokenizer (cut at ``length`` tokens, else at the tokenizer's), and the rows of
    the pool whose 8,000 labels it was trained on."""
    train, labels, rest, dev_index = split()
    model, tokenizer, _ = store.load_checkpoint(Path(members) / f"seed{seed}_member{seed}", "measure.py")
    if length:
        tokenizer.model_max_length = length
    pool_index = rest[stratified_subset(labels[rest], POOL_SIZE, seed)]
    pool, dev = (encode_rows(train, index, tokenizer, False) for index in (pool_index, dev_index))
    return model, pool, dev, np.random.default_rng(seed).permutation(len(pool))[:8000]


def main(members, seeds):
    for seed in seeds:
        model, pool, dev, labeled = development(members, seed)
        hybrid = with_bag(model, [pool.ids[i] for i in labeled], pool.labels[labeled], seed + 2)  # teacher_dev's bag
        short = [tail(x, STUDENT_LEN) for x in dev.ids]
        enc_512, enc_256 = (encoder_logits(hybrid, ids) for ids in (dev.ids, short))
        bag_512, bag_256 = (predict_logits(BagAlone(hybrid), ids) for ids in (dev.ids, short))
        cut = np.mean([len(x) > STUDENT_LEN for x in dev.ids])
        acc = {k: accuracy(v, dev.labels) for k, v in {
            "teacher (512 + 512)": enc_512 + bag_512, "encoder 256": enc_256,
            "encoder 256 + bag 256": enc_256 + bag_256, "encoder 256 + bag 512": enc_256 + bag_512}.items()}
        gain = acc["encoder 256 + bag 512"] - acc["encoder 256 + bag 256"]
        print(f"seed {seed}: {cut:.0%} of dev reviews over {STUDENT_LEN} tokens; "
              + "; ".join(f"{k} {v:.4f}" for k, v in acc.items()) + f"; gain {gain * 100:+.2f} points", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], [int(s) for s in sys.argv[2:]])
