"""Each runtime against torch on real reviews: the largest logit difference, the share of predictions that
agree with torch's, and the accuracy of each copy.

For the student and the teacher of a checkpoints folder, on the timing scripts' stratified test sample
(``--split train``: as large a sample of the training split, to choose a runtime without the test split):
torch, ``model.onnx`` (fp32) and ``model.int8.onnx`` run on the same padded batches of mixed lengths.

    python -m benchmarks.onnx_parity --out-dir checkpoints --preset quick
"""

import numpy as np

import common
from labelless.serve import RUNTIMES, ServedTransformer
from labelless.sources import load_imdb
from labelless.text import length_batches
from labelless.timing import MODELS, inference_sample

PROG = "onnx_parity.py"


def parse_args(argv=None):
    p = common.make_parser(PROG, __doc__)
    common.add_common_args(p)
    p.add_argument("--n-reviews", type=int, help="size of the stratified sample")
    p.add_argument("--split", choices=["test", "train"], default="test", help="where the sample comes from")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    with common.user_errors(PROG):
        common.apply_preset(args)
        device = common.setup(args)
        train, test = load_imdb(args.data)
        _, texts, labels, data_fp = inference_sample(test if args.split == "test" else train, args.n_reviews,
                                                     args.seed)
        out = {"data_fingerprint": data_fp}
        for name in ("student", "vanilla"):
            folder, made_by = args.out_dir / MODELS[name][0], MODELS[name][1]
            logits = {rt: scores(ServedTransformer(folder, rt, device, made_by, f"{name} model"), list(texts))
                      for rt in RUNTIMES}
            out[name] = {f"max_abs_diff_{rt}": float(np.abs(logits[rt] - logits["torch"]).max()) for rt in logits}
            out[name] |= {f"agreement_{rt}": float((x.argmax(1) == logits["torch"].argmax(1)).mean())
                          for rt, x in logits.items()}
            out[name] |= {f"accuracy_{rt}": float((x.argmax(1) == labels).mean()) for rt, x in logits.items()}
            print(f"{name}: {len(texts)} {args.split} reviews (fingerprint {data_fp})")
            for rt in (rt for rt in RUNTIMES if rt != "torch"):
                print(f"  {rt}: largest |logit - torch's| {out[name][f'max_abs_diff_{rt}']:.2e}, predictions as "
                      f"torch's {out[name][f'agreement_{rt}']:.4f}, accuracy {out[name][f'accuracy_{rt}']:.4f} "
                      f"(torch {out[name]['accuracy_torch']:.4f})")
        return out


def scores(served, texts, batch_size=32):
    """Logits of every text, the batches sorted by length and padded to their longest."""
    inputs = served.inputs(texts)
    out = np.empty((len(texts), 2))
    for idx in length_batches(served.lengths(inputs), batch_size):
        out[idx] = served.scores(served.batch(inputs, idx))
    return out


if __name__ == "__main__":
    main()
