"""The scikit-learn estimators RBM and DBN."""

import re

import numpy as np
import pytest
import scipy.sparse
import sklearn.utils
import torch
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.pipeline import Pipeline
from sklearn.svm import LinearSVC

from deepgen_core import DBN, RBM, InputError
from deepgen_core.validation import torch_seed


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits(return_X_y=True)
    return (x / 16).astype(np.float32), y


def test_dbn_features_in_pipeline_beat_chance_by_far(digits):
    x, y = digits
    model = Pipeline(
        [
            ("dbn", DBN((128, 64), units="1:*,2:*", n_iter=8, batch_size=25)),
            ("svm", LinearSVC()),
        ]
    ).fit(x[:1400], y[:1400])
    assert model.named_steps["dbn"].transform(x[:5]).shape == (5, 192)
    assert model.score(x[1400:], y[1400:]) > 0.85


def test_params_round_trip_and_clone(digits):
    dbn = DBN((32, 16), units="2:0-7", n_iter=2)
    assert dbn.get_params()["hidden_layer_sizes"] == (32, 16)
    dbn.set_params(units="1:*", n_iter=1)
    copy = clone(dbn)
    assert copy.get_params() == dbn.get_params()
    x, _ = digits
    assert copy.fit(x[:200]).transform(x[:3]).shape == (3, 32)


def test_rbm_transform_matches_module(digits):
    x, _ = digits
    rbm = RBM(40, n_iter=3, batch_size=50, random_state=3).fit(x)
    with torch.no_grad():
        expected = rbm.module_.hidden_probs(torch.as_tensor(x[:10])).numpy()
    assert np.array_equal(rbm.transform(x[:10]), expected)
    assert rbm.components_.shape == (40, 64)
    again = RBM(40, n_iter=3, batch_size=50, random_state=3).fit(x)
    assert np.array_equal(again.components_, rbm.components_)


def test_rbm_pseudo_likelihood_improves_with_training(digits):
    x, _ = digits
    binary = (x > 0.5).astype(np.float32)
    short = RBM(64, n_iter=1, batch_size=50).fit(binary)
    long = RBM(64, n_iter=15, batch_size=50).fit(binary)
    assert long.score_samples(binary).mean() > short.score_samples(binary).mean()


def test_gaussian_rbm_learns_positive_sigma_and_samples_in_data_units(digits):
    x, _ = digits
    counts = x * 16
    rbm = RBM(
        32, visible_type="gaussian", learn_sigma=True, n_iter=5, batch_size=50
    ).fit(counts)
    sigma = rbm.module_.sigma
    assert bool((sigma > 0).all())
    assert not torch.allclose(sigma, torch.ones_like(sigma))
    sample = rbm.gibbs(counts[:200], steps=3)
    assert abs(sample.mean() - counts.mean()) < 1.5


def test_label_dbn_predicts_and_samples_chosen_class(digits):
    x, y = digits
    dbn = DBN((64, 64), use_labels=True, n_iter=10, batch_size=25).fit(
        x[:1400], y[:1400]
    )
    assert (dbn.predict(x[1400:]) == y[1400:]).mean() > 0.5
    assert dbn.sample(4, label=7, steps=20).shape == (4, 64)
    with pytest.raises(InputError, match="label 11 was not seen in fit"):
        dbn.sample(2, label=11)


@pytest.mark.parametrize(
    ("x", "message"),
    [
        (np.zeros(10), "got shape \\(10,\\). Reshape your data with X.reshape"),
        (np.zeros((10, 8, 8)), "got shape \\(10, 8, 8\\); flatten images"),
        (np.full((100, 4), 2.0), "need values in \\[0, 1\\], got values from 2 to 2"),
        (np.array([[0.5, np.nan]] * 100), "NaN or inf in 100 rows \\(first: row 0\\)"),
    ],
    ids=["1-d", "3-d", "out-of-range", "nan"],
)
def test_rbm_rejects_bad_input(x, message):
    with pytest.raises(InputError, match=message):
        RBM(4, n_iter=1, batch_size=10).fit(x)


@pytest.fixture(scope="module")
def fitted_rbm(digits):
    x, _ = digits
    return RBM(16, n_iter=1, batch_size=50).fit(x)


@pytest.fixture(scope="module")
def fitted_label_dbn(digits):
    x, y = digits
    return DBN((16, 8), use_labels=True, n_iter=1, batch_size=50).fit(x, y)


BAD_VALUES = [
    (np.full((3, 64), 2.0), "need values in \\[0, 1\\], got values from 2 to 2"),
    (
        np.array([[0.5] * 63 + [np.nan]] * 3),
        "X contains NaN or inf in 3 rows \\(first: row 0\\)",
    ),
]


