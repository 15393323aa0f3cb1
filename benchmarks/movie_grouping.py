"""Are training reviews of one movie stored next to each other? If so, a validation set drawn at
random from the training split shares movies with the reviews trained on (IMDB's test split has
other movies), and validation accuracy is optimistic.

The check needs no movie ids: a rare capitalised word (a name, 2-30 reviews in the class) shared by
two reviews points to one movie. Compare adjacent rows with random pairs, per class.

    python -m benchmarks.movie_grouping --data ../shared/data/imdb
"""

import re
from collections import Counter

import numpy as np

import common
from labelless.sources import LABEL_NAMES, load_imdb


def rare_names(texts, low=2, high=30):
    names = [set(re.findall(r"\b[A-Z][a-z]{3,}\b", t)) for t in texts]
    freq = Counter(w for s in names for w in s)
    return [{w for w in s if low <= freq[w] <= high} for s in names]


def main(argv=None):
    p = common.make_parser("movie_grouping.py", __doc__)
    p.add_argument("--data", default=None, help="as in the scripts (default: $IMDB_DATA, else the hub)")
    p.add_argument("--pairs", type=int, default=20000, help="random pairs per class")
    args = p.parse_args(argv)
    with common.user_errors("movie_grouping.py"):
        train, _ = load_imdb(args.data)
    labels = np.asarray(train["label"])
    rng = np.random.default_rng(0)
    out = {}
    for c, name in enumerate(LABEL_NAMES):
        rows = np.flatnonzero(labels == c)
        names = rare_names(train.select(rows)["text"])
        adjacent = np.mean([bool(names[i] & names[i + 1]) for i in range(len(names) - 1)])
        pairs = rng.integers(0, len(names), (args.pairs, 2))
        random_pairs = np.mean([bool(names[i] & names[j]) for i, j in pairs if i != j])
        out[name] = {"adjacent": adjacent, "random": random_pairs}
        print(f"{name}: {len(rows)} reviews; adjacent rows share a rare name {adjacent:.1%}, random pairs {random_pairs:.1%}")
    return out


if __name__ == "__main__":
    main()
