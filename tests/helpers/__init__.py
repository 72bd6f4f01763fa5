"""What several test files share: comparison helpers here, tiny fixed-weight models and other fixtures in the
submodules (``tests.helpers.models``, ``tests.helpers.grading``). Test files import from here, never from
each other or from ``conftest``."""

from __future__ import annotations

import torch

__all__ = ["assert_close"]


def assert_close(actual, expected, atol=1e-5, rtol=1e-5):
    """``torch.testing.assert_close`` with the course's default tolerances, accepting NumPy input."""
    actual = torch.as_tensor(actual)
    expected = torch.as_tensor(expected, dtype=actual.dtype, device=actual.device)
    torch.testing.assert_close(actual, expected, atol=atol, rtol=rtol)
