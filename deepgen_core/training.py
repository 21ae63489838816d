"""Contrastive divergence (CD-k) and persistent CD training of one RBM.

The updates are written out by hand and run without autograd. One step on a
batch ``v0`` of shape (batch, n_visible):

1. positive phase: ``p(h | v0)``;
2. negative phase: ``k`` Gibbs steps, started from a sample of ``h`` given
   ``v0`` (CD-k) or from the persistent chains (PCD);
3. the update ``<v h>_data - <v h>_model`` with momentum, L2 weight decay on
   ``W`` and an optional sparsity penalty on the hidden units.

CD-k follows a biased direction: it approaches the log-likelihood gradient
only as ``k`` grows. PCD's chains are not reset between updates, so with a
small learning rate they track the model distribution and the negative
statistics approach the model's expectations.

References
----------
G. E. Hinton, "Training products of experts by minimizing contrastive
divergence", Neural Computation 14(8), 2002.
T. Tieleman, "Training restricted Boltzmann machines using approximations to
the likelihood gradient", ICML 2008.
G. E. Hinton, "A practical guide to training restricted Boltzmann machines",
UTML TR 2010-003, 2010 (the default hyperparameters).
"""

from __future__ import annotations

import logging
import math
import time
import typing
from dataclasses import asdict, dataclass, fields, is_dataclass

import torch

from .errors import InputError, TrainingDiverged
from .progress import (
    Progress,
    ProgressCallback,
    StopCheck,
    check_stop,
    format_figures,
    report,
)
from .rbm import RBMModule, sample_bernoulli

logger = logging.getLogger(__name__)

MONITOR_ROWS = 1000
"""Rows of training and validation data used for the per-epoch figures."""


LR_SCHEDULES = ("constant", "linear")
"""Names of the learning-rate schedules of CD-k / PCD training."""

FLOAT32_MAX = torch.finfo(torch.float32).max
"""Largest learning rate the float32 updates can hold."""


