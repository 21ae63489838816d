"""Measure RBM training throughput: deepgen, scikit-learn and the matmul bound.

Run from the repository root::

    python bench/rbm_throughput.py
    python bench/rbm_throughput.py --device cuda --seconds 5 --rounds 7 --json

All figures are training samples per second for a 784x500 RBM with batches of
100 rows and learning rate 0.1, on the 8,000 float32 training rows of
mnist-10k:

deepgen
    CD-1 with ``CDTrainer.run_epoch``, which shuffles the rows each epoch and
    calls ``CDTrainer.step`` once per batch. It runs on ``--device``.
scikit-learn float32, scikit-learn float64
    ``BernoulliRBM.fit`` on the same rows as float32 and as float64, always on
    the CPU with numpy's BLAS limited to the torch thread count. In
    scikit-learn 1.9.1 ``fit`` keeps float32 input in float32, whereas
    ``partial_fit`` always converts to float64, and the script prints the
    dtype that ``fit`` used. ``BernoulliRBM`` trains with persistent chains
    (PCD) and no momentum or weight decay, but it computes the same five
    matrix products per batch as CD-1. It walks the rows in order without
    shuffling, and each timed ``fit`` call includes the validation of the
    input and the drawing of the initial weights.
matmul bound
    Only the five matrix products that one ``CDTrainer.step`` issues for
    CD-1, made with the same torch calls on the same device and threads.
    These are ``addmm`` for the hidden inputs of the data and of the
    reconstruction, ``mm`` for the visible input, and two ``addmm_`` calls
    into the weight increment for the positive and negative statistics. The
    products reuse preallocated outputs, so the figure approximates what
    deepgen would reach if sampling, sigmoids, data gathering and the
    parameter updates cost nothing. The script also prints its GFLOP/s.
numpy matmul bound
    The same five products with numpy and the BLAS that scikit-learn uses,
    limited to the same threads. scikit-learn float32 / numpy matmul bound
    shows how close scikit-learn's own loop runs to its products.

The measurements run interleaved (deepgen, scikit-learn float32,
scikit-learn float64, matmul bound, numpy matmul bound, then again) for ``--rounds`` rounds. The
script reports the median of each figure and the median of the per-round
ratios, so that a drift in the machine's speed affects every figure alike.
The ratio targets are deepgen / scikit-learn float32 >= 2 and deepgen /
matmul bound >= 0.80. The script also prints matmul bound / scikit-learn
float32: the most that deepgen / scikit-learn float32 could reach if
everything but the products cost nothing. Where it is below 2, the 2x target
cannot be met on that machine with that many threads.

On a machine where other processes keep the cores busy, several threads per
process wait on each other and every figure can drop tenfold from one round
to the next. The script prints a note when a figure varies by more than
``SPREAD_WARNING`` between rounds; ``--threads 1`` then gives steadier
figures.

NOTE: ``--device cuda`` synchronises before every clock reading but has not
yet been run on a GPU.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import sklearn
import torch
from sklearn.neural_network import BernoulliRBM
from threadpoolctl import threadpool_info, threadpool_limits

from deepgen_core.data import load_dataset
from deepgen_core.device import DEVICE_CHOICES, make_generator, resolve_device
from deepgen_core.errors import InputError
from deepgen_core.rbm import RBMModule
from deepgen_core.training import CDTrainer, RBMTrainingConfig

DATASET = "mnist-10k"
N_HIDDEN = 500
BATCH_SIZE = 100
LEARNING_RATE = 0.1
MATMULS_PER_STEP = 5
SKLEARN_TARGET = 2.0
MATMUL_TARGET = 0.80
SPREAD_WARNING = 1.3
"""Ratio of the fastest to the slowest round above which the report warns."""
FIGURES = (
    "deepgen",
    "sklearn_float32",
    "sklearn_float64",
    "matmul_bound",
    "numpy_matmul_bound",
)
LABELS = {
    "deepgen": "deepgen CD-1",
    "sklearn_float32": "scikit-learn float32",
    "sklearn_float64": "scikit-learn float64",
    "matmul_bound": "matmul bound",
    "numpy_matmul_bound": "numpy matmul bound",
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--device",
        choices=DEVICE_CHOICES,
        default="auto",
        help="device for deepgen and the matmul bound (default: auto)",
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=2.0,
        help="minimum duration of each measurement in seconds (default: 2.0)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=5,
        help="rounds of interleaved measurements (default: 5)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads for torch and numpy's BLAS (default: torch's default)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the random generators and initial weights (default: 0)",
    )
    parser.add_argument(
        "--json", action="store_true", help="also print the figures as JSON"
    )
    args = parser.parse_args()
    if args.seconds <= 0 or args.rounds < 1:
        parser.error(
            f"--seconds must be positive and --rounds at least 1, "
            f"got {args.seconds} and {args.rounds}"
        )
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be at least 1, got {args.threads}")
    return args


# Timing ---------------------------------------------------------------------


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_for(
    seconds: float, device: torch.device, run_chunk: Callable[[], int]
) -> float:
    """Call ``run_chunk`` until ``seconds`` have passed and return samples/s.

    ``run_chunk`` returns the number of samples it trained on. The clock is
    read only after the device has finished the queued work.
    """
    synchronize(device)
    started = time.perf_counter()
    samples = 0
    while True:
        samples += run_chunk()
        synchronize(device)
        elapsed = time.perf_counter() - started
        if elapsed >= seconds:
            return samples / elapsed


# What is measured -----------------------------------------------------------


class DeepgenRun:
    """CD-1 training of a deepgen RBM, one epoch per chunk."""

    def __init__(self, data: torch.Tensor, seed: int) -> None:
        self.data = data
        generator = make_generator(seed, data.device)
        rbm = RBMModule(data.shape[1], N_HIDDEN).to(data.device)
        rbm.initialize(generator, data.mean(0))
        config = RBMTrainingConfig(
            batch_size=BATCH_SIZE, learning_rate=LEARNING_RATE, cd_k=1
        )
        self.trainer = CDTrainer(rbm, config, generator)
        self.epoch = 0

    def run_epoch(self) -> int:
        self.epoch += 1
        self.trainer.run_epoch(self.data, self.epoch)
        return self.data.shape[0]


class MatmulRun:
    """The matrix products of CD-1 steps alone, one epoch's worth per chunk."""

    def __init__(self, data: torch.Tensor, seed: int) -> None:
        generator = make_generator(seed, data.device)
        n_visible = data.shape[1]
        self.n_batches = data.shape[0] // BATCH_SIZE

        def uniform(*shape: int) -> torch.Tensor:
            return torch.rand(shape, generator=generator, device=data.device)

        self.weight = uniform(n_visible, N_HIDDEN).sub_(0.5).mul_(0.02)
        self.increment = torch.zeros_like(self.weight)
        self.visible_bias = torch.zeros(n_visible, device=data.device)
        self.hidden_bias = torch.zeros(N_HIDDEN, device=data.device)
        self.v0 = data[:BATCH_SIZE].clone()
        self.h_sample = uniform(BATCH_SIZE, N_HIDDEN).round_()
        self.visible_input = torch.empty_like(self.v0)
        self.h0 = torch.empty(BATCH_SIZE, N_HIDDEN, device=data.device)
        self.hn = torch.empty_like(self.h0)

    def run_step(self) -> None:
        """Issue the products of one ``CDTrainer.step`` with ``cd_k=1``."""
        weight, increment = self.weight, self.increment
        torch.addmm(self.hidden_bias, self.v0, weight, out=self.h0)
        torch.mm(self.h_sample, weight.T, out=self.visible_input)
        torch.addmm(self.hidden_bias, self.visible_input, weight, out=self.hn)
        increment.addmm_(self.v0.T, self.h0, alpha=1e-3)
        increment.addmm_(self.visible_input.T, self.hn, alpha=-1e-3)

    def run_epoch(self) -> int:
        for _ in range(self.n_batches):
            self.run_step()
        return self.n_batches * BATCH_SIZE


