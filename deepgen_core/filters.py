"""Receptive fields: what each hidden unit responds to, drawn in input space."""

from __future__ import annotations

import numpy as np
import torch

from .dbn import DBNModule
from .errors import InputError


def receptive_fields(dbn: DBNModule, layer: int) -> np.ndarray:
    """Input-space weights of each unit of hidden ``layer`` (1 is the lowest).

    Layer 1 gives its weights as they are. A higher layer is drawn through
    the linear projection W_1 W_2 ... W_layer, which ignores the sigmoids
    between layers, so it shows the direction each unit prefers rather than
    an exact preferred image. Label units of the top RBM are left out.

    Returns an array of shape (n_units of ``layer``, n_visible).
    """
    if not 1 <= layer <= dbn.n_layers:
        raise InputError(
            f"layer {layer} does not exist: this net has hidden layers 1 to "
            f"{dbn.n_layers}"
        )
    with torch.no_grad():
        projection = None
        for rbm in dbn.rbms[:layer]:
            weight = rbm.weight[: rbm.n_visible - rbm.n_labels]
            projection = weight if projection is None else projection @ weight
    return projection.T.cpu().numpy()


def scale_each(fields: np.ndarray) -> np.ndarray:
    """Scale each row to [0, 1] so that every unit's pattern shows at full contrast.

    A row whose values are all equal becomes 0.5 (mid grey).
    """
    low = fields.min(axis=1, keepdims=True)
    span = fields.max(axis=1, keepdims=True) - low
    scaled = np.full_like(fields, 0.5)
    np.divide(fields - low, span, out=scaled, where=span > 0)
    return scaled
