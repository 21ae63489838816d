"""Up-down fine-tuning: the contrastive wake-sleep algorithm of Hinton et al. (2006).

It fine-tunes a DBN whose top RBM has label units as a generative model of
images and labels together. The recognition and generative weights below the
top are untied first (:meth:`DBNModule.untie`). Each minibatch then takes
three steps:

1. Wake: an up-pass samples binary states of every layer from the
   recognition weights. The generative weights learn to predict each
   layer's wake states from the layer above (a delta rule).
2. Top: the top RBM is trained by CD-k on the wake states of the layer
   below it joined to the true labels.
3. Sleep: from the end of the top RBM's Gibbs chain, a down-pass samples
   states from the generative weights. The recognition weights learn to
   predict each layer's sleep states from the layer below.

The generative model improves because its weights follow the recognition
model's view of the data, and the classifier improves because the top RBM
learns the joint of labels and top-level features. The pretrained net is
not changed.

References
----------
G. E. Hinton, S. Osindero and Y.-W. Teh, "A fast learning algorithm for deep
belief nets", Neural Computation 18(7), 2006, section 5 and appendix B.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .dbn import DBNModule
from .device import make_generator
from .errors import InputError
from .finetune import SettingsFields, check_learning_rate, check_validation_fraction
from .progress import (
    Progress,
    ProgressCallback,
    StopCheck,
    check_stop,
    format_figures,
    report,
)
from .rbm import sample_bernoulli

logger = logging.getLogger(__name__)


@dataclass
class UpDownConfig(SettingsFields):
    """Settings of up-down fine-tuning."""

    epochs: int = 10
    learning_rate: float = 0.1
    """Step size of every weight and bias, applied to batch means."""
    cd_k: int = 3
    """Gibbs steps in the top RBM for each minibatch."""
    batch_size: int = 100
    validation_fraction: float = 0.1
    """Rows held back to report the classifier's accuracy after each epoch."""
    seed: int = 0

    def validate(self) -> None:
        if self.epochs < 1:
            raise InputError(f"up-down epochs must be at least 1, got {self.epochs}")
        check_learning_rate(self.learning_rate)
        if self.cd_k < 1 or self.batch_size < 1:
            raise InputError(
                "cd_k and batch size must be at least 1, got "
                f"{self.cd_k} and {self.batch_size}"
            )
        check_validation_fraction(self.validation_fraction)


def check_diverged(dbn: DBNModule, wake_error: float, epoch: int) -> None:
    """Raise :class:`InputError` when the weights or the wake error are not finite."""
    finite = all(bool(torch.isfinite(p).all()) for p in dbn.parameters())
    if not (finite and math.isfinite(wake_error)):
        raise InputError(
            f"up-down fine-tuning diverged at epoch {epoch}; lower the learning rate"
        )


def check_updown_net(dbn: DBNModule) -> None:
    """Raise :class:`InputError` when ``dbn`` cannot be fine-tuned by up-down."""
    if not dbn.n_labels:
        raise InputError(
            "up-down fine-tuning trains the top RBM on images and labels together, "
            "so it needs a net with label units; train one with --labels, or use "
            "--method backprop or head"
        )
    if dbn.visible_type != "bernoulli":
        raise InputError(
            "up-down fine-tuning supports Bernoulli visible units only; this net "
            f"has {dbn.visible_type} visible units, use --method backprop or head"
        )


