"""Teacher settings compared on a movie-disjoint development set carved from the training split.

Trains a teacher (with ``--ensemble K``: K teachers, distilled into one on the pool) on ``--labels``
random labels of a quick-sized pool and prints its accuracy per epoch on 2,000 development reviews
taken in runs of 100 adjacent training rows (IMDB lists a movie's reviews together, so the development
movies are mostly absent from the pool, as the test split's are). The test split is never read: this
is evidence for choosing defaults, nothing else. Takes ``training.py``'s model and training flags,
with the ``quick`` preset's values as defaults.

    python -m benchmarks.teacher_dev --labels 8000 --max-len 512
    python -m benchmarks.teacher_dev --ensemble 3 --unlabeled transfer   # + 12,500 unlabeled reviews to distil on
    python -m benchmarks.teacher_dev --ensemble 3 --members runs/members   # trains and keeps the members
    python -m benchmarks.teacher_dev --ensemble 3 --members runs/members   # reuses them
"""

import dataclasses
import time
from pathlib import Path

import numpy as np

import common
import training
import transformer
from labelless import UserError, store
from labelless.active import train_round
from labelless.data import encode_rows, hold_out, stratified_subset, unlabeled_subset
from labelless.distill import distil_ensemble
from labelless.fit import BAG_TRAIN, BagAlone, accuracy, evaluate, mean_probs, new_model, with_bag
from labelless.sources import load_imdb, load_unlabeled
from labelless.text import train_tokenizer
from labelless.vectors import word_vectors

PROG = "teacher_dev.py"
DEV_SIZE, DEV_BLOCK, POOL_SIZE = 2000, 100, 12500
# What a member depends on, and so what a cached member must have been trained with.
MEMBER_SETTINGS = ("labels", "epochs", "lr", "batch_size", "dropout", "vocab_size", "max_len", "teacher_size", "seed",
                   "ngram_buckets")


def parse_args(argv=None):
    p = common.make_parser(PROG, __doc__)
    p.add_argument("--data", default=None, help="as in training.py (default: $IMDB_DATA, else the hub)")
    p.add_argument("--labels", type=int, default=8000, help="random labels the teachers train on")
    training.add_teacher_args(p)
    p.add_argument("--teacher-size", choices=list(transformer.SIZES), help="model size of the teacher")
    p.add_argument("--dropout", type=float, default=training.DROPOUT)
    p.add_argument("--ngram-buckets", type=int, default=0,
                   help="hashed bigram and trigram embeddings added at the teacher's input, this many buckets (0: none)")
    p.add_argument("--bag", action="store_true",
                   help="also print the teacher with a bag of n-grams fitted on its labels by itself, logits added")
    p.add_argument("--bag-epochs", type=int, default=BAG_TRAIN.epochs, help="epochs of the bag's fit")
    p.add_argument("--unlabeled", choices=["none", "transfer"], default="none",
                   help="transfer: a seeded subset of IMDB's unlabeled reviews, as many as the pool, joins the "
                        "ensemble's transfer set")
    p.add_argument("--members", type=Path, default=None,
                   help="folder keeping the trained teachers (the ensemble's members, before any distillation): "
                        "each is loaded from it if there, else trained and saved, so that the distillation can be "
                        "run again on the same teachers")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-progress", dest="progress", action="store_false")
    quick = common.PRESETS["quick"]
    p.set_defaults(device="cpu", **{k: quick[k] for k in ("teacher_size", "vocab_size", "max_len", "epochs", "lr",
                                                          "batch_size", "ensemble")})
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    with common.user_errors(PROG):
        common.check_range(args, "labels", 1, POOL_SIZE)  # a negative count would slice the pool from its end
        common.check_range(args, "ngram_buckets", 0)
        common.check_range(args, "bag_epochs", 1)
        training.check_teacher_args(args)
        if args.members is not None:
            store.check_writable(args.members, "--members", folder=True)
        return run(args)


