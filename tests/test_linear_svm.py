"""The PyTorch linear SVM against scikit-learn's LinearSVC on the same objective."""

import warnings

import numpy as np
import pytest
from sklearn.svm import LinearSVC

from deepgen_core.data import load_dataset
from deepgen_core.errors import InputError
from deepgen_core.linear_svm import TorchLinearSVC


def liblinear_reference(x, y, c):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return LinearSVC(C=c, dual=False, tol=1e-8, max_iter=100_000).fit(x, y)


def objective_at(model, x, y, c):
    """Our objective evaluated at another model's weights."""
    probe = TorchLinearSVC(C=c)
    probe.classes_ = model.classes_
    probe.coef_ = model.coef_.astype(np.float32)
    probe.intercept_ = model.intercept_.astype(np.float32)
    return probe.objective(x, y)


@pytest.mark.parametrize("c", [0.1, 1.0])
def test_multiclass_optimum_matches_liblinear(c):
    data = load_dataset("digits")
    ours = TorchLinearSVC(C=c).fit(data.x_train, data.y_train)
    reference = liblinear_reference(data.x_train, data.y_train, c)
    best = objective_at(reference, data.x_train, data.y_train, c)
    assert ours.objective(data.x_train, data.y_train) <= best * (1 + 1e-4)
    agreement = (ours.predict(data.x_test) == reference.predict(data.x_test)).mean()
    assert agreement >= 0.99


def test_two_classes_fit_one_hyperplane():
    data = load_dataset("digits")
    rows = np.isin(data.y_train, (3, 8))
    x, y = data.x_train[rows], data.y_train[rows]
    ours = TorchLinearSVC(C=1.0).fit(x, y)
    reference = liblinear_reference(x, y, 1.0)
    assert ours.coef_.shape == (1, x.shape[1])
    assert set(np.unique(ours.predict(x))) == {3, 8}
    assert ours.objective(x, y) <= objective_at(reference, x, y, 1.0) * (1 + 1e-4)


def test_single_class_is_rejected():
    with pytest.raises(InputError, match="at least two classes"):
        TorchLinearSVC().fit(np.eye(4, dtype=np.float32), np.zeros(4, dtype=int))
