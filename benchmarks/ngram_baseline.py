"""The bar the teacher is held to: a logistic regression on TF-IDF unigrams and bigrams.

The classic strong baseline for sentiment (Wang & Manning 2012), here ``training.NgramLogisticRegression``
on the same data split, tokenizer and token ids as ``training.py``'s teacher: trained on as many random
class-balanced pool labels as the teacher asks for, and on every pool label. C is chosen on the validation
set (whose labels count, as for the teacher); the test split is read once per model, for the report, and
chooses nothing. Appends one ``results.txt`` line per model (``model=ngram_baseline``).

    python benchmarks/ngram_baseline.py --preset full --results benchmarks/ngram_baseline/results.txt
    python benchmarks/ngram_baseline.py --preset quick --labels 2000,8000
"""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import common  # noqa: E402
import training  # noqa: E402

PROG = "ngram_baseline.py"


def parse_args(argv=None):
    p = common.make_parser(PROG, __doc__)
    common.add_common_args(p)
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
        raise common.UserError(f"--labels must be between 2 and the pool's {pool_size} reviews, got {args.labels!r}")
    return counts


def main(argv=None):
    args = parse_args(argv)
    with common.user_errors(PROG):
        return run(args)


def run(args):
    common.apply_preset(args)
    # The teacher's settings for this preset and seed: the same split, tokenizer and label budget.
    teacher = common.apply_preset(training.parse_args(["--preset", args.preset, "--seed", str(args.seed)]))
    teacher.data, teacher.max_train_samples, teacher.max_test_samples = (
        args.data, args.max_train_samples, args.max_test_samples)
    common.setup(args)
    train, test_split = common.load_imdb(args.data)
    everything, pool_index, val_index, test_index = training.data_split(teacher, train["label"], test_split["label"])
    counts = label_counts(args, len(pool_index), teacher.label_budget - teacher.val_size)

    start = time.perf_counter()
    tokenizer = common.train_tokenizer(train.select(everything)["text"], teacher.vocab_size, teacher.max_len)
    pool = common.make_split(train, pool_index, tokenizer, args.progress)
    val = common.make_split(train, val_index, tokenizer, args.progress)
    test = common.make_split(test_split, test_index, tokenizer, args.progress)
    print(f"{PROG}: pool {len(pool)}, validation {len(val)}, test {len(test)}, tokenizer + encoding "
          f"{time.perf_counter() - start:.1f}s", flush=True)

    rows = []
    for n in counts:
        labeled = common.stratified_subset(pool.labels, n, args.seed)
        model, record = training.ngram_member(pool, labeled, val, len(tokenizer), args.progress)
        row = {"pool_labels": n, "labels_used": n + len(val), "C": record["C"], "val_acc": record["val_acc"],
               "test_acc": model.accuracy(model.features(test.ids), test.labels),
               "n_features": record["n_features"], "fit_seconds": record["seconds"]}
        rows.append(row)
        common.append_result(args.results, PROG, model="ngram_baseline", preset=args.preset, **row, seed=args.seed)
        print(f"{n} pool labels + {len(val)} validation: C={row['C']:g} val_acc={row['val_acc']:.4f} "
              f"test_acc={row['test_acc']:.4f} ({row['n_features']} features, {row['fit_seconds']:.0f}s)", flush=True)
    return {"runs": rows}


if __name__ == "__main__":
    main()
