"""Unit SPECs: one short text form for a set of units from any layers.

Grammar::

    spec  := item ("," item)*
    item  := layer ":" range
    layer := integer          0 is the input (pixels), 1..L the hidden layers
    range := "*"              every unit of the layer
           | integer          one unit
           | integer "-" integer   units from the first to the second, inclusive

Examples: ``1:*`` (all of layer 1), ``2:0-99`` (units 0 to 99 of layer 2),
``1:*,3:0-49`` (a union), ``2:5,2:17,2:40-42`` (single units). Spaces are
ignored. The union is ordered by layer and then by unit, so the same set
always gives the same feature columns; :func:`format_units` writes the
shortest canonical SPEC for a selection.
"""

from __future__ import annotations

import re

import numpy as np

from .errors import InputError

GRAMMAR = (
    "a unit SPEC is a comma-separated list of LAYER:RANGE items, where LAYER is 0 "
    "(the input) or a hidden layer number and RANGE is * (all units), N (one unit) "
    "or A-B (units A to B inclusive), for example 1:* or 2:0-99 or 1:*,3:0-49"
)
ITEM = re.compile(r"(\d+):(\*|\d+|\d+-\d+)", re.ASCII)


class UnitSelection(dict):
    """Selected units: layer number -> sorted array of unit indices.

    ``layer_sizes`` contains the sizes of layers 0..L of the net it refers to.
    """

    layer_sizes: list[int] | None = None

    @property
    def n_units(self) -> int:
        return int(sum(len(units) for units in self.values()))

    def spec(self) -> str:
        return format_units(self, self.layer_sizes)


def parse_units(spec: str, layer_sizes: list[int]) -> UnitSelection:
    """Parse ``spec`` against a net whose layers 0..L have ``layer_sizes`` units.

    Raises :class:`InputError` that quotes the grammar for a malformed SPEC,
    and names the layer's size for a unit out of range.
    """
    text = "".join((spec or "").split())
    if not text:
        raise InputError(f"the unit SPEC is empty; {GRAMMAR}")
    chosen: dict[int, set[int]] = {}
    for item in text.split(","):
        match = ITEM.fullmatch(item)
        if not match:
            raise InputError(f"invalid unit SPEC item {item!r} in {spec!r}; {GRAMMAR}")
        layer, part = int(match.group(1)), match.group(2)
        if layer >= len(layer_sizes):
            raise InputError(
                f"layer {layer} in unit SPEC {spec!r} does not exist: this net has "
                f"layers 0 (input) to {len(layer_sizes) - 1}"
            )
        size = layer_sizes[layer]
        if part == "*":
            first, last = 0, size - 1
        elif "-" in part:
            first, last = (int(n) for n in part.split("-"))
        else:
            first = last = int(part)
        if first > last:
            raise InputError(
                f"range {part} in unit SPEC {spec!r} runs backwards; write the "
                f"smaller index first, as {last}-{first}"
            )
        if last >= size:
            raise InputError(
                f"unit {last} in unit SPEC {spec!r} is out of range: layer {layer} "
                f"has units 0 to {size - 1}"
            )
        chosen.setdefault(layer, set()).update(range(first, last + 1))
    selection = UnitSelection(
        {
            layer: np.array(sorted(units), dtype=np.int64)
            for layer, units in sorted(chosen.items())
        }
    )
    selection.layer_sizes = list(layer_sizes)
    return selection


def format_units(
    selection: dict[int, np.ndarray], layer_sizes: list[int] | None = None
) -> str:
    """Write the canonical SPEC of ``selection``, merging runs into ranges.

    With ``layer_sizes``, a whole layer is written as ``L:*``.
    """
    items = []
    for layer in sorted(selection):
        units = np.unique(np.asarray(selection[layer], dtype=np.int64))
        if not len(units):
            continue
        if layer_sizes is not None and len(units) == layer_sizes[layer]:
            items.append(f"{layer}:*")
            continue
        breaks = np.flatnonzero(np.diff(units) != 1)
        starts = np.concatenate([[0], breaks + 1])
        ends = np.concatenate([breaks, [len(units) - 1]])
        for start, end in zip(starts, ends):
            first, last = int(units[start]), int(units[end])
            items.append(
                f"{layer}:{first}" if first == last else f"{layer}:{first}-{last}"
            )
    return ",".join(items)


def select_columns(
    activations: list[np.ndarray], selection: dict[int, np.ndarray]
) -> np.ndarray:
    """Concatenate the selected units' columns, shape (n_samples, n_units)."""
    parts = [activations[layer][:, units] for layer, units in sorted(selection.items())]
    return np.concatenate(parts, axis=1)
