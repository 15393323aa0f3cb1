"""labelless.distributed: pool scoring sharded over two gloo processes gives one process's scores, in order."""

import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import transformer
from labelless.distributed import World, broadcast, check_same, gather, shard, world
from labelless.fit import TrainSettings, fit, predict_logits
from labelless.strategies import score


def setup():
    """The same tiny model and pool in every process."""
    torch.manual_seed(0)
    config = transformer.TransformerConfig.from_size("tiny", vocab_size=50, max_len=32, pad_token_id=0)
    model = transformer.TransformerClassifier(config).eval()
    rng = np.random.default_rng(0)
    ids = [rng.integers(1, 50, int(rng.integers(3, 32))).astype(np.int32) for _ in range(101)]
    candidates = np.sort(rng.choice(101, 77, replace=False))  # not every pool position, in pool order
    return model, ids, candidates


def worker(rank, size, port, folder, strategy):
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(size), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    try:
        model, ids, candidates = setup()
        scores = score(model, ids, candidates, strategy, np.random.default_rng(3), w=world())
        np.save(os.path.join(folder, f"rank{rank}.npy"), scores)
    finally:
        dist.destroy_process_group()


def train(w):
    """A tiny model without dropout trained one epoch on 37 texts in batches of 8: the ranks share the
    last batch of 5 unevenly."""
    torch.manual_seed(0)
    config = transformer.TransformerConfig.from_size("tiny", vocab_size=50, max_len=32, pad_token_id=0, dropout=0.0)
    model = transformer.TransformerClassifier(config)
    rng = np.random.default_rng(1)
    ids = [rng.integers(1, 50, int(rng.integers(3, 32))).astype(np.int32) for _ in range(37)]
    y = torch.from_numpy(rng.integers(0, 2, 37))
    fit(model, ids, lambda logits, idx: torch.nn.functional.cross_entropy(logits, y[idx]),
        TrainSettings(epochs=1, lr=1e-2, batch_size=8, progress=False), seed=0, w=w)
    return model, ids


def train_worker(rank, size, port, folder):
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(size), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    try:
        model, ids = train(world())
        np.save(os.path.join(folder, f"rank{rank}.npy"), predict_logits(model, ids, w=world()))
    finally:
        dist.destroy_process_group()


def test_two_processes_train_as_one_does(tmp_path):
    """Data-parallel training: the same batches, each rank its share, the gradients of the whole batch."""
    mp.spawn(train_worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    model, ids = train(World())
    alone = predict_logits(model, ids)
    assert np.abs(alone).max() > 0.1  # it learned something to compare
    for rank in (0, 1):
        np.testing.assert_allclose(np.load(tmp_path / f"rank{rank}.npy"), alone, rtol=0, atol=1e-4)


def agree_worker(rank, size, port, folder):
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(size), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    dist.init_process_group("gloo")
    try:
        chosen = broadcast(np.array([rank, 7]), world())  # rank 0 decides for all
        check_same("vocab", "the tokenizer", world())
        try:
            check_same(f"vocab {rank}", "the tokenizer", world())
            refused = ""
        except RuntimeError as e:
            refused = str(e)
        np.save(os.path.join(folder, f"rank{rank}.npy"), chosen)
        (Path(folder) / f"rank{rank}.txt").write_text(refused)
    finally:
        dist.destroy_process_group()


def test_rank_0_decides_for_all_and_ranks_that_disagree_are_stopped(tmp_path):
    mp.spawn(agree_worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    for rank in (0, 1):
        assert np.load(tmp_path / f"rank{rank}.npy").tolist() == [0, 7]
        assert (tmp_path / f"rank{rank}.txt").read_text() == "the ranks disagree on the tokenizer: rank 1's differs from rank 0's"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("strategy", ["margin", "random"])
def test_two_processes_score_the_pool_as_one_does(tmp_path, strategy):
    mp.spawn(worker, args=(2, free_port(), str(tmp_path), strategy), nprocs=2, join=True)
    model, ids, candidates = setup()
    alone = score(model, ids, candidates, strategy, np.random.default_rng(3))
    for rank in (0, 1):  # every rank holds every score, in candidate order
        # Other batch compositions may round differently in the last bits.
        np.testing.assert_allclose(np.load(tmp_path / f"rank{rank}.npy"), alone, rtol=0, atol=1e-6)


def test_shards_cover_the_candidates_once_and_one_process_gathers_nothing():
    candidates = np.arange(10, 17)
    parts = [shard(candidates, World(rank, 3)) for rank in range(3)]
    assert sorted(np.concatenate(parts).tolist()) == candidates.tolist() and [len(p) for p in parts] == [3, 2, 2]
    local = np.arange(6.0).reshape(3, 2)
    np.testing.assert_array_equal(gather(local, 3, World()), local)
    assert world() == World()  # no torchrun environment here
