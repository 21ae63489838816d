"""Deep Belief Nets: a stack of RBMs trained greedily, layer by layer.

Layer 0 is the input (pixels) and layers 1 to L are the hidden layers; RBM
``i`` joins layer ``i`` to layer ``i + 1``. The top RBM may take ``n_labels``
softmax label units beside layer L - 1, as in Hinton, Osindero and Teh
(2006), so that the net can generate a chosen class.

The recognition pass (``up``) feeds hidden probabilities upwards. For a net
with labels the pass into the top layer gives the label units no input, the
same drive the fine-tuned feed-forward network uses. Generation runs a Gibbs
chain in the top RBM and then a mean-field pass down to the pixels.

After greedy training the recognition and generative weights below the top
are the same matrices. Up-down fine-tuning unties them: an untied net keeps
its own recognition weights (``recognition``) for the up-pass, while the
RBMs' weights and visible biases remain the generative model.

References
----------
G. E. Hinton, S. Osindero and Y.-W. Teh, "A fast learning algorithm for deep
belief nets", Neural Computation 18(7), 2006.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn

from .device import make_generator
from .errors import InputError
from .progress import ProgressCallback, StopCheck, format_figures
from .rbm import VISIBLE_TYPES, RBMModule, sample_bernoulli
from .training import (
    CDTrainer,
    RBMTrainingConfig,
    check_finite,
    check_setting_types,
    check_training_data,
    epoch_metrics,
)
from .units import parse_units
from .validation import is_int

logger = logging.getLogger(__name__)

CHAIN_STARTS = ("noise", "empty")
"""First states of a generating chain; see :meth:`DBNModule.generate`."""


class DBNModule(nn.Module):
    """A stack of RBMs with an optional classifier head.

    Parameters
    ----------
    n_visible : int
        Input size, for example 784 for 28x28 images.
    layer_sizes : sequence of int
        Hidden layer sizes from the bottom up.
    visible_type : {"bernoulli", "gaussian"}
        Units of the input layer; every hidden layer is Bernoulli.
    n_labels : int
        Label units joined to the top RBM, or 0.

    Attributes
    ----------
    rbms : ModuleList of RBMModule
    head : Linear or None
        The softmax output layer of a fine-tuned stage. It reads the top
        hidden layer, or the units named by ``head_units`` when set.
    head_units : str or None
        Unit SPEC of the head's inputs (see :mod:`deepgen_core.units`); None
        means the whole top hidden layer.
    recognition : ModuleList of Linear or None
        Untied recognition weights of every layer below the top, present
        after up-down fine-tuning.
    """

    def __init__(
        self,
        n_visible: int,
        layer_sizes: list[int],
        visible_type: str = "bernoulli",
        n_labels: int = 0,
        learn_sigma: bool = False,
    ) -> None:
        super().__init__()
        layer_sizes = [int(n) for n in layer_sizes]
        if not layer_sizes or min(layer_sizes) < 1:
            raise InputError(
                f"layer sizes must be one or more positive integers, got {layer_sizes}"
            )
        if n_labels and len(layer_sizes) < 2:
            raise InputError(
                "label units join the top RBM to the layer below it, so a net with "
                "labels needs at least two hidden layers, for example 500,500"
            )
        self.n_visible = int(n_visible)
        self.layer_sizes = layer_sizes
        self.visible_type = visible_type
        self.n_labels = int(n_labels)
        sizes = [self.n_visible, *layer_sizes]
        rbms = []
        for i in range(len(layer_sizes)):
            top = i == len(layer_sizes) - 1
            labels = self.n_labels if top else 0
            rbms.append(
                RBMModule(
                    sizes[i] + labels,
                    sizes[i + 1],
                    visible_type if i == 0 else "bernoulli",
                    n_labels=labels,
                    learn_sigma=learn_sigma and i == 0,
                )
            )
        self.rbms = nn.ModuleList(rbms)
        self.head: nn.Linear | None = None
        self.head_units: str | None = None
        self.recognition: nn.ModuleList | None = None

    def config(self) -> dict:
        """Return the constructor arguments, for saving beside the weights."""
        return {
            "n_visible": self.n_visible,
            "layer_sizes": list(self.layer_sizes),
            "visible_type": self.visible_type,
            "n_labels": self.n_labels,
            "learn_sigma": self.rbms[0].learn_sigma,
            "head_classes": self.head.out_features if self.head is not None else 0,
            "head_units": self.head_units,
            "untied": self.recognition is not None,
        }

    @classmethod
    def from_config(cls, config: dict) -> DBNModule:
        """Build a net from the description :meth:`config` returns.

        Raises :class:`InputError` when a field is missing or has the wrong
        type or range. The weights start as for a new net.
        """
        check_model_config(config)
        dbn = cls(
            config["n_visible"],
            config["layer_sizes"],
            config.get("visible_type", "bernoulli"),
            config.get("n_labels", 0),
            config.get("learn_sigma", False),
        )
        if config.get("untied"):
            dbn.untie()
        if config.get("head_classes"):
            dbn.add_head(config["head_classes"], config.get("head_units"))
        return dbn

    def add_head(self, n_classes: int, units: str | None = None) -> nn.Linear:
        """Attach a zero-initialised softmax layer on the top hidden layer.

        With ``units`` (a unit SPEC) the layer reads those units instead.
        """
        device = self.rbms[0].weight.device
        n_inputs = self.layer_sizes[-1]
        if units is not None:
            selection = parse_units(units, [self.n_visible, *self.layer_sizes])
            units, n_inputs = selection.spec(), selection.n_units
        self.head = nn.Linear(n_inputs, n_classes).to(device)
        self.head.requires_grad_(False)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        self.head_units = units
        return self.head

    def untie(self) -> nn.ModuleList:
        """Give every layer below the top its own recognition weights.

        They start as copies of the generative weights (scaled by sigma for
        Gaussian inputs), so the up-pass is unchanged until they are trained.
        """
        layers = []
        for rbm in self.rbms[:-1]:
            linear = nn.Linear(rbm.n_visible, rbm.n_hidden).to(self.device)
            linear.requires_grad_(False)
            weight = rbm.weight / rbm.sigma[:, None] if rbm.gaussian else rbm.weight
            linear.weight.copy_(weight.T)
            linear.bias.copy_(rbm.hidden_bias)
            layers.append(linear)
        self.recognition = nn.ModuleList(layers)
        return self.recognition

    @property
    def untied(self) -> bool:
        return self.recognition is not None

    @property
    def n_layers(self) -> int:
        return len(self.layer_sizes)

    @property
    def device(self) -> torch.device:
        return self.rbms[0].weight.device

    # Recognition ---------------------------------------------------------------

    def layer_input(self, index: int, below: torch.Tensor) -> torch.Tensor:
        """Input to hidden layer ``index + 1`` from the layer below it.

        The label units of a top RBM contribute nothing here. An untied net
        uses its recognition weights below the top.
        """
        if self.recognition is not None and index < len(self.recognition):
            return self.recognition[index](below)
        rbm = self.rbms[index]
        if rbm.n_labels:
            weight = rbm.weight[: rbm.n_visible - rbm.n_labels]
            return torch.addmm(rbm.hidden_bias, below, weight)
        return rbm.hidden_input(below)

    def up(self, x: torch.Tensor, n_layers: int | None = None) -> list[torch.Tensor]:
        """Hidden probabilities of layers 1 to ``n_layers`` (default all) for ``x``.

        Returns a list of tensors of shapes (batch, layer_sizes[i]).
        """
        n_layers = self.n_layers if n_layers is None else n_layers
        activations, below = [], x
        for index in range(n_layers):
            below = torch.sigmoid(self.layer_input(index, below))
            activations.append(below)
        return activations

    def activations(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Return every layer's activity for ``x``: the input, then each hidden layer."""
        return [x, *self.up(x)]

    def class_log_probs(self, x: torch.Tensor) -> torch.Tensor:
        """``log p(class | x)``, shape (batch, n_classes).

        Uses the head of a fine-tuned stage, or else the label units of the
        top RBM through its free energy.
        """
        if self.head is not None:
            return torch.log_softmax(self.head(self.head_input(x)), 1)
        if self.n_labels:
            below = self.up(x, self.n_layers - 1)[-1]
            return self.rbms[-1].label_log_probs(below)
        raise InputError(
            "this net has no classifier: train it with label units (--labels) or "
            "fine-tune it, or train a classifier on its features with `deepgen probe`"
        )

    def head_input(self, x: torch.Tensor) -> torch.Tensor:
        """Compute the head's input for ``x``: the top layer or the ``head_units``."""
        if self.head_units is None:
            return self.up(x)[-1]
        selection = parse_units(self.head_units, [self.n_visible, *self.layer_sizes])
        activity = self.up(x, max(selection))
        layers = [x, *activity]
        return torch.cat(
            [
                layers[layer][:, torch.as_tensor(units, device=x.device)]
                for layer, units in sorted(selection.items())
            ],
            1,
        )

    # Generation ---------------------------------------------------------------

    def down(self, top_visible: torch.Tensor) -> torch.Tensor:
        """Mean-field pass from the top RBM's visible layer down to the input."""
        x = top_visible
        for rbm in reversed(self.rbms[:-1]):
            x = rbm.visible_mean(x)
        return x

    @torch.no_grad()
    def generate(
        self,
        n_samples: int,
        label: int | torch.Tensor | None = None,
        steps: int = 500,
        generator: torch.Generator | None = None,
        chain_every: int = 0,
        start: str = "noise",
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Sample inputs by a Gibbs chain in the top RBM and a down-pass.

        Parameters
        ----------
        n_samples : int
            Number of independent chains.
        label : int, tensor of shape (n_samples,) or None
            Class to clamp on the label units; None lets them run free.
        steps : int
            Gibbs steps in the top RBM.
        chain_every : int
            When positive, also return the images every ``chain_every`` steps.
        start : {"noise", "empty"}
            The chain's first state of the layer below the top: uniform binary
            noise, or every unit off, so that the first hidden state is drawn
            from the label (or the biases) alone. On slowly mixing nets, more
            chains from ``empty`` reach their label's digits within 1,000
            steps (figures in docs/benchmarks.md).

        Returns
        -------
        samples : tensor of shape (n_samples, n_visible)
            Mean-field images for the final state of each chain.
        chain : list of tensors of shape (n_samples, n_visible)
        """
        if steps < 1:
            raise InputError(f"the chain needs at least 1 Gibbs step, got {steps}")
        if start not in CHAIN_STARTS:
            raise InputError(
                f"unknown chain start {start!r}; valid choices are "
                f"{', '.join(CHAIN_STARTS)}"
            )
        top, k = self.rbms[-1], self.n_labels
        if label is not None and not k:
            raise InputError(
                "this net has no label units, so it cannot generate a chosen class; "
                "train it with --labels, or sample without --label"
            )
        device = self.device
        n_units = top.n_visible - k
        noise = torch.full((n_samples, n_units), 0.5, device=device)
        v = sample_bernoulli(noise, generator)
        if start == "empty":
            # The noise is still drawn, so both starts use the generator alike.
            v = torch.zeros_like(v)
        clamp = None
        if k:
            if label is None:
                labels = torch.randint(
                    k, (n_samples,), generator=generator, device=device
                )
            else:
                labels = torch.as_tensor(label, device=device).expand(n_samples)
                if int(labels.min()) < 0 or int(labels.max()) >= k:
                    raise InputError(f"label must be in 0..{k - 1}, got {label}")
                clamp = torch.zeros(top.n_visible, dtype=torch.bool, device=device)
                clamp[n_units:] = True
            v = torch.cat([v, F.one_hot(labels, k).to(v.dtype)], 1)

        chain = []
        for step in range(1, steps + 1):
            _, h = top.sample_hidden(v, generator)
            mean, v_new = top.sample_visible(h, generator)
            v = v_new if clamp is None else torch.where(clamp, v, v_new)
            if chain_every and (step % chain_every == 0 or step == 1):
                chain.append(self.down(mean[:, :n_units]))
        return self.down(mean[:, :n_units]), chain


def check_model_config(config: object) -> None:
    """Raise :class:`InputError` unless ``config`` is a net's description.

    The description is the dict :meth:`DBNModule.config` returns. Fields
    other than ``n_visible`` and ``layer_sizes`` may be missing.
    """
    if not isinstance(config, dict):
        raise InputError(f"the model must be an object, got {config!r}")
    for name in ("n_visible", "layer_sizes"):
        if name not in config:
            raise InputError(f"field {name!r} is missing")
    sizes = config["layer_sizes"]
    checks = [
        ("n_visible", is_int(config["n_visible"]), "a positive integer"),
        (
            "layer_sizes",
            isinstance(sizes, list) and sizes and all(is_int(n) for n in sizes),
            "a list of positive integers",
        ),
        (
            "visible_type",
            config.get("visible_type", "bernoulli") in VISIBLE_TYPES,
            f"one of {', '.join(VISIBLE_TYPES)}",
        ),
        ("n_labels", is_int(config.get("n_labels", 0), 0), "an integer >= 0"),
        (
            "learn_sigma",
            isinstance(config.get("learn_sigma", False), bool),
            "true or false",
        ),
        (
            "head_classes",
            is_int(config.get("head_classes", 0), 0),
            "an integer >= 0",
        ),
        (
            "head_units",
            isinstance(config.get("head_units"), (str, type(None))),
            "a unit SPEC or null",
        ),
        ("untied", isinstance(config.get("untied", False), bool), "true or false"),
    ]
    for name, valid, expected in checks:
        if not valid:
            raise InputError(f"field {name!r} must be {expected}, got {config[name]!r}")


# Greedy training -----------------------------------------------------------------


MAX_LAYER_SIZE = 100_000
"""Largest hidden layer accepted: far above any DBN in the literature, and low
enough that checking a configuration never tries to allocate a huge net."""


def check_layer_sizes(layers: list[int]) -> None:
    """Raise :class:`InputError` for a hidden layer larger than MAX_LAYER_SIZE."""
    too_big = [size for size in layers if size > MAX_LAYER_SIZE]
    if too_big:
        raise InputError(
            f"hidden layer size {too_big[0]} is above the limit of "
            f"{MAX_LAYER_SIZE:,} units; choose smaller layers, such as 500,500,2000"
        )


@dataclass
class DBNConfig:
    """Architecture and training settings of a Deep Belief Net."""

    layers: list[int]
    labels: bool = False
    visible_type: str = "bernoulli"
    learn_sigma: bool = False
    seed: int = 0
    rbm: RBMTrainingConfig = field(default_factory=RBMTrainingConfig)

    def to_dict(self) -> dict:
        return {
            "layers": list(self.layers),
            "labels": self.labels,
            "visible_type": self.visible_type,
            "learn_sigma": self.learn_sigma,
            "seed": self.seed,
            "rbm": self.rbm.to_dict(),
        }

    @classmethod
    def from_dict(cls, values: dict) -> DBNConfig:
        """Build the settings from ``values``, as written by :meth:`to_dict`.

        Raises :class:`InputError` for a missing ``layers``, a value of the
        wrong type, a layer size below 1 or an unknown visible unit type.
        """
        check_setting_types(cls, values)
        if "layers" not in values:
            raise InputError("setting 'layers' is missing")
        layers = values["layers"]
        if not layers or min(layers) < 1:
            raise InputError(
                f"setting 'layers' must list one or more positive sizes, got {layers}"
            )
        visible_type = values.get("visible_type", "bernoulli")
        if visible_type not in VISIBLE_TYPES:
            raise InputError(
                f"setting 'visible_type' must be one of {', '.join(VISIBLE_TYPES)}, "
                f"got {visible_type!r}"
            )
        return cls(
            layers=list(layers),
            labels=values.get("labels", False),
            visible_type=visible_type,
            learn_sigma=values.get("learn_sigma", False),
            seed=values.get("seed", 0),
            rbm=RBMTrainingConfig.from_dict(values.get("rbm", {})),
        )


@dataclass
class TrainingState:
    """The state of greedy training after an epoch, enough to resume exactly."""

    layer: int
    """Index of the RBM trained last (0-based)."""
    epoch: int
    """Epochs of that RBM done."""
    tensors: dict[str, torch.Tensor]
    history: list[dict]
    source: str = "the checkpoint"
    """The file the state was read from, as error messages name it."""


class Checkpointer(Protocol):
    """Storage for :class:`TrainingState`; see ``deepgen_core.runs``."""

    def load(self, device: torch.device) -> TrainingState | None: ...

    def save(self, state: TrainingState) -> None: ...


def _state_tensors(
    dbn: DBNModule, trainer: CDTrainer, generator: torch.Generator
) -> dict[str, torch.Tensor]:
    tensors = {f"model.{k}": v for k, v in dbn.state_dict().items()}
    tensors.update({f"trainer.{k}": v for k, v in trainer.state_tensors().items()})
    tensors["generator_state"] = generator.get_state()
    return tensors


def _subset(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}


def check_saved_state(
    saved: TrainingState, dbn: DBNModule, config: RBMTrainingConfig
) -> None:
    """Raise :class:`InputError` unless the tensors of ``saved`` fit ``dbn``.

    Checks names, shapes and finite values before anything is loaded, so
    that a checkpoint written for another net gives one clear error.
    """
    problem = _saved_state_problem(saved, dbn, config)
    if problem is not None:
        raise InputError(
            f"{saved.source} is damaged or does not fit the run's configuration "
            f"({problem}); restore the run folder from a copy, or train the run "
            "again into a new folder"
        )


def _saved_state_problem(
    saved: TrainingState, dbn: DBNModule, config: RBMTrainingConfig
) -> str | None:
    """Describe the first tensor of ``saved`` that does not fit ``dbn``, or None."""
    tensors = saved.tensors
    # The trainer tensors belong to the RBM trained last. Chains exist only
    # with PCD, and the mean activity only with a sparsity target.
    rbm = dbn.rbms[saved.layer]
    trainer = CDTrainer(rbm, config, make_generator(0, dbn.device))
    expected = {f"model.{k}": v.shape for k, v in dbn.state_dict().items()}
    expected.update(
        {f"trainer.{k}": v.shape for k, v in trainer.state_tensors().items()}
    )
    optional = {
        "trainer.chains": (None, rbm.n_visible),
        "trainer.mean_activity": (rbm.n_hidden,),
    }

    for name, shape in expected.items():
        if name not in tensors:
            return f"tensor {name!r} is missing"
        if tensors[name].shape != shape:
            return (
                f"tensor {name!r} has shape {tuple(tensors[name].shape)}, "
                f"the net needs {tuple(shape)}"
            )

    for name, tensor in tensors.items():
        if name.startswith("model.") and name not in expected:
            return f"tensor {name!r} is not part of the net"
        if name in optional and not _shape_fits(tensor.shape, optional[name]):
            return f"tensor {name!r} has shape {tuple(tensor.shape)}"
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            return f"tensor {name!r} contains NaN or inf"

    if "generator_state" not in tensors:
        return "tensor 'generator_state' is missing"
    try:
        make_generator(0, dbn.device).set_state(tensors["generator_state"].cpu())
    except (RuntimeError, TypeError) as error:
        return f"tensor 'generator_state' is not a random generator state ({error})"
    return None


def _shape_fits(shape: torch.Size, pattern: tuple[int | None, ...]) -> bool:
    """Return whether ``shape`` matches ``pattern``, where None matches any size."""
    return len(shape) == len(pattern) and all(
        want is None or got == want for got, want in zip(shape, pattern)
    )


def layer_data(
    dbn: DBNModule, index: int, x: torch.Tensor, y: torch.Tensor | None
) -> torch.Tensor:
    """Training data of RBM ``index``: hidden probabilities of the layer below.

    The top RBM of a net with labels gets the one-hot labels appended.
    """
    with torch.no_grad():
        data = dbn.up(x, index)[-1] if index else x
    rbm = dbn.rbms[index]
    if rbm.n_labels:
        if y is None:
            raise InputError(
                "a net with label units needs labels for every training row; "
                "use a labelled dataset or train without --labels"
            )
        data = torch.cat([data, F.one_hot(y, rbm.n_labels).to(data.dtype)], 1)
    return data


def train_dbn(
    x: torch.Tensor,
    config: DBNConfig,
    y: torch.Tensor | None = None,
    x_valid: torch.Tensor | None = None,
    y_valid: torch.Tensor | None = None,
    n_classes: int | None = None,
    checkpointer: Checkpointer | None = None,
    progress: ProgressCallback | None = None,
    should_stop: StopCheck | None = None,
) -> tuple[DBNModule, list[dict]]:
    """Train a DBN greedily on ``x`` of shape (n_samples, n_visible).

    Each RBM is trained for ``config.rbm.epochs`` epochs on the hidden
    probabilities of the layer below. After every epoch the state is handed
    to ``checkpointer``; when it already contains a state, training resumes
    from it and ends with the same weights as an uninterrupted run on the
    same device and seed.

    Returns the trained net and one dict of figures per layer and epoch.
    """
    config.rbm.validate()
    device = x.device
    n_labels = 0
    if config.labels:
        if y is None:
            raise InputError("--labels needs a dataset with labels")
        n_labels = int(n_classes or int(y.max()) + 1)
    dbn = DBNModule(
        x.shape[1], config.layers, config.visible_type, n_labels, config.learn_sigma
    ).to(device)
    check_training_data(x, dbn.n_visible, config.visible_type, config.rbm)
    generator = make_generator(config.seed, device)

    saved = checkpointer.load(device) if checkpointer else None
    history: list[dict] = []
    start_layer, done_epochs = 0, 0
    if saved is not None:
        check_saved_state(saved, dbn, config.rbm)
        dbn.load_state_dict(_subset(saved.tensors, "model."))
        generator.set_state(saved.tensors["generator_state"].cpu())
        history = list(saved.history)
        start_layer, done_epochs = saved.layer, saved.epoch
        if done_epochs >= config.rbm.epochs:
            start_layer, done_epochs = start_layer + 1, 0
        logger.info("resuming at layer %d after epoch %d", start_layer + 1, done_epochs)

    for index in range(start_layer, dbn.n_layers):
        rbm = dbn.rbms[index]
        data = layer_data(dbn, index, x, y)
        valid = None
        if x_valid is not None and (not rbm.n_labels or y_valid is not None):
            valid = layer_data(dbn, index, x_valid, y_valid)
        trainer = CDTrainer(rbm, config.rbm, generator)
        if saved is not None and index == saved.layer and done_epochs:
            trainer.load_state_tensors(_subset(saved.tensors, "trainer."))
        else:
            rbm.initialize(generator, data.mean(0))
            done_epochs = 0
        for epoch in range(done_epochs + 1, config.rbm.epochs + 1):
            started = time.perf_counter()
            trainer.run_epoch(
                data, epoch, progress, should_stop, index + 1, dbn.n_layers
            )
            figures = epoch_metrics(rbm, data, valid)
            check_finite(rbm, figures, f"layer {index + 1}, epoch {epoch}")
            figures.update(layer=index + 1, epoch=epoch)
            figures["seconds"] = round(time.perf_counter() - started, 4)
            history.append(figures)
            logger.info(
                "layer %d epoch %d: %s", index + 1, epoch, format_figures(figures)
            )
            if checkpointer is not None:
                tensors = _state_tensors(dbn, trainer, generator)
                checkpointer.save(TrainingState(index, epoch, tensors, history))
        done_epochs = 0
    return dbn, history
