"""Train the teacher with pool-based uncertainty active learning (Settles 2009), on IMDB or your own texts.

The training split is an unlabeled pool: its labels stay hidden and are revealed only for the reviews
the strategy asks for. The dataset plays the annotator (``--oracle simulated``), or a person does
(``--oracle files``: each round's questions are written to ``<out-dir>/queries/`` as a CSV and Label
Studio tasks, and ``--resume --answers FILE`` goes on). Starting from a random seed set (class-balanced
in IMDB's simulation), each round trains a fresh teacher on all labeled reviews, scores the unlabeled
pool, and asks for the labels of the ``--query-size`` most uncertain reviews, until ``--label-budget``
labels are used (or, with ``--stop-when-stable``, its predictions settle). The
validation set (whole runs of adjacent training rows, so mostly other movies than the pool's) counts
against that budget; the test split is used only for the final report. With ``--ensemble K``, K - 1
more teachers are then trained on the final labels and all K distilled into one on the whole pool.
Last, a bag of n-grams fitted by itself on the same labels joins the encoder, their logits added.
IMDB's unlabeled reviews (``--unlabeled imdb``) add texts, never labels: they join the ensemble's
transfer set (and ``origi.py``'s); they are never queried or evaluated.

Then the bar a user would try first, a TF-IDF logistic regression, is fitted on the same revealed labels.
Writes ``<out-dir>/teacher/`` (model, its ONNX copies, tokenizer, ``al_history.json``), ``<out-dir>/bar/``,
``<out-dir>/al_curve.png``, and one ``results.txt`` line per run and one for the bar.

    python training.py --preset smoke --data ../shared/data/imdb
    python training.py --compare-random --seeds 1,2,3          # uncertainty vs random, 3 seeds
    python training.py --data news.csv --label-column topic --oracle files   # you label (README)
"""

import shlex
import sys
import time
from pathlib import Path

import numpy as np

import common
import transformer
from labelless import UserError, active, distributed, oracle, resume, store
from labelless.active import ALData, ALSettings
from labelless.bar import fit_bar
from labelless.curves import curve_summary, label_savings, plot_curves
from labelless.data import DataSettings, Reviews, encode_rows, partition, unlabeled_subset
from labelless.fit import ModelSettings, TrainSettings, accuracy, evaluate, with_bag
from labelless.runtime import say
from labelless.sources import data_source, load_corpus, load_unlabeled
from labelless.strategies import STRATEGIES
from labelless.text import train_tokenizer
from labelless.vectors import word_vectors

PROG = "training.py"

DROPOUT = 0.2  # the teacher's, chosen on the development set (benchmarks/JOURNAL.md)


def add_teacher_args(p):
    """The teacher's training flags (``benchmarks/teacher_dev.py`` takes them too, and ``--teacher-size``
    and ``--dropout``, which ``training.py`` takes from the preset and ``DROPOUT``)."""
    p.add_argument("--vocab-size", type=int)
    p.add_argument("--max-len", type=int, help="tokens kept per review (the end of long reviews)")
    p.add_argument("--epochs", type=int, help="epochs per round")
    p.add_argument("--lr", type=float, help="peak learning rate (one-cycle AdamW)")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--ensemble", type=int,
                   help="after the last round, train ENSEMBLE-1 more teachers afresh on the same labels and distil "
                        "the mean probabilities of all of them into one teacher on the whole pool (1: none)")
    return p


