"""Pool scoring on one process or several (issue 30): reviews/s and peak memory per rank, synthetic pools.

Each rank builds the same randomly initialised model of ``--size`` and the token ids of its own shard of
a synthetic pool (lengths drawn like IMDB's reviews cut to ``--max-len`` tokens; row ``i``'s ids depend
on ``i`` alone, so a rank never holds the whole pool), then scores its shard with margin sampling and
gathers every score on every rank (``labelless.distributed.sharded_scores``). Timed from a barrier to
the gathered scores. One line per pool size from rank 0, one line of peak memory per rank (with the
megabytes of its shard's token ids, the part of it that must grow with the shard). ``--keep-heap``
scores without trimming the heap (``labelless.runtime.release_heap``), to measure what the trim saves.

    torchrun --nproc_per_node 1 -m benchmarks.pool_scoring --pool-sizes 10000,100000 --threads 1
    torchrun --nproc_per_node 2 -m benchmarks.pool_scoring --pool-sizes 10000,100000 --threads 1
"""

import resource
import time

import numpy as np
import torch
import torch.distributed as dist

import common
import transformer
from labelless import runtime
from labelless.distributed import init, shard, sharded_scores
from labelless.fit import predict_logits
from labelless.strategies import margin

PROG = "pool_scoring.py"
VOCAB = 16000


def row_ids(i, max_len):
    """Row ``i`` of the synthetic pool: IMDB-like length (median ~230 tokens, a long tail cut at ``max_len``)."""
    rng = np.random.default_rng([7, i])
    length = int(min(max_len, max(8, rng.lognormal(5.45, 0.7))))
    return rng.integers(5, VOCAB, length).astype(np.int32)


def parse_args(argv=None):
    p = common.make_parser(PROG, __doc__)
    p.add_argument("--pool-sizes", default="10000", help="comma-separated pool sizes, scored in turn")
    p.add_argument("--size", default="teacher", choices=list(transformer.SIZES), help="model size")
    p.add_argument("--max-len", type=int, default=256)
    p.add_argument("--threads", type=int, default=1, help="torch threads per process")
    p.add_argument("--keep-heap", action="store_true", help="do not trim the heap while predicting")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    with common.user_errors(PROG):
        sizes = common.parse_ints(args.pool_sizes, "--pool-sizes", "10000,100000", positive=True)
        common.check_range(args, "threads", 1)
        common.check_range(args, "max_len", 8)
        runtime.RELEASE_HEAP = not args.keep_heap
        try:
            return run(args, sizes)
        finally:
            runtime.RELEASE_HEAP = True


def run(args, sizes):
    torch.set_num_threads(args.threads)
    w = init(torch.device("cpu"))
    torch.manual_seed(0)
    model = transformer.TransformerClassifier(transformer.TransformerConfig.from_size(
        args.size, vocab_size=VOCAB, max_len=args.max_len, pad_token_id=0)).eval()
    out = []
    for n in sizes:
        mine = shard(np.arange(n), w)
        ids = {int(i): row_ids(int(i), args.max_len) for i in mine}  # this rank's shard only
        ids_mb = sum(x.nbytes for x in ids.values()) / 2**20

        def scores_of(part):
            logits = predict_logits(model, [ids[int(i)] for i in part])
            return margin(torch.softmax(torch.from_numpy(logits), -1).numpy())

        if w.size > 1:
            dist.barrier()
        start = time.perf_counter()
        scores = sharded_scores(scores_of, np.arange(n), w)
        seconds = time.perf_counter() - start
        assert scores.shape == (n,)
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        row = {"processes": w.size, "threads": args.threads, "pool": n, "seconds": round(seconds, 1),
               "reviews_per_s": round(n / seconds, 1), "model": args.size, "max_len": args.max_len,
               "heap": "kept" if args.keep_heap else "trimmed"}
        print(f"rank {w.rank}: pool {n}, peak memory so far {peak_mb:.0f} MB, its shard's token ids {ids_mb:.0f} MB",
              flush=True)
        if w.main:
            print(" ".join(f"{k}={v}" for k, v in row.items()), flush=True)
        out.append(row)
    if w.size > 1:
        dist.destroy_process_group()
    return out


if __name__ == "__main__":
    main()
