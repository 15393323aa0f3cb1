"""labelless.runtime: device choice, seeding and the heap."""

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from labelless import UserError, runtime
from labelless.runtime import choose_device, set_seed


def test_device_choice():
    assert choose_device("cpu").type == "cpu"
    assert choose_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="--device cpu"):
            choose_device("cuda")


def test_set_seed_makes_torch_and_numpy_repeat():
    set_seed(5)
    a = (np.random.rand(), torch.rand(1).item())
    set_seed(5)
    assert (np.random.rand(), torch.rand(1).item()) == a


# Every other of 2,000 blocks of 96 KB freed (heap blocks, under glibc's mmap threshold): ~94 MB of holes
# between live blocks, which glibc keeps until the heap is trimmed. Prints resident MB: before, after
# release_heap with RELEASE_HEAP off, after it with RELEASE_HEAP on.
HOLES = textwrap.dedent("""
    import os
    import numpy as np
    from labelless import runtime
    def rss_mb():
        return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    blocks = [np.ones(12_000) for _ in range(2000)]
    kept = blocks[1::2]
    del blocks
    before = rss_mb()
    runtime.RELEASE_HEAP = False
    runtime.release_heap()
    off = rss_mb()
    runtime.RELEASE_HEAP = True
    runtime.release_heap()
    print(before, off, rss_mb())
""")


@pytest.mark.skipif(runtime.MALLOC_TRIM is None or not Path("/proc/self/statm").exists(), reason="needs glibc and /proc")
def test_release_heap_hands_the_holes_between_live_blocks_back():
    done = subprocess.run([sys.executable, "-c", HOLES], capture_output=True, text=True, check=True,
                          cwd=Path(__file__).parents[1])
    before, off, on = map(float, done.stdout.split())
    assert off > before - 10, "with RELEASE_HEAP off nothing is released"
    assert on < before - 60, f"trimmed: {before:.0f} -> {on:.0f} MB"


def test_release_heap_is_a_no_op_without_glibc(monkeypatch):
    monkeypatch.setattr(runtime, "MALLOC_TRIM", None)
    runtime.release_heap()