@dataclass
class RBMTrainingConfig:
    """Hyperparameters of CD-k / PCD training.

    The defaults follow Hinton's practical guide: batches of 100, momentum
    0.5 for the first 5 epochs and 0.9 after, and weight cost 2e-4. The
    learning rate is 0.1, or 0.01 for Gaussian visible units, which need
    one about ten times smaller.
    """

    epochs: int = 10
    learning_rate: float | None = None
    batch_size: int = 100
    cd_k: int = 1
    persistent: bool = False
    initial_momentum: float = 0.5
    momentum: float = 0.9
    momentum_switch_epoch: int = 5
    weight_decay: float = 2e-4
    sparsity_target: float | None = None
    sparsity_cost: float = 0.1
    sparsity_decay: float = 0.9
    sample_visible: bool = False
    """Use sampled rather than mean visible states at the last CD step."""
    drop_last: bool = False
    """Skip the last partial batch when the data size is not a multiple."""
    lr_schedule: str = "constant"
    """``constant``, or ``linear``: the learning rate falls by equal steps
    from its full value in the first epoch to ``1 / epochs`` of it in the
    last. With a constant rate, PCD's weights keep moving with its
    persistent chains until training stops, and a decaying rate lets them
    settle."""

    def lr_for(self, visible_type: str) -> float:
        if self.learning_rate is not None:
            return self.learning_rate
        return 0.01 if visible_type == "gaussian" else 0.1

    def lr_factor(self, epoch: int) -> float:
        """Multiplier of the learning rate in ``epoch``, counted from 1."""
        if self.lr_schedule == "linear":
            return (self.epochs - epoch + 1) / self.epochs
        return 1.0

    def momentum_at(self, epoch: int) -> float:
        """Momentum for ``epoch``, counted from 1."""
        if epoch <= self.momentum_switch_epoch:
            return self.initial_momentum
        return self.momentum

    def validate(self) -> None:
        """Raise :class:`InputError` for values no training run could use."""
        checks = [
            (self.epochs >= 1, f"epochs must be at least 1, got {self.epochs}"),
            (
                self.batch_size >= 1,
                f"batch size must be at least 1, got {self.batch_size}",
            ),
            (self.cd_k >= 1, f"cd-k must be at least 1, got {self.cd_k}"),
            (
                self.learning_rate is None or 0 < self.learning_rate <= FLOAT32_MAX,
                (
                    "learning rate must be a positive number that float32 can hold, "
                    f"got {self.learning_rate}"
                ),
            ),
            (
                0 <= self.initial_momentum < 1 and 0 <= self.momentum < 1,
                (
                    "momentum must be in [0, 1), got "
                    f"{self.initial_momentum} and {self.momentum}"
                ),
            ),
            (
                self.lr_schedule in LR_SCHEDULES,
                (
                    f"learning-rate schedule must be one of {', '.join(LR_SCHEDULES)}, "
                    f"got {self.lr_schedule!r}"
                ),
            ),
            (
                self.weight_decay >= 0,
                f"weight decay must be >= 0, got {self.weight_decay}",
            ),
            (
                self.sparsity_target is None or 0 < self.sparsity_target < 1,
                f"sparsity target must be in (0, 1), got {self.sparsity_target}",
            ),
            (
                0 <= self.sparsity_decay < 1,
                f"sparsity decay must be in [0, 1), got {self.sparsity_decay}",
            ),
            (
                self.sparsity_cost >= 0,
                f"sparsity cost must be >= 0, got {self.sparsity_cost}",
            ),
            (
                self.momentum_switch_epoch >= 0,
                (
                    "the momentum switch epoch must be >= 0, got "
                    f"{self.momentum_switch_epoch}"
                ),
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise InputError(message)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> RBMTrainingConfig:
        """Build the settings from ``values``, ignoring unknown keys.

        Raises :class:`InputError` when a value has the wrong type.
        """
        check_setting_types(cls, values)
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


# Names of the JSON types of settings, as error messages write them.
TYPE_NAMES = {
    bool: "true or false",
    int: "an integer",
    float: "a number",
    str: "a string",
    dict: "an object",
}
LIST_ITEM_NAMES = {
    bool: "true or false values",
    int: "integers",
    float: "numbers",
    str: "strings",
}


def check_setting_types(cls: type, values: object) -> None:
    """Raise :class:`InputError` unless ``values`` fit the fields of dataclass ``cls``.

    ``values`` must be a dict, and each key that names a field needs a value
    of the field's type as read from JSON. An int counts as a float, but a
    bool counts as neither. A nested dataclass is a dict.
    """
    if not isinstance(values, dict):
        raise InputError(f"settings must be an object, got {values!r}")
    hints = typing.get_type_hints(cls)
    for name, value in values.items():
        if name in hints and not _has_type(value, hints[name]):
            raise InputError(
                f"setting {name!r} must be {_type_name(hints[name])}, got {value!r}"
            )


def _has_type(value: object, hint: object) -> bool:
    if typing.get_origin(hint) is list:
        (item,) = typing.get_args(hint)
        return isinstance(value, list) and all(_has_type(v, item) for v in value)
    if typing.get_args(hint):
        return any(_has_type(value, option) for option in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if is_dataclass(hint):
        return isinstance(value, dict)
    if isinstance(value, bool):
        return hint is bool
    if hint is float:
        return isinstance(value, (int, float))
    return isinstance(value, hint)


def _type_name(hint: object) -> str:
    if typing.get_origin(hint) is list:
        (item,) = typing.get_args(hint)
        return f"a list of {LIST_ITEM_NAMES[item]}"
    if typing.get_args(hint):
        return " or ".join(_type_name(option) for option in typing.get_args(hint))
    if hint is type(None):
        return "null"
    return TYPE_NAMES[dict if is_dataclass(hint) else hint]


def check_visible_values(
    x: torch.Tensor, visible_type: str, name: str = "training data"
) -> None:
    """Raise :class:`InputError` when ``x`` has values its visible units cannot take.

    Every value must be finite, and Bernoulli units need values in [0, 1].
    ``name`` is how the message refers to ``x``.
    """
    finite = torch.isfinite(x)
    if not bool(finite.all()):
        bad_rows = (~finite).any(1).nonzero().flatten()
        raise InputError(
            f"{name} contains NaN or inf in {len(bad_rows)} rows "
            f"(first: row {int(bad_rows[0])}); remove or impute those values"
        )
    if visible_type == "bernoulli":
        low, high = float(x.min()), float(x.max())
        if low < 0 or high > 1:
            raise InputError(
                f"Bernoulli visible units need values in [0, 1], got values from "
                f"{low:g} to {high:g}; scale the data to [0, 1] (pixels: divide by "
                "255) or use Gaussian visible units on standardised data"
            )


def check_training_data(
    x: torch.Tensor, n_visible: int, visible_type: str, config: RBMTrainingConfig
) -> None:
    """Raise :class:`InputError` when ``x`` cannot train an RBM with ``config``."""
    if x.ndim != 2:
        raise InputError(
            f"training data must be a 2-D array of shape (n_samples, n_features), "
            f"got shape {tuple(x.shape)}; flatten images to one row each"
        )
    if x.shape[1] != n_visible:
        raise InputError(
            f"training data has {x.shape[1]} features per row but the RBM has "
            f"{n_visible} visible units; use data with {n_visible} columns"
        )
    check_visible_values(x, visible_type)
    n, batch = x.shape[0], config.batch_size
    if batch > n:
        raise InputError(
            f"batch size {batch} is larger than the {n} training rows; "
            f"use a batch size of at most {n}"
        )
    if n % batch and not config.drop_last:
        raise InputError(
            f"the {n} training rows are not a multiple of the batch size {batch}, "
            f"so the last batch would be short; {batch_size_advice(n, batch)}"
        )


def batch_size_advice(n_rows: int, batch_size: int) -> str:
    """Suggest batch sizes within a factor of 2 that divide ``n_rows``, or drop_last.

    Returns the second half of the error for a batch size that does not
    divide ``n_rows``.
    """
    low, high = math.ceil(batch_size / 2), min(n_rows, batch_size * 2)
    divisors = [size for size in range(low, high + 1) if n_rows % size == 0]
    n_dropped = n_rows % batch_size
    rows, others = ("row", "another") if n_dropped == 1 else ("rows", "others")
    if divisors:
        nearest = sorted(sorted(divisors, key=lambda size: abs(size - batch_size))[:3])
        listed = ", ".join(str(size) for size in nearest[:-1])
        listed = f"{listed} or {nearest[-1]}" if listed else str(nearest[-1])
        return (
            f"choose a batch size that divides {n_rows}, such as {listed}, or allow "
            f"dropping the last {n_dropped} {rows} of each shuffled epoch with "
            "drop_last (--drop-last)"
        )
    return (
        f"no batch size from {low} to {high} divides {n_rows}, so use drop_last "
        f"(--drop-last), which leaves out {n_dropped} of the {n_rows} rows "
        f"({n_dropped / n_rows:.1%}) in each epoch, {others} each time because "
        "the rows are shuffled"
    )


class CDTrainer:
    """The state of CD-k / PCD training for one RBM and its update step.

    Parameters
    ----------
    rbm : RBMModule
        The model, updated in place.
    config : RBMTrainingConfig
    generator : torch.Generator
        The source of every random draw, on the RBM's device.
    """

    def __init__(
        self, rbm: RBMModule, config: RBMTrainingConfig, generator: torch.Generator
    ) -> None:
        self.rbm = rbm
        self.config = config
        self.generator = generator
        self.learning_rate = config.lr_for(rbm.visible_type)
        """Base rate, scaled in each epoch by ``config.lr_factor``."""
        self.increments = {
            name: torch.zeros_like(param) for name, param in self._params().items()
        }
        self.chains: torch.Tensor | None = None
        self.mean_activity: torch.Tensor | None = None

    def _params(self) -> dict[str, torch.Tensor]:
        rbm = self.rbm
        params = {
            "weight": rbm.weight,
            "visible_bias": rbm.visible_bias,
            "hidden_bias": rbm.hidden_bias,
        }
        if rbm.learn_sigma:
            params["log_sigma"] = rbm.log_sigma
        return params

    # Saved state -----------------------------------------------------------

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """Tensors needed to continue training exactly: momentum and chains."""
        state = {f"increment.{k}": v for k, v in self.increments.items()}
        if self.chains is not None:
            state["chains"] = self.chains
        if self.mean_activity is not None:
            state["mean_activity"] = self.mean_activity
        return state

    def load_state_tensors(self, state: dict[str, torch.Tensor]) -> None:
        for name in self.increments:
            self.increments[name].copy_(state[f"increment.{name}"])
        self.chains = state.get("chains")
        self.mean_activity = state.get("mean_activity")

    # The update ---------------------------------------------------------------

    def _init_chains(self, data: torch.Tensor) -> torch.Tensor:
        """Start persistent chains at binarised random rows of the training data."""
        n = min(self.config.batch_size, data.shape[0])
        rows = torch.randint(
            data.shape[0], (n,), generator=self.generator, device=data.device
        )
        start = data.index_select(0, rows)
        if self.rbm.gaussian:
            return start
        k = self.rbm.n_labels
        units = start[:, : start.shape[1] - k]
        binary = sample_bernoulli(units, self.generator)
        return torch.cat([binary, start[:, start.shape[1] - k :]], 1)

    def negative_phase(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Run ``cd_k`` Gibbs steps from hidden states ``h``.

        Returns the visible states and ``p(h | v)`` that form the negative
        statistics. The chain samples visible states at every step but the
        last, where it keeps the mean unless sampling is required.
        """
        rbm, g, k = self.rbm, self.generator, self.config.cd_k
        sample_last = self.config.sample_visible or self.config.persistent
        for step in range(k):
            last = step == k - 1
            if last and not sample_last:
                v = rbm.visible_mean(h)
            else:
                _, v = rbm.sample_visible(h, g)
            h_probs = rbm.hidden_probs(v)
            if last:
                break
            h = sample_bernoulli(h_probs, g)
        return v, h_probs

    @torch.no_grad()
    def step(self, v0: torch.Tensor, epoch: int) -> None:
        """Apply one update for the batch ``v0`` of shape (batch, n_visible)."""
        rbm, g, config = self.rbm, self.generator, self.config
        h0_probs = rbm.hidden_probs(v0)
        if config.persistent:
            if self.chains is None:
                self.chains = self._init_chains(v0)
            start_probs = rbm.hidden_probs(self.chains)
        else:
            start_probs = h0_probs
        h_start = sample_bernoulli(start_probs, g)
        vn, hn_probs = self.negative_phase(h_start)
        if config.persistent:
            self.chains = vn
        self._apply(v0, h0_probs, vn, hn_probs, epoch)

    def _apply(
        self,
        v0: torch.Tensor,
        h0: torch.Tensor,
        vn: torch.Tensor,
        hn: torch.Tensor,
        epoch: int,
    ) -> None:
        rbm, config, inc = self.rbm, self.config, self.increments
        lr = self.learning_rate * config.lr_factor(epoch)
        momentum = config.momentum_at(epoch)
        # The data and the chains may have different numbers of rows (PCD).
        pos_scale, neg_scale = lr / v0.shape[0], lr / vn.shape[0]
        x0, xn = rbm._scaled(v0), rbm._scaled(vn)

        inc["weight"].addmm_(x0.T, h0, beta=momentum, alpha=pos_scale)
        inc["weight"].addmm_(xn.T, hn, alpha=-neg_scale)
        inc["weight"].add_(rbm.weight, alpha=-lr * config.weight_decay)

        visible_grad = v0.mean(0) - vn.mean(0)
        if rbm.gaussian:
            visible_grad = visible_grad / rbm.sigma**2
        hidden_grad = h0.mean(0) - hn.mean(0)

        if config.sparsity_target is not None:
            activity = h0.mean(0)
            if self.mean_activity is None:
                self.mean_activity = activity.clone()
            else:
                decay = config.sparsity_decay
                self.mean_activity.mul_(decay).add_(activity, alpha=1 - decay)
            penalty = config.sparsity_cost * (
                config.sparsity_target - self.mean_activity
            )
            hidden_grad = hidden_grad + penalty
            inc["weight"].add_(torch.outer(x0.mean(0), penalty), alpha=lr)

        inc["visible_bias"].mul_(momentum).add_(visible_grad, alpha=lr)
        inc["hidden_bias"].mul_(momentum).add_(hidden_grad, alpha=lr)
        if rbm.learn_sigma:
            sigma_grad = self._log_sigma_stat(v0, h0) - self._log_sigma_stat(vn, hn)
            inc["log_sigma"].mul_(momentum).add_(sigma_grad, alpha=lr)

        for name, param in self._params().items():
            param.add_(inc[name])

    def _log_sigma_stat(self, v: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """Mean of ``-dF/d log(sigma)`` over rows, shape (n_visible,)."""
        rbm = self.rbm
        sigma = rbm.sigma
        top_down = h @ rbm.weight.T
        return ((v - rbm.visible_bias) ** 2 / sigma**2 - v / sigma * top_down).mean(0)

    # Epochs -------------------------------------------------------------------

    @torch.no_grad()
    def run_epoch(
        self,
        data: torch.Tensor,
        epoch: int,
        progress: ProgressCallback | None = None,
        should_stop: StopCheck | None = None,
        layer: int | None = None,
        n_layers: int | None = None,
    ) -> None:
        """Train one epoch on shuffled batches of ``data``."""
        batch = self.config.batch_size
        order = torch.randperm(
            data.shape[0], generator=self.generator, device=data.device
        )
        # Each batch is gathered into the same buffer, which stays in the
        # cache for the step's products. index_select copies whole rows; on
        # the CPU it took about half the time of data[rows] when measured
        # with torch 2.13.
        buffer = data.new_empty((batch, *data.shape[1:]))
        n_batches = data.shape[0] // batch
        if data.shape[0] % batch and not self.config.drop_last:
            n_batches += 1
        where = f"layer {layer}, epoch {epoch}" if layer else f"epoch {epoch}"
        for i in range(n_batches):
            check_stop(should_stop)
            try:
                rows = order[i * batch : (i + 1) * batch]
                v0 = torch.index_select(data, 0, rows, out=buffer[: len(rows)])
                self.step(v0, epoch)
            except RuntimeError:
                # Sampling from NaN probabilities fails inside torch; report
                # the divergence that caused it.
                check_finite(self.rbm, {}, where)
                raise
            report(
                progress,
                Progress(
                    stage="pretrain",
                    step=i + 1,
                    total=n_batches,
                    epoch=epoch,
                    n_epochs=self.config.epochs,
                    layer=layer,
                    n_layers=n_layers,
                ),
            )


@torch.no_grad()
def epoch_metrics(
    rbm: RBMModule, train: torch.Tensor, valid: torch.Tensor | None
) -> dict[str, float]:
    """Reconstruction errors and the free-energy gap after an epoch.

    The gap is the mean free energy of validation rows minus that of
    training rows (up to 1,000 of each); a gap that keeps growing is the
    sign of overfitting that Hinton's guide describes.
    """
    train_rows = train[:MONITOR_ROWS]
    figures = {"recon_error": float(rbm.reconstruction_error(train_rows))}
    if valid is not None and valid.shape[0]:
        valid_rows = valid[:MONITOR_ROWS]
        figures["valid_recon_error"] = float(rbm.reconstruction_error(valid_rows))
        gap = rbm.free_energy(valid_rows).mean() - rbm.free_energy(train_rows).mean()
        figures["free_energy_gap"] = float(gap)
    return figures


def check_finite(rbm: RBMModule, figures: dict[str, float], where: str) -> None:
    """Raise :class:`TrainingDiverged` when weights or figures are not finite."""
    params_ok = all(bool(torch.isfinite(p).all()) for p in rbm.parameters())
    figures_ok = all(math.isfinite(v) for v in figures.values())
    if not (params_ok and figures_ok):
        what = "weights" if not params_ok else "reconstruction error"
        raise TrainingDiverged(
            f"training diverged at {where}: the {what} became NaN or inf. Lower "
            "the learning rate (--lr) or, for Gaussian visible units, standardise "
            "the data"
        )


def train_rbm(
    rbm: RBMModule,
    data: torch.Tensor,
    config: RBMTrainingConfig,
    generator: torch.Generator,
    valid: torch.Tensor | None = None,
    progress: ProgressCallback | None = None,
    should_stop: StopCheck | None = None,
    initialize: bool = True,
) -> list[dict]:
    """Train ``rbm`` in place for ``config.epochs`` epochs without checkpoints.

    Returns one dict of figures per epoch. Deep Belief Nets use
    :func:`deepgen_core.dbn.train_dbn`, which adds checkpoints and resuming.
    """
    config.validate()
    check_training_data(data, rbm.n_visible, rbm.visible_type, config)
    if initialize:
        rbm.initialize(generator, data.mean(0))
    trainer = CDTrainer(rbm, config, generator)
    history = []
    for epoch in range(1, config.epochs + 1):
        started = time.perf_counter()
        trainer.run_epoch(data, epoch, progress, should_stop)
        figures = epoch_metrics(rbm, data, valid)
        check_finite(rbm, figures, f"epoch {epoch}")
        figures["epoch"] = epoch
        figures["seconds"] = time.perf_counter() - started
        logger.info("epoch %d: %s", epoch, format_figures(figures))
        history.append(figures)
    return history