def parse_args(argv=None):
    p = common.make_parser(PROG, __doc__)
    common.add_common_args(p)
    p.add_argument("--strategy", default="margin", choices=list(STRATEGIES), help="query strategy")
    p.add_argument("--initial-labels", type=int, help="size of the random class-balanced seed set")
    p.add_argument("--query-size", type=int, help="labels revealed per round")
    p.add_argument("--label-budget", type=int, help="labels used in all, validation labels included")
    p.add_argument("--pool-sample", type=int, help="score a random subset of this many unlabeled reviews "
                   "per round (0: the whole pool)")
    p.add_argument("--val-size", type=int, help="validation reviews carved from the training split")
    p.add_argument("--unlabeled", choices=["imdb", "none"], default="none",
                   help="imdb: IMDB's unlabeled reviews (a seeded subset on the small presets) join the transfer set "
                        "of the ensemble step (--ensemble > 1); none: the training split alone")
    p.set_defaults(unlabeled_samples=None, teacher_size=None, dropout=DROPOUT)  # None: set by the preset
    add_teacher_args(p)
    p.add_argument("--stop-when-stable", type=float, metavar="SHARE",
                   help="end before the budget once fewer than this share of the predictions on a fixed sample of the "
                        "pool changed since the last round (each round logs that share as changed=)")
    p.add_argument("--compare-random", action="store_true", help="also run the random baseline")
    p.add_argument("--seeds", default=None, help="comma-separated seeds of the active learning runs "
                   "(default: --seed); the data split always uses --seed")
    p.add_argument("--eval-test-each-round", action="store_true",
                   help="report test accuracy per round (reported only, never used to choose anything)")
    p.add_argument("--oracle", choices=["simulated", "files"], default="simulated",
                   help="who labels: simulated, the data's labels; files, a person: each round's queries are written "
                        "to OUT_DIR/queries/ and the run stops until --resume --answers brings the labels")
    p.add_argument("--classes", help="the class names, comma-separated, when the data has no labels to name them "
                   "(e.g. neg,pos); labels may then be these names or their ids 0, 1, ...")
    p.add_argument("--answers", type=Path, help="with --resume and --oracle files: the queries CSV filled in, or a "
                   "Label Studio export of its tasks")
    p.add_argument("--resume", action="store_true", help="continue interrupted runs from their last round")
    args = p.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # to print the command that goes on after answers
    return args


def check_teacher_args(args):
    for name in ("epochs", "batch_size", "max_len", "vocab_size", "ensemble"):
        common.check_range(args, name, 1)
    common.check_range(args, "lr", 0, low_open=True)
    common.check_range(args, "dropout", 0, 1, high_open=True)


def check_args(args, pool_size, n_classes):
    """Every option error, before anything is written."""
    ask = args.label_budget - args.val_size
    common.check_range(args, "query_size", 1)
    if args.initial_labels < n_classes:
        raise UserError(f"--initial-labels must be at least {n_classes} (one per class), got {args.initial_labels}")
    if args.initial_labels > ask:
        raise UserError(f"--initial-labels {args.initial_labels} plus the {args.val_size} validation labels exceed "
                        f"--label-budget {args.label_budget}: raise the budget or lower --initial-labels")
    if args.initial_labels > pool_size:
        raise UserError(f"--initial-labels {args.initial_labels} exceeds the pool of {pool_size} reviews")
    if ask > pool_size:
        raise UserError(f"--label-budget {args.label_budget} exceeds the {pool_size} pool + {args.val_size} "
                        "validation reviews: lower it or use more training data")
    common.check_range(args, "pool_sample", 0)
    common.check_range(args, "stop_when_stable", 0, 1, low_open=True)
    check_teacher_args(args)


def parse_seeds(args):
    seeds = common.parse_ints(args.seeds or args.seed, "--seeds", "1,2,3")
    if not seeds or len(set(seeds)) != len(seeds) or not all(0 <= s <= common.MAX_SEED for s in seeds):
        raise UserError(f"--seeds needs distinct integers from 0 to {common.MAX_SEED}, e.g. 1,2,3; got {args.seeds!r}")
    return seeds