class NumpyMatmulRun:
    """The same five products with numpy's BLAS, which scikit-learn uses.

    The weights are stored as scikit-learn stores them, (n_hidden, n_visible).
    """

    def __init__(self, x: np.ndarray, seed: int) -> None:
        rng = np.random.default_rng(seed)
        n_visible = x.shape[1]
        self.n_batches = x.shape[0] // BATCH_SIZE
        self.weight = ((rng.random((N_HIDDEN, n_visible)) - 0.5) * 0.02).astype(
            np.float32
        )
        self.v0 = np.ascontiguousarray(x[:BATCH_SIZE])
        self.h_sample = rng.random((BATCH_SIZE, N_HIDDEN)).round().astype(np.float32)

    def run_epoch(self) -> int:
        weight = self.weight
        for _ in range(self.n_batches):
            h0 = self.v0 @ weight.T
            visible_input = self.h_sample @ weight
            hn = visible_input @ weight.T
            update = h0.T @ self.v0
            update -= hn.T @ visible_input
        return self.n_batches * BATCH_SIZE


def sklearn_samples_per_second(
    x: np.ndarray, n_iter: int, threads: int, seed: int
) -> tuple[float, BernoulliRBM]:
    """Time one ``BernoulliRBM.fit`` of ``n_iter`` epochs on ``x``.

    Returns the samples per second and the fitted model.
    """
    model = BernoulliRBM(
        n_components=N_HIDDEN,
        batch_size=BATCH_SIZE,
        learning_rate=LEARNING_RATE,
        n_iter=n_iter,
        random_state=seed,
    )
    with threadpool_limits(limits=threads, user_api="blas"):
        started = time.perf_counter()
        model.fit(x)
        elapsed = time.perf_counter() - started
    return n_iter * x.shape[0] / elapsed, model


