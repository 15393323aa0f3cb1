"""Teacher settings compared on a movie-disjoint development set carved from the training split.

Trains one teacher on ``--labels`` random labels of a quick-sized pool and prints its accuracy per
epoch on 2,000 development reviews taken in runs of 100 adjacent training rows (IMDB lists a movie's
reviews together, so the development movies are mostly absent from the pool, as the test split's
are). The test split is never read: this is evidence for choosing defaults, nothing else.

    python benchmarks/teacher_dev.py --labels 8000                          # cold: one fresh model
    python benchmarks/teacher_dev.py --labels 8000 --warm-through 2000,4000,6000
    python benchmarks/teacher_dev.py --ensemble 3 --self-distil --members runs/members   # trains and keeps them
    python benchmarks/teacher_dev.py --ensemble 3 --self-distil --members runs/members --temperature 8  # reuses
"""

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import common  # noqa: E402
import training  # noqa: E402
import transformer  # noqa: E402

DEV_SIZE, DEV_BLOCK, POOL_SIZE = 2000, 100, 12500


def parse_args(argv=None):
    # Defaults are the quick teacher's, read from where training.py gets them, so the two cannot drift.
    quick, teacher = common.PRESETS["quick"], training.parse_args([])
    p = common.make_parser("teacher_dev.py", __doc__)
    p.add_argument("--data", default=None, help="as in training.py (default: $IMDB_DATA, else the hub)")
    p.add_argument("--labels", type=int, default=8000, help="random labels the final model trains on")
    p.add_argument("--warm-through", default="",
                   help="comma-separated label counts to train on first, each round continuing from the last")
    p.add_argument("--epochs", type=int, default=quick["epochs"])
    p.add_argument("--lr", type=float, default=quick["lr"])
    p.add_argument("--batch-size", type=int, default=quick["batch_size"])
    p.add_argument("--dropout", type=float, default=teacher.dropout)
    p.add_argument("--token-dropout", type=float, default=teacher.token_dropout)
    p.add_argument("--label-smoothing", type=float, default=teacher.label_smoothing)
    p.add_argument("--vocab-size", type=int, default=quick["vocab_size"])
    p.add_argument("--max-len", type=int, default=quick["max_len"])
    p.add_argument("--pooling", default=teacher.pooling, choices=list(transformer.POOLINGS))
    p.add_argument("--average-from", type=float, default=teacher.average_from)
    p.add_argument("--embedding-init", default=teacher.embedding_init, choices=["ppmi", "random"])
    p.add_argument("--pretrain-epochs", type=int, default=teacher.pretrain_epochs)
    p.add_argument("--pretrain-lr", type=float, default=teacher.pretrain_lr)
    p.add_argument("--unlabeled", default="pool", choices=["pool", "all"],
                   help="texts the tokenizer, word vectors and pre-training learn from: the pool, or every "
                        "training review outside the development set (as training.py uses pool and validation)")
    p.add_argument("--pretrained", type=Path, default=None,
                   help="folder caching the pre-trained encoder: loaded if it exists, else written "
                        "(with --unlabeled all it does not depend on --seed)")
    p.add_argument("--self-distil", action="store_true",
                   help="then distil the teacher into a fresh model of its own size on the whole pool "
                        "(its soft labels on every pool review, the hard labels where revealed)")
    p.add_argument("--ensemble", type=int, default=1,
                   help="train this many models on the same labels (other seeds) and report their averaged "
                        "probabilities; --self-distil then distils the ensemble (training.py --ensemble)")
    p.add_argument("--ngram-weight", type=float, default=teacher.ngram_weight,
                   help="weight of a TF-IDF n-gram logistic regression on the same labels in the ensemble that "
                        "--self-distil distils (training.py --ngram-weight; C chosen on the development set)")
    common.add_distillation_args(p, of=" of --self-distil")
    p.add_argument("--self-distil-epochs", type=int, default=teacher.self_distil_epochs,
                   help="epochs of --self-distil (default: --epochs)")
    p.add_argument("--self-distil-start", default=teacher.self_distil_start, choices=training.SELF_DISTIL_STARTS,
                   help="--self-distil starts from a fresh model, or from the first teacher's weights")
    p.add_argument("--self-distil-crops", type=int, default=teacher.self_distil_crops,
                   help="random crops of every pool review added to --self-distil's transfer set")
    p.add_argument("--self-distil-token-dropout", type=float, default=teacher.self_distil_token_dropout,
                   help="word dropout on the distilled model's inputs in --self-distil")
    p.add_argument("--teacher-size", default=quick["teacher_size"], choices=list(transformer.SIZES))
    p.add_argument("--members", type=Path, default=None,
                   help="folder keeping the trained models (the ensemble's members, before any distillation): "
                        "each is loaded from it if there, else trained and saved, so that distillation settings "
                        "can be compared on the same models without training them again")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-progress", dest="progress", action="store_false")
    p.set_defaults(device="cpu")
    args = p.parse_args(argv)
    if not 1 <= args.labels <= POOL_SIZE:  # a negative count would slice the pool from its end, silently
        p.error(f"--labels must be between 1 and the pool's {POOL_SIZE} reviews, got {args.labels}")
    if not 0.0 <= args.ngram_weight <= 1.0:
        p.error(f"--ngram-weight must be between 0 and 1, got {args.ngram_weight}")
    training.check_fractions(args, ("token_dropout", "self_distil_token_dropout"), p.error)
    return args