def settings(args):
    """What defines a run: a resumed run must have the same."""
    keys = ("preset", "strategy", "initial_labels", "query_size", "label_budget", "pool_sample", "ensemble",
            "epochs", "lr", "batch_size", "dropout", "val_size", "vocab_size", "max_len", "teacher_size",
            "max_train_samples", "max_test_samples", "seed", "unlabeled", "text_column", "label_column", "classes",
            "oracle", "stop_when_stable")
    return {k: getattr(args, k) for k in keys} | {
        "data": data_source(args.data), "unlabeled_samples": args.unlabeled_samples if args.unlabeled == "imdb" else None}


def model_settings(args, tokenizer, label_names=ModelSettings.label_names):
    return ModelSettings(args.teacher_size, len(tokenizer), args.max_len, tokenizer.pad_token_id, args.dropout,
                         getattr(args, "ngram_buckets", 0), tuple(label_names))


def train_settings(args):
    return TrainSettings(args.epochs, args.lr, args.batch_size, progress=args.progress)


def al_settings(args, strategy, benchmark_draws):
    return ALSettings(strategy, args.initial_labels, args.query_size, args.label_budget - args.val_size,
                      pool_sample=args.pool_sample, ensemble=args.ensemble,
                      eval_test_each_round=args.eval_test_each_round, balanced_start=benchmark_draws,
                      stop_when_stable=args.stop_when_stable)


def benchmark_draws(args, corpus):
    """Whether the seed set is class-balanced and the validation set stratified, which reads labels no one
    has given yet: only the simulated annotator on IMDB's layouts, as the benchmark always ran; a
    person's run, and the simulation of one on your own files, draw both at random."""
    return corpus.benchmark and args.oracle == "simulated"


def unlabeled_rows(args, seed):
    """``(unlabeled split, rows used)`` for ``--unlabeled imdb`` with an ensemble step to distil on them,
    else ``(None, [])``."""
    if args.unlabeled == "none" or args.ensemble == 1:
        return None, np.zeros(0, dtype=np.int64)
    unsup = load_unlabeled(args.data)
    return unsup, unlabeled_subset(len(unsup), args.unlabeled_samples, seed)


def prepare(args, seeds, corpus, device, w):
    """The run's ``ALData``: the partition, a tokenizer trained on its training texts, the encoded
    splits and unlabeled reviews, and word vectors from the training texts (texts, not labels). Every
    rank of a multi-process run prepares the same (checked for the tokenizer)."""
    train, test_split = corpus.train, corpus.test
    labels = np.asarray(train["label"])
    if args.oracle == "simulated" and (labels < 0).any():
        raise UserError(f"{(labels < 0).sum()} training rows of {data_source(args.data)} have no label: the simulated "
                        "annotator answers from the labels, so every training row needs one: label or drop those rows, "
                        "name the labels' column with --label-column, or label them yourself with --oracle files")
    part = partition(labels, None if test_split is None else test_split["label"],
                     DataSettings(args.max_train_samples, args.max_test_samples, args.val_size, args.seed,
                                  stratify=benchmark_draws(args, corpus)))
    check_args(args, len(part.pool), len(corpus.label_names))
    unsup, unsup_rows = unlabeled_rows(args, args.seed)
    start = time.perf_counter()
    # The unlabeled reviews stay out of the tokenizer and the word vectors: there they lost on the
    # development set (benchmarks/JOURNAL.md, "IMDB's unlabeled reviews").
    tokenizer = (args.resume and resume.saved_tokenizer(args.out_dir, args.strategy, seeds)) or train_tokenizer(
        train.select(part.texts)["text"], args.vocab_size, args.max_len)
    distributed.check_same(tokenizer.backend_tokenizer.to_str(), "the tokenizer", w)
    pool = encode_rows(train, part.pool, tokenizer, args.progress)
    val = encode_rows(train, part.val, tokenizer, args.progress)
    test = (encode_rows(test_split, part.test, tokenizer, args.progress) if test_split is not None
            else Reviews(part.test, [], part.test))
    unlabeled = encode_rows(unsup, unsup_rows, tokenizer, args.progress) if unsup else None
    cut = np.mean([len(x) == args.max_len for x in pool.ids])  # longer reviews were cut to max_len
    say(f"{PROG}: pool {len(pool)}, validation {len(val)}, test {len(test)}, unlabeled {len(unsup_rows)}, "
        f"tokenizer + encoding {time.perf_counter() - start:.1f}s, device {device}; {cut:.0%} of pool reviews "
        f"cut to their last {args.max_len} tokens")
    start = time.perf_counter()
    vectors = word_vectors(pool.ids + val.ids, len(tokenizer), transformer.SIZES[args.teacher_size]["d_model"])
    say(f"{PROG}: word vectors from the training texts {time.perf_counter() - start:.1f}s")
    return ALData(pool, val, test, tokenizer, vectors, device, unlabeled, w)


