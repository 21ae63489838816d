"""Shared pytest fixtures."""

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """Folder ``../shared/data`` beside the repository, with the MNIST IDX files."""
    path = Path(__file__).resolve().parents[2] / "shared" / "data"
    if not path.is_dir():
        pytest.skip(
            f"shared data folder {path} not found; it holds the MNIST and "
            "Fashion-MNIST IDX files that these tests read"
        )
    return path
