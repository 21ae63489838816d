"""The ``deepgen`` command line.

Examples::

    deepgen train --dataset mnist-10k --layers 500,500 --epochs 10 --out runs/demo
    deepgen finetune runs/demo
    deepgen sample runs/demo --stage pretrained --n 64 --out grid.png
    deepgen features runs/demo --units 1:*,2:0-99 --out feats.npz
    deepgen probe runs/demo --units 1:*,2:* --classifier linear-svm --json
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import shlex
import signal
import sys
import time
from pathlib import Path

import numpy as np

from . import __version__, jobs
from .checkpoint import atomic_write_bytes
from .data import DATASET_NAMES, download, verify_files
from .dbn import CHAIN_STARTS, DBNConfig
from .device import DEVICE_CHOICES, MAX_SEED, check_seed
from .errors import InputError, TrainingDiverged
from .evaluation import (
    DEFAULT_SAMPLES,
    DEFAULT_STEPS,
    SAMPLE_FIGURES,
    check_evaluate_settings,
    evaluate_run,
)
from .images import image_grid, save_png
from .jobs.kinds import default_runs_dir
from .jobs.worker import Worker, lock_holder
from .likelihood import DEFAULT_RUNS
from .operations import (
    CLASSIFIERS,
    DEFAULT_C,
    FINETUNE_CONFIGS,
    features,
    finetune_config,
    finetune_run,
    layer_sizes,
    probe_run,
    sample_run,
    stage_dataset,
    train_run,
)
from .progress import Progress, TrainingCancelled
from .rbm import VISIBLE_TYPES
from .runs import FINETUNE_STAGES, PRETRAINED, RunConfig, open_run
from .training import LR_SCHEDULES, RBMTrainingConfig
from .units import GRAMMAR, parse_units

logger = logging.getLogger("deepgen")

LOG_EVERY_SECONDS = 10.0


class ConsoleProgress:
    """Show :class:`Progress` reports as a bar on a terminal, else as log lines."""

    def __init__(self, stream=sys.stderr) -> None:
        self.tty = stream.isatty()
        self.bar = None
        self.key = None
        self.last_log = 0.0

    def __call__(self, progress: Progress) -> None:
        done = (progress.epoch - 1) * progress.total + progress.step
        total = max(1, progress.n_epochs) * progress.total
        key = (progress.stage, progress.layer)
        where = progress.stage
        if progress.layer is not None:
            where += f" layer {progress.layer}/{progress.n_layers}"
        if self.tty:
            from tqdm import tqdm

            if key != self.key:
                self.close()
                self.bar = tqdm(total=total, desc=where, unit="batch", leave=True)
                self.key = key
            self.bar.update(done - self.bar.n)
            return
        now = time.monotonic()
        if now - self.last_log >= LOG_EVERY_SECONDS or done == total:
            self.last_log = now
            if progress.message:
                where += f" ({progress.message})"
            logger.info(
                "%s epoch %d/%d batch %d/%d",
                where,
                progress.epoch,
                progress.n_epochs,
                progress.step,
                progress.total,
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def int_list(text: str) -> list[int]:
    """Parse ``500,500,2000`` into a list of positive integers."""
    try:
        values = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid layer sizes {text!r}; write positive integers separated by "
            "commas, for example 500,500,2000"
        ) from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(
            f"invalid layer sizes {text!r}; every size must be a positive integer"
        )
    return values


def seed_value(text: str) -> int:
    """Parse a ``--seed`` value: a whole number from 0 to ``MAX_SEED``."""
    try:
        return check_seed(int(text))
    except (ValueError, InputError):
        raise argparse.ArgumentTypeError(
            f"invalid seed {text!r}; write a whole number from 0 to {MAX_SEED}"
        ) from None


def add_train_parser(commands) -> None:
    defaults = RBMTrainingConfig()
    p = commands.add_parser(
        "train",
        help="pretrain a DBN greedily, layer by layer",
        description="Pretrain a Deep Belief Net on a dataset into a run folder.",
    )
    p.add_argument("--out", required=True, help="run folder to create (or resume)")
    p.add_argument(
        "--dataset",
        default="mnist-10k",
        help=f"{', '.join(DATASET_NAMES)}, or a .npz/.csv file (default: mnist-10k)",
    )
    p.add_argument(
        "--layers",
        type=int_list,
        default=[500, 500],
        help="hidden layer sizes from the bottom up (default: 500,500)",
    )
    p.add_argument(
        "--labels",
        action="store_true",
        help="join softmax label units to the top RBM, so it can generate a chosen class",
    )
    p.add_argument(
        "--epochs",
        type=int,
        default=defaults.epochs,
        help="epochs per layer (default: 10)",
    )
    p.add_argument(
        "--cd-k", type=int, default=1, help="Gibbs steps of CD-k (default: 1)"
    )
    p.add_argument(
        "--pcd", action="store_true", help="persistent CD: chains kept between updates"
    )
    p.add_argument(
        "--lr",
        type=float,
        default=None,
        help="learning rate (default: 0.1 for Bernoulli, 0.01 for Gaussian input units)",
    )
    p.add_argument(
        "--lr-schedule",
        choices=LR_SCHEDULES,
        default=defaults.lr_schedule,
        help="constant, or linear: fall by equal steps to 1/epochs of --lr in "
        "the last epoch (default: constant)",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=defaults.batch_size,
        help="rows per update (default: 100)",
    )
    p.add_argument(
        "--drop-last",
        action="store_true",
        help="skip the short last batch when the rows are not a multiple of the batch size",
    )
    p.add_argument(
        "--momentum",
        type=float,
        default=defaults.momentum,
        help="momentum after the switch epoch (default: 0.9)",
    )
    p.add_argument(
        "--initial-momentum",
        type=float,
        default=defaults.initial_momentum,
        help="momentum up to the switch epoch (default: 0.5)",
    )
    p.add_argument(
        "--momentum-switch-epoch",
        type=int,
        default=defaults.momentum_switch_epoch,
        help="last epoch with the initial momentum (default: 5)",
    )
    p.add_argument(
        "--weight-decay",
        type=float,
        default=defaults.weight_decay,
        help="L2 weight cost (default: 2e-4)",
    )
    p.add_argument(
        "--sparsity-target",
        type=float,
        default=None,
        help="target mean activation of hidden units (default: no sparsity penalty)",
    )
    p.add_argument(
        "--sparsity-cost",
        type=float,
        default=defaults.sparsity_cost,
        help="weight of the sparsity penalty (default: 0.1)",
    )
    p.add_argument(
        "--sparsity-decay",
        type=float,
        default=defaults.sparsity_decay,
        help="decay of the running mean activation (default: 0.9)",
    )
    p.add_argument(
        "--sample-visible",
        action="store_true",
        help="use sampled, not mean, visible states at the last CD step",
    )
    p.add_argument(
        "--visible",
        choices=VISIBLE_TYPES,
        default="bernoulli",
        help="input unit type; Gaussian expects standardised data (default: bernoulli)",
    )
    p.add_argument(
        "--learn-sigma",
        action="store_true",
        help="learn the standard deviation of Gaussian input units",
    )
    p.add_argument(
        "--seed", type=seed_value, default=0, help="random seed (default: 0)"
    )
    p.add_argument(
        "--device",
        choices=DEVICE_CHOICES,
        default="auto",
        help="where to train (default: auto, CUDA when present)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its last checkpoint",
    )
    add_background_options(p)


def add_background_options(p) -> None:
    p.add_argument(
        "--background",
        action="store_true",
        help="queue the work as a job for the worker instead of running it here",
    )
    p.add_argument(
        "--runs-dir",
        default=None,
        help="runs folder holding the job store (default: $DEEPGEN_RUNS_DIR or runs)",
    )


def add_jobs_parsers(commands) -> None:
    p = commands.add_parser(
        "worker",
        help="run queued jobs until stopped",
        description="Run the jobs queued in a runs folder, in child processes.",
    )
    p.add_argument(
        "--runs-dir",
        default=None,
        help="runs folder (default: $DEEPGEN_RUNS_DIR or runs)",
    )
    p.add_argument(
        "--max-jobs", type=int, default=1, help="jobs run at the same time (default: 1)"
    )
    p.add_argument(
        "--singleton",
        action="store_true",
        help="exit at once if another singleton worker serves this runs folder",
    )
    p.add_argument(
        "--parent-pid", type=int, default=None, help="stop when this process exits"
    )
    p.add_argument(
        "--no-warm",
        action="store_true",
        help="skip the warm process that compiles UMAP at start-up",
    )

    p = commands.add_parser("jobs", help="list, show, cancel or resume jobs")
    p.add_argument("action", choices=("list", "show", "cancel", "resume", "logs"))
    p.add_argument("id", nargs="?", type=int, help="job id (all actions but list)")
    p.add_argument(
        "--runs-dir",
        default=None,
        help="runs folder (default: $DEEPGEN_RUNS_DIR or runs)",
    )
    p.add_argument("--json", action="store_true", help="print JSON for scripts")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deepgen",
        description="Train, fine-tune, sample and look inside Deep Belief Nets.",
    )
    parser.add_argument("--version", action="version", version=f"deepgen {__version__}")
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="print warnings and errors only"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_train_parser(commands)
    add_jobs_parsers(commands)

    p = commands.add_parser(
        "finetune",
        help="fine-tune a pretrained run: backprop, a classifier head, or up-down",
        description="Fine-tune the pretrained stage into a new stage beside it: "
        "finetuned (backprop), finetuned-head or finetuned-updown. Flags a method "
        "does not use are ignored.",
    )
    p.add_argument("run", help="run folder")
    p.add_argument(
        "--method",
        choices=list(FINETUNE_CONFIGS),
        default="backprop",
        help="backprop: the whole net on the labels; head: only a softmax layer on "
        "chosen units, the DBN frozen; updown: contrastive wake-sleep, for nets "
        "with label units (default: backprop)",
    )
    p.add_argument(
        "--epochs",
        type=int,
        help="maximum epochs (default: 100 for backprop, 10 for updown)",
    )
    p.add_argument(
        "--lr",
        type=float,
        help="learning rate (default: 0.1)",
    )
    p.add_argument(
        "--momentum", type=float, help="SGD momentum, backprop (default: 0.9)"
    )
    p.add_argument("--batch-size", type=int, help="rows per update (default: 100)")
    p.add_argument(
        "--input-dropout",
        type=float,
        help="dropout rate of input units, backprop (default: 0.0)",
    )
    p.add_argument(
        "--hidden-dropout",
        type=float,
        help="dropout rate of hidden units, backprop (default: 0.5)",
    )
    p.add_argument(
        "--warm-start-head",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="fit the softmax layer on the frozen top layer before backprop "
        "(default: on)",
    )
    p.add_argument(
        "--validation-fraction",
        type=float,
        help="share of training rows held back to choose or report (default: 0.1)",
    )
    p.add_argument(
        "--patience",
        type=int,
        help="epochs without a validation gain before stopping, backprop (default: 30)",
    )
    p.add_argument(
        "--units",
        help="unit SPEC the head reads, head only (default: the top hidden layer)",
    )
    p.add_argument(
        "--cd-k",
        type=int,
        help="Gibbs steps in the top RBM per update, updown (default: 3)",
    )
    p.add_argument(
        "--seed", type=seed_value, default=0, help="random seed (default: 0)"
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing stage of this method (by default it is kept and "
        "the command stops)",
    )
    add_background_options(p)

    p = commands.add_parser(
        "evaluate",
        help="measure a stage: test error, log-likelihood, sample quality",
        description="Measure one stage and save the figures as "
        "stages/STAGE/evaluation.json in the run folder. The log-likelihood of a "
        "net with more than one hidden layer is a variational lower bound; log Z "
        "of its top RBM is exact for up to 20 hidden units and estimated by "
        "annealed importance sampling (AIS) above that.",
    )
    p.add_argument("run", help="run folder")
    p.add_argument(
        "--stage", default=PRETRAINED, help="stage to measure (default: pretrained)"
    )
    p.add_argument(
        "--ais-runs",
        type=int,
        default=DEFAULT_RUNS,
        help=f"AIS chains (default: {DEFAULT_RUNS})",
    )
    p.add_argument(
        "--ais-betas",
        type=int,
        default=14_500,
        help="steps of the AIS temperature schedule, in the published proportions "
        "(default: 14500, the published schedule)",
    )
    p.add_argument(
        "--n-samples",
        type=int,
        default=DEFAULT_SAMPLES,
        help=f"samples drawn to judge generation (default: {DEFAULT_SAMPLES})",
    )
    p.add_argument(
        "--steps",
        type=int,
        default=DEFAULT_STEPS,
        help=f"Gibbs steps per sample (default: {DEFAULT_STEPS})",
    )
    p.add_argument(
        "--seed", type=seed_value, default=0, help="random seed (default: 0)"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_background_options(p)

    p = commands.add_parser("sample", help="generate images from a stage")
    p.add_argument("run", help="run folder")
    p.add_argument(
        "--stage", default=PRETRAINED, help="stage to sample (default: pretrained)"
    )
    p.add_argument("--n", type=int, default=64, help="number of samples (default: 64)")
    p.add_argument(
        "--label",
        type=int,
        default=None,
        help="class to generate (nets trained with --labels)",
    )
    p.add_argument(
        "--steps",
        type=int,
        default=500,
        help="Gibbs steps in the top RBM (default: 500)",
    )
    p.add_argument(
        "--start",
        choices=CHAIN_STARTS,
        default="noise",
        help="first state of the layer below the top: random (noise) or all "
        "units off (empty), which helps nets whose chains mix slowly "
        "(default: noise)",
    )
    p.add_argument(
        "--seed", type=seed_value, default=0, help="random seed (default: 0)"
    )
    p.add_argument("--out", required=True, help="PNG file for the grid of samples")
    p.add_argument(
        "--chain-out",
        default=None,
        help="PNG file showing the chain of the first sample every --chain-every steps",
    )
    p.add_argument(
        "--chain-every",
        type=int,
        default=50,
        help="steps between chain pictures (default: 50)",
    )

    for name, text in (
        ("features", "write the activations of chosen units to an NPZ file"),
        ("probe", "train a classifier on chosen units and report held-out accuracy"),
    ):
        p = commands.add_parser(name, help=text, epilog=GRAMMAR)
        p.add_argument("run", help="run folder")
        p.add_argument(
            "--stage", default=PRETRAINED, help="stage to read (default: pretrained)"
        )
        p.add_argument(
            "--units",
            required=True,
            help="unit SPEC, for example 1:*,2:0-99 (0 is the input)",
        )
        if name == "features":
            p.add_argument(
                "--split",
                choices=("train", "test"),
                default="train",
                help="which split (default: train)",
            )
            p.add_argument("--out", required=True, help="NPZ file to write")
        else:
            p.add_argument(
                "--classifier",
                choices=CLASSIFIERS,
                default="linear-svm",
                help="classifier (default: linear-svm)",
            )
            p.add_argument(
                "--C",
                type=float,
                default=DEFAULT_C,
                dest="c",
                help="SVM regularisation C (default: 0.1)",
            )
            p.add_argument("--json", action="store_true", help="print one JSON object")

    p = commands.add_parser("data", help="download or check the IDX datasets")
    p.add_argument("action", choices=("download", "verify"))
    p.add_argument("name", choices=("mnist", "fashion-mnist"))
    p.add_argument(
        "--data-dir",
        default=None,
        help="folder of datasets (default: $DEEPGEN_DATA_DIR or ~/.cache/deepgen/data)",
    )
    return parser


def run_config_from_args(args) -> RunConfig:
    rbm = RBMTrainingConfig(
        epochs=args.epochs,
        learning_rate=args.lr,
        lr_schedule=args.lr_schedule,
        batch_size=args.batch_size,
        cd_k=args.cd_k,
        persistent=args.pcd,
        initial_momentum=args.initial_momentum,
        momentum=args.momentum,
        momentum_switch_epoch=args.momentum_switch_epoch,
        weight_decay=args.weight_decay,
        sparsity_target=args.sparsity_target,
        sparsity_cost=args.sparsity_cost,
        sparsity_decay=args.sparsity_decay,
        sample_visible=args.sample_visible,
        drop_last=args.drop_last,
    )
    dbn = DBNConfig(
        layers=args.layers,
        labels=args.labels,
        visible_type=args.visible,
        learn_sigma=args.learn_sigma,
        seed=args.seed,
        rbm=rbm,
    )
    return RunConfig(dataset=args.dataset, dbn=dbn, device=args.device)


def submit_job(args, kind: str, params: dict) -> int:
    job = jobs.submit(kind, params, args.runs_dir)
    print(
        f"queued job {job.id} ({kind}); follow it with `deepgen jobs show {job.id}`; "
        "a worker runs it (`deepgen worker` starts one)"
    )
    return 0


RESUME_KEEPS = ("command", "out", "resume", "background", "runs_dir", "quiet")
"""Options of ``deepgen train`` that --resume reads; it ignores every other."""


def check_resume_options(args) -> None:
    """Raise :class:`InputError` when --resume is given settings it would ignore."""
    defaults = build_parser().parse_args(["train", "--out", "run"])
    changed = [
        "--" + name.replace("_", "-")
        for name, value in vars(args).items()
        if name not in RESUME_KEEPS and value != getattr(defaults, name, value)
    ]
    if changed:
        raise InputError(
            f"--resume continues {args.out} with the settings it was started with, "
            f"so it would ignore {', '.join(changed)}; drop them, or train a new run "
            "with them into another --out"
        )


def command_train(args, progress: ConsoleProgress) -> int:
    if not args.out.strip():
        raise InputError("--out is empty; name a folder for the run")
    if args.learn_sigma and args.visible != "gaussian":
        raise InputError(
            "--learn-sigma learns the standard deviation of Gaussian input units; "
            "add --visible gaussian, or drop --learn-sigma"
        )
    if args.resume:
        check_resume_options(args)
    elif Path(args.out).expanduser().is_file():
        raise InputError(
            f"--out {args.out} is a file; name a new folder for the run instead"
        )
    config = None if args.resume else run_config_from_args(args)
    if args.background:
        if args.resume:
            raise InputError(
                "--background with --resume is not supported; resume the job with "
                "`deepgen jobs resume ID`"
            )
        return submit_job(args, "train", {"out": args.out, "config": config.to_dict()})
    # A stop request (SIGTERM) ends training the way Ctrl-C does, with the
    # hint on how to resume.
    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        run = train_run(args.out, config, resume=args.resume, progress=progress)
    except KeyboardInterrupt:
        progress.close()
        logger.warning(
            "interrupted; continue from the last finished epoch with "
            "`deepgen train --resume --out %s`",
            shlex.quote(args.out),
        )
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    progress.close()
    last = run.metrics()[-1]
    epochs = "1 epoch" if last["epoch"] == 1 else f"{last['epoch']} epochs"
    print(
        f"pretrained {run.path}: layer {last['layer']} reconstruction error "
        f"{last['recon_error']:.3f} after {epochs}"
    )
    return 0


def interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


FINETUNE_FLAGS = {
    "epochs": "epochs",
    "lr": "learning_rate",
    "momentum": "momentum",
    "batch_size": "batch_size",
    "input_dropout": "input_dropout",
    "hidden_dropout": "hidden_dropout",
    "warm_start_head": "warm_start_head",
    "validation_fraction": "validation_fraction",
    "patience": "patience",
    "units": "units",
    "cd_k": "cd_k",
    "seed": "seed",
}
"""Command-line flags of ``deepgen finetune`` and the settings they fill."""


def command_finetune(args, progress: ConsoleProgress) -> int:
    values = {
        setting: getattr(args, flag)
        for flag, setting in FINETUNE_FLAGS.items()
        if getattr(args, flag) is not None
    }
    config = finetune_config(args.method, values)
    if args.background:
        params = {"run": args.run, "method": args.method, "config": config.to_dict()}
        return submit_job(args, "finetune", {**params, "overwrite": args.overwrite})
    run = open_run(args.run)
    finetune_run(run, config, progress, overwrite=args.overwrite)
    progress.close()
    stage = FINETUNE_STAGES[args.method]
    info = run.stage_info(stage)["info"]
    print(
        f"fine-tuned {run.path} into stage {stage}: held-out accuracy "
        f"{info['test_accuracy']:.4f}"
    )
    return 0


def command_evaluate(args, progress: ConsoleProgress) -> int:
    params = {
        "run": args.run,
        "stage": args.stage,
        "ais_runs": args.ais_runs,
        "ais_betas": args.ais_betas,
        "n_samples": args.n_samples,
        "steps": args.steps,
        "seed": args.seed,
    }
    if args.background:
        return submit_job(args, "evaluate", params)
    run = open_run(args.run)
    check_evaluate_settings(params)
    result = evaluate_run(
        run,
        args.stage,
        args.ais_runs,
        args.ais_betas,
        args.n_samples,
        args.steps,
        args.seed,
        progress,
    )
    progress.close()
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True))
        return 0
    print(describe_evaluation(result))
    return 0


def describe_evaluation(result: dict) -> str:
    """Write the main figures of an evaluation as a few plain lines."""
    lines = [f"{result['run']}, stage {result['stage']}:"]
    if result["test_error"] is not None:
        lines.append(
            f"  test error      {result['test_error']:.2%} ({result['test_error_method']})"
        )
    for key, name in (
        ("log_likelihood", "log-likelihood"),
        ("log_likelihood_reverse", "reverse AIS   "),
    ):
        figure = result[key]
        if figure["value"] is None:
            lines.append(f"  {name}  not measured: {figure['reason']}")
        else:
            lines.append(
                f"  {name}  {figure['value']:.2f} +- {figure['stderr']:.2f} nats "
                f"({figure['method']})"
            )
    lines.append(f"  recon error     {result['recon_error']:.4f}")
    quality = result["sample_quality"]
    if quality is not None:
        for key in SAMPLE_FIGURES:
            lines.append(f"  {key:<19} {quality[key]:.3f}")
    return "\n".join(lines)


def command_sample(args) -> int:
    check_output_file(args.out, "--out", ".png")
    if args.chain_out:
        check_output_file(args.chain_out, "--chain-out", ".png")
        if args.chain_every < 1:
            raise InputError(
                f"--chain-every must be at least 1, got {args.chain_every}; it is "
                "the number of Gibbs steps between two pictures of the chain"
            )
    run = open_run(args.run)
    dataset = run.dataset()
    if dataset.image_shape is None:
        raise InputError(
            f"dataset {run.config.dataset} has no image shape, so samples cannot be "
            "drawn as pictures; use `deepgen features` to read values instead"
        )
    chain_every = args.chain_every if args.chain_out else 0
    samples, chain = sample_run(
        run,
        args.stage,
        args.n,
        args.label,
        args.steps,
        args.seed,
        chain_every,
        args.start,
    )
    picture = image_grid(samples, dataset.image_shape)
    write_output(args.out, "--out", save_png, picture)
    if args.chain_out:
        first = np.stack([step[0] for step in chain])
        picture = image_grid(first, dataset.image_shape, n_columns=len(first))
        write_output(args.chain_out, "--chain-out", save_png, picture)
    print(f"wrote {len(samples)} samples of stage {args.stage} to {args.out}")
    return 0


OUTPUT_KINDS = {
    ".png": ("PNG image", b"\x89PNG\r\n\x1a\n"),
    ".npz": ("NPZ file", b"PK"),
}
"""The kind of file behind each output suffix, and the bytes it starts with."""


def check_output_file(path: str, option: str, suffix: str) -> None:
    """Raise :class:`InputError` before any work when ``path`` must not be written.

    The name must end in ``suffix`` and its folder must exist. An existing
    file is replaced only when it is already that kind of output, so that a
    mistyped ``--out`` cannot destroy a run's own files.
    """
    kind, magic = OUTPUT_KINDS[suffix]
    target = Path(path).expanduser()
    if target.suffix.lower() != suffix:
        raise InputError(
            f"{option} {path} must end in {suffix}, because deepgen writes a {kind} "
            "there"
        )
    if target.is_dir():
        raise InputError(f"{option} {path} is a folder; name a {suffix} file instead")
    folder = target.resolve().parent
    if not folder.is_dir():
        raise InputError(
            f"cannot write {path}: folder {folder} does not exist; create it or "
            f"choose another {option}"
        )
    if target.exists():
        try:
            with target.open("rb") as handle:
                start = handle.read(len(magic))
        except OSError as error:
            raise InputError(
                f"cannot replace {path}: {error.strerror}; choose another {option}"
            ) from None
        if start != magic:
            raise InputError(
                f"{option} {path} exists and is not a {kind}, so it was left as it "
                f"is; choose another {option}"
            )


def write_output(path: str, option: str, write, value) -> None:
    """Call ``write(path, value)``, turning an OSError into :class:`InputError`."""
    try:
        write(Path(path).expanduser(), value)
    except OSError as error:
        raise InputError(
            f"cannot write {path}: {error.strerror or error}; choose another {option}"
        ) from None


def save_npz(path: str, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` to exactly ``path`` as a compressed NPZ, atomically."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    atomic_write_bytes(path, buffer.getvalue())


def command_features(args) -> int:
    check_output_file(args.out, "--out", ".npz")
    run = open_run(args.run)
    dbn = run.load_stage(args.stage)
    dataset = stage_dataset(run, dbn)
    x = dataset.x_train if args.split == "train" else dataset.x_test
    y = dataset.y_train if args.split == "train" else dataset.y_test
    spec = parse_units(args.units, layer_sizes(dbn)).spec()
    values = features(dbn, x, spec)
    arrays = {"features": values, "spec": np.array(spec), "split": np.array(args.split)}
    if y is not None:
        arrays["labels"] = y
    write_output(args.out, "--out", save_npz, arrays)
    print(
        f"wrote {values.shape[0]} rows x {values.shape[1]} units ({spec}) to {args.out}"
    )
    return 0


def command_probe(args) -> int:
    run = open_run(args.run)
    result = probe_run(run, args.stage, args.units, args.classifier, args.c)
    if args.json:
        print(json.dumps(result, sort_keys=True))
    else:
        print(
            f"{result['classifier']} on {result['n_units']} units ({result['spec']}) of "
            f"stage {result['stage']}: held-out accuracy {result['accuracy']:.4f} "
            f"({result['n_test']} rows, fit {result['fit_seconds']:.1f} s)"
        )
    return 0


def command_data(args) -> int:
    paths = (
        download(args.name, args.data_dir)
        if args.action == "download"
        else verify_files(args.name, args.data_dir)
    )
    for path in paths:
        print(f"ok {path}")
    return 0


def command_worker(args) -> int:
    runs_dir = args.runs_dir or default_runs_dir()
    if args.max_jobs < 1:
        raise InputError(f"--max-jobs must be at least 1, got {args.max_jobs}")
    worker = Worker(runs_dir, args.max_jobs, args.parent_pid, warm=not args.no_warm)
    if args.singleton and not worker.take_lock():
        holder = lock_holder(runs_dir) or {}
        print(f"a worker (pid {holder.get('pid', '?')}) already serves {runs_dir}")
        return 0
    worker.run()
    return 0


def describe_job(job) -> str:
    progress = job.progress or {}
    where = ""
    if progress:
        where = f" {progress.get('stage', '')}"
        if progress.get("layer"):
            where += f" layer {progress['layer']}/{progress.get('n_layers')}"
        where += (
            f" epoch {progress.get('epoch')}/{progress.get('n_epochs')}"
            f" batch {progress.get('step')}/{progress.get('total')}"
        )
    error = f" error: {job.error}" if job.error and job.state == "failed" else ""
    return f"{job.id:>5}  {job.kind:<9} {job.state:<10}{where}{error}"


def command_jobs(args) -> int:
    if args.action != "list" and args.id is None:
        raise InputError(f"`deepgen jobs {args.action}` needs a job id")
    if args.runs_dir is not None and not Path(args.runs_dir).is_dir():
        raise InputError(
            f"runs folder {args.runs_dir} does not exist; check --runs-dir"
        )
    if args.action == "list":
        found = jobs.list(args.runs_dir)
        if args.json:
            print(json.dumps([j.to_dict() for j in found], sort_keys=True))
        elif not found:
            print(f"no jobs in {args.runs_dir or default_runs_dir()}")
        for job in [] if args.json else found:
            print(describe_job(job))
        return 0
    if args.action == "logs":
        text = jobs.job_log(args.id, args.runs_dir)
        if not text:
            raise InputError(f"job {args.id} has no log yet; it has not started")
        print(text, end="")
        return 0
    action = {"show": jobs.get, "cancel": jobs.cancel, "resume": jobs.resume}[
        args.action
    ]
    job = action(args.id, args.runs_dir)
    if args.json:
        print(json.dumps(job.to_dict(), sort_keys=True))
    else:
        print(describe_job(job))
        if args.action == "show" and job.log_tail:
            print(job.log_tail, end="")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    progress = ConsoleProgress()
    handlers = {
        "train": lambda: command_train(args, progress),
        "finetune": lambda: command_finetune(args, progress),
        "evaluate": lambda: command_evaluate(args, progress),
        "sample": lambda: command_sample(args),
        "features": lambda: command_features(args),
        "probe": lambda: command_probe(args),
        "data": lambda: command_data(args),
        "worker": lambda: command_worker(args),
        "jobs": lambda: command_jobs(args),
    }
    try:
        return handlers[args.command]()
    except InputError as error:
        progress.close()
        print(f"deepgen {args.command}: error: {error}", file=sys.stderr)
        return 2
    except TrainingDiverged as error:
        progress.close()
        print(f"deepgen {args.command}: {error}", file=sys.stderr)
        return 3
    except TrainingCancelled as error:
        progress.close()
        print(f"deepgen {args.command}: {error}", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader of our output went away (as with `| head`): stop quietly,
        # pointing stdout at devnull so the interpreter's final flush succeeds.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
