"""Measure held-out accuracy before and after fine-tuning, over several seeds.

Run from the repository root::

    python bench/finetune_accuracy.py --threads 1
    python bench/finetune_accuracy.py --seeds 0-7 --json
    python bench/finetune_accuracy.py --input-dropout 0.2 --hidden-dropout 0.2 \\
        --no-warm-start-head

For each seed the script pretrains a 784-500-500 DBN on the 8,000 mnist-10k
training images for 10 epochs per layer, as ``deepgen train --dataset
mnist-10k --layers 500,500 --epochs 10 --seed SEED`` does, and reports on the
2,000 held-out images:

pixels
    ``deepgen probe --units 0:* --classifier linear-svm``: a linear SVM on
    the raw pixels (the same for every seed).
units
    The same SVM on every hidden unit of the pretrained stage (``1:*,2:*``).
finetuned
    The accuracy of ``deepgen finetune --method backprop --seed SEED`` with
    the default settings, or with the settings given by the flags.

It prints one row per seed, then the mean, the standard deviation and the
lowest value of each column. A test split of 2,000 images gives each
accuracy near 96% a standard error of about 0.44 points, so single seeds
scatter by that much even when nothing else changes.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from deepgen_core.dbn import DBNConfig
from deepgen_core.operations import finetune_config, finetune_run, probe_run, train_run
from deepgen_core.runs import FINETUNED, PRETRAINED, RunConfig
from deepgen_core.training import RBMTrainingConfig

TARGETS = {"units": 0.95, "finetuned": 0.96}
"""Accuracy each column should reach on every seed."""


def parse_seeds(text: str) -> list[int]:
    """Parse seeds written as a range (``0-7``) or a list (``0,3,5``)."""
    try:
        if "-" in text:
            first, last = (int(part) for part in text.split("-"))
            return list(range(first, last + 1))
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid seeds {text!r}: use a range such as 0-7 or a list such as 0,3,5"
        ) from None


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--seeds", type=parse_seeds, default="0-3", help="seeds, 0-3 or 0,3 (0-3)"
    )
    parser.add_argument("--epochs", type=int, default=10, help="epochs per layer (10)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (all)")
    parser.add_argument("--runs-dir", help="keep the runs here (default: a temp dir)")
    parser.add_argument("--json", action="store_true", help="also print JSON")
    tuning = parser.add_argument_group(
        "fine-tuning settings (default: those of deepgen finetune)"
    )
    tuning.add_argument("--input-dropout", type=float, help="input dropout rate")
    tuning.add_argument("--hidden-dropout", type=float, help="hidden dropout rate")
    tuning.add_argument(
        "--warm-start-head",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="fit the softmax layer before backprop",
    )
    return parser.parse_args()


def measure_seed(
    runs_dir: Path, seed: int, args: argparse.Namespace, pixels: float | None
) -> dict:
    """Pretrain and fine-tune one DBN and score it.

    ``pixels`` is the pixel SVM's accuracy when an earlier seed measured it,
    because it does not depend on the DBN.
    """
    rbm = RBMTrainingConfig(epochs=args.epochs)
    config = RunConfig("mnist-10k", DBNConfig([500, 500], seed=seed, rbm=rbm))
    started = time.perf_counter()
    run = train_run(str(runs_dir / f"seed-{seed}"), config)
    pretrain_seconds = time.perf_counter() - started
    values = {"seed": seed}
    for name in ("input_dropout", "hidden_dropout", "warm_start_head"):
        if getattr(args, name) is not None:
            values[name] = getattr(args, name)
    settings = finetune_config("backprop", values)
    started = time.perf_counter()
    finetune_run(run, settings)
    finetune_seconds = time.perf_counter() - started
    if pixels is None:
        pixels = probe_run(run, PRETRAINED, "0:*")["accuracy"]
    return {
        "seed": seed,
        "pixels": pixels,
        "units": probe_run(run, PRETRAINED, "1:*,2:*")["accuracy"],
        "finetuned": run.stage_info(FINETUNED)["info"]["test_accuracy"],
        "finetune_settings": settings.to_dict(),
        "seconds": {
            "pretrain": round(pretrain_seconds, 1),
            "finetune": round(finetune_seconds, 1),
        },
    }


def summarize(rows: list[dict]) -> dict:
    summary = {}
    for column in ("pixels", "units", "finetuned"):
        values = [row[column] for row in rows]
        summary[column] = {
            "mean": statistics.fmean(values),
            "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values),
        }
    return summary


def print_report(rows: list[dict], summary: dict) -> None:
    print(f"{'seed':>6} {'pixels':>8} {'units':>8} {'finetuned':>10}")
    for row in rows:
        print(
            f"{row['seed']:>6} {row['pixels']:>8.2%} {row['units']:>8.2%} "
            f"{row['finetuned']:>10.2%}"
        )
    for figure in ("mean", "sd", "min"):
        print(
            f"{figure:>6} {summary['pixels'][figure]:>8.2%} "
            f"{summary['units'][figure]:>8.2%} {summary['finetuned'][figure]:>10.2%}"
        )
    for column, target in TARGETS.items():
        low = summary[column]["min"]
        verdict = "PASS" if low >= target else "MISS"
        print(
            f"{column}: lowest {low:.2%}, target {target:.0%} on every seed: {verdict}"
        )


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="deepgen-finetune-") as scratch:
        runs_dir = Path(args.runs_dir or scratch)
        rows = []
        for seed in args.seeds:
            pixels = rows[0]["pixels"] if rows else None
            rows.append(measure_seed(runs_dir, seed, args, pixels))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    summary = summarize(rows)
    print_report(rows, summary)
    if args.json:
        command = " ".join(["python", *sys.argv])
        print(json.dumps({"command": command, "rows": rows, "summary": summary}))


if __name__ == "__main__":
    main()
