"""Does serving's Python tokenizer give the saved tokenizer's ids? Every plain-ASCII review of IMDB's
training and unlabeled splits, encoded by ``labelless.text.AsciiWordPiece`` and by a checkpoint's own
tokenizer (both keeping the last ``max_len`` tokens); prints how many differ (the rule: none).

    python -m benchmarks.ascii_ids benchmarks/runs/full_2026-12-05/checkpoints/student
"""

import argparse
import sys

from labelless.sources import load_imdb, load_unlabeled
from labelless.store import load_checkpoint
from labelless.text import AsciiWordPiece, is_plain_ascii


def main(argv=None):
    p = argparse.ArgumentParser(prog="ascii_ids.py", description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint", help="a checkpoint folder (its tokenizer is read)")
    p.add_argument("--data", help="IMDB (default: IMDB_DATA, else the hub)")
    args = p.parse_args(argv)
    tokenizer = load_checkpoint(args.checkpoint, "origi.py", what="model")[1]
    saved, max_len = tokenizer.backend_tokenizer, tokenizer.model_max_length
    saved.enable_truncation(max_len, direction="left")
    fast = AsciiWordPiece.of(saved, max_len)
    if fast is None:
        sys.exit(f"ascii_ids.py: the tokenizer in {args.checkpoint} has other steps: serving does not use "
                 "the Python copy")
    out = {}
    for split, texts in (("train", load_imdb(args.data)[0]["text"]), ("unlabeled", load_unlabeled(args.data)["text"])):
        plain = [t for t in texts if is_plain_ascii(t)]
        differ = sum(fast.encode(t)[0].tolist() != e.ids for t, e in zip(plain, saved.encode_batch_fast(plain)))
        out[split] = differ
        print(f"{split}: {len(plain)} of {len(texts)} reviews are plain ASCII; {differ} of them get other ids")
    return out


if __name__ == "__main__":
    main()
