"""Device choice and seeded random generators."""

from __future__ import annotations

import torch

from .errors import InputError

DEVICE_CHOICES = ("auto", "cpu", "cuda")


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
    generator.manual_seed(int(seed))
    return generator
