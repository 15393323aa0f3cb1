"""labelless.runtime: device choice and seeding."""

import numpy as np
import pytest
import torch

from labelless import UserError
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
