"""One rank of a ``torchrun`` job for tests/test_torchrun.py: runs the ``main`` of ``training.py`` or
``origi.py`` and writes what this rank returned, and the folders it saved, to
``<record dir>/<script>_rank<k>.json``. The environment plants trouble: ``STOP_AT_ROUND=r`` interrupts
every rank in round ``r`` (a kill), ``FAIL_RANK=k`` makes rank ``k`` fail in round 1.

    python -m torch.distributed.run --standalone --nproc_per_node 2 tests/ranks.py RECORD_DIR training|origi ARGS...
"""

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import origi  # noqa: E402
import training  # noqa: E402
from labelless import active, store  # noqa: E402

record_dir, script, *argv = sys.argv[1:]
rank = int(os.environ["RANK"])
saved, rounds = [], []
real_save, real_round = store.save_checkpoint, active.train_round


def recording_save(model, tokenizer, folder, *args, **kwargs):
    saved.append(str(folder))
    return real_save(model, tokenizer, folder, *args, **kwargs)


def troubled_round(*args, **kwargs):
    rounds.append(1)
    if len(rounds) == int(os.environ.get("STOP_AT_ROUND", -1)) + 1:
        raise KeyboardInterrupt
    if len(rounds) == 2 and rank == int(os.environ.get("FAIL_RANK", -1)):
        raise RuntimeError("planted failure")
    return real_round(*args, **kwargs)


store.save_checkpoint = active.save_checkpoint = recording_save
active.train_round = troubled_round
out = {"training": training, "origi": origi}[script].main(argv)
Path(record_dir, f"{script}_rank{rank}.json").write_text(json.dumps({"out": out, "saved": saved}, default=str))