def gflops(samples_per_second: float, n_visible: int) -> float:
    """Floating-point rate of the matmul bound, two operations per multiply-add."""
    flops_per_step = MATMULS_PER_STEP * 2 * BATCH_SIZE * n_visible * N_HIDDEN
    return samples_per_second / BATCH_SIZE * flops_per_step / 1e9


def numpy_rate(seconds: float, threads: int, run: NumpyMatmulRun) -> float:
    """Samples per second of ``run`` with numpy's BLAS limited to ``threads``."""
    with threadpool_limits(limits=threads, user_api="blas"):
        return run_for(seconds, torch.device("cpu"), run.run_epoch)


# Report -----------------------------------------------------------------------


def cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def numpy_blas() -> str:
    """Name, version and threads of the BLAS library that numpy loaded."""
    libraries = [info for info in threadpool_info() if info["user_api"] == "blas"]
    numpy_own = [info for info in libraries if "numpy" in info["filepath"]]
    return (
        ", ".join(
            f"{info['internal_api']} {info.get('version')} "
            f"({info['num_threads']} threads by default)"
            for info in (numpy_own or libraries)
        )
        or "unknown"
    )


def verdict(ratio: float, target: float) -> str:
    return "PASS" if ratio >= target else "MISS"


def print_report(report: dict) -> None:
    env = report["environment"]
    print(
        f"RBM training throughput: {env['n_visible']}x{N_HIDDEN} RBM, "
        f"batch {BATCH_SIZE}, learning rate {LEARNING_RATE}, {DATASET} "
        f"({env['n_rows']} training rows, float32)"
    )
    print(
        f"torch {env['torch']}, device {env['device']}, torch threads: "
        f"{env['threads']}, CPU: {env['cpu']}"
    )
    if env.get("gpu"):
        print(f"GPU: {env['gpu']}")
    print(
        f"scikit-learn {env['sklearn']}, numpy {env['numpy']}, BLAS: "
        f"{env['blas']}, threads here: {env['threads']}"
    )
    sklearn_run = report["sklearn"]
    print(
        f"scikit-learn BernoulliRBM.fit trained in {sklearn_run['dtype_float32']} "
        f"on float32 input and in {sklearn_run['dtype_float64']} on float64 input "
        f"(partial_fit always converts to float64); n_iter={sklearn_run['n_iter']} "
        "per measurement"
    )
    print(
        f"interleaved rounds: {report['rounds']}, {report['seconds']:g} s per "
        "measurement; the figures are medians\n"
    )

    print(f"{'':24}{'samples/s':>12}   per round")
    for name in FIGURES:
        rounds = " ".join(f"{value:.0f}" for value in report["per_round"][name])
        print(f"{LABELS[name]:24}{report['median'][name]:12.0f}   {rounds}")
    print(
        f"matmul bound rate: {report['matmul_gflops']:.1f} GFLOP/s "
        f"({MATMULS_PER_STEP} products per step)\n"
    )

    for ratio in report["ratios"]:
        target = ratio["target"]
        goal = f"target >= {target:g}" if target else "no target"
        outcome = verdict(ratio["median"], target) if target else ""
        print(f"{ratio['name']:42}{ratio['median']:7.2f}   {goal:16}{outcome}")

    ceiling = report["ratios"][-1]["median"]
    if ceiling < SKLEARN_TARGET:
        print(
            f"\nNOTE: the five products alone run {ceiling:.2f} times as fast as "
            "scikit-learn's whole fit here. A CD-1 step that issues them cannot "
            f"beat that ratio, so the {SKLEARN_TARGET:g}x target is out of reach "
            "here with these threads for any float32 implementation of these "
            "products."
        )

    unsteady = {
        LABELS[name]: spread
        for name, spread in report["spread"].items()
        if spread > SPREAD_WARNING
    }
    if unsteady:
        listing = ", ".join(
            f"{label} {spread:.1f}x" for label, spread in unsteady.items()
        )
        remedies = "on a quieter machine or with more --rounds"
        if env["threads"] > 1:
            remedies += ", or with --threads 1"
        print(
            f"\nNOTE: fastest / slowest round: {listing}. The machine's speed "
            f"changed during the run, so the ratios are uncertain. Rerun {remedies}."
        )