@pytest.mark.parametrize(("x", "message"), BAD_VALUES, ids=["out-of-range", "nan"])
@pytest.mark.parametrize("method", ["transform", "gibbs", "score_samples"])
def test_rbm_methods_reject_invalid_values(fitted_rbm, method, x, message):
    with pytest.raises(InputError, match=message):
        getattr(fitted_rbm, method)(x)


@pytest.mark.parametrize(("x", "message"), BAD_VALUES, ids=["out-of-range", "nan"])
@pytest.mark.parametrize("method", ["transform", "activations", "predict"])
def test_dbn_methods_reject_invalid_values(fitted_label_dbn, method, x, message):
    with pytest.raises(InputError, match=message):
        getattr(fitted_label_dbn, method)(x)


def test_gaussian_rbm_names_nan_rows(digits):
    counts = digits[0][:100] * 16
    rbm = RBM(4, visible_type="gaussian", n_iter=1, batch_size=10).fit(counts)
    broken = counts.copy()
    broken[5, 3] = np.nan
    with pytest.raises(InputError, match="NaN or inf in 1 rows \\(first: row 5\\)"):
        RBM(4, visible_type="gaussian", n_iter=1, batch_size=10).fit(broken)
    broken[5, 3] = np.inf
    with pytest.raises(InputError, match="NaN or inf in 1 rows \\(first: row 5\\)"):
        rbm.transform(broken)


@pytest.mark.parametrize("method", ["transform", "gibbs", "score_samples"])
def test_rbm_rejects_other_width(fitted_rbm, method):
    narrow = np.random.default_rng(0).random((5, 30))
    assert fitted_rbm.n_features_in_ == 64
    with pytest.raises(
        InputError, match="X has 30 features, but RBM is expecting 64 features as input"
    ):
        getattr(fitted_rbm, method)(narrow)


@pytest.mark.parametrize("method", ["transform", "activations", "predict"])
def test_dbn_rejects_other_width(fitted_label_dbn, method):
    narrow = np.random.default_rng(0).random((5, 30))
    assert fitted_label_dbn.n_features_in_ == 64
    with pytest.raises(
        InputError, match="X has 30 features, but DBN is expecting 64 features as input"
    ):
        getattr(fitted_label_dbn, method)(narrow)


@pytest.mark.parametrize(
    ("shape", "unit"),
    [((0, 64), "sample(s)"), ((100, 0), "feature(s)")],
    ids=["no-rows", "no-columns"],
)
@pytest.mark.parametrize(
    "estimator", [RBM(4, n_iter=1), DBN((4, 4), n_iter=1)], ids=["rbm", "dbn"]
)
def test_fit_rejects_empty_input(estimator, shape, unit):
    message = f"X has 0 {unit} (shape={shape}) while a minimum of 1 is required"
    with pytest.raises(InputError, match=re.escape(message)):
        clone(estimator).fit(np.zeros(shape))


def test_transform_rejects_empty_input(fitted_rbm):
    with pytest.raises(
        InputError, match=re.escape("X has 0 sample(s) (shape=(0, 64))")
    ):
        fitted_rbm.transform(np.zeros((0, 64)))


def test_sparse_input_matches_dense(digits):
    x, _ = digits
    sparse = scipy.sparse.csr_matrix(x[:200])
    dense_rbm = RBM(8, n_iter=1, batch_size=50).fit(x[:200])
    sparse_rbm = RBM(8, n_iter=1, batch_size=50).fit(sparse)
    assert np.array_equal(sparse_rbm.components_, dense_rbm.components_)
    assert np.array_equal(sparse_rbm.transform(sparse), dense_rbm.transform(x[:200]))
    dense_dbn = DBN((8, 4), n_iter=1, batch_size=50).fit(x[:200])
    sparse_dbn = DBN((8, 4), n_iter=1, batch_size=50).fit(sparse)
    assert np.array_equal(sparse_dbn.transform(sparse), dense_dbn.transform(x[:200]))


def test_random_state_accepts_none_and_random_state(digits):
    x = digits[0][:200]
    assert torch_seed(3) == 3
    assert torch_seed(np.uint32(3)) == 3

    def weights(random_state):
        rbm = RBM(8, n_iter=1, batch_size=50, random_state=random_state)
        return rbm.fit(x).components_

    seven = weights(np.random.RandomState(7))
    assert np.array_equal(weights(np.random.RandomState(7)), seven)
    assert not np.array_equal(weights(np.random.RandomState(8)), seven)
    assert not np.array_equal(weights(None), weights(None))

    def features(random_state):
        dbn = DBN((8, 4), n_iter=1, batch_size=50, random_state=random_state)
        return dbn.fit(x).transform(x[:5])

    assert np.array_equal(
        features(np.random.RandomState(7)), features(np.random.RandomState(7))
    )
    assert not np.array_equal(features(None), features(None))


