"""scikit-learn estimators around the torch models.

:class:`RBM` and :class:`DBN` follow the estimator API (``fit``,
``transform``, ``get_params``, ``set_params``), so they fit in a
``Pipeline``, for example DBN features into an ``SVC``. The fitted torch
modules stay reachable as ``module_``.

Every method that takes ``X`` checks it as ``fit`` does (a 2-D array of
finite values, in [0, 1] for Bernoulli visible units) and also checks that it
has the ``n_features_in_`` columns seen in ``fit``. A scipy sparse ``X`` is
converted to a dense array first.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from .dbn import DBNConfig, DBNModule, train_dbn
from .device import make_generator, resolve_device
from .errors import InputError
from .rbm import VISIBLE_TYPES, RBMModule
from .training import (
    LR_SCHEDULES,
    RBMTrainingConfig,
    check_visible_values,
    train_rbm,
)
from .units import parse_units, select_columns
from .validation import (
    check_2d_array,
    check_labels,
    check_n_features,
    check_param,
    is_bool,
    is_finite_number,
    is_int,
    is_layer_sizes,
    torch_seed,
)


def _standardize(x: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return (np.asarray(x, dtype=np.float32) - mean) / scale


class _RBMEstimatorMixin:
    """Checks, scaling and the training config shared by RBM and DBN."""

    def __sklearn_tags__(self):
        # Read by scikit-learn 1.6 and later only.
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags

    def _check_training_params(self) -> None:
        """Raise InputError for a shared parameter of the wrong type or range."""
        rate, decay = self.learning_rate, self.weight_decay
        target = self.sparsity_target
        checks = [
            (
                "visible_type",
                self.visible_type in VISIBLE_TYPES,
                f"one of {', '.join(map(repr, VISIBLE_TYPES))}",
            ),
            (
                "learning_rate",
                rate is None or (is_finite_number(rate) and rate > 0),
                "a number > 0, or None for the default of the visible units",
            ),
            (
                "lr_schedule",
                self.lr_schedule in LR_SCHEDULES,
                f"one of {', '.join(map(repr, LR_SCHEDULES))}",
            ),
            ("batch_size", is_int(self.batch_size), "an int >= 1"),
            ("n_iter", is_int(self.n_iter), "an int >= 1"),
            ("cd_k", is_int(self.cd_k), "an int >= 1"),
            ("persistent", is_bool(self.persistent), "True or False"),
            ("learn_sigma", is_bool(self.learn_sigma), "True or False"),
            (
                "weight_decay",
                is_finite_number(decay) and decay >= 0,
                "a number >= 0",
            ),
            (
                "sparsity_target",
                target is None or (is_finite_number(target) and 0 < target < 1),
                "a number in (0, 1), or None for no sparsity penalty",
            ),
            (
                "device",
                isinstance(self.device, (str, torch.device)),
                "'auto', 'cpu', 'cuda' or a torch.device",
            ),
        ]
        for name, valid, expected in checks:
            check_param(name, getattr(self, name), valid, expected)
        if self.learn_sigma and self.visible_type != "gaussian":
            raise InputError(
                "learn_sigma=True learns the standard deviation of Gaussian input "
                "units; set visible_type='gaussian', or learn_sigma=False"
            )

    def _validate_X(self, X, *, reset: bool) -> np.ndarray:
        """Check ``X`` and return it as a float32 array.

        In ``fit`` (``reset``) the values are checked against ``visible_type``.
        Otherwise ``X`` must have the ``n_features_in_`` columns seen in
        ``fit`` and values that the fitted module's visible units can take.
        """
        x = check_2d_array(X)
        if reset:
            visible_type = self.visible_type
        else:
            check_is_fitted(self, "module_")
            check_n_features(x, self.n_features_in_, type(self).__name__)
            visible_type = self.module_.visible_type
        check_visible_values(torch.as_tensor(x), visible_type, "X")
        return x

    def _input_tensor(self, X) -> torch.Tensor:
        """Check ``X`` against the fit and return it scaled, on the module's device."""
        x = self._scaled(self._validate_X(X, reset=False))
        return torch.as_tensor(x, device=next(self.module_.parameters()).device)

    def _training_config(self) -> RBMTrainingConfig:
        return RBMTrainingConfig(
            epochs=self.n_iter,
            learning_rate=self.learning_rate,
            lr_schedule=self.lr_schedule,
            batch_size=self.batch_size,
            cd_k=self.cd_k,
            persistent=self.persistent,
            weight_decay=self.weight_decay,
            sparsity_target=self.sparsity_target,
            drop_last=True,
        )

    def _fit_scaling(self, x: np.ndarray) -> np.ndarray:
        """Standardise Gaussian input, keeping the scaling in ``mean_``/``scale_``."""
        if self.visible_type != "gaussian":
            self.mean_ = self.scale_ = None
            return x
        self.mean_ = x.mean(0)
        self.scale_ = np.where(x.std(0) > 0, x.std(0), 1).astype(np.float32)
        return _standardize(x, self.mean_, self.scale_)

    def _scaled(self, x) -> np.ndarray:
        if self.mean_ is None:
            return np.asarray(x, dtype=np.float32)
        return _standardize(x, self.mean_, self.scale_)


