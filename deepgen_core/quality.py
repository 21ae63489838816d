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
            F.cross_entropy(net(x[rows]), y[rows]).backward()
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


def sample_quality(
    samples: np.ndarray,
    probs: np.ndarray,
    x_train: np.ndarray,
    label: int | None = None,
) -> dict:
    """Figures that judge generated images (n, n_features) and their class ``probs``.

    - ``label_confidence``: the mean probability the reference classifier
      gives the requested ``label``, or its mean top probability when no
      label was requested.
    - ``class_evenness``: the entropy of the predicted-class histogram divided
      by log(n_classes): 1 when every class is predicted equally often, 0 when
      one class takes all.
    - ``coverage``: the fraction of classes predicted at least once.
    - ``nn_train_distance``: the mean distance to the nearest training image
      (small values expose copying, large values poor images).
    """
    n_classes = probs.shape[1]
    predicted = probs.argmax(1)
    counts = np.bincount(predicted, minlength=n_classes)
    frequencies = counts[counts > 0] / len(predicted)
    entropy = float(-(frequencies * np.log(frequencies)).sum())
    if label is None:
        confidence = float(probs.max(1).mean())
    else:
        confidence = float(probs[:, label].mean())
    return {
        "label_confidence": confidence,
        "class_evenness": entropy / math.log(n_classes),
        "coverage": float((counts > 0).mean()),
        "nn_train_distance": float(nearest_distances(samples, x_train).mean()),
        "predicted_counts": counts.tolist(),
        "n_samples": len(samples),
    }


def describe_difference(before: dict, after: dict, label: int | None) -> str:
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
        f"The reference classifier reads the fine-tuned samples as {target} "
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
