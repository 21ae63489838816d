"""Measurements of a stage's classifier, data model and samples: ``deepgen evaluate``.

:func:`evaluate_run` measures one stage of a run and saves the result as
``stages/STAGE/evaluation.json``; the app reads the same file. The figures:

``test_error``
    Held-out error of the stage's own classifier (its softmax head, or the
    top RBM's label units). A stage without either is scored by a linear SVM
    on its top hidden layer; ``test_error_method`` names the source.
``log_likelihood``, ``log_likelihood_reverse``
    Average log-probability of the held-out images, stochastically binarised
    with a fixed seed, in nats. A one-layer net gets ``log p(v)`` itself;
    a deeper one gets the variational lower bound of Salakhutdinov and
    Murray (2008) from samples of the recognition model. log Z of the top RBM
    is exact when its hidden layer is small enough to enumerate, else
    estimated by forward AIS (``log_likelihood``) and reverse AIS
    (``log_likelihood_reverse``).
``recon_error``
    Mean squared error per input unit of an up-pass to the top hidden layer
    and a mean-field down-pass back, on held-out images.
``sample_quality``, ``sample_quality_stderr``
    See :func:`deepgen_core.quality.full_sample_quality`, on samples drawn
    with the labels spread evenly (or free-running, for nets without
    labels).
"""

from __future__ import annotations

import logging
import math
import time

import numpy as np
import torch
import torch.nn.functional as F

from .data import binarize
from .dbn import DBNModule, layer_data
from .device import make_generator
from .errors import InputError
from .likelihood import (
    DEFAULT_RUNS,
    PartitionEstimate,
    ais_log_partition,
    scaled_betas,
)
from .operations import (
    class_accuracy,
    layer_activations,
    probe_features,
    stage_dataset,
)
from .progress import Progress, ProgressCallback, StopCheck, check_stop, report
from .quality import full_sample_quality, load_reference
from .rbm import log_partition_exact
from .runs import Run, to_tensor

logger = logging.getLogger(__name__)

EXACT_LIMIT = 20
"""Largest top hidden layer whose log Z is computed by enumeration."""
BOUND_SAMPLES = 5
"""Samples from the recognition model per image in the lower bound."""
BINARIZE_SEED = 0
DEFAULT_SAMPLES = 500
DEFAULT_STEPS = 500
SAMPLE_FIGURES = (
    "label_confidence",
    "class_entropy",
    "coverage",
    "nn_train_distance",
    "nn_sample_distance",
    "frechet_distance",
)
"""The sample-quality figures every evaluation reports."""


def check_evaluate_settings(params: dict) -> None:
    """Raise :class:`InputError` for settings an evaluation cannot run with."""
    if params["ais_runs"] < 2:
        raise InputError(
            f"AIS needs at least 2 runs for an error bar, got {params['ais_runs']}; "
            f"the published protocol uses {DEFAULT_RUNS}"
        )
    scaled_betas(params["ais_betas"])
    if params["n_samples"] < 2 or params["steps"] < 1:
        raise InputError(
            "evaluation needs at least 2 samples and 1 Gibbs step, got "
            f"{params['n_samples']} and {params['steps']}"
        )


def log_partition(
    dbn: DBNModule,
    top_data: torch.Tensor,
    n_runs: int,
    betas: np.ndarray,
    generator: torch.Generator,
    progress: ProgressCallback | None = None,
    should_stop: StopCheck | None = None,
) -> tuple[PartitionEstimate, PartitionEstimate]:
    """log Z of the top RBM: exact twice, or forward and reverse AIS."""
    top = dbn.rbms[-1]
    if top.n_hidden <= EXACT_LIMIT:
        exact = PartitionEstimate(
            log_partition_exact(top, EXACT_LIMIT), 0.0, "exact", 0, 0
        )
        return exact, exact
    forward = ais_log_partition(
        top,
        top_data,
        betas,
        n_runs,
        generator,
        progress=progress,
        should_stop=should_stop,
    )
    reverse = ais_log_partition(
        top,
        top_data,
        betas,
        n_runs,
        generator,
        reverse=True,
        progress=progress,
        should_stop=should_stop,
    )
    return forward, reverse


