"""Judging generated images with a reference classifier trained on real data.

The reference classifier is a small multilayer perceptron (n_features-256-10)
trained once per dataset with a fixed seed and kept as a file, so that every
stage of every run on that dataset is judged by the same model. It is only a
measuring instrument, trained on real images alone.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .checkpoint import atomic_write_json, load_tensors, read_json, save_tensors
from .data import Dataset
from .errors import InputError

logger = logging.getLogger(__name__)

REFERENCE_HIDDEN = 256
REFERENCE_EPOCHS = 15
REFERENCE_BATCH = 128
DISTANCE_BATCH = 512


def make_reference_net(n_features: int, n_classes: int) -> nn.Sequential:
    """Create the reference classifier's layers, before training."""
    return nn.Sequential(
        nn.Linear(n_features, REFERENCE_HIDDEN),
        nn.ReLU(),
        nn.Linear(REFERENCE_HIDDEN, n_classes),
    )


def reference_key(dataset: Dataset) -> str:
    """File-name key of a dataset's reference classifier."""
    digest = hashlib.sha256(dataset.x_train[:1000].tobytes()).hexdigest()[:12]
    name = re.sub(r"[^a-z0-9-]+", "-", dataset.name.lower()).strip("-") or "data"
    return f"{name}-{digest}"


def train_reference(dataset: Dataset, seed: int = 0) -> tuple[nn.Sequential, float]:
    """Train the reference classifier on ``dataset``; return it and its test accuracy.

    Adam with learning rate 1e-3 for 15 epochs of batches of 128, on the CPU.
    """
    if dataset.y_train is None or dataset.n_classes is None:
        raise InputError(
            f"dataset {dataset.name} has no labels, so no reference classifier can "
            "judge its samples"
        )
    generator = torch.Generator().manual_seed(seed)
    torch_state = torch.random.get_rng_state()
    torch.manual_seed(seed)  # nn.Linear draws its initial weights from the global RNG
    net = make_reference_net(dataset.n_features, dataset.n_classes)
    torch.random.set_rng_state(torch_state)
    x = torch.as_tensor(dataset.x_train)
    y = torch.as_tensor(dataset.y_train)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    for _ in range(REFERENCE_EPOCHS):
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), REFERENCE_BATCH):
            rows = order[start : start + REFERENCE_BATCH]
            optimizer.zero_grad()
            F.cross_entropy(net(x.index_select(0, rows)), y[rows]).backward()
            optimizer.step()
    net.eval()
    accuracy = float("nan")
    if dataset.y_test is not None:
        predicted = class_probs(net, dataset.x_test).argmax(1)
        accuracy = float((predicted == dataset.y_test).mean())
    return net, accuracy


def load_reference(dataset: Dataset, folder: str | Path) -> tuple[nn.Sequential, dict]:
    """Load the dataset's reference classifier from ``folder``, training it once.

    Returns the net and its description (``test_accuracy``, ``key``).
    """
    folder = Path(folder)
    key = reference_key(dataset)
    weights, description = folder / f"{key}.safetensors", folder / f"{key}.json"
    if weights.exists() and description.exists():
        info = read_json(description)
        net = make_reference_net(dataset.n_features, info["n_classes"])
        net.load_state_dict(load_tensors(weights, torch.device("cpu")))
        net.eval()
        return net, info
    net, accuracy = train_reference(dataset)
    info = {
        "key": key,
        "dataset": dataset.name,
        "n_classes": dataset.n_classes,
        "test_accuracy": accuracy,
        "architecture": f"{dataset.n_features}-{REFERENCE_HIDDEN}-{dataset.n_classes}",
    }
    folder.mkdir(parents=True, exist_ok=True)
    save_tensors(weights, net.state_dict())
    atomic_write_json(description, info)
    logger.info("trained reference classifier %s: accuracy %.4f", key, accuracy)
    return net, info


def class_probs(net: nn.Sequential, x: np.ndarray) -> np.ndarray:
    """Class probabilities of rows ``x`` (n, n_features), shape (n, n_classes)."""
    with torch.no_grad():
        logits = net(torch.as_tensor(np.asarray(x, dtype=np.float32)))
    return torch.softmax(logits, 1).numpy()


