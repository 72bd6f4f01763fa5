"""What several test files share: comparison helpers here, tiny fixed-weight models and other fixtures in the
submodules (``tests.helpers.models``, ``tests.helpers.grading``). Test files import from here, never from
each other or from ``conftest``."""

from __future__ import annotations

import torch

__all__ = ["assert_close", "stored_study"]


def assert_close(actual, expected, atol=1e-5, rtol=1e-5):
    """``torch.testing.assert_close`` with the course's default tolerances, accepting NumPy input."""
    actual = torch.as_tensor(actual)
    expected = torch.as_tensor(expected, dtype=actual.dtype, device=actual.device)
    torch.testing.assert_close(actual, expected, atol=atol, rtol=rtol)


def stored_study(name: str):
    """``course_lib.studies.load(name)``, or a skip when the study's stored results are not there."""
    import pytest

    from course_lib import studies

    try:
        return studies.load(name)
    except studies.StudyError as error:
        pytest.skip(str(error))