class UpDownStep:
    """One minibatch update of an untied net with label units."""

    def __init__(
        self, dbn: DBNModule, config: UpDownConfig, generator: torch.Generator
    ) -> None:
        self.dbn = dbn
        self.config = config
        self.generator = generator

    def __call__(self, x: torch.Tensor, labels: torch.Tensor) -> float:
        """Update the net on ``x`` and one-hot ``labels``; return the wake error.

        The wake error is the mean squared error of the generative weights'
        prediction of the input from the first hidden layer's wake states.
        """
        dbn, rate = self.dbn, self.config.learning_rate / x.shape[0]
        top, below = dbn.rbms[-1], dbn.rbms[:-1]
        n_units = top.n_visible - top.n_labels

        # Wake: binary states of layers 1..L-1 from the recognition weights.
        wake = [x]
        for layer in dbn.recognition:
            wake.append(
                sample_bernoulli(torch.sigmoid(layer(wake[-1])), self.generator)
            )

        # Top: CD-k on the wake states beside the true labels.
        positive = torch.cat([wake[-1], labels], 1)
        positive_hidden, h = top.sample_hidden(positive, self.generator)
        for _ in range(self.config.cd_k):
            mean, sample = top.sample_visible(h, self.generator)
            # Label probabilities, not a sampled label, drive the chain, as in
            # the published algorithm; the other units are sampled.
            negative = torch.cat([sample[:, :n_units], mean[:, n_units:]], 1)
            negative_hidden, h = top.sample_hidden(negative, self.generator)

        # Sleep: a down-pass from the end of the chain through the generative
        # weights; states below, probabilities at the input.
        sleep = [negative[:, :n_units]]
        for index in range(len(below) - 1, -1, -1):
            probs = torch.sigmoid(below[index].visible_input(sleep[0]))
            sleep.insert(
                0, probs if index == 0 else sample_bernoulli(probs, self.generator)
            )

        # Generative weights predict each layer's wake states from the layer above.
        wake_error = 0.0
        for index, rbm in enumerate(below):
            error = wake[index] - torch.sigmoid(rbm.visible_input(wake[index + 1]))
            if index == 0:
                wake_error = float((error**2).mean())
            rbm.weight.addmm_(error.T, wake[index + 1], alpha=rate)
            rbm.visible_bias.add_(error.sum(0), alpha=rate)

        top.weight.addmm_(positive.T, positive_hidden, alpha=rate)
        top.weight.addmm_(negative.T, negative_hidden, alpha=-rate)
        top.visible_bias.add_(positive.sum(0) - negative.sum(0), alpha=rate)
        top.hidden_bias.add_(
            positive_hidden.sum(0) - negative_hidden.sum(0), alpha=rate
        )

        # Recognition weights predict each layer's sleep states from the layer below.
        for index, layer in enumerate(dbn.recognition):
            error = sleep[index + 1] - torch.sigmoid(layer(sleep[index]))
            layer.weight.addmm_(error.T, sleep[index], alpha=rate)
            layer.bias.add_(error.sum(0), alpha=rate)
        return wake_error


def _label_accuracy(dbn: DBNModule, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        correct = sum(
            int(
                (
                    dbn.class_log_probs(x[i : i + 1000]).argmax(1) == y[i : i + 1000]
                ).sum()
            )
            for i in range(0, x.shape[0], 1000)
        )
    return correct / max(1, x.shape[0])


@torch.no_grad()
def finetune_updown(
    dbn: DBNModule,
    x: torch.Tensor,
    y: torch.Tensor,
    config: UpDownConfig,
    progress: ProgressCallback | None = None,
    should_stop: StopCheck | None = None,
) -> tuple[DBNModule, list[dict]]:
    """Fine-tune an untied copy of ``dbn`` on ``x`` and labels ``y`` by up-down.

    A random ``validation_fraction`` of the rows is held back and the net's
    own classifier (the top RBM's label units) is scored on it after each
    epoch. Returns the fine-tuned net and one dict of figures per epoch.
    """
    config.validate()
    check_updown_net(dbn)
    if y is None:
        raise InputError("up-down fine-tuning needs labels; use a labelled dataset")
    generator = make_generator(config.seed, x.device)
    order = torch.randperm(x.shape[0], generator=generator, device=x.device)
    n_valid = max(1, round(x.shape[0] * config.validation_fraction))
    valid_rows, train_rows = order[:n_valid], order[n_valid:]
    x_train, x_valid, y_valid = x[train_rows], x[valid_rows], y[valid_rows]
    one_hot = F.one_hot(y[train_rows], dbn.n_labels).to(x.dtype)

    tuned = copy.deepcopy(dbn)
    tuned.untie()
    step = UpDownStep(tuned, config, generator)
    history = [
        {
            "epoch": 0,
            "valid_accuracy": _label_accuracy(tuned, x_valid, y_valid),
            "wake_error": None,
        }
    ]
    n_batches = math.ceil(x_train.shape[0] / config.batch_size)
    for epoch in range(1, config.epochs + 1):
        started = time.perf_counter()
        shuffle = torch.randperm(x_train.shape[0], generator=generator, device=x.device)
        state = Progress(
            "finetune", 0, n_batches, epoch, config.epochs, message="up-down"
        )
        total_error = 0.0
        for i in range(n_batches):
            check_stop(should_stop)
            rows = shuffle[i * config.batch_size : (i + 1) * config.batch_size]
            try:
                error = step(x_train.index_select(0, rows), one_hot[rows])
            except RuntimeError:
                # Sampling from NaN probabilities fails inside torch.
                check_diverged(tuned, 0.0, epoch)
                raise
            total_error += error * len(rows)
            state.step = i + 1
            report(progress, state)
        wake_error = total_error / x_train.shape[0]
        check_diverged(tuned, wake_error, epoch)
        figures = {
            "epoch": epoch,
            "valid_accuracy": _label_accuracy(tuned, x_valid, y_valid),
            "wake_error": wake_error,
            "seconds": round(time.perf_counter() - started, 4),
        }
        history.append(figures)
        logger.info("up-down epoch %d: %s", epoch, format_figures(figures))
    tuned.eval()
    return tuned, history