@pytest.mark.parametrize("random_state", ["abc", 1.5, -1])
def test_random_state_rejects_other_values(digits, random_state):
    rbm = RBM(8, n_iter=1, batch_size=50, random_state=random_state)
    with pytest.raises(InputError, match="random_state must be None, an int in"):
        rbm.fit(digits[0][:200])


def labels_with(labels: np.ndarray, row: int, value) -> np.ndarray:
    labels = labels.astype(object if value is None else float)
    labels[row] = value
    return labels


@pytest.mark.parametrize(
    ("make_labels", "message"),
    [
        (lambda y: y[:10], "X has 200 rows but y has 10 labels"),
        (lambda y: np.c_[y, y], "y must be a 1-D array of class labels, got shape"),
        (lambda y: y[:, None], "for a column vector, pass y.ravel()"),
        (
            lambda y: labels_with(y, 3, np.nan),
            "y contains NaN, inf or None in 1 rows \\(first: row 3\\)",
        ),
        (
            lambda y: labels_with(y, 4, np.inf),
            "y contains NaN, inf or None in 1 rows \\(first: row 4\\)",
        ),
        (
            lambda y: labels_with(y, 5, None),
            "y contains NaN, inf or None in 1 rows \\(first: row 5\\)",
        ),
        (lambda y: y + np.linspace(0, 0.5, len(y)), "Unknown label type: continuous"),
    ],
    ids=["short", "2-d", "column", "nan", "inf", "none", "continuous"],
)
def test_label_dbn_rejects_invalid_y(digits, make_labels, message):
    x, y = digits
    dbn = DBN((8, 4), use_labels=True, n_iter=1, batch_size=50)
    with pytest.raises(ValueError, match=message):
        dbn.fit(x[:200], make_labels(y[:200]))


INVALID_PARAMS = {
    "n_components-float": (
        RBM(2.5),
        (
            "n_components must be an int >= 1 (the number of hidden units), "
            "got 2.5 of type float"
        ),
    ),
    "n_components-str": (RBM("8"), "n_components must be an int >= 1"),
    "n_components-zero": (RBM(0), "n_components must be an int >= 1"),
    "layer-sizes-int": (
        DBN(32),
        (
            "hidden_layer_sizes must be a tuple of ints >= 1 such as (500, 500), "
            "or (32,) for one layer, got 32 of type int"
        ),
    ),
    "layer-sizes-zero": (DBN((32, 0)), "hidden_layer_sizes must be a tuple"),
    "batch-size-float": (
        RBM(4, batch_size=10.0),
        "batch_size must be an int >= 1, got 10.0 of type float",
    ),
    "n-iter-str": (RBM(4, n_iter="3"), "n_iter must be an int >= 1, got '3'"),
    "cd-k-bool": (RBM(4, cd_k=True), "cd_k must be an int >= 1, got True"),
    "visible-type": (
        RBM(4, visible_type="binary"),
        "visible_type must be one of 'bernoulli', 'gaussian', got 'binary'",
    ),
    "learning-rate-str": (
        RBM(4, learning_rate="0.1"),
        "learning_rate must be a number > 0, or None",
    ),
    "learning-rate-negative": (
        RBM(4, learning_rate=-1.0),
        "learning_rate must be a number > 0",
    ),
    "lr-schedule": (
        RBM(4, lr_schedule="cosine"),
        "lr_schedule must be one of 'constant', 'linear', got 'cosine'",
    ),
    "persistent-str": (
        RBM(4, persistent="yes"),
        "persistent must be True or False, got 'yes' of type str",
    ),
    "weight-decay-none": (
        RBM(4, weight_decay=None),
        "weight_decay must be a number >= 0, got None",
    ),
    "sparsity-target": (
        RBM(4, sparsity_target=1.5),
        "sparsity_target must be a number in (0, 1), or None",
    ),
    "learn-sigma-str": (
        RBM(4, learn_sigma="no"),
        "learn_sigma must be True or False, got 'no'",
    ),
    "dbn-learn-sigma-str": (
        DBN((8, 4), learn_sigma="no"),
        "learn_sigma must be True or False, got 'no'",
    ),
    "learn-sigma-bernoulli": (
        RBM(4, learn_sigma=True),
        (
            "learn_sigma=True learns the standard deviation of Gaussian input units; "
            "set visible_type='gaussian'"
        ),
    ),
    "dbn-learn-sigma-bernoulli": (
        DBN((8, 4), learn_sigma=True),
        "set visible_type='gaussian', or learn_sigma=False",
    ),
    "device-int": (RBM(4, device=0), "device must be 'auto', 'cpu', 'cuda'"),
    "units-int": (DBN((8, 4), units=3), "units must be a unit SPEC string"),
    "units-layer": (
        DBN((8, 4), units="3:*"),
        "layer 3 in unit SPEC '3:*' does not exist",
    ),
    "use-labels-str": (
        DBN((8, 4), use_labels="yes"),
        "use_labels must be True or False",
    ),
}