def main(argv=None):
    args = parse_args(argv)
    with common.user_errors("teacher_dev.py"):
        return run(args)


def run(args):
    common.setup(args)
    train, _ = common.load_imdb(args.data)
    labels = np.asarray(train["label"])
    rest, dev_index = common.split_off(np.arange(len(labels)), labels, DEV_SIZE, seed=0, block=DEV_BLOCK)
    pool_index = rest[common.stratified_subset(labels[rest], POOL_SIZE, args.seed)]
    text_index = pool_index if args.unlabeled == "pool" else rest
    tokenizer = common.train_tokenizer(train.select(text_index)["text"], args.vocab_size, args.max_len)
    pool = common.make_split(train, pool_index, tokenizer, args.progress)
    dev = common.make_split(train, dev_index, tokenizer, args.progress)
    texts = pool.ids if args.unlabeled == "pool" else common.make_split(train, rest, tokenizer, args.progress).ids
    vectors = None
    if args.embedding_init == "ppmi":
        vectors = training.word_vectors(texts, len(tokenizer), transformer.SIZES[args.teacher_size]["d_model"])
    pretrained = None
    if args.pretrain_epochs:
        wanted = {k: getattr(args, k) for k in ("pretrain_epochs", "pretrain_lr", "batch_size", "dropout", "unlabeled",
                                                "vocab_size", "max_len", "embedding_init", "teacher_size")}
        wanted["seed"] = args.seed if args.unlabeled == "pool" else 0  # all texts: one encoder for every seed
        pretrained, _ = training.pretrained_encoder(args, tokenizer, texts, vectors, "cpu", args.pretrained, wanted,
                                                    wanted["seed"], reuse=True)

    # One random order of the pool: every warm stage's labels are a prefix of the final ones.
    order = np.random.default_rng(args.seed).permutation(len(pool))
    start = time.perf_counter()
    trained = [member(args, tokenizer, pool, dev, order, args.seed + 10_000 * k, vectors, pretrained)
               for k in range(args.ensemble)]
    models, best = [m for m, _ in trained], max(trained[0][1]["val_acc"])
    probs = training.mean_probs(models, dev.ids) if args.ensemble > 1 or args.ngram_weight > 0 else None
    if args.ensemble > 1:
        best = training.accuracy(probs, dev.labels)
        print(f"ensemble of {args.ensemble}: dev accuracy {best:.4f}", flush=True)
    ngram = None
    if args.ngram_weight > 0:
        ngram, record = training.ngram_member(pool, order[:args.labels], dev, len(tokenizer), args.progress)
        best = training.accuracy(training.with_ngram(probs, dev.ids, ngram, args.ngram_weight), dev.labels)
        per_c = " ".join(f"C={c:g} {a:.4f}" for c, a in record["val_acc_per_C"].items())
        print(f"n-gram member: dev accuracy {per_c} ({record['n_features']} features, {record['seconds']:.0f}s); "
              f"with weight {args.ngram_weight:g} in the ensemble: dev accuracy {best:.4f}", flush=True)
    if args.self_distil:
        if args.ensemble == 1 and ngram is None:
            print(f"teacher: dev accuracy {best:.4f}", flush=True)
        model, fit = training.self_distil(models, tokenizer, pool, order[:args.labels], dev, args, args.seed + 1,
                                          vectors, pretrained, ngram=ngram)
        print(f"self-distilled: dev accuracy per epoch {' '.join(f'{a:.4f}' for a in fit['val_acc'])}", flush=True)
        best = max(fit["val_acc"])
    settings = {k: v for k, v in vars(args).items() if k not in ("data", "progress", "threads", "members")}
    print(f"RESULT dev_acc={best:.4f} seconds={time.perf_counter() - start:.0f} {settings}")
    return {"dev_acc": best}


