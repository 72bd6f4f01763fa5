"""course_lib.device: device choice and seeding."""

import numpy as np
import pytest
import torch

from course_lib.device import get_device, seed_everything


def test_get_device_and_seed(monkeypatch):
    assert get_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    monkeypatch.delenv("COURSE_DEVICE", raising=False)
    assert get_device().type == expected
    with pytest.raises(ValueError, match="prefer must be"):
        get_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="cuda"):
            get_device("cuda")
    g1 = seed_everything(5)
    a = torch.rand(3, generator=g1), torch.rand(3), np.random.rand()
    g2 = seed_everything(5)
    b = torch.rand(3, generator=g2), torch.rand(3), np.random.rand()
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and a[2] == b[2]
    with pytest.raises(ValueError, match="seed must be >= 0"):
        seed_everything(-1)
