"""Checks of the estimators' input arrays and seeds, in scikit-learn's conventions.

Each check raises :class:`~deepgen_core.errors.InputError`, a ``ValueError``,
with a message that names the problem and the fix.
"""

from __future__ import annotations

import numbers

import numpy as np
import scipy.sparse
from sklearn.utils import check_random_state

from .errors import InputError


def check_2d_array(X) -> np.ndarray:
    """Return ``X`` as a float32 array of shape (n_samples, n_features).

    A scipy sparse matrix is converted to a dense array. Raises InputError
    for input that is not numeric, not 2-D or empty.
    """
    if scipy.sparse.issparse(X):
        X = X.toarray()
    try:
        array = np.asarray(X, dtype=np.float32)
    except (TypeError, ValueError) as error:
        raise InputError(
            f"X must be a numeric array of shape (n_samples, n_features); "
            f"converting it to float32 failed: {error}"
        ) from error
    if array.ndim != 2:
        raise InputError(
            f"expected a 2-D array of shape (n_samples, n_features), got shape "
            f"{array.shape}; flatten images to one row each"
        )
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise InputError(
            f"X is empty (shape {array.shape}); pass at least one row and one column"
        )
    return array


def check_n_features(x: np.ndarray, n_features_in: int, estimator: str) -> None:
    """Raise InputError unless ``x`` has the ``n_features_in`` columns seen in fit."""
    if x.shape[1] != n_features_in:
        raise InputError(
            f"X has {x.shape[1]} features, but {estimator} was fitted with "
            f"{n_features_in} features; pass rows of {n_features_in} values, as in fit"
        )


def torch_seed(random_state) -> int:
    """Derive the seed of torch's generator from an estimator's ``random_state``.

    An int is used unchanged, which keeps the weights that earlier versions
    fitted with that seed. None draws a seed from numpy's global random state, and a
    ``RandomState`` draws one from itself, as in scikit-learn.
    """
    try:
        rng = check_random_state(random_state)
    except ValueError as error:
        raise InputError(
            f"random_state must be None, an int in [0, 2**32 - 1] or a "
            f"numpy.random.RandomState, got {random_state!r}"
        ) from error
    if isinstance(random_state, numbers.Integral):
        return int(random_state)
    return int(rng.randint(np.iinfo(np.int32).max))
