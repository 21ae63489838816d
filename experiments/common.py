"""Shared parts of the experiments: command line, environment and report."""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shlex
import sys
import tempfile
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np
import torch

from deepgen_core.checkpoint import atomic_write_json
from deepgen_core.device import resolve_device
from deepgen_core.errors import InputError, TrainingDiverged
from deepgen_core.operations import (
    FinetuneSettings,
    finetune_config,
    finetune_run,
    train_run,
)
from deepgen_core.runs import FINETUNE_STAGES, PRETRAINED, Run, RunConfig, open_run

RESULTS_DIR = Path(__file__).resolve().parents[1] / "docs" / "results"
RESULTS_FILE = "results.json"
PACKAGES = ("torch", "numpy", "scikit-learn", "scipy", "umap-learn")
BACKPROP_SETTINGS = {
    "input_dropout": 0.2,
    "hidden_dropout": 0.2,
    "warm_start_head": False,
}
"""Backprop settings behind the stored results: dropout 0.2 on the inputs and
the hidden units, and a softmax layer started at random. They differ from the
defaults of ``deepgen finetune`` and are kept so that each command reproduces
its stored results."""


def positive_int(text: str) -> int:
    """Parse a command-line integer that must be at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}")
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def base_parser(name: str, doc: str) -> argparse.ArgumentParser:
    """Create a parser with the options every experiment takes."""
    parser = argparse.ArgumentParser(
        prog=f"python -m experiments.{name}",
        description=doc.split("\n")[0],
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a small version on mnist-10k that finishes in about a minute, to "
        "check that the experiment works; its figures are not the published ones",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of every step (0)")
    parser.add_argument(
        "--device", default="auto", help="auto, cpu or cuda (auto: cuda when present)"
    )
    parser.add_argument(
        "--threads", type=positive_int, help="torch CPU threads (default: all)"
    )
    parser.add_argument(
        "--out-dir",
        type=Path,
        help=f"folder of the results (default docs/results/{name}, or "
        f"docs/results/{name}/quick with --quick)",
    )
    parser.add_argument(
        "--runs-dir",
        type=Path,
        help="keep the trained runs here and reuse their finished stages when "
        "their settings match (default: runs/ in the results folder, which git "
        "ignores)",
    )
    return parser


@dataclass
class Experiment:
    """The settings, the clock and the output folder of one experiment run."""

    name: str
    args: argparse.Namespace
    started: float = field(default_factory=time.perf_counter)
    seconds: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
        if self.args.threads:
            torch.set_num_threads(self.args.threads)
        self.device = resolve_device(self.args.device)
        default = RESULTS_DIR / self.name
        if self.args.quick:
            default = default / "quick"
        self.out_dir = Path(self.args.out_dir or default)
        self.runs_dir = Path(self.args.runs_dir or self.out_dir / "runs")
        for folder in (self.out_dir, self.runs_dir):
            check_writable(folder)

    def timed(self, key: str):
        """Return a context manager that adds the seconds of its block under ``key``."""
        return _Timer(self.seconds, key)

    def write(self, config: dict, figures: dict, pictures: list[str] = ()) -> Path:
        """Write ``results.json`` and return its path."""
        report = {
            "experiment": self.name,
            "command": command_line(),
            "quick": bool(self.args.quick),
            "seed": self.args.seed,
            "device": str(self.device),
            "config": config,
            "figures": figures,
            "pictures": sorted(pictures),
            "seconds": {k: round(v, 1) for k, v in self.seconds.items()},
            "wall_seconds": round(time.perf_counter() - self.started, 1),
            "environment": environment(self.device),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        path = self.out_dir / RESULTS_FILE
        atomic_write_json(path, to_plain(report))
        print(f"wrote {path}", flush=True)
        return path


def check_writable(folder: Path) -> None:
    """Create ``folder`` and check that files can be written in it.

    Run at the start, so that a long experiment does not fail at its end.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-check-"):
            pass
    except OSError as error:
        raise InputError(
            f"cannot write to {folder} ({error.strerror}); choose another folder "
            "with --out-dir or --runs-dir, or make this one writable"
        ) from None


def reuse_run(path: Path, config: RunConfig) -> Run | None:
    """Open the run at ``path`` when one exists, after checking its settings.

    Returns None when there is no run there. A run trained with other
    settings is never reused in place of the requested one.
    """
    if not (path / "config.json").exists():
        return None
    run = open_run(path)
    if run.config.to_dict() != config.to_dict():
        raise InputError(
            f"the run in {path} was trained with other settings than this "
            "command's; pass another --runs-dir, or delete that folder to train "
            "it again"
        )
    return run


def check_stage_settings(run: Run, stage: str, config: FinetuneSettings) -> None:
    """Raise :class:`InputError` when ``stage`` was made with other settings."""
    made_with = run.stage_info(stage)["info"].get("config")
    if made_with != config.to_dict():
        raise InputError(
            f"stage {stage} of {run.path} was fine-tuned with other settings than "
            "this command's; pass another --runs-dir, or delete that folder to "
            "train it again"
        )


def prepare_run(
    experiment: Experiment,
    path: Path,
    config: RunConfig,
    methods: dict[str, dict],
    label: str = "",
) -> Run:
    """Pretrain the run at ``path`` and fine-tune it by each of ``methods``.

    ``methods`` maps a fine-tuning method to its settings. Stages that an
    earlier call finished with the same settings are reused, and an
    unfinished pretraining is resumed.
    """
    prefix = f"{label}-" if label else ""
    run = reuse_run(path, config)
    if run is None:
        with experiment.timed(f"{prefix}pretrain"):
            run = train_run(str(path), config)
    elif PRETRAINED not in run.stages():
        with experiment.timed(f"{prefix}pretrain"):
            run = train_run(str(path), resume=True)
    for method, values in methods.items():
        settings = finetune_config(method, values)
        stage = FINETUNE_STAGES[method]
        if stage in run.stages():
            check_stage_settings(run, stage, settings)
            continue
        with experiment.timed(f"{prefix}finetune-{method}"):
            finetune_run(run, settings)
    return run


class _Timer:
    def __init__(self, seconds: dict[str, float], key: str) -> None:
        self.seconds, self.key = seconds, key

    def __enter__(self) -> None:
        self.begun = time.perf_counter()

    def __exit__(self, error_type, *_) -> None:
        if error_type is not None:
            return
        elapsed = time.perf_counter() - self.begun
        self.seconds[self.key] = self.seconds.get(self.key, 0.0) + elapsed
        print(f"{self.key}: {elapsed:.1f} s", flush=True)


def command_line() -> str:
    """Return the command that made the results, as typed from the repository root."""
    module = Path(sys.argv[0]).stem
    return shlex.join(["python", "-m", f"experiments.{module}", *sys.argv[1:]])


def environment(device: torch.device) -> dict:
    """Versions of the packages and a description of the machine."""
    versions = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "versions": versions,
        "machine": platform.machine(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
    }


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def to_plain(value):
    """``value`` with numpy and torch scalars made into JSON numbers."""
    if isinstance(value, dict):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    if isinstance(value, (np.generic, torch.Tensor)):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return value


def load_results(
    name: str, folder: Path | None = None, file: str = RESULTS_FILE
) -> dict:
    """Read the stored ``results.json`` (or ``file``) of experiment ``name``."""
    path = (folder or RESULTS_DIR / name) / file
    return json.loads(path.read_text())


def run_command(main, argv: list[str] | None = None) -> None:
    """Call ``main(argv)``; print an input error as one line and exit with 2."""
    try:
        main(argv)
    except (InputError, TrainingDiverged) as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
