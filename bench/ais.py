"""Measure AIS throughput for a 784x500 RBM against the matmul bound.

Run from the repository root::

    python bench/ais.py
    python bench/ais.py --threads 1 --rounds 5 --betas 2000 --json

Throughput is chains times temperatures per second: ``--runs`` chains moved
through ``--betas`` temperatures, divided by the seconds it took. The RBM is
784x500 with small random weights and the base rates of the mnist-10k
training rows. Its weights do not change the amount of work.

Each temperature costs two matrix products on ``runs`` rows: the hidden
inputs ``v W`` (used both for the importance weight and for sampling the
hidden units) and the visible input ``h W^T``. The matmul bound times only
those two float32 products, on preallocated outputs, on the same device and
threads. Everything else (sampling, sigmoids and the float64 sums of the
importance weights) is the gap between the two figures.

The two measurements alternate for ``--rounds`` rounds, and the script
reports the median of each and the median of the per-round ratios, so that
a drift in the machine's speed affects both alike.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import numpy as np
import torch

from deepgen_core.data import load_dataset
from deepgen_core.device import resolve_device
from deepgen_core.likelihood import ais_log_partition, linear_betas
from deepgen_core.rbm import RBMModule

N_VISIBLE, N_HIDDEN = 784, 500


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=100, help="AIS chains (100)")
    parser.add_argument(
        "--betas", type=int, default=2000, help="temperatures per round (2000)"
    )
    parser.add_argument("--rounds", type=int, default=5, help="rounds (5)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (all)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--json", action="store_true", help="print JSON as well")
    return parser.parse_args()


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_rbm(device: torch.device) -> tuple[RBMModule, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    rbm = RBMModule(N_VISIBLE, N_HIDDEN)
    with torch.no_grad():
        rbm.weight.copy_(torch.randn(rbm.weight.shape, generator=generator) * 0.01)
    data = torch.as_tensor(load_dataset("mnist-10k").x_train)
    return rbm.to(device), data.to(device)


def time_ais(rbm, data, args, device) -> float:
    """Seconds for one forward AIS pass of ``args.runs`` chains."""
    generator = torch.Generator(device=device).manual_seed(1)
    synchronize(device)
    started = time.perf_counter()
    ais_log_partition(rbm, data, linear_betas(args.betas), args.runs, generator)
    synchronize(device)
    return time.perf_counter() - started


def time_products(rbm, args, device) -> float:
    """Seconds for the two float32 products of every temperature, nothing else."""
    weight = rbm.weight.float()
    v = torch.rand(args.runs, N_VISIBLE, device=device).round()
    h = torch.rand(args.runs, N_HIDDEN, device=device).round()
    hidden_out = torch.empty(args.runs, N_HIDDEN, device=device)
    visible_out = torch.empty(args.runs, N_VISIBLE, device=device)
    synchronize(device)
    started = time.perf_counter()
    for _ in range(args.betas - 1):
        torch.mm(v, weight, out=hidden_out)
        torch.mm(h, weight.T, out=visible_out)
    synchronize(device)
    return time.perf_counter() - started


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    rbm, data = make_rbm(device)
    work = args.runs * (args.betas - 1)
    flops = work * 2 * 2 * N_VISIBLE * N_HIDDEN
    time_ais(rbm, data, argparse.Namespace(**{**vars(args), "betas": 50}), device)
    rounds = []
    for _ in range(args.rounds):
        ais_seconds = time_ais(rbm, data, args, device)
        product_seconds = time_products(rbm, args, device)
        rounds.append(
            {
                "ais": work / ais_seconds,
                "bound": work / product_seconds,
                "ratio": product_seconds / ais_seconds,
            }
        )
    report = {
        "device": str(device),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(),
        "runs": args.runs,
        "betas": args.betas,
        "rounds": args.rounds,
        "ais_chain_temperatures_per_second": statistics.median(
            r["ais"] for r in rounds
        ),
        "bound_chain_temperatures_per_second": statistics.median(
            r["bound"] for r in rounds
        ),
        "ratio_to_bound": statistics.median(r["ratio"] for r in rounds),
        "bound_gflops": statistics.median(r["bound"] for r in rounds)
        * flops
        / work
        / 1e9,
        "spread": float(
            np.ptp([r["ratio"] for r in rounds])
            / statistics.median(r["ratio"] for r in rounds)
        ),
    }
    schedule_seconds = 14_500 / report["ais_chain_temperatures_per_second"] * 100
    print(
        f"AIS on a {N_VISIBLE}x{N_HIDDEN} RBM, {args.runs} chains, {device}, ", end=""
    )
    print(f"{report['threads']} threads, median of {args.rounds} rounds")
    print(
        f"  AIS          {report['ais_chain_temperatures_per_second']:>12,.0f} chain-temperatures/s"
    )
    print(
        f"  matmul bound {report['bound_chain_temperatures_per_second']:>12,.0f} "
        f"chain-temperatures/s ({report['bound_gflops']:.1f} GFLOP/s)"
    )
    print(
        f"  AIS / bound  {report['ratio_to_bound']:.2f} (round-to-round spread {report['spread']:.0%})"
    )
    print(
        f"  one published protocol (100 chains, 14,500 temperatures) takes about "
        f"{schedule_seconds:.0f} s here"
    )
    if args.json:
        print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
