"""More than one process: the world a script runs in, and work sharded over its ranks.

Under ``torchrun`` (which sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and the rendezvous address) each
process is one rank of a ``torch.distributed`` process group: gloo on CPUs, NCCL on GPUs. Without it
the world is one process and nothing here talks to anyone. ``sharded_scores`` splits a pool's
candidates over the ranks (every ``size``-th one, so that long and short texts spread evenly), lets
each rank score its own shard, and gathers the scores back in candidate order on every rank: each rank
holds its shard's texts' logits only, never the whole pool's. Every rank runs the same program on the
same data; rank 0 (``World.main``) alone writes files and prints reports, and what it decides (the
queries) is broadcast, so that every rank holds the same labeled set.
"""

import hashlib
import os
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist

# A rank that dies leaves the others waiting in a collective: they give up after this long with an
# error, instead of hanging.
TIMEOUT = timedelta(minutes=30)


@dataclass(frozen=True)
class World:
    """This process's rank among ``size`` processes (``local_rank``: among those on its machine)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self):
        """Whether this is the rank that writes files and prints reports."""
        return self.rank == 0


def world():
    """The ``World`` of this process, from the environment ``torchrun`` sets (one process without it)."""
    env = os.environ
    return World(int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)), int(env.get("LOCAL_RANK", 0)))


def init(device, timeout=TIMEOUT):
    """Join the process group of a multi-process run (gloo on CPU, NCCL on CUDA); returns the ``World``."""
    w = world()
    if w.size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=timeout)
    return w


def finish(w):
    """Wait for every rank (rank 0's files are then written), and leave the process group."""
    if w.size > 1 and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def barrier(w):
    """Wait until every rank is here (e.g. until rank 0 has repaired the files all ranks will read)."""
    if w.size > 1:
        dist.barrier()


def broadcast(array, w):
    """Rank 0's ``array`` (1-D integers) on every rank."""
    if w.size == 1:
        return np.asarray(array)
    sent = [np.asarray(array).tolist() if w.main else None]
    dist.broadcast_object_list(sent, src=0)
    return np.asarray(sent[0], dtype=np.int64)


def check_same(value, what, w):
    """Raise unless ``value`` (a string) is the same on every rank: ranks that trained different
    tokenizers would train one model on two numberings. Only a digest of it travels."""
    if w.size > 1:
        digests = [None] * w.size
        dist.all_gather_object(digests, hashlib.sha256(value.encode()).hexdigest())
        other = next((r for r, d in enumerate(digests) if d != digests[0]), None)
        if other is not None:
            raise RuntimeError(f"the ranks disagree on {what}: rank {other}'s differs from rank 0's")


def shard(candidates, w):
    """The candidates this rank scores: every ``w.size``-th one, from its rank on."""
    return np.asarray(candidates)[w.rank::w.size]


def gather(local, n, w):
    """The full ``(n, ...)`` array whose rows ``rank::size`` are each rank's ``local`` rows, on every rank."""
    local = np.ascontiguousarray(local)
    if w.size == 1:
        return local
    # NCCL gathers on the GPU, gloo on the CPU.
    device = torch.device("cuda", w.local_rank) if dist.get_backend() == "nccl" else torch.device("cpu")
    longest = -(-n // w.size)  # shards differ by one row at most; pad to the longest for all_gather
    padded = torch.zeros((longest, *local.shape[1:]), dtype=torch.from_numpy(local).dtype, device=device)
    padded[:len(local)] = torch.from_numpy(local).to(device)
    parts = [torch.empty_like(padded) for _ in range(w.size)]
    dist.all_gather(parts, padded)
    out = np.empty((n, *local.shape[1:]), dtype=local.dtype)
    for rank, part in enumerate(parts):
        out[rank::w.size] = part[:len(range(rank, n, w.size))].cpu().numpy()
    return out


def sharded_scores(score_fn, candidates, w):
    """``score_fn(some candidates)`` for all ``candidates``, each rank scoring its ``shard``, gathered in
    candidate order on every rank."""
    return gather(score_fn(shard(candidates, w)), len(candidates), w)
