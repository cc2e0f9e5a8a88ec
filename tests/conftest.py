"""Shared fixtures: the real-data folder, small configs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REAL_DATA = Path(os.environ.get("DEPTHDIF_SHARED_DATA", REPO.parent / "shared" / "data" / "real"))


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread() -> None:
    """Tiny tensors: one thread is fastest and leaves the other core to snakemake subprocesses."""
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    """`../shared/data/real`: skipped when absent, a failure when DEPTHDIF_REQUIRE_SHARED_DATA=1."""
    if not REAL_DATA.is_dir():
        message = f"shared real data not found at {REAL_DATA}"
        if os.environ.get("DEPTHDIF_REQUIRE_SHARED_DATA") == "1":
            pytest.fail(message + " but DEPTHDIF_REQUIRE_SHARED_DATA=1")
        pytest.skip(message)
    return REAL_DATA
