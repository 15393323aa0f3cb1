"""Student settings compared on teacher_dev's movie-disjoint development set (the training split only).

One teacher at ``quick``'s settings is trained on ``--labels`` random labels of a 12,500-review pool and given a
bag of n-grams fitted apart on the same labels (``with_bag``), and one student per ``--arms`` entry is distilled
from it (``quick``'s settings) on the pool and as many of IMDB's unlabeled reviews, at the same seed. Each
prints its accuracy per epoch on the 2,000 development reviews, held out in runs of 100 adjacent rows as in
``teacher_dev`` (IMDB lists a movie's reviews together). 500 validation reviews, which is all ``origi.py`` has on ``quick``, give an
accuracy a standard error of about 1.5 points; 2,000 give 0.8. The test split is never read.

    python -m benchmarks.student_dev --arms hybrid,copy_bag --seed 1
"""

import time

import numpy as np

import common
import training
import transformer
from benchmarks.teacher_dev import DEV_BLOCK, DEV_SIZE, POOL_SIZE  # the same development set
from labelless.active import train_round
from labelless.data import encode_rows, hold_out, stratified_subset, unlabeled_subset
from labelless.distill import ALPHA, TEMPERATURE, DistillSettings, distil
from labelless.fit import BagAlone, ModelSettings, TrainSettings, beside, evaluate, new_model, predict_logits, with_bag
from labelless.sources import load_imdb, load_unlabeled
from labelless.text import train_tokenizer
from labelless.vectors import word_vectors

PROG = "student_dev.py"
STUDENT_DROPOUT = 0.1  # origi.py's default
# The students compared. hybrid: distilled from the teacher's logits, its bag's included. copy_bag: distilled from
# the teacher's encoder's logits alone, then the teacher's bag copied beside it.
ARMS = ("hybrid", "copy_bag")


def parse_args(argv=None):
    p = common.make_parser(PROG, __doc__)
    p.add_argument("--data", default=None, help="as in training.py (default: $IMDB_DATA, else the hub)")
    p.add_argument("--labels", type=int, default=8000, help="random labels the teacher and its bag learn from")
    p.add_argument("--arms", default="hybrid,copy_bag", help=f"comma-separated students, of: {', '.join(ARMS)}")
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

    # The teacher, as teacher_dev trains one, and its bag of n-grams fitted apart on the same labels.
    pad = tokenizer.pad_token_id
    vectors = word_vectors(pool.ids, len(tokenizer), transformer.SIZES[quick["teacher_size"]]["d_model"])
    teacher = new_model(ModelSettings(quick["teacher_size"], len(tokenizer), quick["max_len"], pad, training.DROPOUT),
                        args.seed, vectors)
    fit = train_round(teacher, pool, labeled, dev, TrainSettings(quick["epochs"], quick["lr"], quick["batch_size"],
                                                                 progress=args.progress),
                      args.seed + args.labels, desc="teacher")
    hybrid = with_bag(teacher, [pool.ids[i] for i in labeled], pool.labels[labeled], args.seed + 2)
    transfer_ids = pool.ids + unlabeled.ids
    revealed = np.full(len(transfer_ids), -1)
    revealed[labeled] = pool.labels[labeled]
    soft = {"hybrid": predict_logits(hybrid, transfer_ids), "copy_bag": predict_logits(teacher, transfer_ids)}
    print(f"teacher: dev accuracy per epoch {' '.join(f'{a:.4f}' for a in fit['val_acc'])}; with its bag "
          f"{evaluate(hybrid, dev.ids, dev.labels):.4f}; the bag alone "
          f"{evaluate(BagAlone(hybrid), dev.ids, dev.labels):.4f}", flush=True)

    # The students, one per arm, from the same seed.
    results = {}
    for arm in args.arms:
        student = new_model(ModelSettings(quick["student_size"], len(tokenizer), quick["max_len"], pad,
                                          STUDENT_DROPOUT), args.seed)
        history = distil(student, transfer_ids, soft[arm], revealed, DistillSettings(TEMPERATURE, ALPHA),
                         TrainSettings(quick["distill_epochs"], quick["distill_lr"], quick["batch_size"],
                                       progress=args.progress),
                         args.seed, val=(dev.ids, dev.labels), desc=arm)
        results[arm] = max(history["val_acc"])
        if arm == "copy_bag":  # the best epoch's encoder, the teacher's bag beside it
            results[arm] = evaluate(beside(student, hybrid.bag), dev.ids, dev.labels)
        print(f"RESULT arm={arm} dev_acc={results[arm]:.4f} per_epoch={','.join(f'{a:.4f}' for a in history['val_acc'])} "
              f"seconds={history['seconds']:.0f} seed={args.seed} labels={args.labels}", flush=True)
    print(f"# {time.perf_counter() - start:.0f} s in all")
    return results


if __name__ == "__main__":
    main()
