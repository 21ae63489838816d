"""Device choice and seeded random generators."""

from __future__ import annotations

import operator

import torch

from .errors import InputError

DEVICE_CHOICES = ("auto", "cpu", "cuda")
MAX_SEED = 2**63 - 1
"""Largest seed: it fits a signed 64-bit integer and an exact JSON number."""


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """Return the torch device for ``name``: ``auto`` picks CUDA when present."""
    if isinstance(name, torch.device):
        return name
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise InputError(
                f"device {name!r} was requested but this machine has no CUDA GPU "
                "that torch can use; pass --device cpu or --device auto"
            )
        return torch.device(name)
    raise InputError(
        f"unknown device {name!r}; valid choices are {', '.join(DEVICE_CHOICES)}"
    )


def make_generator(seed: int, device: torch.device) -> torch.Generator:
    """Create a random generator on ``device`` seeded with ``seed``.

    Every random draw of a training run comes from this one generator, so the
    same seed on the same device gives the same weights.
    """
    generator = torch.Generator(device=device)
    generator.manual_seed(check_seed(seed))
    return generator


def check_seed(seed: int) -> int:
    """Return ``seed`` as an int, or raise :class:`InputError` if not in 0..MAX_SEED."""
    try:
        value = operator.index(seed)
    except TypeError:
        value = None
    if isinstance(seed, bool) or value is None or not 0 <= value <= MAX_SEED:
        raise InputError(
            f"seed {seed!r} is not a whole number from 0 to {MAX_SEED}; choose one "
            "in that range"
        )
    return value