def nearest_distances(samples: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Euclidean distance from each sample to its nearest row of ``reference``."""
    pool = torch.as_tensor(np.asarray(reference, dtype=np.float32))
    nearest = []
    for start in range(0, len(samples), DISTANCE_BATCH):
        batch = torch.as_tensor(
            np.asarray(samples[start : start + DISTANCE_BATCH], dtype=np.float32)
        )
        nearest.append(torch.cdist(batch, pool).min(1).values.numpy())
    return np.concatenate(nearest)


def nearest_other_distances(samples: np.ndarray) -> np.ndarray:
    """Euclidean distance from each sample to its nearest other sample."""
    pool = torch.as_tensor(np.asarray(samples, dtype=np.float32))
    nearest = []
    for start in range(0, len(pool), DISTANCE_BATCH):
        distances = torch.cdist(pool[start : start + DISTANCE_BATCH], pool)
        rows = torch.arange(len(distances))
        distances[rows, rows + start] = float("inf")
        nearest.append(distances.min(1).values.numpy())
    return np.concatenate(nearest)


def reference_features(net: nn.Sequential, x: np.ndarray) -> np.ndarray:
    """Compute the reference classifier's hidden layer for rows ``x``, float64."""
    with torch.no_grad():
        hidden = net[:2](torch.as_tensor(np.asarray(x, dtype=np.float32)))
    return hidden.double().numpy()


class FrechetReference:
    """Mean, covariance and covariance square root of reference feature rows.

    Fréchet distance between Gaussians fitted to two sets of rows:
    ``|m1 - m2|^2 + tr(C1 + C2 - 2 (C1 C2)^(1/2))``. The trace of the square
    root equals that of ``(R C1 R)^(1/2)`` with ``R = C2^(1/2)``. That matrix is
    symmetric, so the result is real, and ``R`` is computed once per reference.
    """

    def __init__(self, rows: np.ndarray) -> None:
        self.mean = rows.mean(0)
        self.covariance = np.cov(rows, rowvar=False)
        values, vectors = np.linalg.eigh(self.covariance)
        self.root = (vectors * np.sqrt(values.clip(min=0))) @ vectors.T

    def distance(self, rows: np.ndarray) -> float:
        gap = rows.mean(0) - self.mean
        covariance = np.cov(rows, rowvar=False)
        cross = np.linalg.eigvalsh(self.root @ covariance @ self.root).clip(min=0)
        value = (
            gap @ gap
            + np.trace(covariance)
            + np.trace(self.covariance)
            - 2 * np.sqrt(cross).sum()
        )
        return float(max(value, 0.0))


def frechet_distance(first: np.ndarray, second: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two sets of feature rows."""
    return FrechetReference(second).distance(first)


def _class_figures(predicted: np.ndarray, n_classes: int) -> tuple[float, float]:
    """Entropy (nats) of the predicted-class histogram, and the classes covered.

    A class counts as covered when it gets at least half of an even share of
    the samples, so one stray sample does not cover a class.
    """
    counts = np.bincount(predicted, minlength=n_classes)
    frequencies = counts[counts > 0] / len(predicted)
    # max() turns the -0.0 of a single class into 0.0.
    entropy = max(0.0, float(-(frequencies * np.log(frequencies)).sum()))
    covered = float((counts * n_classes >= 0.5 * len(predicted)).mean())
    return entropy, covered


def sample_quality(
    samples: np.ndarray,
    probs: np.ndarray,
    x_train: np.ndarray,
    label: int | np.ndarray | None = None,
) -> dict:
    """Figures that judge generated images (n, n_features) and their class ``probs``.

    - ``label_confidence``: the mean probability the reference classifier
      gives the requested ``label`` (one class, or one per sample), or its
      mean top probability when no label was requested.
    - ``class_entropy``: the entropy in nats of the predicted-class
      histogram; log(n_classes) when every class is predicted equally often.
    - ``class_evenness``: that entropy divided by log(n_classes).
    - ``coverage``: the fraction of classes that get at least half of an even
      share of the samples.
    - ``nn_train_distance``: the mean distance to the nearest training image
      (small values expose copying, large values poor images).
    """
    n_classes = probs.shape[1]
    predicted = probs.argmax(1)
    entropy, covered = _class_figures(predicted, n_classes)
    if label is None:
        confidence = probs.max(1)
    else:
        requested = np.broadcast_to(np.asarray(label), (len(probs),))
        confidence = probs[np.arange(len(probs)), requested]
    return {
        "label_confidence": float(confidence.mean()),
        "class_entropy": entropy,
        "class_evenness": entropy / math.log(n_classes),
        "coverage": covered,
        "nn_train_distance": float(nearest_distances(samples, x_train).mean()),
        "predicted_counts": np.bincount(predicted, minlength=n_classes).tolist(),
        "n_samples": len(samples),
    }


BOOTSTRAP_DRAWS = 20


def full_sample_quality(
    samples: np.ndarray,
    net: nn.Sequential,
    x_train: np.ndarray,
    x_test: np.ndarray,
    label: np.ndarray | None = None,
    seed: int = 0,
) -> tuple[dict, dict]:
    """Compute every figure of :func:`sample_quality` and more, with standard errors.

    Adds ``nn_sample_distance``, the mean distance to the nearest other
    sample, whose small values expose collapse. Adds ``frechet_distance``
    between the reference classifier's hidden features of the samples and of
    the rows ``x_test``, which is 0 for identical statistics. Means get the standard error of
    the mean; entropy, coverage and the Fréchet distance get the spread of
    ``BOOTSTRAP_DRAWS`` bootstrap resamples of the samples.

    Returns ``(figures, stderr)``, two dicts with the same keys.
    """
    probs = class_probs(net, samples)
    figures = sample_quality(samples, probs, x_train, label)
    n = len(samples)
    if label is None:
        confidence = probs.max(1)
    else:
        confidence = probs[np.arange(n), np.broadcast_to(np.asarray(label), (n,))]
    train_gaps = nearest_distances(samples, x_train)
    sample_gaps = nearest_other_distances(samples)
    sample_features = reference_features(net, samples)
    reference = FrechetReference(reference_features(net, x_test))
    figures["nn_sample_distance"] = float(sample_gaps.mean())
    figures["frechet_distance"] = reference.distance(sample_features)

    def spread(values: np.ndarray) -> float:
        return float(values.std(ddof=1) / math.sqrt(len(values)))

    rng = np.random.default_rng(seed)
    predicted = probs.argmax(1)
    draws = {"class_entropy": [], "coverage": [], "frechet_distance": []}
    for _ in range(BOOTSTRAP_DRAWS):
        rows = rng.integers(0, n, n)
        entropy, covered = _class_figures(predicted[rows], probs.shape[1])
        draws["class_entropy"].append(entropy)
        draws["coverage"].append(covered)
        draws["frechet_distance"].append(reference.distance(sample_features[rows]))
    # Rounding keeps identical resamples at an error of exactly 0, not 1e-17.
    stderr = {
        key: round(float(np.std(values, ddof=1)), 12) for key, values in draws.items()
    }
    stderr.update(
        label_confidence=spread(confidence),
        nn_train_distance=spread(train_gaps),
        nn_sample_distance=spread(sample_gaps),
    )
    stderr["class_evenness"] = stderr["class_entropy"] / math.log(probs.shape[1])
    return figures, stderr


def describe_difference(
    before: dict, after: dict, label: int | None, after_stage: str = "fine-tuned"
) -> str:
    """Write one plain sentence comparing the sample figures of two stages."""
    target = f"a {label}" if label is not None else "some digit"
    change = after["label_confidence"] - before["label_confidence"]
    if abs(change) < 0.05:
        confidence = "about as confidently"
    elif change > 0:
        confidence = "more confidently"
    else:
        confidence = "less confidently"
    sentence = (
        f"The reference classifier reads the {after_stage} samples as {target} "
        f"{confidence} ({after['label_confidence']:.2f} against "
        f"{before['label_confidence']:.2f})"
    )
    covered = (after["coverage"], before["coverage"])
    if label is None and covered[0] != covered[1]:
        sentence += (
            f", covering {covered[0]:.0%} of the classes against {covered[1]:.0%}"
        )
    distance = after["nn_train_distance"] - before["nn_train_distance"]
    if abs(distance) >= 0.5:
        nearer = "further from" if distance > 0 else "closer to"
        sentence += f", and they lie {abs(distance):.1f} {nearer} the training images"
    return sentence + "."
