"""Atomic file writes and safetensors/JSON storage.

Tensors go to safetensors files and everything else to JSON, so loading a
checkpoint never unpickles anything. Every write goes to a temporary file in
the same folder that is then renamed over the target, so a crash or a full
disk leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes

from .errors import InputError

logger = logging.getLogger(__name__)

TEMPORARY_NAME_TRIES = 100
"""Random names tried for a temporary file before giving up."""


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename.

    The file gets the usual mode of a new file (0666 less the process
    umask), which the rename keeps.
    """
    path = Path(path)
    fd, tmp = _create_temporary_file(path)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _create_temporary_file(path: Path) -> tuple[int, Path]:
    """Create an empty ``.NAME.RANDOM.tmp`` file beside ``path``.

    Returns its file descriptor and path. The mode is 0666 less the umask,
    whereas ``tempfile.mkstemp`` uses 0600 whatever the umask, which would
    hide run folders from other users.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(TEMPORARY_NAME_TRIES):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(8)}.tmp"
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary file name beside {path}")


def atomic_write_json(path: str | os.PathLike, value: object) -> None:
    """Write ``value`` as indented JSON to ``path`` atomically."""
    text = json.dumps(value, indent=2, sort_keys=True, allow_nan=False)
    atomic_write_bytes(path, (text + "\n").encode())


def read_json(path: str | os.PathLike) -> dict:
    """Read a JSON object, raising :class:`InputError` when it is damaged."""
    path = Path(path)
    try:
        value = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"file {path} was not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InputError(
            f"file {path} is not valid JSON ({error}); it was damaged, restore it "
            "from a copy of the run or train the run again"
        ) from None
    if not isinstance(value, dict):
        raise InputError(
            f"file {path} must hold a JSON object, found {type(value).__name__}"
        )
    return value


def save_tensors(path: str | os.PathLike, tensors: dict[str, torch.Tensor]) -> None:
    """Save tensors to a safetensors file atomically (moved to the CPU first)."""
    cpu = {name: t.detach().to("cpu").contiguous() for name, t in tensors.items()}
    atomic_write_bytes(path, save_safetensors_bytes(cpu))


def read_tensor_shapes(path: str | os.PathLike) -> dict[str, tuple[int, ...]]:
    """Read the shape of each tensor in a safetensors file from its header alone.

    Raises :class:`InputError` when the file is missing or damaged.
    """
    path = Path(path)
    with tensor_file_errors(path), safe_open(path, framework="pt") as tensors:
        names = tensors.keys()
        return {name: tuple(tensors.get_slice(name).get_shape()) for name in names}


def load_tensors(
    path: str | os.PathLike, device: torch.device | str = "cpu"
) -> dict[str, torch.Tensor]:
    """Load a safetensors file, raising :class:`InputError` when it is damaged."""
    path = Path(path)
    with tensor_file_errors(path):
        tensors = load_safetensors_bytes(path.read_bytes())
    return {name: t.to(device) for name, t in tensors.items()}


@contextlib.contextmanager
def tensor_file_errors(path: Path) -> Iterator[None]:
    """Turn a missing or unreadable safetensors file into one :class:`InputError`."""
    try:
        yield
    except FileNotFoundError:
        raise InputError(f"tensor file {path} was not found") from None
    except (SafetensorError, ValueError, OSError) as error:
        raise InputError(
            f"tensor file {path} could not be read as safetensors ({error}); it "
            "was damaged, restore it from a copy of the run or train again"
        ) from None