# What a member does not depend on: the distillation after it, the size of the ensemble, where things live.
NOT_MEMBER_SETTINGS = ("self_distil", "ensemble", "ngram_weight", "temperature", "alpha", "self_distil_epochs",
                       "self_distil_start", "self_distil_crops", "self_distil_token_dropout", "data", "progress",
                       "threads", "members", "pretrained")


def member(args, tokenizer, pool, dev, order, seed, vectors, pretrained):
    """``train_teacher``'s ``(model, fit history)``, loaded from ``--members`` when it holds this model."""
    if args.members is None:
        return train_teacher(args, tokenizer, pool, dev, order, seed, vectors, pretrained)
    folder = args.members / f"seed{args.seed}_member{seed}"
    wanted = {k: v for k, v in vars(args).items() if k not in NOT_MEMBER_SETTINGS} | {"member_seed": seed}
    if not folder.exists():
        model, fit = train_teacher(args, tokenizer, pool, dev, order, seed, vectors, pretrained)
        common.save_checkpoint(model, tokenizer, folder, {"settings": wanted, "val_acc": fit["val_acc"]})
        return model, fit
    model, saved_tokenizer, info = common.load_checkpoint(folder, "benchmarks/teacher_dev.py --members", what="member")
    if info.get("settings") != wanted or saved_tokenizer.get_vocab() != tokenizer.get_vocab():
        raise common.UserError(f"the member at {folder} was trained with other settings than this run's: "
                               "pass another --members folder, or delete that one")
    print(f"{args.labels} labels: dev accuracy per epoch {' '.join(f'{a:.4f}' for a in info['val_acc'])} "
          f"(loaded from {folder})", flush=True)
    return model, {"val_acc": info["val_acc"]}


def train_teacher(args, tokenizer, pool, dev, order, seed, vectors, pretrained):
    """One teacher trained through the warm stages to ``--labels``; returns ``(model, last fit history)``."""
    model = training.new_model(args, tokenizer, seed, vectors, pretrained)
    stages = [int(n) for n in args.warm_through.split(",") if n.strip()] + [args.labels]
    for n in stages:
        fit = training.train_round(model, pool, order[:n], dev, args, seed + n, desc=f"{n} labels")
        print(f"{n} labels: dev accuracy per epoch {' '.join(f'{a:.4f}' for a in fit['val_acc'])}", flush=True)
    return model, fit


if __name__ == "__main__":
    main()
