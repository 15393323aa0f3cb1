"""What the bag of n-grams adds to a pipeline's teacher and student: accuracy and speed with and without it.

For each model of a pipeline's output folder that has a bag: its accuracy on the test split with the bag and
with the encoder alone (the same checkpoint, the bag dropped), then the ratio of the two speeds from passes run
back to back (``timing.paired_passes``): the model alone in batches of 32 and end to end from raw text, on a
stratified sample of those test reviews (the preset's 1,000). An ablation of a finished run: it chooses nothing.

    python -m benchmarks.bag_ablation --preset quick --out-dir benchmarks/runs/quick/checkpoints --threads 2
"""

import numpy as np
import torch

import common
from labelless import UserError
from labelless.serve import ServedTransformer
from labelless.sources import load_imdb
from labelless.timing import E2E_MIN_SECONDS, TimingSettings, inference_sample, paired_passes, timed_passes

PROG = "bag_ablation.py"
FOLDERS = {"teacher": "training.py", "student": "origi.py"}


def parse_args(argv=None):
    p = common.make_parser(PROG, __doc__)
    common.add_common_args(p)
    p.add_argument("--n-reviews", type=int, help="test reviews timed, a stratified sample (default: the preset's)")
    p.add_argument("--pair-seconds", type=float, help="seconds of back-to-back passes per measure")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    with common.user_errors(PROG):
        common.apply_preset(args)
        common.check_range(args, "n_reviews", 2)
        common.check_range(args, "pair_seconds", 0)
        common.setup(args)
        return run(args)


def run(args):
    _, test = load_imdb(args.data)
    index, texts, labels, _ = inference_sample(test, args.max_test_samples, args.seed)  # the scripts' test set
    _, sample, _, _ = inference_sample(test.select(index), args.n_reviews, args.seed)
    settings = TimingSettings(out_dir=args.out_dir, results=args.results, data=args.data, seed=args.seed,
                              n_reviews=args.n_reviews, batch_sizes=(32,), progress=args.progress,
                              pair_seconds=args.pair_seconds)
    out = {}
    for name, made_by in FOLDERS.items():
        with_bag, alone = (ServedTransformer(args.out_dir / name, made_by=made_by, what=name) for _ in range(2))
        if with_bag.model.bag is None:
            raise UserError(f"the {name} in {args.out_dir} has no bag of n-grams: pass a pipeline's output folder "
                            "whose models have one")
        alone.model.bag = None
        row = {f"accuracy{key}": float((s.predict(texts) == labels).mean())
               for key, s in (("", with_bag), ("_encoder", alone))}
        passes = {key: timed_passes(s, list(sample), settings) for key, s in (("bag", with_bag), ("alone", alone))}
        for measure in ("bs32", "e2e"):
            bag_cost, alone_cost = paired_passes(passes["bag"][measure], passes["alone"][measure],
                                                 max(settings.pair_seconds, E2E_MIN_SECONDS))
            row[f"bag_time_{measure}"] = float(np.median(bag_cost / alone_cost))  # > 1: the bag costs time
        out[name] = row
        print(f"{name}: test accuracy {row['accuracy']:.4f} with its bag, {row['accuracy_encoder']:.4f} without; "
              f"time with the bag / without, median over back-to-back pairs: model alone at batch 32 "
              f"{row['bag_time_bs32']:.3f}x, end to end {row['bag_time_e2e']:.3f}x "
              f"({len(labels):,} test reviews, {args.n_reviews:,} timed, {torch.get_num_threads()} threads)",
              flush=True)
    return out


if __name__ == "__main__":
    main()
