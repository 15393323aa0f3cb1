"""The proxy of JOURNAL's "The teacher's bag reading the whole review": on each kept development encoder (a
512-token teacher, 8,000 labels) the bag of n-grams is fitted as `teacher_dev --bag` fits it (same labeled reviews,
same seed) on the reviews cut to the encoder's length, or on the whole reviews (their last 2,048 tokens), and reads
the development reviews the same way; the encoder reads the last 512 tokens (`full`'s teacher) or 256 (a proxy of
`quick`'s).

    PYTHONPATH=. python benchmarks/runs/teacher_bag_whole/measure.py /work/dev_members 1 2 3
"""

import sys

import numpy as np

from benchmarks.runs.student_bag_whole.measure import development, tail
from labelless.fit import BagAlone, accuracy, encoder_logits, predict_logits, with_bag

WHOLE = 2048


def main(members, seeds):
    for seed in seeds:
        model, pool, dev, labeled = development(members, seed, WHOLE)
        y = pool.labels[labeled]
        pool_ids = {n: [tail(pool.ids[i], n) for i in labeled] for n in (256, 512, WHOLE)}
        dev_ids = {n: [tail(x, n) for x in dev.ids] for n in (256, 512, WHOLE)}
        bags = {n: with_bag(model, pool_ids[n], y, seed + 2) for n in (256, 512, WHOLE)}  # teacher_dev's bag
        bag = {n: predict_logits(BagAlone(bags[n]), dev_ids[n]) for n in bags}
        enc = {n: encoder_logits(model, dev_ids[n]) for n in (256, 512)}
        over = {n: np.mean([len(x) > n for x in dev.ids]) for n in (256, 512)}
        acc = {k: accuracy(v, dev.labels) for k, v in {
            "encoder 512 + bag 512": enc[512] + bag[512], "encoder 512 + bag whole": enc[512] + bag[WHOLE],
            "encoder 256 + bag 256": enc[256] + bag[256], "encoder 256 + bag whole": enc[256] + bag[WHOLE],
            "encoder 256 + bag 512": enc[256] + bag[512]}.items()}
        gains = {n: acc[f"encoder {n} + bag whole"] - acc[f"encoder {n} + bag {n}"] for n in (512, 256)}
        print(f"seed {seed}: dev reviews over 256 / 512 / {WHOLE} tokens {over[256]:.0%} / {over[512]:.0%} / "
              f"{np.mean([len(x) >= WHOLE for x in dev.ids]):.1%}; "
              + "; ".join(f"{k} {v:.4f}" for k, v in acc.items())
              + "; gain full " + f"{gains[512] * 100:+.2f}" + ", quick " + f"{gains[256] * 100:+.2f} points", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], [int(s) for s in sys.argv[2:]])