def run(args):
    common.setup(args)
    train, _ = load_imdb(args.data)
    labels = np.asarray(train["label"])
    rest, dev_index = hold_out(np.arange(len(labels)), labels, DEV_SIZE, seed=0, block=DEV_BLOCK)
    pool_index = rest[stratified_subset(labels[rest], POOL_SIZE, args.seed)]
    tokenizer = train_tokenizer(train.select(pool_index)["text"], args.vocab_size, args.max_len)
    pool = encode_rows(train, pool_index, tokenizer, args.progress)
    dev = encode_rows(train, dev_index, tokenizer, args.progress)
    vectors = word_vectors(pool.ids, len(tokenizer), transformer.SIZES[args.teacher_size]["d_model"])
    unlabeled = None
    if args.unlabeled == "transfer":
        unsup = load_unlabeled(args.data)
        unlabeled = encode_rows(unsup, unlabeled_subset(len(unsup), POOL_SIZE, args.seed), tokenizer, args.progress)
    labeled = np.random.default_rng(args.seed).permutation(len(pool))[:args.labels]
    model_settings, train_settings = training.model_settings(args, tokenizer), training.train_settings(args)

    start = time.perf_counter()
    trained = [member(args, tokenizer, pool, dev, labeled, args.seed + 10_000 * k, vectors)
               for k in range(args.ensemble)]
    models, best = [m for m, _ in trained], max(trained[0][1])
    teacher = models[0]
    if args.ensemble > 1:
        ensemble = accuracy(mean_probs(models, dev.ids), dev.labels)
        print(f"ensemble of {args.ensemble}: dev accuracy {ensemble:.4f}", flush=True)
        teacher, fit = distil_ensemble(models, pool, labeled, dev, model_settings, train_settings, args.seed + 1,
                                       vectors, unlabeled=unlabeled)
        print(f"distilled: dev accuracy per epoch {' '.join(f'{a:.4f}' for a in fit['val_acc'])}", flush=True)
        best = max(fit["val_acc"])
    out = {"dev_acc": best}
    if args.bag:
        bag_start = time.perf_counter()
        teacher = with_bag(teacher, [pool.ids[i] for i in labeled], pool.labels[labeled], args.seed + 2,
                           train=dataclasses.replace(BAG_TRAIN, epochs=args.bag_epochs))
        out["bag_dev_acc"] = evaluate(teacher, dev.ids, dev.labels)
        out["bag_alone_dev_acc"] = evaluate(BagAlone(teacher), dev.ids, dev.labels)
        print(f"the encoder alone: dev accuracy {best:.4f}; with the bag of n-grams "
              f"({time.perf_counter() - bag_start:.0f} s): dev accuracy {out['bag_dev_acc']:.4f}; "
              f"the bag alone {out['bag_alone_dev_acc']:.4f}", flush=True)
    settings = {k: v for k, v in vars(args).items() if k not in ("data", "progress", "threads", "members", "device")}
    print(f"RESULT {' '.join(f'{k}={v:.4f}' for k, v in out.items())} seconds={time.perf_counter() - start:.0f} "
          f"{settings}")
    return out


def member(args, tokenizer, pool, dev, labeled, seed, vectors):
    """A teacher trained on the ``labeled`` pool positions and its dev accuracy per epoch; loaded from
    ``--members`` when that folder holds it."""
    folder = args.members / f"seed{args.seed}_member{seed}" if args.members else None
    wanted = {k: getattr(args, k) for k in MEMBER_SETTINGS} | {"member_seed": seed}
    if folder is not None and folder.exists():
        model, saved_tokenizer, info = store.load_checkpoint(folder, "python -m benchmarks.teacher_dev --members",
                                                             what="member")
        if info.get("settings") != wanted or saved_tokenizer.get_vocab() != tokenizer.get_vocab():
            raise UserError(f"the member at {folder} was trained with other settings than this run's: "
                            "pass another --members folder, or delete that one")
        print(f"{args.labels} labels: dev accuracy per epoch {' '.join(f'{a:.4f}' for a in info['val_acc'])} "
              f"(loaded from {folder})", flush=True)
        return model, info["val_acc"]
    model = new_model(training.model_settings(args, tokenizer), seed, vectors)
    fit = train_round(model, pool, labeled, dev, training.train_settings(args), seed + args.labels,
                      desc=f"{args.labels} labels")
    print(f"{args.labels} labels: dev accuracy per epoch {' '.join(f'{a:.4f}' for a in fit['val_acc'])}", flush=True)
    if folder is not None:
        store.save_checkpoint(model, tokenizer, folder, {"settings": wanted, "val_acc": fit["val_acc"]})
    return model, fit["val_acc"]


if __name__ == "__main__":
    main()
