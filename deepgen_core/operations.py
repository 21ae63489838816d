"""The operations behind every command: train, fine-tune, sample, features, probe.

The command line, the job worker and the app all call these functions, so a
figure is computed the same way wherever it is shown.
"""

from __future__ import annotations

import io
import logging
import math
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from .checkpoint import atomic_write_bytes
from .data import USER_FILE_SUFFIXES, Dataset, fingerprint_user_file, load_dataset
from .dbn import DBNModule, check_layer_sizes, train_dbn
from .device import make_generator, resolve_device
from .embedding import embedding_key, project
from .errors import InputError, TrainingDiverged
from .finetune import FinetuneConfig, HeadConfig, finetune_backprop, finetune_head
from .linear_svm import TorchLinearSVC
from .progress import ProgressCallback, StopCheck
from .runs import (
    FINETUNE_STAGES,
    FINETUNED,
    PRETRAINED,
    Run,
    RunConfig,
    create_run,
    open_run,
    to_tensor,
)
from .training import check_training_data
from .units import parse_units, select_columns
from .updown import UpDownConfig, check_updown_net, finetune_updown

logger = logging.getLogger(__name__)

CLASSIFIERS = ("linear-svm", "rbf-svm")
FEATURE_BATCH = 2000
MAX_SAMPLES = 10_000
"""Largest number of samples one call draws, because a larger grid is unreadable."""
DEFAULT_C = 0.1
"""SVM regularisation: hidden probabilities in [0, 1] over hundreds of units
fit better with more regularisation than scikit-learn's default C = 1."""


def train_run(
    out: str,
    config: RunConfig | None = None,
    resume: bool = False,
    progress: ProgressCallback | None = None,
    should_stop: StopCheck | None = None,
) -> Run:
    """Pretrain a DBN into the run folder ``out``, or resume it there.

    With ``resume`` the configuration is read from the folder and training
    continues from its last checkpoint; otherwise ``out`` must be new.
    """
    if resume:
        run = open_run(out)
        if PRETRAINED in run.stages():
            raise InputError(f"run {out} has finished pretraining; nothing to resume")
        for leftover in run.path.rglob(".*.tmp"):
            # A write cut off by a crash; the file it was replacing is intact.
            leftover.unlink()
        dataset = run.dataset()
        created_folder = False
    else:
        if config is None:
            raise InputError("a new run needs a configuration")
        dataset = check_run_config(config)
        config.data_fingerprint = None
        if Path(config.dataset).suffix.lower() in USER_FILE_SUFFIXES:
            # A resumed run may start in another folder.
            config.dataset = str(Path(config.dataset).expanduser().resolve())
            # Later commands compare the file with this to find changes.
            config.data_fingerprint = fingerprint_user_file(config.dataset, dataset)
        created_folder = not Path(out).expanduser().exists()
        run = create_run(out, config)
    config = run.config
    device = run.device()
    x = to_tensor(dataset.x_train, device)
    y = to_tensor(dataset.y_train, device, torch.int64)
    try:
        dbn, history = train_dbn(
            x,
            config.dbn,
            y=y,
            x_valid=to_tensor(dataset.x_test, device),
            y_valid=to_tensor(dataset.y_test, device, torch.int64),
            n_classes=dataset.n_classes,
            checkpointer=run,
            progress=progress,
            should_stop=should_stop,
        )
    except TrainingDiverged as error:
        outcome = keep_after_divergence(run, resume, created_folder)
        raise TrainingDiverged(f"{error}. {outcome}") from None
    info = {"dataset": config.dataset, "device": str(device), "epochs": len(history)}
    run.save_stage(PRETRAINED, dbn, info, history)
    run.clear_checkpoint()
    logger.info("pretraining of %s finished", run.path)
    return run


