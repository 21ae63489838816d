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


@pytest.fixture(scope="session")
def small_mnist_npz(tmp_path_factory) -> Path:
    """An NPZ of 1,000 training and 200 held-out mnist-10k images, as uint8."""
    import numpy as np

    from deepgen_core.data import load_dataset

    dataset = load_dataset("mnist-10k")
    path = tmp_path_factory.mktemp("data") / "small-mnist.npz"
    np.savez(
        path,
        x_train=(dataset.x_train[:1000] * 255).round().astype(np.uint8),
        y_train=dataset.y_train[:1000],
        x_test=(dataset.x_test[:200] * 255).round().astype(np.uint8),
        y_test=dataset.y_test[:200],
    )
    return path


@pytest.fixture(scope="session")
def random_label_npz(tmp_path_factory) -> Path:
    """An NPZ of mnist-10k images with labels drawn independently of them.

    It has 500 training and 300 held-out rows; no classifier can beat
    chance on it.
    """
    import numpy as np

    from deepgen_core.data import load_dataset

    dataset = load_dataset("mnist-10k")
    labels = np.random.default_rng(0).integers(0, 10, 800)
    path = tmp_path_factory.mktemp("data") / "random-labels.npz"
    np.savez(
        path,
        x_train=dataset.x_train[:500],
        y_train=labels[:500],
        x_test=dataset.x_test[:300],
        y_test=labels[500:],
    )
    return path
