"""Build assets/mnist-10k.npz, deepgen's embedded dataset, from the MNIST IDX files.

The archive contains the first 10,000 images and labels of the official MNIST
training file: ``images`` uint8 of shape (10000, 784) and ``labels`` uint8 of
shape (10000,). The script checks the SHA-256 of both IDX files first, and
prints the SHA-256 of the result, which ``MNIST10K_SHA256`` in
``deepgen_core/data.py`` must match.

The archive is written byte for byte the same on every run: the zip entries
get a fixed timestamp and fixed attributes, unlike ``numpy.savez_compressed``.

Usage::

    python scripts/build_mnist10k.py [MNIST_FOLDER] [--out PATH]

NOTE: the bytes depend on the deflate output of the zlib that Python links.
Another zlib build (zlib-ng, for example) may produce a different archive with
the same arrays, and then ``MNIST10K_SHA256`` needs the new sum.
"""

from __future__ import annotations

import argparse
import io
import sys
import zipfile
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
# Lets the script run from a checkout where deepgen is not installed.
sys.path.insert(0, str(REPO_ROOT))

from deepgen_core.data import (
    IDX_SHA256,
    IMAGE_MAGIC,
    LABEL_MAGIC,
    TRAIN_IMAGES,
    TRAIN_LABELS,
    default_data_dir,
    file_sha256,
    read_idx,
)
from deepgen_core.errors import InputError

N_IMAGES = 10_000
ZIP_DATE_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest date a zip entry can store
ZIP_COMPRESS_LEVEL = 9


def verify_idx_file(path: Path) -> None:
    """Raise InputError unless the file exists with its published SHA-256."""
    if not path.is_file():
        raise InputError(
            f"MNIST file {path} not found. Pass the folder that contains "
            f"{TRAIN_IMAGES} and {TRAIN_LABELS}, or download it with "
            "`deepgen data download mnist`."
        )
    expected = IDX_SHA256["mnist"][path.name]
    actual = file_sha256(path)
    if actual != expected:
        raise InputError(
            f"MNIST file {path} has SHA-256 {actual}, expected {expected}. Download "
            "it again with `deepgen data download mnist`."
        )


def load_first_images(mnist_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """Return the first N_IMAGES training images (n, 784) and labels (n,) as uint8."""
    images_path = mnist_dir / TRAIN_IMAGES
    labels_path = mnist_dir / TRAIN_LABELS
    verify_idx_file(images_path)
    verify_idx_file(labels_path)

    images = read_idx(images_path, expected_magic=IMAGE_MAGIC)  # (60000, 28, 28)
    labels = read_idx(labels_path, expected_magic=LABEL_MAGIC)  # (60000,)
    images = np.ascontiguousarray(images[:N_IMAGES].reshape(N_IMAGES, -1))
    labels = np.ascontiguousarray(labels[:N_IMAGES])
    return images, labels


def write_reproducible_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write arrays as a compressed NPZ whose bytes depend only on the arrays."""
    with zipfile.ZipFile(path, "w") as archive:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, array, version=(1, 0))
            entry = zipfile.ZipInfo(f"{name}.npy", date_time=ZIP_DATE_TIME)
            entry.compress_type = zipfile.ZIP_DEFLATED
            entry.create_system = 3  # Unix, so the bytes do not depend on the OS
            entry.external_attr = 0o644 << 16
            archive.writestr(entry, buffer.getvalue(), compresslevel=ZIP_COMPRESS_LEVEL)


def build(mnist_dir: Path, out: Path) -> str:
    """Write the archive to ``out`` and return its SHA-256."""
    images, labels = load_first_images(mnist_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_reproducible_npz(out, {"images": images, "labels": labels})
    return file_sha256(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "mnist_dir",
        nargs="?",
        type=Path,
        default=default_data_dir() / "mnist",
        help="folder with the MNIST IDX .gz files (default: %(default)s)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=REPO_ROOT / "assets" / "mnist-10k.npz",
        help="archive to write (default: %(default)s)",
    )
    args = parser.parse_args(argv)

    try:
        digest = build(args.mnist_dir, args.out)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)")
    print(f"SHA-256 {digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