def keep_after_divergence(run: Run, resumed: bool, created_folder: bool) -> str:
    """Clean up after training of ``run`` diverged, and describe what was kept.

    A new run that diverged before its first checkpoint has nothing worth
    keeping, so its config.json is removed, and its folder too when this
    command created it, so that the same --out can be used again. A resumed
    run is left as it is.
    """
    if (run.checkpoint_dir / "state.json").exists():
        return f"The last good checkpoint was kept in {run.checkpoint_dir}"
    if resumed:
        return (
            f"No epoch finished, so {run.path} has no checkpoint and resuming it "
            "would diverge again: remove that folder and train again with a lower "
            "--lr, or train into a new --out"
        )
    (run.path / "config.json").unlink(missing_ok=True)
    if created_folder and not any(run.path.iterdir()):
        run.path.rmdir()
        logger.info(
            "removed run folder %s, which diverged in its first epoch", run.path
        )
        removed = f"the run folder {run.path} was removed"
    else:
        removed = f"config.json was removed from {run.path}"
    outcome = f"No epoch finished, so nothing was saved and {removed}"
    if run.path.exists() and any(run.path.iterdir()):
        return outcome
    return f"{outcome}: train again with the same --out"


def check_run_config(config: RunConfig) -> Dataset:
    """Raise :class:`InputError` when ``config`` cannot train on its dataset.

    Runs before the run folder is created, so a bad request leaves no files.
    Returns the dataset, loaded to check it.
    """
    config.dbn.rbm.validate()
    resolve_device(config.device)
    check_layer_sizes(config.dbn.layers)
    dataset = load_dataset(config.dataset)
    x = torch.as_tensor(dataset.x_train)
    check_training_data(x, x.shape[1], config.dbn.visible_type, config.dbn.rbm)
    if config.dbn.labels and dataset.y_train is None:
        raise InputError(
            f"dataset {config.dataset} has no labels, so --labels cannot be used"
        )
    DBNModule(
        x.shape[1],
        config.dbn.layers,
        config.dbn.visible_type,
        dataset.n_classes if config.dbn.labels else 0,
    )
    return dataset


def stage_dataset(run: Run, dbn: DBNModule) -> Dataset:
    """Load the run's dataset and check that it fits ``dbn``, a net of the run.

    For runs made before deepgen recorded data fingerprints, this check is
    the only one: it finds another number of features, or more classes than
    the net has label units, but not other values in the same shapes.
    """
    dataset = run.dataset()
    if dataset.n_features != dbn.n_visible:
        problem = (
            f"has {dataset.n_features} features per row, but the run's net has "
            f"{dbn.n_visible} input units"
        )
    elif dbn.n_labels and (dataset.n_classes or 0) > dbn.n_labels:
        problem = (
            f"has labels up to {dataset.n_classes - 1}, but the run's net has "
            f"{dbn.n_labels} label units"
        )
    else:
        return dataset
    raise InputError(
        f"dataset {run.config.dataset} {problem}, so it is not the data that run "
        f"{run.path} was trained on; restore that data, or train a new run on this "
        "data"
    )


FINETUNE_CONFIGS = {
    "backprop": FinetuneConfig,
    "head": HeadConfig,
    "updown": UpDownConfig,
}
"""The settings class of each fine-tuning method."""

FinetuneSettings = FinetuneConfig | HeadConfig | UpDownConfig


def finetune_config(method: str, values: dict | None = None) -> FinetuneSettings:
    """Build and check the settings of fine-tuning ``method`` from ``values``."""
    if method not in FINETUNE_CONFIGS:
        raise InputError(
            f"unknown fine-tuning method {method!r}; valid methods are "
            f"{', '.join(FINETUNE_CONFIGS)}"
        )
    config = FINETUNE_CONFIGS[method].from_dict(values or {})
    config.validate()
    return config


def finetune_method(config: FinetuneSettings) -> str:
    """The method name of a settings object."""
    return next(
        name for name, kind in FINETUNE_CONFIGS.items() if isinstance(config, kind)
    )