@pytest.mark.parametrize(
    ("estimator", "message"), INVALID_PARAMS.values(), ids=INVALID_PARAMS.keys()
)
def test_fit_rejects_invalid_params(digits, estimator, message):
    x, y = digits
    with pytest.raises(InputError, match=re.escape(message)):
        estimator.fit(x[:100], y[:100])
    assert not hasattr(estimator, "module_")


def test_init_stores_invalid_params_unchanged():
    assert RBM(2.5).get_params()["n_components"] == 2.5
    assert clone(DBN(32)).get_params()["hidden_layer_sizes"] == 32


def test_gaussian_dbn_learns_sigma_of_input_units(digits):
    counts = digits[0][:400] * 16

    def bottom_sigma(learn_sigma):
        dbn = DBN(
            (16, 8),
            visible_type="gaussian",
            learn_sigma=learn_sigma,
            n_iter=3,
            batch_size=50,
        ).fit(counts)
        assert dbn.get_params()["learn_sigma"] is learn_sigma
        assert dbn.transform(counts[:5]).shape == (5, 8)
        return dbn.module_.rbms[0].sigma

    learned = bottom_sigma(True)
    assert bool((learned > 0).all())
    assert not torch.allclose(learned, torch.ones_like(learned))
    fixed = bottom_sigma(False)
    assert torch.equal(fixed, torch.ones_like(fixed))


def test_gaussian_score_samples_names_existing_methods(digits):
    counts = digits[0][:200] * 16
    rbm = RBM(8, visible_type="gaussian", n_iter=1, batch_size=50).fit(counts)
    with pytest.raises(InputError) as error:
        rbm.score_samples(counts)
    message = str(error.value)
    assert "module_.free_energy or module_.reconstruction_error" in message
    assert "torch.as_tensor((X - mean_) / scale_, dtype=torch.float32)" in message
    standardised = torch.as_tensor(
        (counts - rbm.mean_) / rbm.scale_, dtype=torch.float32
    )
    with torch.no_grad():
        free_energy = rbm.module_.free_energy(standardised).numpy()
        reconstruction_error = float(rbm.module_.reconstruction_error(standardised))
    assert free_energy.shape == (200,)
    assert np.isfinite(free_energy).all()
    assert reconstruction_error > 0


def test_fit_rejects_non_numeric_input(digits):
    x = digits[0][:100]
    rbm = RBM(4, n_iter=1, batch_size=50)
    with pytest.raises(InputError, match="Complex data not supported: X must be"):
        rbm.fit(x.astype(np.complex64))
    with pytest.raises(InputError, match="could not convert string to float"):
        rbm.fit(np.full((100, 4), "a"))
    objects = np.empty((100, 4), dtype=object)
    objects[:] = [{}] * 4
    with pytest.raises(TypeError, match="argument must be a string or a real number"):
        rbm.fit(objects)
    assert not hasattr(rbm, "module_")


@pytest.mark.parametrize("estimator", [RBM(), DBN()], ids=["rbm", "dbn"])
def test_tags_declare_sparse_input_and_float32(estimator, digits):
    if not hasattr(sklearn.utils, "get_tags"):
        pytest.skip("scikit-learn before 1.6 has no get_tags")
    tags = sklearn.utils.get_tags(estimator)
    assert tags.input_tags.sparse
    assert tags.transformer_tags.preserves_dtype == ["float32"]
    x = digits[0][:100].astype(np.float64)
    features = clone(estimator).set_params(n_iter=1, batch_size=50).fit_transform(x)
    assert features.dtype == np.float32


def test_dbn_without_labels_explains_predict(digits):
    x = digits[0][:100]
    dbn = DBN((8, 4), n_iter=1, batch_size=50).fit(x)
    with pytest.raises(InputError, match="fit it with use_labels=True and y"):
        dbn.predict(x)
