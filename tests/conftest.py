"""Shared pytest set-up: the `cuda` marker, repository paths (shared helpers live in tests/helpers)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("MPLBACKEND", "Agg")
REPO = Path(__file__).resolve().parent.parent


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA: compares CPU and GPU results; no CUDA device on this machine")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="module")
def figures():
    """48 synthetic pose figures (seed 3), shared by the pose and data tests."""
    from course_lib.data import PoseFiguresDataset

    return PoseFiguresDataset(48, seed=3)