def finetune_run(
    run: Run,
    config: FinetuneSettings,
    progress: ProgressCallback | None = None,
    should_stop: StopCheck | None = None,
    overwrite: bool = False,
) -> DBNModule:
    """Fine-tune the pretrained stage into the stage of the config's method.

    ``FinetuneConfig`` trains by backprop into ``finetuned``, ``HeadConfig``
    a classifier head into ``finetuned-head`` and ``UpDownConfig`` by up-down
    into ``finetuned-updown``. An existing stage is replaced only with
    ``overwrite``.
    """
    method = finetune_method(config)
    stage = FINETUNE_STAGES[method]
    check_can_write_stage(run, stage, overwrite)
    dbn = run.load_stage(PRETRAINED)
    if method == "updown":
        check_updown_net(dbn)
    if method == "head" and config.units is not None:
        parse_units(config.units, layer_sizes(dbn))
    dataset = stage_dataset(run, dbn)
    if dataset.y_train is None:
        raise InputError(f"dataset {run.config.dataset} has no labels to fine-tune on")
    device = dbn.device
    x = to_tensor(dataset.x_train, device)
    y = to_tensor(dataset.y_train, device, torch.int64)
    if method == "backprop":
        tuned, history = finetune_backprop(
            dbn, x, y, dataset.n_classes, config, progress, should_stop
        )
    elif method == "head":
        tuned, history = finetune_head(
            dbn, x, y, dataset.n_classes, config, progress, should_stop
        )
    else:
        tuned, history = finetune_updown(dbn, x, y, config, progress, should_stop)
    test_accuracy = class_accuracy(tuned, dataset.x_test, dataset.y_test)
    info = {
        "method": method,
        "from_stage": PRETRAINED,
        "config": config.to_dict(),
        "test_accuracy": test_accuracy,
    }
    chance = majority_accuracy(dataset.y_train, dataset.y_test)
    warning = chance_warning(test_accuracy, chance, len(dataset.y_test))
    if warning:
        info["chance_accuracy"] = chance
        info["warning"] = warning
        logger.warning(warning)
    run.save_stage(stage, tuned, info, history)
    logger.info(
        "fine-tuned %s by %s: held-out accuracy %.4f", run.path, method, test_accuracy
    )
    return tuned


def majority_accuracy(y_train: np.ndarray, y_test: np.ndarray) -> float:
    """Held-out accuracy of always predicting the commonest training label."""
    commonest = np.bincount(y_train).argmax()
    return float(np.mean(y_test == commonest))


def chance_warning(accuracy: float, chance: float, n_test: int) -> str | None:
    """Return a warning if ``accuracy`` is within 3 standard errors of ``chance``.

    The standard error is that of an accuracy ``chance`` measured on
    ``n_test`` rows. Returns None when the accuracy is clearly above chance.
    """
    margin = 3 * math.sqrt(chance * (1 - chance) / n_test)
    if accuracy > chance + margin:
        return None
    return (
        f"fine-tuning reached {accuracy:.1%} on held-out rows, no better than "
        f"always predicting the commonest label ({chance:.1%}). The pretrained "
        "layers carry too little about the labels to start from: pretrain for "
        "more epochs per layer, or check that the labels match the rows"
    )


def check_can_write_stage(run: Run, stage: str, overwrite: bool) -> None:
    """Raise :class:`InputError` when ``stage`` exists and may not be replaced."""
    if stage in run.stages() and not overwrite:
        raise InputError(
            f"run {run.path} already has a {stage} stage; pass --overwrite to "
            "replace it, or copy the run folder first to keep both"
        )