def run_one(args, strategy, seed, data, corpus):
    """One active-learning run, resumed if it was interrupted. Returns ``(teacher, run record, results
    line)``; the line is kept in the run's saved state, so that a resumed run reports it once. A run
    that waits for a person's answers returns ``(None, None, path of the queries)``."""
    folder = resume.state_dir(args.out_dir, strategy, seed)
    run_settings = settings(args) | {"strategy": strategy, "run_seed": seed}
    model, state = None, None
    if args.resume:
        defaults = vars(common.apply_preset(parse_args(["--preset", args.preset])))
        model, state = resume.resumed_state(folder, run_settings, defaults, data.tokenizer, data.device, PROG)
    al = al_settings(args, strategy, benchmark_draws(args, corpus))
    if state is None:
        state = active.initialize(al, seed, data.pool, run_settings)
    active.restore_labels(state, data)
    if args.answers:
        oracle.answer(args.answers, state, data, corpus)
    model, state = active.learn(al, seed, data, model_settings(args, data.tokenizer, corpus.label_names),
                                train_settings(args), folder, state, model)
    if state.get("pending"):
        return None, None, ask(args, state, data, corpus)
    if "result" not in state:
        start = time.perf_counter()
        final = state.get("ensemble_step", state["rounds"][-1])
        # The bag of n-grams beside the encoder; the encoder alone is its ablation, measured in the same run.
        encoder, labeled = model, state["labeled"]
        model = with_bag(encoder, [data.pool.ids[i] for i in labeled], data.pool.labels[labeled], seed, w=data.world)
        test_accs = {prefix + "test_acc": evaluate(m, data.test.ids, data.test.labels, w=data.world)
                     for prefix, m in (("", model), ("encoder_", encoder)) if len(data.test)}
        state["result"] = dict(
            model="teacher", strategy=strategy, labels_used=final["labels_used"], pool_size=len(data.pool),
            rounds=len(state["rounds"]) - 1, **test_accs, encoder_val_acc=final["val_acc"],
            val_acc=evaluate(model, data.val.ids, data.val.labels, w=data.world), params=model.num_params(),
            train_seconds=state.get("seconds", 0.0) + time.perf_counter() - start, seed=seed, preset=args.preset,
            retrain="cold", self_distilled="ensemble_step" in state,
            ensemble=args.ensemble if "ensemble_step" in state else 1, unlabeled=n_unlabeled(data),
            run_id=state["run_id"])
        if data.world.main:
            store.save_checkpoint(model, data.tokenizer, folder, state)
    result = state["result"]
    record = {"strategy": strategy, "seed": seed, "rounds": state["rounds"], "ensemble_step": state.get("ensemble_step"),
              "labeled_index": data.pool.index[state["labeled"]].tolist(), "labels": state["labels"],
              "val_labels": state["val_labels"], "test_acc": result.get("test_acc"), "seconds": result["train_seconds"]}
    return model, record, result


