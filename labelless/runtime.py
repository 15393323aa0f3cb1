"""Where the code runs: seeds, the device, mixed precision, the heap and progress bars."""

import contextlib
import ctypes
import ctypes.util
import random

import numpy as np
import torch
from tqdm.auto import tqdm

from . import UserError


def set_seed(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def choose_device(name="auto"):
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda asked for, but no CUDA GPU is visible: use --device cpu or auto")
    if name == "mps" and not torch.backends.mps.is_available():
        raise UserError("--device mps asked for, but MPS is not available: use --device cpu or auto")
    return torch.device(name)


def autocast(device):
    """bf16 autocast on CUDA; a no-op elsewhere (CPU bf16 is slower than fp32 on most CPUs)."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _malloc_trim():
    """glibc's ``malloc_trim``, or None where the C library is another (macOS, musl)."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c")).malloc_trim
    except (OSError, AttributeError, TypeError):
        return None


MALLOC_TRIM = _malloc_trim()
RELEASE_HEAP = True  # benchmarks.pool_scoring --keep-heap turns it off to measure what it saves


def release_heap():
    """Hand the heap's free pages back to the system. Prediction runs batches in ascending length, so each
    batch's blocks are a little larger than the holes the last one left, and glibc would keep every hole:
    trimmed every few batches (``fit.TRIM_EVERY``), a rank's memory stays a few batches', whatever the
    pool's size."""
    if RELEASE_HEAP and MALLOC_TRIM is not None:
        MALLOC_TRIM(0)


def progress(iterable=None, enabled=True, **kwargs):
    return tqdm(iterable, disable=not enabled, dynamic_ncols=True, **kwargs)


def say(message):
    """Print a line without breaking a progress bar."""
    tqdm.write(message)