def class_accuracy(dbn: DBNModule, x: np.ndarray, y: np.ndarray) -> float:
    """Accuracy of the net's own classifier on ``x`` (n_samples, n_visible)."""
    correct = 0
    with torch.no_grad():
        for start in range(0, len(x), FEATURE_BATCH):
            xb = to_tensor(x[start : start + FEATURE_BATCH], dbn.device)
            predicted = dbn.class_log_probs(xb).argmax(1).cpu().numpy()
            correct += int((predicted == y[start : start + FEATURE_BATCH]).sum())
    return correct / len(x)


def layer_activations(dbn: DBNModule, x: np.ndarray) -> list[np.ndarray]:
    """Compute every layer's activity for ``x``: the input, then each hidden layer.

    Returns float32 arrays of shapes (n_samples, size of layer i).
    """
    chunks: list[list[np.ndarray]] = [[] for _ in range(dbn.n_layers + 1)]
    with torch.no_grad():
        for start in range(0, len(x), FEATURE_BATCH):
            xb = to_tensor(x[start : start + FEATURE_BATCH], dbn.device)
            for layer, values in enumerate(dbn.activations(xb)):
                chunks[layer].append(values.cpu().numpy())
    return [np.concatenate(parts) for parts in chunks]


def layer_sizes(dbn: DBNModule) -> list[int]:
    """Sizes of layers 0 (input) to L, the sizes a unit SPEC refers to."""
    return [dbn.n_visible, *dbn.layer_sizes]


def features(dbn: DBNModule, x: np.ndarray, spec: str) -> np.ndarray:
    """Activations of the units in ``spec`` for ``x``, shape (n_samples, n_units)."""
    selection = parse_units(spec, layer_sizes(dbn))
    return select_columns(layer_activations(dbn, x), selection)


def make_classifier(name: str, c: float = DEFAULT_C, seed: int = 0):
    """Create the scikit-learn classifier called ``name``."""
    if not 0 < c < math.inf:
        raise InputError(f"C must be a positive, finite number, got {c}")
    if name == "linear-svm":
        # LinearSVC's objective and optimum, solved in seconds rather than tens of
        # seconds for a thousand units; see deepgen_core.linear_svm.
        return TorchLinearSVC(C=c)
    if name == "rbf-svm":
        from sklearn.svm import SVC

        return SVC(C=c, kernel="rbf", gamma="scale", random_state=seed)
    raise InputError(
        f"unknown classifier {name!r}; valid choices are {', '.join(CLASSIFIERS)}"
    )


def probe_features(
    train: np.ndarray,
    y_train: np.ndarray,
    test: np.ndarray,
    y_test: np.ndarray,
    classifier: str = "linear-svm",
    c: float = DEFAULT_C,
) -> dict:
    """Train ``classifier`` on ``train`` and score it on ``test``.

    The result contains the accuracy, the confusion matrix (rows are true
    classes, columns predicted, both in the order of ``classes``) and the
    fit time in seconds.
    """
    if train.shape[1] == 0:
        raise InputError("the unit selection is empty; choose at least one unit")
    if len(np.unique(y_train)) < 2:
        raise InputError(
            "the training labels hold a single class, so no classifier can be "
            "trained; use data with at least two classes"
        )
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.metrics import confusion_matrix

    model = make_classifier(classifier, c)
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(train, y_train)
    fit_seconds = time.perf_counter() - started
    predicted = model.predict(test)
    classes = np.unique(np.concatenate([y_train, y_test]))
    return {
        "accuracy": float((predicted == y_test).mean()),
        "classes": classes.tolist(),
        "confusion": confusion_matrix(y_test, predicted, labels=classes).tolist(),
        "n_units": int(train.shape[1]),
        "n_train": len(train),
        "n_test": len(test),
        "classifier": classifier,
        "C": c,
        "fit_seconds": round(fit_seconds, 3),
    }