def ask(args, state, data, corpus):
    """Write the waiting round's questions for a person (rank 0 does), and say how to go on. Returns the
    CSV's path (None on other ranks)."""
    if not data.world.main:
        return None
    path, n, n_val = oracle.ask(args.out_dir, state, data, corpus)
    kept = [a for i, a in enumerate(args.argv) if a != "--resume" and not a.startswith("--answers")
            and not (i and args.argv[i - 1] == "--answers")]
    command = " ".join(["python", PROG, *map(shlex.quote, kept), "--resume", "--answers", shlex.quote(str(path))])
    what = f" ({n_val} of them the validation set)" if n_val else ""
    print(f"{PROG}: round {len(state['rounds'])} asks for {n} labels{what}. Fill in the label column of {path} (one "
          f"of {', '.join(corpus.label_names)}), or label {path.with_suffix('.tasks.json').name} in Label Studio with "
          f"the interface {oracle.LABEL_STUDIO_CONFIG} beside it and export JSON; then go on with\n  {command}")
    return path


def main(argv=None):
    args = parse_args(argv)
    with common.user_errors(PROG):
        return run(args)


def run(args):
    common.apply_preset(args)
    common.check_outputs(args)
    device = common.setup(args)
    w = distributed.world()
    seeds = parse_seeds(args)
    strategies = [args.strategy] + (["random"] if args.compare_random and args.strategy != "random" else [])
    if args.resume:
        resume.check_resumable(args.out_dir, strategies, seeds, PROG, w)
    if args.answers and not (args.resume and args.oracle == "files"):
        raise UserError("--answers goes with --resume and --oracle files: add them (as the command printed by the "
                        "last round)")
    if args.oracle == "files" and len(strategies) * len(seeds) > 1:
        raise UserError("--oracle files runs one strategy with one seed (one person labels): drop --compare-random "
                        "and give one seed")
    corpus = load_corpus(args.data, common.columns(args))
    if not corpus.label_names:
        raise UserError(f"{data_source(args.data)} has no labels to name the classes by: pass them with --classes "
                        "(e.g. --classes neg,pos)")
    if corpus.test is None and args.eval_test_each_round:
        raise UserError(f"--eval-test-each-round needs a test split, and {data_source(args.data)} has none: drop the flag")
    data = prepare(args, seeds, corpus, device, w)

    runs, results, teacher = [], [], None
    for strategy in strategies:
        for seed in seeds:
            model, record, result = run_one(args, strategy, seed, data, corpus)
            if model is None:  # waiting for a person's answers
                return {"queries": str(result) if w.main else None}
            runs.append(record)
            results.append(result)
            if teacher is None:
                teacher = model

    metric = "test_acc" if args.eval_test_each_round else "val_acc"
    summary = curve_summary(runs, metric)
    history = store.ALHistory(
        settings=settings(args), seeds=seeds, teacher_strategy=args.strategy, teacher_seed=seeds[0],
        pool_index=data.pool.index.tolist(), val_index=data.val.index.tolist(),
        pool_fingerprint=store.fingerprint(data.pool.index, corpus.train.select(data.pool.index)["text"]),
        test_index=data.test.index.tolist(), revealed_index=runs[0]["labeled_index"],
        labels_used=runs[0]["rounds"][-1]["labels_used"], curve_metric=metric, summary=summary, runs=runs,
        unlabeled_used=n_unlabeled(data), oracle=args.oracle, revealed_labels=runs[0]["labels"],
        revealed_round=active.revealed_round(runs[0]), val_labels=runs[0]["val_labels"])
    if "random" in summary and args.strategy != "random":
        history.label_fraction_to_match_random = label_savings(summary, args.strategy)
        history.gain_over_random_at_budget = summary[args.strategy]["mean"][-1] - summary["random"]["mean"][-1]
    folder = args.out_dir / "teacher"
    if w.main:
        write_outputs(args, corpus, data, history, runs, results, teacher)
    out = {"test_acc": runs[0]["test_acc"], "labels_used": history.labels_used, "teacher_dir": str(folder),
           "summary": summary, "runs": runs}
    if history.gain_over_random_at_budget is not None:
        out |= {"label_fraction_to_match_random": history.label_fraction_to_match_random,
                "gain_over_random_at_budget": history.gain_over_random_at_budget}
    return out


