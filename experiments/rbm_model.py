"""Train a 784x500 binary RBM on MNIST with CD-k and estimate its log-likelihood.

Run from the repository root::

    DEEPGEN_DATA_DIR=/path/to/data python -m experiments.rbm_model --cd-k 1
    python -m experiments.rbm_model --quick
    python -m experiments.rbm_model --cd-k 1 \
        --from-weights docs/results/rbm_likelihood/cd1.safetensors

``python -m experiments.rbm_likelihood`` runs it for CD-1, CD-3 and CD-25 and
gathers the three results. Files made before the script moved here name it
``bench/rbm_likelihood.py`` in their command.

The script compares deepgen with the 500-hidden-unit RBMs of Salakhutdinov and
Murray (2008), whose average test log-probabilities on MNIST, estimated by
AIS, were -125.53 nats for CD-1, -105.50 for CD-3 and -86.34 for CD-25.

What it does
------------
Training
    ``CDTrainer`` on the 60,000 MNIST training images, batches of 100,
    learning rate 0.05, weight decay 2e-4, momentum 0.5 for the first 5
    epochs and 0.9 after. The pixel intensities are binarised stochastically
    again before every epoch, so each visit to an image draws a fresh binary
    sample of it. By default the chain samples the visible units at every
    step, including the last. With ``--cd-schedule ramp`` the number of
    Gibbs steps starts at 1 and grows by one every ``--ramp-epochs`` epochs
    up to ``--cd-k``, and the learning rate is divided by the current number
    of steps.
Evaluation
    The test and training images are binarised once, stochastically, with a
    generator seeded by ``--eval-seed``, so that runs with different training
    seeds score the same binary images. log Z is estimated by forward AIS
    (``ais_log_partition``) and by reverse AIS, which starts from model
    samples and tends to overestimate log Z where forward AIS tends to
    underestimate it. The reported log-likelihoods use the forward estimate;
    the figures with the reverse estimate are given too.
Output
    A JSON file (``--out``) with every setting, the figures, the times, the
    versions and the command line, and the weights in a safetensors file of
    the same name beside it. ``--from-weights`` reruns the evaluation on
    saved weights without training.

``--quick`` trains on the 8,000 ``mnist-10k`` training rows for 2 epochs,
scores its 2,000 held-out rows and runs AIS with 1,000 temperatures, to check
that the script works; its figures are not comparable with the anchors.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

from deepgen_core.checkpoint import (
    atomic_write_json,
    load_tensors,
    read_json,
    save_tensors,
)
from deepgen_core.data import load_dataset
from deepgen_core.device import DEVICE_CHOICES, make_generator, resolve_device
from deepgen_core.errors import InputError
from deepgen_core.likelihood import (
    ais_log_partition,
    average_log_likelihood,
    linear_betas,
    salakhutdinov_murray_betas,
)
from deepgen_core.rbm import RBMModule, sample_bernoulli
from deepgen_core.training import CDTrainer, RBMTrainingConfig, check_finite

from .common import cpu_model

N_HIDDEN = 500
BATCH_SIZE = 100
LEARNING_RATE = 0.05
WEIGHT_DECAY = 2e-4
ANCHORS = {1: -125.53, 3: -105.50, 25: -86.34}
"""Average test log-probabilities (nats) of Salakhutdinov and Murray (2008)."""
TOLERANCE = 3.0
"""Largest distance in nats from the anchor that counts as reproduced."""
QUICK_EPOCHS = 2
QUICK_BETAS = 1000
RESULTS_DIR = (
    Path(__file__).resolve().parents[1] / "docs" / "results" / "rbm_likelihood"
)
WEIGHT_NAMES = ("weight", "visible_bias", "hidden_bias")
TRAINING_KEYS = (
    "cd_k",
    "epochs",
    "lr",
    "weight_decay",
    "cd_schedule",
    "ramp_epochs",
    "visible_stats",
    "seed",
    "threads",
    "device",
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--cd-k",
        type=int,
        choices=sorted(ANCHORS),
        default=1,
        help="Gibbs steps of contrastive divergence (default: 1)",
    )
    parser.add_argument(
        "--epochs",
        type=int,
        default=None,
        help=f"training epochs (default: 100, or {QUICK_EPOCHS} with --quick)",
    )
    parser.add_argument(
        "--lr",
        type=float,
        default=LEARNING_RATE,
        help=f"learning rate (default: {LEARNING_RATE})",
    )
    parser.add_argument(
        "--weight-decay",
        type=float,
        default=WEIGHT_DECAY,
        help=f"L2 weight cost (default: {WEIGHT_DECAY})",
    )
    parser.add_argument(
        "--cd-schedule",
        choices=("fixed", "ramp"),
        default="fixed",
        help="fixed: cd-k steps throughout; ramp: 1 step at first, one more "
        "every --ramp-epochs epochs up to cd-k, learning rate divided by the "
        "steps (default: fixed)",
    )
    parser.add_argument(
        "--ramp-epochs",
        type=int,
        default=10,
        help="epochs between increases of the steps with --cd-schedule ramp "
        "(default: 10)",
    )
    parser.add_argument(
        "--visible-stats",
        choices=("sample", "mean"),
        default="sample",
        help="use sampled or mean visible states at the last CD step (default: sample)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="training and AIS seed (default: 0)"
    )
    parser.add_argument(
        "--eval-seed",
        type=int,
        default=0,
        help="seed of the fixed binarisation of the scored images (default: 0)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (default: 1)",
    )
    parser.add_argument(
        "--device",
        choices=DEVICE_CHOICES,
        default="cpu",
        help="device for training and AIS (default: cpu)",
    )
    parser.add_argument(
        "--ais-runs",
        type=int,
        default=100,
        help="AIS chains in each direction (default: 100)",
    )
    parser.add_argument(
        "--ais-betas",
        type=int,
        default=None,
        help="number of uniformly spaced temperatures; default: the 14,501 "
        f"of Salakhutdinov and Murray ({QUICK_BETAS} with --quick)",
    )
    parser.add_argument(
        "--reverse-burn-in",
        type=int,
        default=1000,
        help="Gibbs steps that draw the model samples for reverse AIS (default: 1000)",
    )
    parser.add_argument(
        "--save-every",
        type=int,
        default=0,
        help="also save the weights every this many epochs (default: 0, never)",
    )
    parser.add_argument(
        "--from-weights",
        type=Path,
        default=None,
        help="skip training and evaluate the RBM in this safetensors file",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="JSON result file (default: docs/results/rbm_likelihood/cd{k}.json, "
        "quick-cd{k}.json with --quick)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="mnist-10k, 2 epochs and a short AIS schedule: a check that runs "
        "in a few minutes",
    )
    args = parser.parse_args(argv)
    args.argv = argv
    if args.epochs is None:
        args.epochs = QUICK_EPOCHS if args.quick else 100
    if args.ais_betas is None and args.quick:
        args.ais_betas = QUICK_BETAS
    if args.out is None:
        prefix = "quick-" if args.quick else ""
        args.out = RESULTS_DIR / f"{prefix}cd{args.cd_k}.json"
    problems = [
        (args.epochs < 1, f"--epochs must be at least 1, got {args.epochs}"),
        (
            not (math.isfinite(args.lr) and args.lr > 0),
            f"--lr must be positive, got {args.lr}",
        ),
        (args.threads < 1, f"--threads must be at least 1, got {args.threads}"),
        (args.ais_runs < 2, f"--ais-runs must be at least 2, got {args.ais_runs}"),
        (
            args.ais_betas is not None and args.ais_betas < 2,
            f"--ais-betas must be at least 2, got {args.ais_betas}",
        ),
        (
            args.ramp_epochs < 1,
            f"--ramp-epochs must be at least 1, got {args.ramp_epochs}",
        ),
        (args.save_every < 0, f"--save-every must be >= 0, got {args.save_every}"),
    ]
    for bad, message in problems:
        if bad:
            parser.error(message)
    return args


# Data -------------------------------------------------------------------------


def load_images(quick: bool) -> tuple[str, np.ndarray, np.ndarray]:
    """Return the dataset name and its training and test intensities in [0, 1]."""
    name = "mnist-10k" if quick else "mnist"
    dataset = load_dataset(name)
    if dataset.x_test is None or not len(dataset.x_test):
        raise InputError(f"dataset {name} has no held-out images to score")
    x_train = np.ascontiguousarray(dataset.x_train, dtype=np.float32)
    x_test = np.ascontiguousarray(dataset.x_test, dtype=np.float32)
    return name, x_train, x_test


def fixed_binary(x: torch.Tensor, seed: int) -> torch.Tensor:
    """Binarise ``x`` once, stochastically, so the same seed gives the same result."""
    generator = make_generator(seed, x.device)
    return sample_bernoulli(x, generator).to(x.dtype)


# Training -----------------------------------------------------------------------


def steps_at(args: argparse.Namespace, epoch: int) -> int:
    """Gibbs steps used in ``epoch`` (counted from 1)."""
    if args.cd_schedule == "fixed":
        return args.cd_k
    return min(args.cd_k, math.ceil(epoch / args.ramp_epochs))


def weights_path(out: Path) -> Path:
    return out.with_suffix(".safetensors")


def save_weights(rbm: RBMModule, path: Path) -> None:
    save_tensors(path, {name: getattr(rbm, name) for name in WEIGHT_NAMES})


def load_weights(path: Path, device: torch.device) -> RBMModule:
    tensors = load_tensors(path, device)
    missing = [name for name in WEIGHT_NAMES if name not in tensors]
    if missing:
        raise InputError(
            f"{path} lacks the tensors {', '.join(missing)}; it was not written "
            "by this script"
        )
    n_visible, n_hidden = tensors["weight"].shape
    rbm = RBMModule(n_visible, n_hidden).to(device)
    with torch.no_grad():
        for name in WEIGHT_NAMES:
            getattr(rbm, name).copy_(tensors[name].float())
    return rbm


def train(
    args: argparse.Namespace,
    x_train: torch.Tensor,
    device: torch.device,
    dataset: str,
) -> tuple[RBMModule, list[dict]]:
    """Train the RBM with CD-k; return it and one dict of figures per epoch."""
    generator = make_generator(args.seed, device)
    rbm = RBMModule(x_train.shape[1], N_HIDDEN).to(device)
    rbm.initialize(generator, x_train.mean(0))
    config = RBMTrainingConfig(
        epochs=args.epochs,
        learning_rate=args.lr,
        batch_size=BATCH_SIZE,
        cd_k=args.cd_k,
        weight_decay=args.weight_decay,
        sample_visible=args.visible_stats == "sample",
    )
    config.validate()
    trainer = CDTrainer(rbm, config, generator)
    monitor = fixed_binary(x_train[:1000], args.eval_seed)
    history = []
    for epoch in range(1, args.epochs + 1):
        steps = steps_at(args, epoch)
        config.cd_k = steps
        trainer.learning_rate = (
            args.lr / steps if args.cd_schedule == "ramp" else args.lr
        )
        started = time.perf_counter()
        binary = sample_bernoulli(x_train, generator).to(x_train.dtype)
        trainer.run_epoch(binary, epoch)
        synchronize(device)
        seconds = time.perf_counter() - started
        figures = {
            "epoch": epoch,
            "cd_steps": steps,
            "learning_rate": trainer.learning_rate,
            "seconds": seconds,
            "recon_error": float(rbm.reconstruction_error(monitor)),
        }
        check_finite(rbm, {"recon_error": figures["recon_error"]}, f"epoch {epoch}")
        history.append(figures)
        print(
            f"epoch {epoch:4d}  steps {steps:2d}  {seconds:6.2f} s  "
            f"reconstruction error {figures['recon_error']:.2f}",
            flush=True,
        )
        if args.save_every and epoch % args.save_every == 0 and epoch < args.epochs:
            save_checkpoint(args, rbm, history, epoch, dataset, x_train.shape[0])
    return rbm, history


def save_checkpoint(
    args: argparse.Namespace,
    rbm: RBMModule,
    history: list[dict],
    epoch: int,
    dataset: str,
    n_train: int,
) -> None:
    """Save the weights after ``epoch`` with a JSON of how they were trained.

    ``--from-weights`` reads that JSON, so an evaluation of the checkpoint
    records the training settings that produced it.
    """
    path = args.out.with_name(f"{args.out.stem}-epoch{epoch}.safetensors")
    save_weights(rbm, path)
    run_settings = settings(args, dataset, n_train)
    run_settings["epochs"] = epoch
    atomic_write_json(
        path.with_suffix(".json"),
        {
            "command": command_line(args.argv),
            "settings": run_settings,
            "training": {"history": list(history), "checkpoint_of": str(args.out)},
        },
    )


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# Evaluation ---------------------------------------------------------------------


def evaluate(
    args: argparse.Namespace,
    rbm: RBMModule,
    x_train: torch.Tensor,
    test_binary: torch.Tensor,
    train_binary: torch.Tensor,
    device: torch.device,
) -> dict:
    """Forward and reverse AIS, then the average log-likelihoods."""
    if args.ais_betas is None:
        betas = salakhutdinov_murray_betas()
        schedule = "salakhutdinov-murray"
    else:
        betas = linear_betas(args.ais_betas)
        schedule = "linear"
    estimates = {}
    seconds = {}
    for direction, reverse in (("forward", False), ("reverse", True)):
        generator = make_generator(args.seed + (2 if reverse else 1), device)
        started = time.perf_counter()
        estimate = ais_log_partition(
            rbm,
            x_train,
            betas=betas,
            n_runs=args.ais_runs,
            generator=generator,
            reverse=reverse,
            **({"reverse_burn_in": args.reverse_burn_in} if reverse else {}),
        )
        synchronize(device)
        seconds[direction] = time.perf_counter() - started
        estimates[direction] = estimate
        print(
            f"{direction} AIS: log Z = {estimate.log_z:.3f} "
            f"+/- {estimate.stderr:.3f} ({seconds[direction]:.0f} s)",
            flush=True,
        )
    log_z = estimates["forward"].log_z
    log_z_reverse = estimates["reverse"].log_z
    test_ll = average_log_likelihood(rbm, test_binary, log_z)
    anchor = ANCHORS[args.cd_k]
    return {
        "ais_schedule": schedule,
        "ais_n_betas": len(betas),
        "ais_runs": args.ais_runs,
        "reverse_burn_in": args.reverse_burn_in,
        "log_z": log_z,
        "log_z_stderr": estimates["forward"].stderr,
        "log_z_reverse": log_z_reverse,
        "log_z_reverse_stderr": estimates["reverse"].stderr,
        "test_log_likelihood": test_ll,
        "test_log_likelihood_reverse": average_log_likelihood(
            rbm, test_binary, log_z_reverse
        ),
        "train_log_likelihood": average_log_likelihood(rbm, train_binary, log_z),
        "train_log_likelihood_reverse": average_log_likelihood(
            rbm, train_binary, log_z_reverse
        ),
        "n_test": int(test_binary.shape[0]),
        "n_train_scored": int(train_binary.shape[0]),
        "anchor": anchor,
        "difference": test_ll - anchor,
        "tolerance": TOLERANCE,
        "within_tolerance": abs(test_ll - anchor) <= TOLERANCE,
        "seconds_ais_forward": seconds["forward"],
        "seconds_ais_reverse": seconds["reverse"],
    }


# Report -------------------------------------------------------------------------


def environment(device: torch.device) -> dict:
    return {
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "threads": torch.get_num_threads(),
        "cpu": cpu_model(),
    }


def settings(args: argparse.Namespace, dataset: str, n_train: int) -> dict:
    values = {
        key: (str(value) if isinstance(value, Path) else value)
        for key, value in vars(args).items()
        if key != "argv"
    }
    values.update(
        dataset=dataset,
        n_train=n_train,
        n_hidden=N_HIDDEN,
        batch_size=BATCH_SIZE,
        initial_momentum=RBMTrainingConfig.initial_momentum,
        momentum=RBMTrainingConfig.momentum,
        momentum_switch_epoch=RBMTrainingConfig.momentum_switch_epoch,
        training_data="intensities binarised stochastically anew each epoch",
        scored_data=f"intensities binarised stochastically once (seed {args.eval_seed})",
        dtype="float32 (AIS in float64)",
    )
    return values


def print_table(result: dict) -> None:
    figures = result["figures"]
    s = result["settings"]
    print()
    print(
        f"CD-{s['cd_k']} ({s['cd_schedule']}), {s['epochs']} epochs, "
        f"lr {s['lr']}, {s['dataset']}, {figures['ais_n_betas']} temperatures, "
        f"{figures['ais_runs']} runs"
    )
    verdict = "within" if figures["within_tolerance"] else "outside"
    rows = [
        (
            "log Z, forward AIS",
            f"{figures['log_z']:.3f} +/- {figures['log_z_stderr']:.3f}",
        ),
        (
            "log Z, reverse AIS",
            f"{figures['log_z_reverse']:.3f} +/- {figures['log_z_reverse_stderr']:.3f}",
        ),
        ("test log-likelihood", f"{figures['test_log_likelihood']:.2f}"),
        ("  with reverse log Z", f"{figures['test_log_likelihood_reverse']:.2f}"),
        ("train log-likelihood", f"{figures['train_log_likelihood']:.2f}"),
        ("anchor (S&M 2008)", f"{figures['anchor']:.2f}"),
        (
            "difference",
            f"{figures['difference']:+.2f} ({verdict} {figures['tolerance']:g} nats)",
        ),
        ("training seconds", fmt_seconds(result["seconds"]["training"])),
        ("AIS seconds", fmt_seconds(result["seconds"]["ais"])),
    ]
    for label, value in rows:
        print(f"  {label:24}{value}")


def command_line(argv: list[str] | None = None) -> str:
    """Return the command that started this run, as it could be typed again."""
    words = sys.argv[1:] if argv is None else argv
    return shlex.join(["python", "-m", "experiments.rbm_model", *words])


def fmt_seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        device = resolve_device(args.device)
        dataset, x_train_np, x_test_np = load_images(args.quick)
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    x_train = torch.from_numpy(x_train_np).to(device)
    x_test = torch.from_numpy(x_test_np).to(device)
    args.out.parent.mkdir(parents=True, exist_ok=True)

    training_seconds = None
    history: list[dict] = []
    trained_with = None
    if args.from_weights is not None:
        try:
            rbm = load_weights(args.from_weights, device)
        except InputError as error:
            print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
        sidecar = args.from_weights.with_suffix(".json")
        if sidecar.exists():
            previous = read_json(sidecar)
            trained_with = {
                "from": str(sidecar),
                "settings": previous.get("settings"),
                "command": previous.get("command"),
                **(previous.get("training") or {}),
            }
            if previous.get("settings", {}).get("cd_k") in ANCHORS:
                args.cd_k = previous["settings"]["cd_k"]
    else:
        started = time.perf_counter()
        rbm, history = train(args, x_train, device, dataset)
        training_seconds = time.perf_counter() - started
        save_weights(rbm, weights_path(args.out))

    test_binary = fixed_binary(x_test, args.eval_seed)
    train_binary = fixed_binary(x_train, args.eval_seed + 1)
    figures = evaluate(args, rbm, x_train, test_binary, train_binary, device)

    training = trained_with or {
        "history": history,
        "seconds": training_seconds,
        "seconds_per_epoch": (
            float(np.median([h["seconds"] for h in history])) if history else None
        ),
    }
    run_settings = settings(args, dataset, int(x_train.shape[0]))
    if args.from_weights is not None:
        # The training settings are those of the run that saved the weights,
        # unknown when no JSON lies beside them.
        known = (trained_with or {}).get("settings") or {}
        for key in TRAINING_KEYS:
            run_settings[key] = known.get(key)
        run_settings["cd_k"] = args.cd_k
    result = {
        "benchmark": "rbm_likelihood",
        "reference": "R. Salakhutdinov and I. Murray, On the quantitative "
        "analysis of deep belief networks, ICML 2008",
        "command": command_line(args.argv),
        "python_executable": sys.executable,
        "data_dir": os.environ.get("DEEPGEN_DATA_DIR"),
        "settings": run_settings,
        "figures": figures,
        "seconds": {
            "training": training_seconds,
            "ais": figures["seconds_ais_forward"] + figures["seconds_ais_reverse"],
        },
        "training": training,
        "weights": str(args.from_weights or weights_path(args.out)),
        "environment": environment(device),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    atomic_write_json(args.out, result)
    print_table(result)
    print(f"\nwrote {args.out}")
    if args.from_weights is None:
        print(f"wrote {weights_path(args.out)}")


if __name__ == "__main__":
    main()
