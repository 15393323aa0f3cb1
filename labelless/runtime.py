"""Where the code runs: seeds, the device, mixed precision and progress bars."""

import contextlib
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


def progress(iterable=None, enabled=True, **kwargs):
    return tqdm(iterable, disable=not enabled, dynamic_ncols=True, **kwargs)


def say(message):
    """Print a line without breaking a progress bar."""
    tqdm.write(message)
