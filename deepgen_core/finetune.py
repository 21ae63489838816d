"""Discriminative fine-tuning of a DBN by backpropagation.

The recognition weights are unrolled into a feed-forward net of sigmoid
layers with a softmax output on the top hidden layer, trained on the labels
with SGD, momentum and dropout. The softmax layer starts from a fit on the
frozen top layer, so backprop begins from a working classifier. A random part of the training data is held
back for validation, and training stops early once the validation accuracy
has not improved for ``patience`` epochs. The net is then trained again on
all training rows for the best number of epochs, so that the labels of the
validation rows are not wasted.

The result is a new :class:`DBNModule`: its RBMs carry the fine-tuned weights
and hidden biases (so that the fine-tuned stage can also generate, with the
fine-tuned weights as the generative weights), the visible biases and top
label weights of the pretrained net, and the softmax ``head``. The
pretrained net is not changed.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn

from .dbn import DBNModule
from .device import make_generator
from .errors import InputError
from .progress import (
    Progress,
    ProgressCallback,
    StopCheck,
    check_stop,
    format_figures,
    report,
)
from .training import FLOAT32_MAX

logger = logging.getLogger(__name__)


class SettingsFields:
    """``to_dict`` and ``from_dict`` for the fine-tuning settings dataclasses.

    ``from_dict`` ignores unknown keys, so settings saved by another version
    still load.
    """

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict):
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


def check_learning_rate(value: float) -> None:
    if not 0 < value <= FLOAT32_MAX:
        raise InputError(
            f"learning rate must be a positive number that float32 can hold, got "
            f"{value}"
        )


def check_validation_fraction(value: float) -> None:
    if not 0 < value < 1:
        raise InputError(f"validation fraction must be between 0 and 1, got {value}")


@dataclass
class FinetuneConfig(SettingsFields):
    """Settings of backpropagation fine-tuning."""

    learning_rate: float = 0.1
    momentum: float = 0.9
    batch_size: int = 100
    weight_decay: float = 0.0
    input_dropout: float = 0.0
    """Fraction of input units dropped in each training batch."""
    hidden_dropout: float = 0.5
    """Fraction of hidden units dropped in each training batch."""
    validation_fraction: float = 0.1
    patience: int = 30
    """Epochs without a gain in validation accuracy before training stops."""
    decay_patience: int = 10
    """Epochs without a gain after which the learning rate is halved."""
    epochs: int = 100
    refit: bool = True
    """Train again on all rows for the best number of epochs."""
    warm_start_head: bool = True
    """Fit the softmax layer on the frozen top layer before backprop, so
    that the first gradients reaching the pretrained weights come from a
    trained output layer instead of a random one."""
    seed: int = 0

    def validate(self) -> None:
        if self.epochs < 1:
            raise InputError(
                f"fine-tuning epochs must be at least 1, got {self.epochs}"
            )
        check_learning_rate(self.learning_rate)
        check_validation_fraction(self.validation_fraction)
        if not 0 <= self.momentum < 1:
            raise InputError(f"momentum must be in [0, 1), got {self.momentum}")
        for name in ("input_dropout", "hidden_dropout"):
            if not 0 <= getattr(self, name) < 1:
                raise InputError(
                    f"{name.replace('_', ' ')} must be in [0, 1), got "
                    f"{getattr(self, name)}"
                )
        if not isinstance(self.warm_start_head, bool):
            raise InputError(
                f"warm_start_head must be true or false, got {self.warm_start_head!r}"
            )
        if min(self.batch_size, self.patience, self.decay_patience) < 1:
            raise InputError(
                "batch size, patience and decay patience must be at least 1, got "
                f"{self.batch_size}, {self.patience} and {self.decay_patience}"
            )


class SeededDropout(nn.Module):
    """Inverted dropout whose masks come from a given generator.

    ``nn.Dropout`` draws from the global random state; this keeps
    fine-tuning reproducible from its own seed.
    """

    def __init__(self, rate: float, generator: torch.Generator) -> None:
        super().__init__()
        self.rate = rate
        self.generator = generator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.rate == 0:
            return x
        keep = 1 - self.rate
        mask = torch.bernoulli(torch.full_like(x, keep), generator=self.generator)
        return x * mask / keep


def unroll(
    dbn: DBNModule,
    n_classes: int,
    generator: torch.Generator,
    input_dropout: float = 0.0,
    hidden_dropout: float = 0.0,
) -> nn.Sequential:
    """Build the feed-forward classifier from the recognition weights."""
    layers: list[nn.Module] = []
    if input_dropout:
        layers.append(SeededDropout(input_dropout, generator))
    for rbm in dbn.rbms:
        n_in = rbm.n_visible - rbm.n_labels
        linear = nn.Linear(n_in, rbm.n_hidden)
        with torch.no_grad():
            weight = rbm.weight[:n_in]
            if rbm.gaussian:
                weight = weight / rbm.sigma[:, None]
            linear.weight.copy_(weight.T)
            linear.bias.copy_(rbm.hidden_bias)
        layers += [linear, nn.Sigmoid()]
        if hidden_dropout:
            layers.append(SeededDropout(hidden_dropout, generator))
    head = nn.Linear(dbn.layer_sizes[-1], n_classes)
    with torch.no_grad():
        head.weight.copy_(
            torch.randn(head.weight.shape, generator=generator, device=dbn.device)
            * 0.01
        )
        head.bias.zero_()
    layers.append(head)
    return nn.Sequential(*layers).to(dbn.device)


def roll_back(dbn: DBNModule, net: nn.Sequential) -> DBNModule:
    """Copy ``dbn`` with the fine-tuned weights of ``net`` put into its RBMs."""
    tuned = copy.deepcopy(dbn)
    linears = [m for m in net if isinstance(m, nn.Linear)]
    with torch.no_grad():
        for rbm, linear in zip(tuned.rbms, linears[:-1]):
            n_in = rbm.n_visible - rbm.n_labels
            weight = linear.weight.T
            if rbm.gaussian:
                weight = weight * rbm.sigma[:, None]
            rbm.weight[:n_in] = weight
            rbm.hidden_bias.copy_(linear.bias)
        head = tuned.add_head(linears[-1].out_features)
        head.load_state_dict(linears[-1].state_dict())
        head.requires_grad_(False)
    return tuned


def _accuracy(net: nn.Sequential, x: torch.Tensor, y: torch.Tensor) -> float:
    net.eval()
    with torch.no_grad():
        correct = sum(
            int((net(x[i : i + 1000]).argmax(1) == y[i : i + 1000]).sum())
            for i in range(0, x.shape[0], 1000)
        )
    return correct / max(1, x.shape[0])


WARM_START_PENALTY = 1e-3
"""L2 penalty of the softmax fit that starts the output layer."""


def warm_start_head(
    net: nn.Sequential, x: torch.Tensor, y: torch.Tensor, n_classes: int
) -> None:
    """Set the output layer of ``net`` to a softmax fit on its top hidden layer.

    The fit uses the hidden units without dropout, as at test time, and
    leaves the layers below unchanged.
    """
    net.eval()
    with torch.no_grad():
        features = torch.cat(
            [net[:-1](x[i : i + 2000]) for i in range(0, x.shape[0], 2000)]
        )
    linear = fit_softmax(features, y, n_classes, WARM_START_PENALTY, 200)
    with torch.no_grad():
        net[-1].weight.copy_(linear.weight)
        net[-1].bias.copy_(linear.bias)


def _make_optimizer(net: nn.Sequential, config: FinetuneConfig) -> torch.optim.SGD:
    return torch.optim.SGD(
        net.parameters(),
        lr=config.learning_rate,
        momentum=config.momentum,
        weight_decay=config.weight_decay,
    )


def _train_epoch(
    net: nn.Sequential,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    config: FinetuneConfig,
    generator: torch.Generator,
    progress: Progress,
    callback: ProgressCallback | None,
    should_stop: StopCheck | None,
) -> float:
    """Run one epoch of minibatch SGD and return the mean training loss."""
    shuffle = torch.randperm(x.shape[0], generator=generator, device=x.device)
    total_loss = 0.0
    net.train()
    for i in range(progress.total):
        check_stop(should_stop)
        rows = shuffle[i * config.batch_size : (i + 1) * config.batch_size]
        loss = F.cross_entropy(net(x.index_select(0, rows)), y[rows])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total_loss += loss.item() * len(rows)
        progress.step = i + 1
        report(callback, progress)
    loss = total_loss / x.shape[0]
    if not math.isfinite(loss):
        raise InputError(
            f"fine-tuning diverged at epoch {progress.epoch}: the loss became "
            f"{loss}; lower the learning rate"
        )
    return loss


def finetune_backprop(
    dbn: DBNModule,
    x: torch.Tensor,
    y: torch.Tensor,
    n_classes: int,
    config: FinetuneConfig,
    progress: ProgressCallback | None = None,
    should_stop: StopCheck | None = None,
) -> tuple[DBNModule, list[dict]]:
    """Fine-tune a copy of ``dbn`` on ``x`` (n_samples, n_visible) and labels ``y``.

    The first phase trains on all but the validation rows and finds the best
    epoch by validation accuracy, halving the learning rate after every
    ``decay_patience`` epochs without a gain. With ``refit``, a second phase
    starts again from the pretrained weights and trains on every row for
    that many epochs with the same learning rates.

    Returns the fine-tuned net and one dict of figures per epoch.
    """
    config.validate()
    if y is None:
        raise InputError("fine-tuning needs labels; use a labelled dataset")
    generator = make_generator(config.seed, x.device)
    order = torch.randperm(x.shape[0], generator=generator, device=x.device)
    n_valid = max(1, round(x.shape[0] * config.validation_fraction))
    valid_rows, train_rows = order[:n_valid], order[n_valid:]
    x_train, y_train = x[train_rows], y[train_rows]
    x_valid, y_valid = x[valid_rows], y[valid_rows]

    net = unroll(dbn, n_classes, generator, config.input_dropout, config.hidden_dropout)
    if config.warm_start_head:
        warm_start_head(net, x_train, y_train, n_classes)
    optimizer = _make_optimizer(net, config)
    best_accuracy, best_state, best_epoch = -1.0, None, 0
    history, rates = [], []
    n_batches = math.ceil(x_train.shape[0] / config.batch_size)
    for epoch in range(1, config.epochs + 1):
        started = time.perf_counter()
        rates.append(optimizer.param_groups[0]["lr"])
        state = Progress("finetune", 0, n_batches, epoch, config.epochs)
        loss = _train_epoch(
            net,
            optimizer,
            x_train,
            y_train,
            config,
            generator,
            state,
            progress,
            should_stop,
        )
        valid_accuracy = _accuracy(net, x_valid, y_valid)
        figures = {
            "phase": "select",
            "epoch": epoch,
            "loss": loss,
            "learning_rate": rates[-1],
            "valid_accuracy": valid_accuracy,
            "seconds": round(time.perf_counter() - started, 4),
        }
        history.append(figures)
        logger.info("fine-tuning epoch %d: %s", epoch, format_figures(figures))
        # Ties go to the later epoch, whose training loss is lower.
        if valid_accuracy >= best_accuracy:
            best_accuracy, best_epoch = valid_accuracy, epoch
            best_state = copy.deepcopy(net.state_dict())
        elif epoch - best_epoch >= config.patience:
            logger.info("early stop: no gain in %d epochs", config.patience)
            break
        elif (epoch - best_epoch) % config.decay_patience == 0:
            for group in optimizer.param_groups:
                group["lr"] *= 0.5
    for figures in history:
        figures["best"] = figures["epoch"] == best_epoch
    if not config.refit:
        net.load_state_dict(best_state)
        return roll_back(dbn, net), history

    net = unroll(dbn, n_classes, generator, config.input_dropout, config.hidden_dropout)
    if config.warm_start_head:
        warm_start_head(net, x, y, n_classes)
    optimizer = _make_optimizer(net, config)
    n_batches = math.ceil(x.shape[0] / config.batch_size)
    for epoch in range(1, best_epoch + 1):
        started = time.perf_counter()
        for group in optimizer.param_groups:
            group["lr"] = rates[epoch - 1]
        state = Progress(
            "finetune", 0, n_batches, epoch, best_epoch, message="refit on all rows"
        )
        loss = _train_epoch(
            net, optimizer, x, y, config, generator, state, progress, should_stop
        )
        figures = {
            "phase": "refit",
            "epoch": epoch,
            "loss": loss,
            "learning_rate": rates[epoch - 1],
            "seconds": round(time.perf_counter() - started, 4),
        }
        history.append(figures)
        logger.info("fine-tuning refit epoch %d: %s", epoch, format_figures(figures))
    return roll_back(dbn, net), history


# A classifier head on chosen units ---------------------------------------------

HEAD_PENALTIES = (1e-5, 1e-4, 1e-3, 1e-2)
"""L2 penalties tried for the head; the best on the validation rows is kept."""


@dataclass
class HeadConfig(SettingsFields):
    """Settings of head fine-tuning: a softmax layer on chosen units."""

    units: str | None = None
    """Unit SPEC the head reads; None means the whole top hidden layer."""
    validation_fraction: float = 0.1
    max_iterations: int = 200
    seed: int = 0

    def validate(self) -> None:
        check_validation_fraction(self.validation_fraction)
        if self.max_iterations < 1:
            raise InputError(
                f"max iterations must be at least 1, got {self.max_iterations}"
            )


def fit_softmax(
    features: torch.Tensor,
    y: torch.Tensor,
    n_classes: int,
    penalty: float,
    max_iterations: int,
) -> nn.Linear:
    """Fit multinomial logistic regression with an L2 ``penalty`` by L-BFGS."""
    linear = nn.Linear(features.shape[1], n_classes).to(features.device)
    nn.init.zeros_(linear.weight)
    nn.init.zeros_(linear.bias)
    optimizer = torch.optim.LBFGS(
        linear.parameters(),
        max_iter=max_iterations,
        tolerance_grad=1e-6,
        line_search_fn="strong_wolfe",
    )

    def objective() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(linear(features), y)
        loss = loss + 0.5 * penalty * linear.weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(objective)
    linear.requires_grad_(False)
    return linear


def finetune_head(
    dbn: DBNModule,
    x: torch.Tensor,
    y: torch.Tensor,
    n_classes: int,
    config: HeadConfig,
    progress: ProgressCallback | None = None,
    should_stop: StopCheck | None = None,
) -> tuple[DBNModule, list[dict]]:
    """Train a softmax head on chosen units of a frozen copy of ``dbn``.

    Every weight of the DBN stays as it is, so the stage generates exactly
    as the pretrained one does. The L2 penalty is chosen from
    ``HEAD_PENALTIES`` by accuracy on held-back rows, and the head is then
    fitted again on every row. Returns the net and one dict per penalty.
    """
    config.validate()
    if y is None:
        raise InputError("a classifier head needs labels; use a labelled dataset")
    tuned = copy.deepcopy(dbn)
    tuned.add_head(n_classes, config.units)
    with torch.no_grad():
        features = torch.cat(
            [tuned.head_input(x[i : i + 2000]) for i in range(0, x.shape[0], 2000)]
        )
    generator = make_generator(config.seed, x.device)
    order = torch.randperm(x.shape[0], generator=generator, device=x.device)
    n_valid = max(1, round(x.shape[0] * config.validation_fraction))
    valid_rows, train_rows = order[:n_valid], order[n_valid:]
    history = []
    steps = len(HEAD_PENALTIES) + 1
    for index, penalty in enumerate(HEAD_PENALTIES):
        check_stop(should_stop)
        report(progress, Progress("finetune", index, steps, 1, 1, message="head"))
        started = time.perf_counter()
        linear = fit_softmax(
            features[train_rows],
            y[train_rows],
            n_classes,
            penalty,
            config.max_iterations,
        )
        with torch.no_grad():
            predicted = linear(features[valid_rows]).argmax(1)
        figures = {
            "penalty": penalty,
            "valid_accuracy": float((predicted == y[valid_rows]).float().mean()),
            "seconds": round(time.perf_counter() - started, 4),
        }
        history.append(figures)
        logger.info("head fit: %s", format_figures(figures))
    best = max(history, key=lambda figures: figures["valid_accuracy"])
    for figures in history:
        figures["best"] = figures is best
    check_stop(should_stop)
    report(progress, Progress("finetune", steps - 1, steps, 1, 1, message="head refit"))
    linear = fit_softmax(features, y, n_classes, best["penalty"], config.max_iterations)
    tuned.head.load_state_dict(linear.state_dict())
    report(progress, Progress("finetune", steps, steps, 1, 1, message="head"))
    return tuned, history
