"""Checks of the estimators' parameters, inputs, labels and seeds.

They follow scikit-learn's conventions: parameters are checked in ``fit``, and
every method checks ``X``.

The checks raise ``ValueError``: deepgen's
:class:`~deepgen_core.errors.InputError`, with a message that names the problem
and the fix, or scikit-learn's own for continuous labels.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import scipy.sparse
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets

from .errors import InputError


def check_2d_array(X) -> np.ndarray:
    """Return ``X`` as a float32 array of shape (n_samples, n_features).

    A scipy sparse matrix is converted to a dense array. Raises InputError
    for input that is complex, not numeric, not 2-D or empty, and TypeError,
    as scikit-learn does, for objects that are not numbers or strings.
    """
    if scipy.sparse.issparse(X):
        X = X.toarray()
    message = "X must be a numeric array of shape (n_samples, n_features)"
    try:
        array = np.asarray(X)
        if array.dtype.kind != "c":
            array = array.astype(np.float32, copy=False)
    except TypeError as error:
        raise TypeError(
            f"{message}; converting it to float32 failed: {error}"
        ) from error
    except ValueError as error:
        raise InputError(
            f"{message}; converting it to float32 failed: {error}"
        ) from error
    if array.dtype.kind == "c":
        raise InputError(
            f"Complex data not supported: {message}, got complex values; pass "
            "the real part X.real or the magnitude abs(X)"
        )
    if array.ndim > 2:
        raise InputError(
            f"expected a 2-D array of shape (n_samples, n_features), got shape "
            f"{array.shape}; flatten images to one row each"
        )
    if array.ndim < 2:
        raise InputError(
            f"expected a 2-D array of shape (n_samples, n_features), got shape "
            f"{array.shape}. Reshape your data with X.reshape(1, -1) for a single "
            "sample or X.reshape(-1, 1) for a single feature"
        )
    n_samples, n_features = array.shape
    if n_samples == 0:
        raise InputError(
            f"X has 0 sample(s) (shape={array.shape}) while a minimum of 1 is "
            "required; pass at least one row"
        )
    if n_features == 0:
        raise InputError(
            f"X has 0 feature(s) (shape={array.shape}) while a minimum of 1 is "
            "required; pass at least one column"
        )
    return array


def check_n_features(x: np.ndarray, n_features_in: int, estimator: str) -> None:
    """Raise InputError unless ``x`` has the ``n_features_in`` columns seen in fit."""
    if x.shape[1] != n_features_in:
        raise InputError(
            f"X has {x.shape[1]} features, but {estimator} is expecting "
            f"{n_features_in} features as input, the number seen in fit"
        )


def check_labels(y, n_samples: int) -> np.ndarray:
    """Return the class labels ``y`` as a 1-D array with one label per row of X.

    Raises InputError for a ``y`` of another shape or length, or with NaN,
    inf or None among the labels. Continuous values raise scikit-learn's
    ValueError for regression targets, as its classifiers do.
    """
    y = np.asarray(y)
    if y.ndim != 1:
        raise InputError(
            f"y must be a 1-D array of class labels, got shape {y.shape}; pass one "
            "label per row of X (for a column vector, pass y.ravel())"
        )
    if len(y) != n_samples:
        raise InputError(
            f"X has {n_samples} rows but y has {len(y)} labels; pass one label per "
            "row of X"
        )
    missing = np.flatnonzero(_missing_labels(y))
    if len(missing):
        raise InputError(
            f"y contains NaN, inf or None in {len(missing)} rows (first: row "
            f"{missing[0]}); drop those rows from X and y or give them a class"
        )
    check_classification_targets(y)
    return y


def _missing_labels(y: np.ndarray) -> np.ndarray:
    if y.dtype.kind in "fc":
        return ~np.isfinite(y)
    if y.dtype.kind != "O":
        return np.zeros(len(y), dtype=bool)
    return np.array(
        [
            label is None
            or (isinstance(label, (float, np.floating)) and not math.isfinite(label))
            for label in y
        ],
        dtype=bool,
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


def check_param(name: str, value, valid: bool, expected: str) -> None:
    """Raise InputError naming the estimator parameter ``name`` unless ``valid``."""
    if not valid:
        raise InputError(
            f"{name} must be {expected}, got {value!r} of type {type(value).__name__}"
        )


def is_int(value, minimum: int = 1) -> bool:
    """Tell whether ``value`` is an int (not a bool) of at least ``minimum``."""
    return (
        isinstance(value, numbers.Integral)
        and not isinstance(value, (bool, np.bool_))
        and value >= minimum
    )


def is_number(value) -> bool:
    """Tell whether ``value`` is a real number (not a bool)."""
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def is_finite_number(value) -> bool:
    """Tell whether ``value`` is a finite real number (not a bool)."""
    return is_number(value) and math.isfinite(value)


def is_bool(value) -> bool:
    return isinstance(value, (bool, np.bool_))


def is_layer_sizes(value) -> bool:
    """Tell whether ``value`` is a non-empty sequence of ints of at least 1."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    return (
        isinstance(value, (tuple, list))
        and len(value) > 0
        and all(is_int(size) for size in value)
    )
