"""Measure every fine-tuning method against the pretrained stage of one DBN.

Run from the repository root::

    python bench/finetune_modes.py
    python bench/finetune_modes.py --layers 500,500 --epochs 10 \\
        --out docs/results/finetune_modes/results.json

The script trains a DBN with label units on mnist-10k, fine-tunes it by
backprop, by a classifier head on the top layer and by up-down, and runs
``deepgen evaluate``'s measurements on all four stages with the same
settings. It prints one table (held-out error, log-likelihood bound with its
standard error, reconstruction error and the sample figures) and, with
``--out``, writes every evaluation, the settings, the seconds each step took
and the command to a JSON file.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

from deepgen_core.dbn import DBNConfig
from deepgen_core.evaluation import evaluate_run
from deepgen_core.operations import finetune_config, finetune_run, train_run
from deepgen_core.runs import FINETUNE_STAGES, PRETRAINED, RunConfig
from deepgen_core.training import RBMTrainingConfig
from experiments.common import BACKPROP_SETTINGS


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--layers", default="500,500", help="hidden layers (500,500)")
    parser.add_argument("--epochs", type=int, default=10, help="epochs per layer (10)")
    parser.add_argument(
        "--updown-epochs", type=int, default=20, help="up-down epochs (20)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of every step (0)")
    parser.add_argument("--ais-runs", type=int, default=100, help="AIS runs (100)")
    parser.add_argument(
        "--ais-betas", type=int, default=14_500, help="AIS steps (14500)"
    )
    parser.add_argument("--samples", type=int, default=500, help="samples (500)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (all)")
    parser.add_argument("--runs-dir", help="keep the run here (default: a temp dir)")
    parser.add_argument("--out", help="write the figures to this JSON file")
    return parser.parse_args()


def row(stage: str, evaluation: dict) -> str:
    likelihood = evaluation["log_likelihood"]
    quality = evaluation["sample_quality"]
    return (
        f"{stage:<18} {evaluation['test_error']:>7.2%} "
        f"{likelihood['value']:>9.2f} ±{likelihood['stderr']:<5.2f} "
        f"{evaluation['recon_error']:>7.4f} {quality['label_confidence']:>6.3f} "
        f"{quality['class_entropy']:>6.3f} {quality['coverage']:>5.2f} "
        f"{quality['nn_sample_distance']:>6.2f} {quality['frechet_distance']:>8.2f}"
    )


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    runs_dir = Path(args.runs_dir or tempfile.mkdtemp(prefix="deepgen-modes-"))
    layers = [int(n) for n in args.layers.split(",")]
    rbm = RBMTrainingConfig(epochs=args.epochs)
    config = RunConfig(
        "mnist-10k", DBNConfig(layers, labels=True, seed=args.seed, rbm=rbm)
    )
    seconds = {}
    started = time.perf_counter()
    run = train_run(str(runs_dir / "modes"), config)
    seconds["pretrain"] = time.perf_counter() - started
    settings = {
        "backprop": {"seed": args.seed, **BACKPROP_SETTINGS},
        "head": {"seed": args.seed},
        "updown": {"epochs": args.updown_epochs, "seed": args.seed},
    }
    for method, values in settings.items():
        started = time.perf_counter()
        finetune_run(run, finetune_config(method, values))
        seconds[f"finetune-{method}"] = time.perf_counter() - started
    evaluations = {}
    for stage in (PRETRAINED, *FINETUNE_STAGES.values()):
        started = time.perf_counter()
        evaluations[stage] = evaluate_run(
            run, stage, args.ais_runs, args.ais_betas, args.samples, seed=args.seed
        )
        seconds[f"evaluate-{stage}"] = time.perf_counter() - started
        print(f"measured {stage} in {seconds[f'evaluate-{stage}']:.0f} s", flush=True)

    print(
        f"\n{'stage':<18} {'error':>7} {'log-lik bound':>16} {'recon':>7} "
        f"{'conf':>6} {'H(cls)':>6} {'cover':>5} {'nn-smp':>6} {'Fréchet':>8}"
    )
    for stage, evaluation in evaluations.items():
        print(row(stage, evaluation))
    report = {
        "command": " ".join(["python", *sys.argv]),
        "settings": vars(args),
        "run_config": config.to_dict(),
        "evaluations": evaluations,
        "seconds": {k: round(v, 1) for k, v in seconds.items()},
        "torch": torch.__version__,
        "machine": platform.machine(),
        "threads": torch.get_num_threads(),
    }
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