def probe_run(
    run: Run,
    stage: str,
    spec: str,
    classifier: str = "linear-svm",
    c: float = DEFAULT_C,
) -> dict:
    """Train ``classifier`` on the units in ``spec`` and score the held-out split."""
    dbn = run.load_stage(stage)
    dataset = stage_dataset(run, dbn)
    if dataset.y_train is None or dataset.y_test is None:
        raise InputError(f"dataset {run.config.dataset} has no labels to probe with")
    selection = parse_units(spec, layer_sizes(dbn))
    train = select_columns(layer_activations(dbn, dataset.x_train), selection)
    test = select_columns(layer_activations(dbn, dataset.x_test), selection)
    result = probe_features(train, dataset.y_train, test, dataset.y_test, classifier, c)
    result.update(spec=selection.spec(), stage=stage, run=str(run.path))
    return result


def embed_run(run: Run, params: dict) -> dict:
    """Project a stage's chosen units to 2-D and save it in the run folder.

    ``params`` contains ``stage``, ``units``, ``split``, ``method``,
    ``n_neighbors``, ``min_dist``, ``metric`` and ``seed``, and optionally
    ``n_images`` (project only the split's first rows). The result is cached
    in ``embeddings/KEY.npz`` (arrays ``coords``, ``labels``, ``rows``) under
    a key made from those parameters; a second call reads the file.
    """
    keyed = {k: params[k] for k in sorted(params) if k != "run"}
    path = embedding_path(run, params)
    if path.exists():
        return {"path": str(path), "cached": True, **keyed}
    dbn = run.load_stage(params["stage"])
    dataset = stage_dataset(run, dbn)
    x = dataset.x_train if params["split"] == "train" else dataset.x_test
    y = dataset.y_train if params["split"] == "train" else dataset.y_test
    n_images = params.get("n_images") or len(x)
    x = x[:n_images]
    y = None if y is None else y[:n_images]
    started = time.perf_counter()
    coords = project(
        features(dbn, x, params["units"]),
        params["method"],
        params["n_neighbors"],
        params["min_dist"],
        params["metric"],
        params["seed"],
    )
    seconds = time.perf_counter() - started
    path.parent.mkdir(exist_ok=True)
    arrays = {"coords": coords, "rows": np.arange(len(x))}
    if y is not None:
        arrays["labels"] = y
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    atomic_write_bytes(path, buffer.getvalue())
    return {"path": str(path), "cached": False, "seconds": round(seconds, 3), **keyed}


def embedding_path(run: Run, params: dict) -> Path:
    """File that caches the projection made with checked embed ``params``.

    The key includes the modification time of the stage's weights, so a
    stage written again (fine-tuned anew, say) never reuses an old map.
    """
    keyed = {k: params[k] for k in sorted(params) if k != "run"}
    weights = run.stage_dir(params["stage"]) / "model.safetensors"
    keyed["weights_mtime_ns"] = weights.stat().st_mtime_ns if weights.exists() else 0
    return run.path / "embeddings" / f"{embedding_key(keyed)}.npz"


def sample_run(
    run: Run,
    stage: str,
    n: int = 64,
    label: int | None = None,
    steps: int = 500,
    seed: int = 0,
    chain_every: int = 0,
    start: str = "noise",
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Generate ``n`` inputs from a stage; see :meth:`DBNModule.generate`."""
    if not 1 <= n <= MAX_SAMPLES:
        raise InputError(
            f"the number of samples must be from 1 to {MAX_SAMPLES:,}, got {n}; "
            "draw larger sets in several calls with different seeds"
        )
    dbn = run.load_stage(stage)
    generator = make_generator(seed, dbn.device)
    samples, chain = dbn.generate(n, label, steps, generator, chain_every, start)
    return samples.cpu().numpy(), [c.cpu().numpy() for c in chain]


__all__ = [
    "CLASSIFIERS",
    "FINETUNED",
    "PRETRAINED",
    "class_accuracy",
    "features",
    "finetune_config",
    "finetune_run",
    "layer_activations",
    "probe_features",
    "probe_run",
    "sample_run",
    "train_run",
]
