"""How fast each normalizer lets the tokenizer run: the serving path's largest cost (issue 29).

Trains the pipeline's WordPiece tokenizer on the preset's training texts, then times it as serving calls
it (``encode_batch_fast`` on batches of 32 review tails, truncated to the preset's length) with its own
normalizer and with cheaper ones on the same vocabulary, in turn, ``--repeats`` rounds; reports the
median reviews/s of each and the share of reviews whose token ids stay the same as today's. The texts
are a stratified sample of the training split (the test split is never read).

    python -m benchmarks.tokenizer_speed --preset quick --threads 2
"""

import time

import numpy as np

import common
from labelless.data import stratified_subset
from labelless.sources import load_imdb
from labelless.text import tails, train_tokenizer

PROG = "tokenizer_speed.py"


def normalizers_to_try(current):
    """Today's normalizer and the cheaper ones it could become, by name."""
    from tokenizers import Regex, normalizers

    br = normalizers.Replace(Regex(r"<br\s*/?>"), " ")
    return {
        "now: <br />, BertNormalizer (lowercase, strip accents, clean text, CJK)": current,
        "<br />, BertNormalizer without accent stripping": normalizers.Sequence(
            [br, normalizers.BertNormalizer(lowercase=True, strip_accents=False)]),
        "<br />, lowercase only": normalizers.Sequence([br, normalizers.Lowercase()]),
    }


def parse_args(argv=None):
    p = common.make_parser(PROG, __doc__)
    common.add_common_args(p)
    p.add_argument("--n-reviews", type=int, help="size of the stratified training-split sample")
    p.add_argument("--repeats", type=int, help="rounds; each times every normalizer once")
    p.set_defaults(vocab_size=None, max_len=None)  # the preset's
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    with common.user_errors(PROG):
        common.apply_preset(args)
        for key in ("n_reviews", "repeats"):
            common.check_range(args, key, 1)
        common.setup(args)
        return run(args)


def run(args):
    from tokenizers import Tokenizer

    train, _ = load_imdb(args.data)
    labels = np.asarray(train["label"])
    texts = train.select(stratified_subset(labels, args.max_train_samples, args.seed))["text"]
    hf = train_tokenizer(texts, args.vocab_size, args.max_len)
    sample = tails(hf, list(train.select(stratified_subset(labels, args.n_reviews, args.seed + 1))["text"]))
    tokenizers = {}
    for name, normalizer in normalizers_to_try(hf.backend_tokenizer.normalizer).items():
        tok = Tokenizer.from_str(hf.backend_tokenizer.to_str())
        tok.normalizer = normalizer
        tok.enable_truncation(args.max_len, direction="left")
        tok.no_padding()
        tokenizers[name] = tok
    reference = [e.ids for e in next(iter(tokenizers.values())).encode_batch_fast(sample)]
    seconds = {name: [] for name in tokenizers}
    for _ in range(args.repeats):  # in turn, so that drift on a shared machine hits all of them
        for name, tok in tokenizers.items():
            start = time.perf_counter()
            for i in range(0, len(sample), 32):
                tok.encode_batch_fast(sample[i:i + 32])
            seconds[name].append(time.perf_counter() - start)
    out = {}
    for name, tok in tokenizers.items():
        same = float(np.mean([e.ids == r for e, r in zip(tok.encode_batch_fast(sample), reference)]))
        out[name] = {"reviews_per_s": len(sample) / float(np.median(seconds[name])), "same_ids": same}
        print(f"{name:<72} {out[name]['reviews_per_s']:>8,.0f} reviews/s  same ids {same:.3f}")
    return out


if __name__ == "__main__":
    main()
