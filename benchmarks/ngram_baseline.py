"""The bar the teacher is held to, with random labels: a logistic regression on TF-IDF unigrams and bigrams.

``labelless.bar`` (scikit-learn, on the raw review text) on the same data partition as ``training.py``'s
teacher, trained on as many random class-balanced pool labels as the teacher asks for, and on every pool
label (``training.py`` fits the same bar on the labels its active learning revealed). C is chosen on the
validation set (whose labels count, as for the teacher); the test split is read once per model, for the
report, and chooses nothing. Appends one ``results.txt`` line per model (``model=ngram_baseline``).

    python -m benchmarks.ngram_baseline --preset full --results benchmarks/runs/ngram_baseline/results.txt
    python -m benchmarks.ngram_baseline --preset quick --labels 2000,8000
"""

import numpy as np

import common
from labelless import UserError, store
from labelless.bar import fit_bar
from labelless.data import DataSettings, partition, stratified_subset
from labelless.fit import accuracy
from labelless.sources import load_imdb

PROG = "ngram_baseline.py"


def parse_args(argv=None):
    p = common.make_parser(PROG, __doc__)
    common.add_common_args(p, subsets=("train", "test"))
    p.add_argument("--labels", default=None,
                   help="comma-separated numbers of random pool labels to train on (default: as many as the "
                        "preset's teacher asks for, and the whole pool)")
    return p.parse_args(argv)


def label_counts(args, pool_size, teacher_asks):
    """The ``--labels`` counts, each between 2 and the pool's size."""
    if args.labels is None:
        return sorted({teacher_asks, pool_size})
    counts = common.parse_ints(args.labels, "--labels", "2000,8000")
    bad = [n for n in counts if not 2 <= n <= pool_size]
    if not counts or bad:
        raise UserError(f"--labels must be between 2 and the pool's {pool_size} reviews, got {args.labels!r}")
    return counts


def main(argv=None):
    args = parse_args(argv)
    with common.user_errors(PROG):
        return run(args)


def run(args):
    common.apply_preset(args)
    common.check_outputs(args, out_dir=False)
    preset = common.PRESETS[args.preset]  # the teacher's validation size and label budget
    common.setup(args)
    train, test_split = load_imdb(args.data)
    part = partition(train["label"], test_split["label"],
                     DataSettings(args.max_train_samples, args.max_test_samples, preset["val_size"], args.seed))
    counts = label_counts(args, len(part.pool), preset["label_budget"] - preset["val_size"])

    labels = np.asarray(train["label"])
    val_texts, test_texts = train.select(part.val)["text"], test_split.select(part.test)["text"]
    print(f"{PROG}: pool {len(part.pool)}, validation {len(part.val)}, test {len(part.test)}", flush=True)
    rows = []
    for n in counts:
        labeled = part.pool[stratified_subset(labels[part.pool], n, args.seed)]
        bar = fit_bar(train.select(labeled)["text"], labels[labeled], val_texts, labels[part.val], args.progress)
        row = {"pool_labels": n, "labels_used": n + len(part.val), "C": bar.info["C"], "val_acc": bar.info["val_acc"],
               "test_acc": accuracy(bar.logits(test_texts), np.asarray(test_split["label"])[part.test]),
               "n_features": bar.info["n_features"], "fit_seconds": bar.info["seconds"]}
        rows.append(row)
        store.append_result(args.results, PROG, model="ngram_baseline", preset=args.preset, **row, seed=args.seed)
        print(f"{n} pool labels + {len(part.val)} validation: C={row['C']:g} val_acc={row['val_acc']:.4f} "
              f"test_acc={row['test_acc']:.4f} ({row['n_features']} features, {row['fit_seconds']:.0f}s)", flush=True)
    return {"runs": rows}


if __name__ == "__main__":
    main()
