"""Job kinds: how each kind's parameters are checked and how it runs.

Parameters are checked when a job is submitted, with the same rules and
messages as the command line, so a bad job is rejected at once rather than
failing minutes later in the worker.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..embedding import check_embedding_params
from ..errors import InputError
from ..evaluation import (
    DEFAULT_SAMPLES,
    DEFAULT_STEPS,
    check_evaluate_settings,
    evaluate_run,
)
from ..finetune import FinetuneConfig
from ..likelihood import DEFAULT_RUNS
from ..operations import (
    CLASSIFIERS,
    DEFAULT_C,
    check_can_write_stage,
    check_run_config,
    embed_run,
    finetune_config,
    finetune_run,
    layer_sizes,
    probe_run,
    train_run,
)
from ..progress import ProgressCallback, StopCheck
from ..runs import FINETUNE_STAGES, FINETUNED, PRETRAINED, RunConfig, open_run
from ..units import parse_units
from ..updown import check_updown_net


@dataclass(frozen=True)
class JobKind:
    """How to check and run one kind of job."""

    name: str
    validate: Callable[[dict], dict]
    """Returns the parameters to store, or raises InputError."""
    run: Callable[[dict, bool, ProgressCallback, StopCheck], dict]
    """Runs the job; the flag is true to resume from a checkpoint."""
    run_dir: Callable[[dict], str | None]
    resumable: bool = False
    """Whether a stopped job can continue from a checkpoint."""
    warm: bool = False
    """Whether the job runs in the worker's warm process when it is idle."""


def _require(params: dict, *names: str) -> None:
    missing = [name for name in names if name not in params]
    if missing:
        raise InputError(f"job parameters are missing {', '.join(missing)}")


def _absolute(path: str) -> str:
    return str(Path(path).expanduser().resolve())


# train -------------------------------------------------------------------------


def validate_train(params: dict) -> dict:
    _require(params, "out", "config")
    config = RunConfig.from_dict(params["config"])
    out = Path(params["out"])
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(
            f"run folder {out} already exists and is not empty; choose another --out "
            "or delete it"
        )
    check_run_config(config)
    if Path(config.dataset).suffix.lower() in (".npz", ".csv"):
        config.dataset = _absolute(config.dataset)
    checked = {"out": _absolute(params["out"]), "config": config.to_dict()}
    if params.get("finetune") is not None:
        finetune = FinetuneConfig.from_dict(params["finetune"])
        finetune.validate()
        checked["finetune"] = finetune.to_dict()
    return checked


def run_train(
    params: dict, resume: bool, progress: ProgressCallback, should_stop: StopCheck
) -> dict:
    out = Path(params["out"])
    started_before = (out / "config.json").exists()
    if resume and started_before and PRETRAINED in open_run(out).stages():
        run = open_run(out)  # stopped while fine-tuning: pretraining is done
    elif resume and started_before:
        run = train_run(
            str(out), resume=True, progress=progress, should_stop=should_stop
        )
    elif started_before:
        raise InputError(
            f"run folder {out} was created by another job or command; resume that "
            "job or choose another --out"
        )
    else:
        config = RunConfig.from_dict(params["config"])
        run = train_run(str(out), config, progress=progress, should_stop=should_stop)
    result = {"run": str(run.path), "recon_error": run.metrics()[-1]["recon_error"]}
    if params.get("finetune") is not None:
        # Fine-tuning starts again from the pretrained stage when resumed.
        config = FinetuneConfig.from_dict(params["finetune"])
        finetune_run(run, config, progress, should_stop, overwrite=True)
        result["test_accuracy"] = run.stage_info(FINETUNED)["info"]["test_accuracy"]
    return result


# finetune ----------------------------------------------------------------------


def validate_finetune(params: dict) -> dict:
    _require(params, "run")
    run = open_run(params["run"])
    if PRETRAINED not in run.stages():
        raise InputError(
            f"run {run.path} has no pretrained stage yet; wait for its training "
            "job to finish"
        )
    method = params.get("method", "backprop")
    config = finetune_config(method, params.get("config", {}))
    overwrite = bool(params.get("overwrite", False))
    check_can_write_stage(run, FINETUNE_STAGES[method], overwrite)
    if method == "updown":
        check_updown_net(run.load_stage(PRETRAINED))
    return {
        "run": _absolute(params["run"]),
        "method": method,
        "config": config.to_dict(),
        "overwrite": overwrite,
    }


def run_finetune(
    params: dict, resume: bool, progress: ProgressCallback, should_stop: StopCheck
) -> dict:
    run = open_run(params["run"])
    method = params.get("method", "backprop")
    config = finetune_config(method, params["config"])
    finetune_run(run, config, progress, should_stop, params.get("overwrite", False))
    stage = FINETUNE_STAGES[method]
    return {
        "stage": stage,
        "test_accuracy": run.stage_info(stage)["info"]["test_accuracy"],
    }


