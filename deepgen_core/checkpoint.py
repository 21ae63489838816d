"""Atomic file writes and safetensors/JSON storage.

Tensors go to safetensors files and everything else to JSON, so loading a
checkpoint never unpickles anything. Every write goes to a temporary file in
the same folder that is then renamed over the target, so a crash or a full
disk leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes

from .errors import InputError

logger = logging.getLogger(__name__)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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


def load_tensors(
    path: str | os.PathLike, device: torch.device | str = "cpu"
) -> dict[str, torch.Tensor]:
    """Load a safetensors file, raising :class:`InputError` when it is damaged."""
    path = Path(path)
    try:
        tensors = load_safetensors_bytes(path.read_bytes())
    except FileNotFoundError:
        raise InputError(f"tensor file {path} was not found") from None
    except (SafetensorError, ValueError, OSError) as error:
        raise InputError(
            f"tensor file {path} could not be read as safetensors ({error}); it "
            "was damaged, restore it from a copy of the run or train again"
        ) from None
    return {name: t.to(device) for name, t in tensors.items()}
