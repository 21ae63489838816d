"""Image grids of samples, filters and inputs, written as PNG files."""

from __future__ import annotations

import io
import math
import os

import numpy as np
from PIL import Image

from .checkpoint import atomic_write_bytes
from .errors import InputError


def image_grid(
    images: np.ndarray,
    image_shape: tuple[int, int],
    n_columns: int | None = None,
    padding: int = 1,
) -> np.ndarray:
    """Tile flat images into one uint8 picture.

    Parameters
    ----------
    images : array of shape (n_images, height * width)
        Intensities in [0, 1]; values outside are clipped.
    image_shape : (height, width)
    n_columns : int, default the ceiling of the square root of n_images

    Returns
    -------
    grid : uint8 array of shape (rows * (height + padding) + padding,
        n_columns * (width + padding) + padding)
    """
    height, width = image_shape
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 2 or images.shape[1] != height * width:
        raise InputError(
            f"cannot tile images of shape {images.shape} as {height}x{width} "
            "pictures; pass one flattened image per row"
        )
    n = images.shape[0]
    n_columns = n_columns or max(1, math.ceil(math.sqrt(n)))
    n_rows = max(1, math.ceil(n / n_columns))
    grid = np.full(
        (
            n_rows * (height + padding) + padding,
            n_columns * (width + padding) + padding,
        ),
        0.5,
        dtype=np.float32,
    )
    for index, image in enumerate(images):
        row, column = divmod(index, n_columns)
        top = padding + row * (height + padding)
        left = padding + column * (width + padding)
        grid[top : top + height, left : left + width] = image.reshape(height, width)
    return (np.clip(grid, 0, 1) * 255).round().astype(np.uint8)


def save_png(path: str | os.PathLike, picture: np.ndarray, scale: int = 2) -> None:
    """Write a uint8 grey picture to ``path``, enlarged ``scale`` times."""
    image = Image.fromarray(picture, mode="L")
    if scale > 1:
        image = image.resize(
            (image.width * scale, image.height * scale), Image.Resampling.NEAREST
        )
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    atomic_write_bytes(path, buffer.getvalue())