def build_report(
    args: argparse.Namespace,
    device: torch.device,
    threads: int,
    x: np.ndarray,
    per_round: dict[str, list[float]],
) -> dict:
    def paired(numerator: str, denominator: str) -> float:
        pairs = zip(per_round[numerator], per_round[denominator], strict=True)
        return statistics.median(a / b for a, b in pairs)

    median = {name: statistics.median(values) for name, values in per_round.items()}
    ratios = [
        {
            "name": "deepgen / scikit-learn float32",
            "median": paired("deepgen", "sklearn_float32"),
            "target": SKLEARN_TARGET,
        },
        {
            "name": "deepgen / scikit-learn float64",
            "median": paired("deepgen", "sklearn_float64"),
            "target": None,
        },
        {
            "name": "deepgen / matmul bound",
            "median": paired("deepgen", "matmul_bound"),
            "target": MATMUL_TARGET,
        },
        {
            "name": "scikit-learn float32 / numpy matmul bound",
            "median": paired("sklearn_float32", "numpy_matmul_bound"),
            "target": None,
        },
        {
            "name": "matmul bound / scikit-learn float32",
            "median": paired("matmul_bound", "sklearn_float32"),
            "target": None,
        },
    ]
    for ratio in ratios:
        if ratio["target"]:
            ratio["verdict"] = verdict(ratio["median"], ratio["target"])
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    return {
        "environment": {
            "torch": torch.__version__,
            "sklearn": sklearn.__version__,
            "numpy": np.__version__,
            "blas": numpy_blas(),
            "device": str(device),
            "gpu": gpu,
            "threads": threads,
            "cpu": cpu_model(),
            "n_rows": x.shape[0],
            "n_visible": x.shape[1],
        },
        "seconds": args.seconds,
        "rounds": args.rounds,
        "per_round": per_round,
        "median": median,
        "spread": {
            name: max(values) / min(values) for name, values in per_round.items()
        },
        "matmul_gflops": gflops(median["matmul_bound"], x.shape[1]),
        "ratios": ratios,
    }


# Main -------------------------------------------------------------------------


def measure(
    args: argparse.Namespace, device: torch.device, threads: int, x32: np.ndarray
) -> tuple[dict[str, list[float]], dict]:
    """Run the interleaved rounds of all four measurements.

    Returns the samples per second of every round for each figure, and the
    ``n_iter`` and training dtypes of the scikit-learn runs.
    """
    x64 = x32.astype(np.float64)
    data = torch.from_numpy(x32).to(device)
    deepgen = DeepgenRun(data, args.seed)
    matmul = MatmulRun(data, args.seed)
    numpy_matmul = NumpyMatmulRun(x32, args.seed)

    # Warm up every path once. The first scikit-learn epoch sets n_iter so
    # that one fit lasts about --seconds.
    deepgen.run_epoch()
    matmul.run_epoch()
    synchronize(device)
    epoch_rate, model32 = sklearn_samples_per_second(x32, 1, threads, args.seed)
    _, model64 = sklearn_samples_per_second(x64, 1, threads, args.seed)
    n_iter = max(1, round(args.seconds * epoch_rate / x32.shape[0]))

    measurements = {
        "deepgen": lambda: run_for(args.seconds, device, deepgen.run_epoch),
        "sklearn_float32": lambda: sklearn_samples_per_second(
            x32, n_iter, threads, args.seed
        )[0],
        "sklearn_float64": lambda: sklearn_samples_per_second(
            x64, n_iter, threads, args.seed
        )[0],
        "matmul_bound": lambda: run_for(args.seconds, device, matmul.run_epoch),
        "numpy_matmul_bound": lambda: numpy_rate(args.seconds, threads, numpy_matmul),
    }
    per_round = {name: [] for name in FIGURES}
    for _ in range(args.rounds):
        for name in FIGURES:
            per_round[name].append(measurements[name]())
    sklearn_facts = {
        "n_iter": n_iter,
        "dtype_float32": str(model32.components_.dtype),
        "dtype_float64": str(model64.components_.dtype),
    }
    return per_round, sklearn_facts


def main() -> None:
    args = parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    try:
        device = resolve_device(args.device)
    except InputError as error:
        raise SystemExit(f"error: {error}") from None
    x32 = np.ascontiguousarray(load_dataset(DATASET).x_train, dtype=np.float32)

    per_round, sklearn_facts = measure(args, device, threads, x32)
    report = build_report(args, device, threads, x32, per_round)
    report["sklearn"] = sklearn_facts
    print_report(report)
    if args.json:
        print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