class RBM(_RBMEstimatorMixin, TransformerMixin, BaseEstimator):
    """Restricted Boltzmann machine trained by CD-k or PCD.

    Parameters
    ----------
    n_components : int
        Number of hidden units.
    visible_type : {"bernoulli", "gaussian"}
        Bernoulli input must lie in [0, 1]; Gaussian input is standardised
        (zero mean, unit variance per feature) inside ``fit``.
    learning_rate : float or None
        None picks 0.1 for Bernoulli and 0.01 for Gaussian input.
    lr_schedule : {"constant", "linear"}
        ``linear`` lowers the rate by equal steps to ``1 / n_iter`` of it in
        the last epoch.
    learn_sigma : bool
        Learn the standard deviation of each Gaussian input unit.
    batch_size, n_iter, cd_k, persistent, weight_decay, sparsity_target
        As in :class:`deepgen_core.training.RBMTrainingConfig`; ``n_iter`` is
        the number of epochs. Rows beyond the last whole batch of each
        shuffled epoch are skipped.
    device : {"auto", "cpu", "cuda"}
    random_state : int, numpy.random.RandomState or None
        Seed of the weight initialisation, the batch order and the Gibbs
        sampling in ``fit`` and ``score_samples``. An int gives the same
        result on every run on the same device. A ``RandomState`` draws a new
        seed from itself on each call, and None draws one from numpy's global
        random state.

    Attributes
    ----------
    module_ : RBMModule
    n_features_in_ : int
        Number of features seen in ``fit``.
    components_ : array of shape (n_components, n_features)
        The weights, as in scikit-learn's ``BernoulliRBM``.
    history_ : list of dict
        Figures of each epoch.

    Notes
    -----
    ``X`` may be a scipy sparse matrix in every method. It is converted to a
    dense float32 array, which takes 4 bytes per entry, zeros included,
    because the torch model computes with dense tensors.
    """

    def __init__(
        self,
        n_components: int = 256,
        visible_type: str = "bernoulli",
        learning_rate: float | None = None,
        lr_schedule: str = "constant",
        batch_size: int = 100,
        n_iter: int = 10,
        cd_k: int = 1,
        persistent: bool = False,
        weight_decay: float = 2e-4,
        sparsity_target: float | None = None,
        learn_sigma: bool = False,
        device: str = "auto",
        random_state: int | np.random.RandomState | None = 0,
    ) -> None:
        self.n_components = n_components
        self.learn_sigma = learn_sigma
        self.visible_type = visible_type
        self.learning_rate = learning_rate
        self.lr_schedule = lr_schedule
        self.batch_size = batch_size
        self.n_iter = n_iter
        self.cd_k = cd_k
        self.persistent = persistent
        self.weight_decay = weight_decay
        self.sparsity_target = sparsity_target
        self.device = device
        self.random_state = random_state

    def _check_params(self) -> None:
        """Raise InputError for a parameter of the wrong type or range."""
        self._check_training_params()
        check_param(
            "n_components",
            self.n_components,
            is_int(self.n_components),
            "an int >= 1 (the number of hidden units)",
        )

    def fit(self, X, y=None) -> RBM:
        """Train on ``X`` of shape (n_samples, n_features)."""
        self._check_params()
        device = resolve_device(self.device)
        x = self._fit_scaling(self._validate_X(X, reset=True))
        x = torch.as_tensor(x, device=device)
        self.module_ = RBMModule(
            x.shape[1],
            self.n_components,
            self.visible_type,
            learn_sigma=self.learn_sigma,
        ).to(device)
        generator = make_generator(torch_seed(self.random_state), device)
        self.history_ = train_rbm(self.module_, x, self._training_config(), generator)
        self.n_features_in_ = x.shape[1]
        return self

    @property
    def components_(self) -> np.ndarray:
        check_is_fitted(self, "module_")
        return self.module_.weight.T.cpu().numpy()

    def transform(self, X) -> np.ndarray:
        """Hidden probabilities ``p(h | v)``, shape (n_samples, n_components)."""
        x = self._input_tensor(X)
        with torch.no_grad():
            return self.module_.hidden_probs(x).cpu().numpy()

    def gibbs(self, X, steps: int = 1, seed: int = 0) -> np.ndarray:
        """Run ``steps`` Gibbs steps from ``X`` and return the visible sample."""
        x = self._input_tensor(X)
        generator = make_generator(seed, x.device)
        with torch.no_grad():
            v = self.module_.gibbs(x, steps, generator).cpu().numpy()
        return v if self.mean_ is None else v * self.scale_ + self.mean_

    def score_samples(self, X) -> np.ndarray:
        """Stochastic pseudo-log-likelihood of each row (Bernoulli input only)."""
        check_is_fitted(self, "module_")
        if self.module_.gaussian:
            raise InputError(
                "score_samples is defined for Bernoulli visible units only, because "
                "the pseudo-log-likelihood of Gaussian units has no closed form. "
                "For a Gaussian RBM, call module_.free_energy or "
                "module_.reconstruction_error on the standardised input "
                "torch.as_tensor((X - mean_) / scale_, dtype=torch.float32)"
            )
        x = self._input_tensor(X)
        generator = make_generator(torch_seed(self.random_state), x.device)
        with torch.no_grad():
            return self.module_.pseudo_log_likelihood(x, generator).cpu().numpy()


