"""Growth of a pretraining epoch's time with layer width and with the number of images.

Run from the repository root, with the MNIST IDX files in ``DEEPGEN_DATA_DIR``::

    python -m experiments.scaling
    python -m experiments.scaling --device cuda

One epoch of CD-1 on a 784-visible RBM (batches of 100, float32) is the
unit of pretraining cost: a DBN's epoch is one such epoch per layer. The
command times it for several hidden-layer widths on a fixed number of
images, and for several numbers of images at a fixed width. Each figure is
the median of a few epochs after one warm-up epoch. The growth exponent b of
seconds ~ a * size^b is fitted on a log-log scale. Both costs should be close to
linear (b near 1): each batch is a few matrix products whose size is
proportional to the width, and an epoch has as many batches as the data
has rows divided by 100. Where small sizes cost more than this predicts,
the fixed cost of each batch dominates.

Timings are only comparable within one run on a quiet machine.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import torch

from deepgen_core.data import load_dataset
from deepgen_core.device import make_generator
from deepgen_core.rbm import RBMModule, sample_bernoulli
from deepgen_core.training import CDTrainer, RBMTrainingConfig

from .common import Experiment, base_parser, run_command

NAME = "scaling"
FULL = {
    "dataset": "mnist",
    "widths": [125, 250, 500, 1000, 2000],
    "width_rows": 10_000,
    "rows": [2500, 5000, 10_000, 20_000, 40_000, 60_000],
    "rows_width": 500,
    "repeats": 3,
}
QUICK = {
    "dataset": "mnist-10k",
    "widths": [100, 200, 400],
    "width_rows": 2000,
    "rows": [1000, 2000, 4000, 8000],
    "rows_width": 200,
    "repeats": 1,
}


def epoch_seconds(
    x: torch.Tensor, width: int, repeats: int, generator: torch.Generator
) -> float:
    """Median seconds of ``repeats`` CD-1 epochs of a 784 x ``width`` RBM on ``x``."""
    rbm = RBMModule(x.shape[1], width).to(x.device)
    rbm.initialize(generator, x.mean(0))
    trainer = CDTrainer(rbm, RBMTrainingConfig(epochs=repeats + 1), generator)
    trainer.run_epoch(x, 1)  # warm-up: allocation and kernel selection
    times = []
    for epoch in range(2, repeats + 2):
        if x.device.type == "cuda":
            torch.cuda.synchronize(x.device)
        started = time.perf_counter()
        trainer.run_epoch(x, epoch)
        if x.device.type == "cuda":
            torch.cuda.synchronize(x.device)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def growth_exponent(sizes: list[int], seconds: list[float]) -> float:
    """Slope of log seconds against log size, by least squares."""
    slope, _ = np.polyfit(np.log(sizes), np.log(seconds), 1)
    return float(slope)


def sweep(label: str, sizes: list[int], shapes, seconds_of) -> dict:
    """Time an epoch at each size; ``shapes`` gives (rows, width) of each."""
    seconds = []
    for size in sizes:
        seconds.append(seconds_of(size))
        print(f"{label} {size:>6}: {seconds[-1]:.3f} s an epoch", flush=True)
    return {
        "sizes": list(sizes),
        "seconds_per_epoch": seconds,
        "growth_exponent": growth_exponent(sizes, seconds),
        "microseconds_per_image_unit": [
            1e6 * s / (rows * width) for s, (rows, width) in zip(seconds, shapes)
        ],
    }


def main(argv=None) -> None:
    parser = base_parser(NAME, __doc__)
    args = parser.parse_args(argv)
    experiment = Experiment(NAME, args)
    chosen = dict(QUICK if args.quick else FULL)
    dataset = load_dataset(chosen["dataset"])
    generator = make_generator(args.seed, experiment.device)
    images = torch.from_numpy(np.ascontiguousarray(dataset.x_train, np.float32))
    images = sample_bernoulli(images.to(experiment.device), generator)
    chosen["rows"] = [n for n in chosen["rows"] if n <= len(images)]
    repeats = chosen["repeats"]

    with experiment.timed("width"):
        rows = chosen["width_rows"]
        by_width = sweep(
            "width",
            chosen["widths"],
            [(rows, width) for width in chosen["widths"]],
            lambda width: epoch_seconds(images[:rows], width, repeats, generator),
        )
    with experiment.timed("rows"):
        width = chosen["rows_width"]
        by_rows = sweep(
            "rows",
            chosen["rows"],
            [(n, width) for n in chosen["rows"]],
            lambda n: epoch_seconds(images[:n], width, repeats, generator),
        )
    figures = {
        "width": by_width,
        "rows": by_rows,
        "device": str(experiment.device),
        "threads": torch.get_num_threads(),
    }
    experiment.write(chosen, figures, [])


if __name__ == "__main__":
    run_command(main)
