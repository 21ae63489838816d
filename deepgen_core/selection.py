"""Choosing hidden units: rankings, top-k and random subsets, as unit SPECs.

Every function returns a SPEC in the grammar of :mod:`deepgen_core.units`, so
a selection made here can be typed, edited and passed to ``deepgen probe``.
"""

from __future__ import annotations

import numpy as np
from sklearn.feature_selection import f_classif

from .errors import InputError
from .units import format_units, parse_units

CRITERIA = {
    "anova-f": "ANOVA F-score of the unit's activation against the labels",
    "variance": "variance of the unit's activation over the training images",
}


def score_units(
    activations: np.ndarray, labels: np.ndarray | None, criterion: str
) -> np.ndarray:
    """Score each column of ``activations`` (n_samples, n_units) by ``criterion``.

    Returns an array of shape (n_units,); higher is better. A unit that never
    changes gets an F-score of 0 rather than NaN.
    """
    if criterion not in CRITERIA:
        raise InputError(
            f"unknown ranking criterion {criterion!r}; valid choices are "
            f"{', '.join(CRITERIA)}"
        )
    if criterion == "variance":
        return activations.var(axis=0)
    if labels is None or len(np.unique(labels)) < 2:
        raise InputError(
            "the ANOVA F-score needs labels of at least two classes; rank by "
            "variance instead"
        )
    with np.errstate(divide="ignore", invalid="ignore"):
        scores, _ = f_classif(activations, labels)
    return np.nan_to_num(scores, nan=0.0, posinf=0.0)


def top_units(layer: int, scores: np.ndarray, k: int, layer_sizes: list[int]) -> str:
    """SPEC of the ``k`` best-scoring units of ``layer``."""
    _check_count(k, len(scores), layer)
    # A stable sort keeps ties in unit order, so the result is reproducible.
    best = np.argsort(-scores, kind="stable")[:k]
    return format_units({layer: best}, layer_sizes)


def random_units(
    layers: list[int], k: int, layer_sizes: list[int], seed: int = 0
) -> str:
    """SPEC of ``k`` units drawn without replacement from the pooled ``layers``."""
    if not layers:
        raise InputError("choose at least one layer to draw random units from")
    pool = [(layer, unit) for layer in layers for unit in range(layer_sizes[layer])]
    _check_count(k, len(pool), ", ".join(str(layer) for layer in layers))
    rows = np.random.default_rng(seed).choice(len(pool), size=k, replace=False)
    chosen: dict[int, list[int]] = {}
    for row in rows:
        layer, unit = pool[row]
        chosen.setdefault(layer, []).append(unit)
    return format_units(
        {layer: np.array(units) for layer, units in chosen.items()}, layer_sizes
    )


def merge_specs(first: str, second: str, layer_sizes: list[int]) -> str:
    """SPEC of the union of two SPECs; an empty ``first`` gives ``second``."""
    if not first.strip():
        return parse_units(second, layer_sizes).spec()
    return parse_units(f"{first},{second}", layer_sizes).spec()


def _check_count(k: int, available: int, layer: int | str) -> None:
    if not 1 <= k <= available:
        raise InputError(
            f"cannot choose {k} units from layer {layer}, which has {available}; "
            f"choose between 1 and {available}"
        )
