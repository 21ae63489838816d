"""2-D projections (UMAP and PCA) of chosen units' activations.

UMAP's numba functions compile on their first call, which takes tens of
seconds; :func:`warm_up_umap` pays that cost once, in the worker's
long-lived process, before any user asks for a projection.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time

import numpy as np

from .errors import InputError

logger = logging.getLogger(__name__)

METHODS = ("umap", "pca")
METRICS = ("euclidean", "cosine", "manhattan", "correlation")
UMAP_EPOCHS = 200


def check_embedding_params(
    method: str, n_neighbors: int, min_dist: float, metric: str
) -> None:
    """Raise :class:`InputError` for parameters no projection could use."""
    if method not in METHODS:
        raise InputError(f"unknown projection {method!r}; valid choices are umap, pca")
    if metric not in METRICS:
        raise InputError(
            f"unknown metric {metric!r}; valid choices are {', '.join(METRICS)}"
        )
    if n_neighbors < 2:
        raise InputError(f"UMAP needs at least 2 neighbours, got {n_neighbors}")
    if not 0 <= min_dist <= 1:
        raise InputError(f"minimum distance must be in [0, 1], got {min_dist}")


def check_projection_input(features: np.ndarray) -> np.ndarray:
    """Return ``features`` as float32, or raise InputError if it cannot be projected.

    Fewer than three rows, no columns, or rows that are all identical cannot
    be projected.
    """
    features = np.asarray(features, dtype=np.float32)
    if features.ndim != 2 or features.shape[1] == 0:
        raise InputError("the unit selection is empty; choose at least one unit")
    n_samples = features.shape[0]
    if n_samples < 3:
        raise InputError(
            f"a projection needs at least 3 points, got {n_samples}; choose more images"
        )
    if np.ptp(features, axis=0).max() == 0:
        raise InputError(
            "every chosen unit has the same value for all these images, so there is "
            "nothing to project; choose other units"
        )
    return features


def project(
    features: np.ndarray,
    method: str = "umap",
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    metric: str = "euclidean",
    seed: int = 0,
) -> np.ndarray:
    """Project rows of ``features`` (n_samples, n_units) to 2-D, shape (n_samples, 2).

    Fewer than three rows, or rows that are all identical, cannot be
    projected and raise :class:`InputError`. With fewer rows than
    ``n_neighbors + 1``, UMAP uses ``n_samples - 1`` neighbours.
    """
    check_embedding_params(method, n_neighbors, min_dist, metric)
    features = check_projection_input(features)
    n_samples = features.shape[0]
    if method == "pca":
        from sklearn.decomposition import PCA

        n_components = min(2, features.shape[1])
        coords = PCA(n_components=n_components, random_state=seed).fit_transform(
            features
        )
        if n_components == 1:
            coords = np.column_stack([coords[:, 0], np.zeros(n_samples)])
        return coords.astype(np.float32)

    import umap

    neighbours = min(n_neighbors, n_samples - 1)
    reducer = umap.UMAP(
        n_neighbors=neighbours,
        min_dist=min_dist,
        metric=metric,
        random_state=seed,
        # Small inputs make the spectral start fail; a random start always works.
        init="spectral" if n_samples > neighbours + 2 else "random",
        # umap-learn 0.5 runs 500 epochs below 10,000 rows and 200 above; 200
        # throughout keeps a 2,000-image map to about 3 s on two cores.
        n_epochs=UMAP_EPOCHS,
    )
    return reducer.fit_transform(features).astype(np.float32)


def warm_up_umap() -> float:
    """Compile UMAP's numba functions on a small random input; return seconds."""
    started = time.perf_counter()
    try:
        project(np.random.default_rng(0).random((64, 8)), "umap", n_neighbors=5)
    except ImportError:
        logger.warning("umap-learn is not installed; UMAP projections are unavailable")
    seconds = time.perf_counter() - started
    logger.info("UMAP warm-up took %.1f s", seconds)
    return seconds


def embedding_key(params: dict) -> str:
    """Return a short stable name for one projection's parameters."""
    text = json.dumps(params, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