# evaluate ----------------------------------------------------------------------


def validate_evaluate(params: dict) -> dict:
    _require(params, "run")
    run = open_run(params["run"])
    stage = params.get("stage", PRETRAINED)
    run.load_stage(stage)
    checked = {
        "run": _absolute(params["run"]),
        "stage": stage,
        "ais_runs": int(params.get("ais_runs", DEFAULT_RUNS)),
        "ais_betas": int(params.get("ais_betas", 14_500)),
        "n_samples": int(params.get("n_samples", DEFAULT_SAMPLES)),
        "steps": int(params.get("steps", DEFAULT_STEPS)),
        "seed": int(params.get("seed", 0)),
    }
    check_evaluate_settings(checked)
    return checked


def run_evaluate(
    params: dict, resume: bool, progress: ProgressCallback, should_stop: StopCheck
) -> dict:
    settings = {k: v for k, v in params.items() if k not in ("run", "stage")}
    result = evaluate_run(
        open_run(params["run"]),
        params["stage"],
        progress=progress,
        should_stop=should_stop,
        **settings,
    )
    return {
        "stage": params["stage"],
        "test_error": result["test_error"],
        "log_likelihood": result["log_likelihood"]["value"],
    }


# probe -------------------------------------------------------------------------


def validate_probe(params: dict) -> dict:
    _require(params, "run", "units")
    run = open_run(params["run"])
    stage = params.get("stage", PRETRAINED)
    dbn = run.load_stage(stage)
    spec = parse_units(params["units"], layer_sizes(dbn)).spec()
    classifier = params.get("classifier", "linear-svm")
    if classifier not in CLASSIFIERS:
        raise InputError(
            f"unknown classifier {classifier!r}; valid choices are "
            f"{', '.join(CLASSIFIERS)}"
        )
    c = float(params.get("C", DEFAULT_C))
    if not c > 0:
        raise InputError(f"C must be a positive number, got {c}")
    return {
        "run": _absolute(params["run"]),
        "stage": stage,
        "units": spec,
        "classifier": classifier,
        "C": c,
    }


def run_probe(
    params: dict, resume: bool, progress: ProgressCallback, should_stop: StopCheck
) -> dict:
    run = open_run(params["run"])
    return probe_run(
        run, params["stage"], params["units"], params["classifier"], params["C"]
    )


# embed -------------------------------------------------------------------------


def validate_embed(params: dict) -> dict:
    checked = validate_probe({**params, "classifier": "linear-svm"})
    method = params.get("method", "umap")
    n_neighbors = int(params.get("n_neighbors", 15))
    min_dist = float(params.get("min_dist", 0.1))
    metric = params.get("metric", "euclidean")
    check_embedding_params(method, n_neighbors, min_dist, metric)
    split = params.get("split", "test")
    if split not in ("train", "test"):
        raise InputError(f"split must be train or test, got {split!r}")
    n_images = params.get("n_images")
    if n_images is not None and int(n_images) < 1:
        raise InputError(f"n_images must be a positive number, got {n_images}")
    return {
        "run": checked["run"],
        "stage": checked["stage"],
        "units": checked["units"],
        "split": split,
        "n_images": None if n_images is None else int(n_images),
        "method": method,
        "n_neighbors": n_neighbors,
        "min_dist": min_dist,
        "metric": metric,
        "seed": int(params.get("seed", 0)),
    }


def run_embed(
    params: dict, resume: bool, progress: ProgressCallback, should_stop: StopCheck
) -> dict:
    return embed_run(open_run(params["run"]), params)


KINDS: dict[str, JobKind] = {
    kind.name: kind
    for kind in (
        JobKind("train", validate_train, run_train, lambda p: p["out"], resumable=True),
        JobKind("finetune", validate_finetune, run_finetune, lambda p: p["run"]),
        # A measurement writes only its stage's evaluation.json, so several may
        # run beside each other and beside jobs that write other stages.
        JobKind("evaluate", validate_evaluate, run_evaluate, lambda p: None),
        JobKind("probe", validate_probe, run_probe, lambda p: None, warm=True),
        JobKind("embed", validate_embed, run_embed, lambda p: None, warm=True),
    )
}


def get_kind(name: str) -> JobKind:
    if name not in KINDS:
        raise InputError(
            f"unknown job kind {name!r}; valid kinds are {', '.join(sorted(KINDS))}"
        )
    return KINDS[name]


def default_runs_dir() -> Path:
    """Return the runs folder: ``$DEEPGEN_RUNS_DIR``, else ``runs`` here."""
    return Path(os.environ.get("DEEPGEN_RUNS_DIR", "runs"))