class DBN(_RBMEstimatorMixin, TransformerMixin, BaseEstimator):
    """Deep Belief Net pretrained greedily; ``transform`` returns chosen units.

    Parameters
    ----------
    hidden_layer_sizes : tuple of int
        Hidden layer sizes from the bottom up.
    units : str or None
        Unit SPEC of the features ``transform`` returns, such as
        ``"1:*,2:*"``; None returns the top hidden layer.
    use_labels : bool
        Join label units to the top RBM; ``fit`` then needs ``y``.
    learn_sigma : bool
        Learn the standard deviation of each Gaussian input unit, in the
        bottom RBM. Hidden layers are Bernoulli and have none.
    Other parameters as for :class:`RBM`, applied to every layer.

    Attributes
    ----------
    module_ : DBNModule
    n_features_in_ : int
        Number of features seen in ``fit``.
    history_ : list of dict
    classes_ : array of the labels seen in ``fit`` when ``use_labels``

    Notes
    -----
    ``X`` may be a scipy sparse matrix in every method. It is converted to a
    dense float32 array, which takes 4 bytes per entry, zeros included,
    because the torch model computes with dense tensors.
    """

    def __init__(
        self,
        hidden_layer_sizes: tuple[int, ...] = (500, 500),
        units: str | None = None,
        use_labels: bool = False,
        visible_type: str = "bernoulli",
        learning_rate: float | None = None,
        lr_schedule: str = "constant",
        batch_size: int = 100,
        n_iter: int = 10,
        cd_k: int = 1,
        persistent: bool = False,
        weight_decay: float = 2e-4,
        sparsity_target: float | None = None,
        learn_sigma: bool = False,
        device: str = "auto",
        random_state: int | np.random.RandomState | None = 0,
    ) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.units = units
        self.use_labels = use_labels
        self.visible_type = visible_type
        self.learning_rate = learning_rate
        self.lr_schedule = lr_schedule
        self.batch_size = batch_size
        self.n_iter = n_iter
        self.cd_k = cd_k
        self.persistent = persistent
        self.weight_decay = weight_decay
        self.sparsity_target = sparsity_target
        self.learn_sigma = learn_sigma
        self.device = device
        self.random_state = random_state

    def _check_params(self) -> None:
        """Raise InputError for a parameter of the wrong type or range."""
        self._check_training_params()
        check_param(
            "hidden_layer_sizes",
            self.hidden_layer_sizes,
            is_layer_sizes(self.hidden_layer_sizes),
            "a tuple of ints >= 1 such as (500, 500), or (32,) for one layer",
        )
        check_param(
            "units",
            self.units,
            self.units is None or isinstance(self.units, str),
            "a unit SPEC string such as '1:*,2:*', or None for the top layer",
        )
        check_param(
            "use_labels", self.use_labels, is_bool(self.use_labels), "True or False"
        )

    def fit(self, X, y=None) -> DBN:
        """Pretrain on ``X`` of shape (n_samples, n_features) and labels ``y``.

        ``y``, needed only with ``use_labels``, is an array of shape
        (n_samples,) of finite class labels.
        """
        self._check_params()
        device = resolve_device(self.device)
        x = self._fit_scaling(self._validate_X(X, reset=True))
        if self.units:
            # A SPEC that does not fit the net fails here rather than in transform.
            parse_units(self.units, [x.shape[1], *self.hidden_layer_sizes])
        x = torch.as_tensor(x, device=device)
        labels = None
        if self.use_labels:
            if y is None:
                raise InputError("use_labels=True needs y in fit(X, y)")
            y = check_labels(y, x.shape[0])
            self.classes_, encoded = np.unique(y, return_inverse=True)
            labels = torch.as_tensor(encoded, dtype=torch.int64, device=device)
        config = DBNConfig(
            layers=list(self.hidden_layer_sizes),
            labels=self.use_labels,
            visible_type=self.visible_type,
            learn_sigma=self.learn_sigma,
            seed=torch_seed(self.random_state),
            rbm=self._training_config(),
        )
        n_classes = len(self.classes_) if self.use_labels else None
        self.module_, self.history_ = train_dbn(
            x, config, y=labels, n_classes=n_classes
        )
        self.n_features_in_ = x.shape[1]
        return self

    def activations(self, X) -> list[np.ndarray]:
        """Return every layer's activity: the input, then hidden layers 1 to L."""
        x = self._input_tensor(X)
        with torch.no_grad():
            return [a.cpu().numpy() for a in self.module_.activations(x)]

    def transform(self, X) -> np.ndarray:
        """Activations of the units in ``units``, shape (n_samples, n_units)."""
        check_is_fitted(self, "module_")
        module: DBNModule = self.module_
        sizes = [module.n_visible, *module.layer_sizes]
        spec = self.units or f"{module.n_layers}:*"
        return select_columns(self.activations(X), parse_units(spec, sizes))

    def predict(self, X) -> np.ndarray:
        """Classes from the top RBM's label units (``use_labels=True`` only)."""
        check_is_fitted(self, "module_")
        if not self.module_.n_labels and self.module_.head is None:
            raise InputError(
                "this DBN has no label units, so it cannot predict classes; fit it "
                "with use_labels=True and y, or classify its transform output with "
                "a classifier after it in a Pipeline"
            )
        x = self._input_tensor(X)
        with torch.no_grad():
            index = self.module_.class_log_probs(x).argmax(1).cpu().numpy()
        return self.classes_[index]

    def sample(
        self, n_samples: int, label=None, steps: int = 500, seed: int = 0
    ) -> np.ndarray:
        """Generate ``n_samples`` inputs; ``label`` is one of ``classes_``."""
        check_is_fitted(self, "module_")
        index = None
        if label is not None:
            matches = np.flatnonzero(self.classes_ == label) if self.use_labels else []
            if not len(matches):
                raise InputError(f"label {label!r} was not seen in fit")
            index = int(matches[0])
        generator = make_generator(seed, self.module_.device)
        samples, _ = self.module_.generate(n_samples, index, steps, generator)
        samples = samples.cpu().numpy()
        return samples if self.mean_ is None else samples * self.scale_ + self.mean_