def _bernoulli_log_prob(logits: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
    """Sum over units of log p(states) under independent Bernoullis, per row."""
    return -F.binary_cross_entropy_with_logits(logits, states, reduction="none").sum(1)


def _log_unnormalised_top(dbn: DBNModule, below: torch.Tensor) -> torch.Tensor:
    """``log sum_{h, labels} exp(-E)`` of the top RBM for each row of ``below``."""
    top, k = dbn.rbms[-1], dbn.n_labels
    if not k:
        return -top.free_energy(below)
    terms = []
    for label in range(k):
        one_hot = F.one_hot(torch.full((len(below),), label, device=below.device), k)
        terms.append(-top.free_energy(torch.cat([below, one_hot.to(below.dtype)], 1)))
    return torch.logsumexp(torch.stack(terms, 1), 1)


@torch.no_grad()
def bound_terms(
    dbn: DBNModule, v: torch.Tensor, n_draws: int, generator: torch.Generator
) -> torch.Tensor:
    """Compute the lower bound on log p(v) without -log Z, shape (n_images, n_draws).

    Each draw samples layers 1..L-1 from the recognition model q and adds
    ``log p*(h_{L-1}) + sum_i log p(h_{i-1} | h_i) - sum_i log q(h_i | h_{i-1})``,
    where p* is the top RBM's unnormalised marginal (labels summed out).
    For a one-layer net this is ``-F(v)``, and the bound is exact.
    """
    v = v.float()
    if dbn.n_layers == 1:
        return (-dbn.rbms[0].free_energy(v)).double().unsqueeze(1).expand(-1, n_draws)
    draws = []
    for _ in range(n_draws):
        total = torch.zeros(len(v), dtype=torch.float64, device=v.device)
        below = v
        for index in range(dbn.n_layers - 1):
            logits = dbn.layer_input(index, below)
            state = (
                torch.rand(logits.shape, generator=generator, device=v.device)
                < torch.sigmoid(logits)
            ).float()
            generative = dbn.rbms[index].visible_input(state)
            total += _bernoulli_log_prob(generative, below).double()
            total -= _bernoulli_log_prob(logits, state).double()
            below = state
        total += _log_unnormalised_top(dbn, below).double()
        draws.append(total)
    return torch.stack(draws, 1)


def log_likelihood(
    dbn: DBNModule,
    v: torch.Tensor,
    train: torch.Tensor,
    train_labels: torch.Tensor | None,
    n_runs: int = DEFAULT_RUNS,
    betas: np.ndarray | None = None,
    seed: int = 0,
    progress: ProgressCallback | None = None,
    should_stop: StopCheck | None = None,
) -> tuple[dict, dict]:
    """Average log-likelihood (or its lower bound) of binary rows ``v``.

    ``train`` and ``train_labels`` set the base rates of AIS. Returns the
    forward and reverse figures, each ``{value, stderr, method, log_z, ...}``.
    """
    if dbn.visible_type != "bernoulli":
        raise InputError(
            "log-likelihoods are measured for Bernoulli visible units; this net "
            f"has {dbn.visible_type} ones, whose density is not comparable"
        )
    generator = make_generator(seed, v.device)
    betas = scaled_betas() if betas is None else betas
    with torch.no_grad():
        top_data = layer_data(dbn, dbn.n_layers - 1, train, train_labels)
    forward, reverse = log_partition(
        dbn, top_data, n_runs, betas, generator, progress, should_stop
    )
    check_stop(should_stop)
    terms = torch.cat(
        [
            bound_terms(dbn, v[i : i + 1000], BOUND_SAMPLES, generator)
            for i in range(0, len(v), 1000)
        ]
    )
    mean, n_draws = float(terms.mean()), terms.shape[1]
    bound = dbn.n_layers > 1
    # The Monte Carlo error of the bound's draws from q; the images are fixed.
    draw_error = float(terms.var(1).mean()) / (n_draws * len(v)) if bound else 0.0
    results = []
    for estimate in (forward, reverse):
        stderr = math.sqrt(estimate.stderr**2 + draw_error)
        method = estimate.method + ("-lower-bound" if bound else "")
        results.append(
            {
                "value": mean - estimate.log_z,
                "stderr": stderr,
                "method": method,
                "log_z": estimate.to_dict(),
                "n_images": len(v),
                "bound_draws": n_draws if bound else 0,
            }
        )
    gap = abs(forward.log_z - reverse.log_z)
    allowed = 3 * math.hypot(forward.stderr, reverse.stderr)
    if forward.method != "exact" and gap > allowed:
        warning = (
            f"forward and reverse AIS disagree on log Z by {gap:.2f} nats, more than "
            f"three combined standard errors ({allowed:.2f}); use more runs or more "
            "temperatures"
        )
        logger.warning(warning)
        for result in results:
            result["warning"] = warning
    return results[0], results[1]


@torch.no_grad()
def reconstruction_error(dbn: DBNModule, x: torch.Tensor) -> float:
    """Mean squared error per input unit of an up-pass and a down-pass of ``x``."""
    top, total = dbn.rbms[-1], 0.0
    n_units = top.n_visible - top.n_labels
    for start in range(0, len(x), 1000):
        batch = x[start : start + 1000]
        hidden = dbn.up(batch)[-1]
        back = dbn.down(top.visible_mean(hidden)[:, :n_units])
        total += float(((back - batch) ** 2).sum())
    return total / x.numel()


def generative_model_note(dbn: DBNModule, info: dict) -> str:
    """Say which weights the stage generates with, for the evaluation's readers."""
    method = info.get("method")
    if method == "backprop":
        return (
            "fine-tuned recognition weights used as the generative weights; the top "
            "RBM keeps its pretrained visible biases and label weights"
        )
    if method == "head":
        return "the pretrained generative model, unchanged: only a classifier head was trained"
    if method == "updown":
        return (
            "the untied generative weights and top RBM learned by up-down fine-tuning"
        )
    return "the greedily pretrained weights, tied between recognition and generation"


def classifier_error(
    dbn: DBNModule, x: np.ndarray, y: np.ndarray, x_train: np.ndarray, y_train
) -> tuple[float, str]:
    """Held-out error of the stage's own classifier, or of a linear SVM on its top layer."""
    if dbn.head is not None or dbn.n_labels:
        source = "softmax head" if dbn.head is not None else "top RBM's label units"
        return 1 - class_accuracy(dbn, x, y), source
    train = layer_activations(dbn, x_train)[-1]
    test = layer_activations(dbn, x)[-1]
    result = probe_features(train, y_train, test, y)
    return 1 - result["accuracy"], "linear SVM on the top hidden layer"


def not_measured(reason: str) -> dict:
    """Build the entry of a log-likelihood that could not be measured."""
    return {"value": None, "stderr": None, "method": None, "reason": reason}


def evaluate_run(
    run: Run,
    stage: str,
    ais_runs: int = DEFAULT_RUNS,
    ais_betas: int = 14_500,
    n_samples: int = DEFAULT_SAMPLES,
    steps: int = DEFAULT_STEPS,
    seed: int = 0,
    progress: ProgressCallback | None = None,
    should_stop: StopCheck | None = None,
) -> dict:
    """Measure ``stage`` of ``run``; save and return the figures as one dict.

    ``ais_betas`` is the number of steps of the annealing schedule (the
    published 14,500 by default; see :func:`scaled_betas`).
    """
    started = time.perf_counter()
    dbn = run.load_stage(stage)
    weights = run.stage_dir(stage) / "model.safetensors"
    stamp = weights.stat().st_mtime_ns
    info = run.stage_info(stage).get("info", {})
    dataset = stage_dataset(run, dbn)
    device = dbn.device
    settings = {
        "ais_runs": ais_runs,
        "ais_betas": ais_betas,
        "n_samples": n_samples,
        "steps": steps,
        "seed": seed,
    }
    check_evaluate_settings(settings)
    betas = scaled_betas(ais_betas)
    phases = 5
    state = Progress("evaluate", 0, phases, 1, 1, message="classifier")
    report(progress, state)

    result: dict = {"run": str(run.path), "stage": stage}
    if dataset.y_test is not None and dataset.y_train is not None:
        error, source = classifier_error(
            dbn, dataset.x_test, dataset.y_test, dataset.x_train, dataset.y_train
        )
        result.update(test_error=error, test_error_method=source)
    else:
        result.update(test_error=None, test_error_method="the dataset has no labels")

    x_test = to_tensor(dataset.x_test, device)
    result["recon_error"] = reconstruction_error(dbn, x_test)

    check_stop(should_stop)
    state.step, state.message = 1, "log-likelihood"
    report(progress, state)

    def forward_progress(inner: Progress) -> None:
        state.message = f"log-likelihood: {inner.message}"
        state.metrics = {"fraction": inner.step / max(1, inner.total)}
        report(progress, state)

    if dbn.rbms[0].gaussian:
        forward = not_measured(
            "the log-likelihood is measured only for nets with Bernoulli input "
            "units, and this net's input units are Gaussian"
        )
        reverse = dict(forward)
    else:
        binary_test = binarize(
            dataset.x_test, "stochastic", np.random.default_rng(BINARIZE_SEED)
        )
        y_train = None
        if dbn.n_labels:
            y_train = to_tensor(dataset.y_train, device, torch.int64)
        try:
            forward, reverse = log_likelihood(
                dbn,
                to_tensor(binary_test, device),
                to_tensor(dataset.x_train, device),
                y_train,
                ais_runs,
                betas,
                seed,
                forward_progress,
                should_stop,
            )
        except InputError as error:
            forward, reverse = not_measured(str(error)), not_measured(str(error))
    for figures in (forward, reverse):
        figures["generative_model"] = generative_model_note(dbn, info)
        figures["test_images"] = (
            f"the held-out split, stochastically binarised with seed {BINARIZE_SEED}"
        )
    result["log_likelihood"] = forward
    result["log_likelihood_reverse"] = reverse

    check_stop(should_stop)
    state.step, state.message, state.metrics = 3, "sampling", {}
    report(progress, state)
    generator = make_generator(seed, device)
    labels = None
    if dbn.n_labels:
        labels = torch.arange(n_samples, device=device) % dbn.n_labels
    samples, _ = dbn.generate(n_samples, labels, steps, generator)
    samples = samples.cpu().numpy()

    check_stop(should_stop)
    state.step, state.message = 4, "sample quality"
    report(progress, state)
    if dataset.y_train is not None:
        net, reference = load_reference(dataset, run.path.parent / "references")
        figures, stderr = full_sample_quality(
            samples,
            net,
            dataset.x_train,
            dataset.x_test,
            None if labels is None else labels.cpu().numpy(),
            seed,
        )
        result["sample_quality"] = figures
        result["sample_quality_stderr"] = stderr
        result["reference_classifier"] = reference
    else:
        result["sample_quality"] = None
        result["sample_quality_stderr"] = None
    result["settings"] = {
        **settings,
        "labels": "spread evenly over the classes" if dbn.n_labels else "free-running",
    }
    result["seconds"] = round(time.perf_counter() - started, 3)
    state.step, state.message = phases, "done"
    report(progress, state)
    if not weights.exists() or weights.stat().st_mtime_ns != stamp:
        raise InputError(
            f"stage {stage} of run {run.path} was replaced while it was being "
            "measured; measure it again"
        )
    run.save_evaluation(stage, result)
    return result


FIGURE_NAMES = {
    "test_error": "test error",
    "log_likelihood": "log-likelihood",
    "recon_error": "reconstruction error",
    "label_confidence": "confidence in the label",
    "class_entropy": "class entropy",
    "coverage": "classes covered",
    "nn_train_distance": "distance to nearest training image",
    "nn_sample_distance": "distance to nearest other sample",
    "frechet_distance": "Fréchet distance",
}
"""Plain names of the figures, in the order they are shown."""
HIGHER_IS_BETTER = {
    "test_error": False,
    "log_likelihood": True,
    "recon_error": False,
    "label_confidence": True,
    "class_entropy": True,
    "coverage": True,
    "nn_sample_distance": True,
    "frechet_distance": False,
}
"""Direction of improvement of each figure. The distance to the training images
has none, because both copies and poor images change it."""


def figure_rows(evaluation: dict) -> dict[str, tuple[float | None, float | None]]:
    """Collect each figure of an evaluation as ``(value, standard error)``, by key.

    The log-likelihood's error is that of the forward estimate; figures that
    were not measured are ``(None, None)``.
    """
    quality = evaluation.get("sample_quality") or {}
    errors = evaluation.get("sample_quality_stderr") or {}
    likelihood = evaluation["log_likelihood"]
    rows = {
        "test_error": (evaluation.get("test_error"), None),
        "log_likelihood": (likelihood.get("value"), likelihood.get("stderr")),
        "recon_error": (evaluation.get("recon_error"), None),
    }
    for key in SAMPLE_FIGURES:
        rows[key] = (quality.get(key), errors.get(key))
    return rows


def describe_change(before: dict, after: dict) -> str:
    """Say in plain words how the figures of ``after`` differ from ``before``.

    A change is reported only when it exceeds twice the combined standard
    error (or 1% of the value, for figures without one).
    """
    first, second = figure_rows(before), figure_rows(after)
    better, worse, other = [], [], []
    for key, name in FIGURE_NAMES.items():
        (old, old_error), (new, new_error) = first[key], second[key]
        if old is None or new is None:
            continue
        noise = 2 * math.hypot(old_error or 0.0, new_error or 0.0)
        change = new - old
        if abs(change) <= max(noise, 0.01 * abs(old), 1e-9):
            continue
        if key == "log_likelihood":
            phrase = f"{name} {'up' if change > 0 else 'down'} {abs(change):.1f} nats"
        elif old:
            phrase = (
                f"{name} {'up' if change > 0 else 'down'} {abs(change) / abs(old):.0%}"
            )
        else:
            phrase = f"{name} {'up' if change > 0 else 'down'} by {abs(change):.3g}"
        if key not in HIGHER_IS_BETTER:
            closer = "further from" if change > 0 else "closer to"
            other.append(f"Its samples lie {closer} the training images ({phrase}).")
        elif (change > 0) == HIGHER_IS_BETTER[key]:
            better.append(phrase)
        else:
            worse.append(phrase)
    name_before, name_after = before["stage"], after["stage"]
    if not better and not worse:
        sentence = (
            f"{name_after} and {name_before} measure the same within their error bars."
        )
        return " ".join([sentence, *other])
    parts = []
    if better:
        parts.append("better on " + ", ".join(better))
    if worse:
        parts.append("worse on " + ", ".join(worse))
    sentence = f"Against {name_before}, {name_after} is " + "; ".join(parts) + "."
    return " ".join([sentence, *other])