def write_outputs(args, corpus, data, history, runs, results, teacher):
    """The teacher with its history, the curves, the bar and the results lines (rank 0 writes them)."""
    # Saved before the results lines are written: a kill in between loses no work, and the resumed
    # run writes the lines that are missing, once.
    folder = store.save_checkpoint(teacher, data.tokenizer, args.out_dir / "teacher",
                                   {"script": PROG, "params": teacher.num_params(),
                                    "non_embedding_params": teacher.num_params(non_embedding=True),
                                    "test_acc": runs[0]["test_acc"], "settings": settings(args)},
                                   extra={store.HISTORY_FILE: history.record()}, onnx=True)
    plot_curves(history.summary, history.curve_metric, args.out_dir / "al_curve.png")
    bar = the_bar(args, corpus, data, history, results[0]["run_id"])
    store.append_results(args.results, PROG, results + [bar], once=True)
    report(args, history, runs, teacher, folder)


def n_unlabeled(data):
    return len(data.unlabeled) if data.unlabeled is not None else 0


def tested(test_acc):
    """A results line's test accuracy: none without a test split."""
    return {} if test_acc is None else {"test_acc": test_acc}


def the_bar(args, corpus, data, history, run_id):
    """The bar fitted on the teacher's revealed labels, C chosen on the same validation set, saved to
    ``<out-dir>/bar/``; returns its results line (``model=bar``)."""
    train = corpus.train
    bar = fit_bar(train.select(history.revealed_index)["text"], np.asarray(history.revealed_labels),
                  train.select(data.val.index)["text"], data.val.labels, args.progress)
    test_acc = (accuracy(bar.logits(corpus.test.select(data.test.index)["text"]), data.test.labels)
                if corpus.test is not None else None)
    bar.info |= {"script": PROG, "test_acc": test_acc, "labels_used": history.labels_used}
    bar.save(args.out_dir / "bar")
    say(f"{PROG}: the bar (TF-IDF logistic regression) on the same {len(history.revealed_index)} revealed labels: "
        f"val_acc={bar.info['val_acc']:.4f}" + (f" test_acc={test_acc:.4f}" if test_acc is not None else "")
        + f" (C={bar.info['C']:g})")
    return dict(model="bar", labels_used=history.labels_used, **tested(test_acc), val_acc=bar.info["val_acc"],
                C=bar.info["C"], n_features=bar.info["n_features"], train_seconds=bar.info["seconds"], seed=args.seed,
                preset=args.preset, run_id=run_id)


def report(args, history, runs, teacher, folder):
    metric = history.curve_metric
    for strategy, c in history.summary.items():
        print(f"{strategy:>16}: final {metric} {c['mean'][-1]:.4f} ± {c['std'][-1]:.4f} "
              f"at {c['labels_used'][-1]} labels")
        distilled = [r["ensemble_step"][metric] for r in runs if r["strategy"] == strategy and r["ensemble_step"]]
        if distilled:
            print(f"{'':>16}  ensemble distilled on the whole pool: {metric} {np.mean(distilled):.4f} ± "
                  f"{np.std(distilled):.4f}")
    if history.gain_over_random_at_budget is not None:
        frac = history.label_fraction_to_match_random
        print(f"{args.strategy} reaches random's final {metric} with "
              + (f"{frac:.0%} of its labels" if frac is not None else "no budget tried (not reached)")
              + f"; at the full budget it is {100 * history.gain_over_random_at_budget:+.2f} points from random")
    acc = (f"test_acc {runs[0]['test_acc']:.4f}" if runs[0]["test_acc"] is not None
           else f"no test split, val_acc {runs[0]['rounds'][-1]['val_acc']:.4f}")
    print(f"teacher: {acc}, {teacher.num_params():,} params -> {folder}")


if __name__ == "__main__":
    main()
