"""Student settings compared on teacher_dev's movie-disjoint development set (the training split only).

One teacher at ``quick``'s settings is trained on ``--labels`` random labels of a 12,500-review pool, the bar
is fitted on the same labels, and one student per ``--arms`` entry is distilled from them (``quick``'s
settings) on the pool and as many of IMDB's unlabeled reviews, at the same seed. Each prints its accuracy per
epoch on the 2,000 development reviews, held out in runs of 100 adjacent rows as in ``teacher_dev`` (IMDB lists
a movie's reviews together). 500 validation reviews, which is all ``origi.py`` has on ``quick``, give an
accuracy a standard error of about 1.5 points; 2,000 give 0.8. The test split is never read.

    python -m benchmarks.student_dev --arms today,bag_bar,bag --seed 1
"""

import time

import numpy as np

import common
import training
import transformer
from benchmarks.teacher_dev import DEV_BLOCK, DEV_SIZE, POOL_SIZE  # the same development set
from labelless.active import train_round
from labelless.bar import fit_bar
from labelless.data import encode_rows, hold_out, stratified_subset, unlabeled_subset
from labelless.distill import ALPHA, TEMPERATURE, DistillSettings, distil, mixed_logits
from labelless.fit import ModelSettings, TrainSettings, accuracy, new_model, predict_logits
from labelless.sources import load_imdb, load_unlabeled
from labelless.text import train_tokenizer
from labelless.vectors import word_vectors

PROG = "student_dev.py"
STUDENT_DROPOUT = 0.1  # origi.py's default
# The students compared: the buckets of their bag of n-grams (0: none) and the bar's weight in their soft labels.
ARMS = {
    "today": dict(ngram_bag_buckets=0, bar_weight=0.0),
    "bag_bar": dict(ngram_bag_buckets=131072, bar_weight=0.5),
    "bag": dict(ngram_bag_buckets=131072, bar_weight=0.0),
    "bar": dict(ngram_bag_buckets=0, bar_weight=0.5),
}


def parse_args(argv=None):
    p = common.make_parser(PROG, __doc__)
    p.add_argument("--data", default=None, help="as in training.py (default: $IMDB_DATA, else the hub)")
    p.add_argument("--labels", type=int, default=8000, help="random labels the teacher and the bar learn from")
    p.add_argument("--arms", default="today,bag_bar", help=f"comma-separated students, of: {', '.join(ARMS)}")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-progress", dest="progress", action="store_false")
    p.set_defaults(device="cpu")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    with common.user_errors(PROG):
        common.check_range(args, "labels", 1, POOL_SIZE)
        args.arms = args.arms.split(",")
        unknown = [a for a in args.arms if a not in ARMS]
        if unknown or not args.arms:
            raise common.UserError(f"--arms takes names of {', '.join(ARMS)}, comma-separated; got {unknown or '[]'}")
        return run(args)


def run(args):
    common.setup(args)
    quick = common.PRESETS["quick"]
    start = time.perf_counter()

    # The data: teacher_dev's development set and pool, and as many unlabeled reviews as the pool.
    train, _ = load_imdb(args.data)
    labels = np.asarray(train["label"])
    rest, dev_index = hold_out(np.arange(len(labels)), labels, DEV_SIZE, seed=0, block=DEV_BLOCK)
    pool_index = rest[stratified_subset(labels[rest], POOL_SIZE, args.seed)]
    tokenizer = train_tokenizer(train.select(pool_index)["text"], quick["vocab_size"], quick["max_len"])
    pool = encode_rows(train, pool_index, tokenizer, args.progress)
    dev = encode_rows(train, dev_index, tokenizer, args.progress)
    unsup = load_unlabeled(args.data)
    unsup_rows = unlabeled_subset(len(unsup), POOL_SIZE, args.seed)
    unlabeled = encode_rows(unsup, unsup_rows, tokenizer, args.progress)
    labeled = np.random.default_rng(args.seed).permutation(len(pool))[:args.labels]

    # The teacher, as teacher_dev trains one, and the bar on the same labels (C chosen on the development set).
    pad = tokenizer.pad_token_id
    vectors = word_vectors(pool.ids, len(tokenizer), transformer.SIZES[quick["teacher_size"]]["d_model"])
    teacher = new_model(ModelSettings(quick["teacher_size"], len(tokenizer), quick["max_len"], pad, training.DROPOUT),
                        args.seed, vectors)
    fit = train_round(teacher, pool, labeled, dev, TrainSettings(quick["epochs"], quick["lr"], quick["batch_size"],
                                                                 progress=args.progress),
                      args.seed + args.labels, desc="teacher")
    texts = list(train.select(pool_index)["text"])
    bar = fit_bar([texts[i] for i in labeled], pool.labels[labeled], train.select(dev_index)["text"], dev.labels)
    transfer_ids = pool.ids + unlabeled.ids
    transfer_texts = texts + list(unsup.select(unsup_rows)["text"])
    revealed = np.full(len(transfer_ids), -1)
    revealed[labeled] = pool.labels[labeled]
    teacher_logits = predict_logits(teacher, transfer_ids)
    bar_logits = bar.logits(transfer_texts)
    teacher_dev = predict_logits(teacher, dev.ids)
    bar_dev = bar.logits(train.select(dev_index)["text"])
    print(f"teacher: dev accuracy per epoch {' '.join(f'{a:.4f}' for a in fit['val_acc'])}; the bar "
          f"{accuracy(bar_dev, dev.labels):.4f} (C={bar.info['C']:g}); their mixture at 1/2 "
          f"{accuracy(mixed_logits(teacher_dev, bar_dev, 0.5), dev.labels):.4f}", flush=True)

    # The students, one per arm, from the same seed.
    results = {}
    for arm in args.arms:
        settings = ARMS[arm]
        soft = (mixed_logits(teacher_logits, bar_logits, settings["bar_weight"]) if settings["bar_weight"]
                else teacher_logits)
        student = new_model(ModelSettings(quick["student_size"], len(tokenizer), quick["max_len"], pad,
                                          STUDENT_DROPOUT, ngram_bag_buckets=settings["ngram_bag_buckets"]), args.seed)
        history = distil(student, transfer_ids, soft, revealed, DistillSettings(TEMPERATURE, ALPHA),
                         TrainSettings(quick["distill_epochs"], quick["distill_lr"], quick["batch_size"],
                                       progress=args.progress),
                         args.seed, val=(dev.ids, dev.labels), desc=arm)
        results[arm] = max(history["val_acc"])
        print(f"RESULT arm={arm} dev_acc={results[arm]:.4f} per_epoch={','.join(f'{a:.4f}' for a in history['val_acc'])} "
              f"seconds={history['seconds']:.0f} seed={args.seed} labels={args.labels} {settings}", flush=True)
    print(f"# {time.perf_counter() - start:.0f} s in all")
    return results


if __name__ == "__main__":
    main()
