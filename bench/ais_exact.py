"""Check AIS against exact log Z on small RBMs trained on mnist-10k.

Run from the repository root::

    python bench/ais_exact.py
    python bench/ais_exact.py --hidden 15,16,17,18,19,20 --seeds 10 \\
        --out docs/results/ais_exact/results.json

For each seed, with hidden-layer sizes taken from ``--hidden`` in turn, the
script trains a binary RBM with CD-1
on the 8,000 mnist-10k training images (intensities as probabilities, the
package's convention), computes log Z exactly by enumerating every hidden
state, and estimates it by forward and reverse AIS with the published
protocol (100 runs, 14,500 temperatures; both can be changed). It reports
each difference from the exact value, the reported standard error, and how
many estimates lie within one and within two standard errors of the exact
value and within 0.1 nats of it.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from deepgen_core.data import load_dataset
from deepgen_core.likelihood import ais_log_partition, scaled_betas
from deepgen_core.rbm import RBMModule, log_partition_exact
from deepgen_core.training import RBMTrainingConfig, train_rbm


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--hidden",
        default="15,16,17,18,19,20",
        help="hidden sizes, used in turn by the seeds (15,16,17,18,19,20)",
    )
    parser.add_argument("--seeds", type=int, default=10, help="seeds per size (10)")
    parser.add_argument("--epochs", type=int, default=10, help="CD-1 epochs (10)")
    parser.add_argument("--ais-runs", type=int, default=100, help="AIS runs (100)")
    parser.add_argument(
        "--ais-betas", type=int, default=14_500, help="AIS steps (14500)"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1)")
    parser.add_argument("--out", help="write the figures to this JSON file")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    data = torch.as_tensor(load_dataset("mnist-10k").x_train)
    betas = scaled_betas(args.ais_betas)
    rows = []
    started = time.perf_counter()
    sizes = [int(n) for n in args.hidden.split(",")]
    for seed in range(args.seeds):
        n_hidden = sizes[seed % len(sizes)]
        generator = torch.Generator().manual_seed(seed)
        rbm = RBMModule(data.shape[1], n_hidden)
        config = RBMTrainingConfig(epochs=args.epochs)
        train_rbm(rbm, data, config, generator)
        exact = log_partition_exact(rbm)
        row = {"n_hidden": n_hidden, "seed": seed, "exact": exact}
        for reverse in (False, True):
            estimate = ais_log_partition(
                rbm, data, betas, args.ais_runs, generator, reverse=reverse
            )
            name = "reverse" if reverse else "forward"
            row[name] = estimate.log_z
            row[f"{name}_stderr"] = estimate.stderr
            row[f"{name}_error"] = estimate.log_z - exact
        rows.append(row)
        print(
            f"{n_hidden:>3} hidden, seed {seed}: exact {exact:10.4f}  "
            f"forward {row['forward_error']:+.4f} +- {row['forward_stderr']:.4f}  "
            f"reverse {row['reverse_error']:+.4f} +- {row['reverse_stderr']:.4f}",
            flush=True,
        )
    summary = {}
    for name in ("forward", "reverse"):
        errors = np.array([abs(row[f"{name}_error"]) for row in rows])
        stderr = np.array([row[f"{name}_stderr"] for row in rows])
        summary[name] = {
            "within_0.1_nats": int((errors < 0.1).sum()),
            "within_1_stderr": int((errors <= stderr).sum()),
            "within_2_stderr": int((errors <= 2 * stderr).sum()),
            "largest_error": float(errors.max()),
            "median_stderr": float(np.median(stderr)),
        }
        print(
            f"{name}: {summary[name]['within_0.1_nats']}/{len(rows)} within 0.1 nats, "
            f"{summary[name]['within_1_stderr']}/{len(rows)} within one standard "
            f"error, {summary[name]['within_2_stderr']}/{len(rows)} within two; "
            f"largest error {summary[name]['largest_error']:.4f}"
        )
    report = {
        "command": " ".join(["python", *sys.argv]),
        "settings": vars(args),
        "rows": rows,
        "summary": summary,
        "seconds": round(time.perf_counter() - started, 1),
        "torch": torch.__version__,
        "machine": platform.machine(),
        "threads": torch.get_num_threads(),
    }
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
