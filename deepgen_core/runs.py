"""Run folders: a trained DBN's configuration, figures, checkpoints and stages.

A run folder holds::

    config.json            dataset, device, architecture and hyperparameters
    metrics.jsonl          one line per layer and epoch of pretraining
    checkpoint/            the training state after the last finished epoch
        state.json         layer, epoch, history and the tensor file's name
        state-*.safetensors
    stages/NAME/           one trained stage: "pretrained", "finetuned", ...
        model.safetensors  the weights
        model.json         the architecture and how the stage was made
        metrics.jsonl      per-epoch figures of the step that made the stage
        evaluation.json    the stage's measurements, once evaluated

Fine-tuning writes one stage per method beside ``pretrained``:
``finetuned`` (backprop), ``finetuned-head`` and ``finetuned-updown``.

The checkpoint is written as a new tensor file followed by an atomic rename
of ``state.json``, so a crash at any moment leaves a complete checkpoint.
"""

from __future__ import annotations

import datetime as _dt
import io
import json
import logging
import os
import re
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import __version__
from .checkpoint import (
    atomic_write_bytes,
    atomic_write_json,
    load_tensors,
    read_json,
    read_tensor_shapes,
    save_tensors,
)
from .data import Dataset, load_dataset, load_fingerprinted_file
from .dbn import DBNConfig, DBNModule, TrainingState, check_layer_sizes
from .device import resolve_device
from .errors import InputError
from .training import check_setting_types
from .validation import is_int, is_number

logger = logging.getLogger(__name__)

PRETRAINED = "pretrained"
FINETUNED = "finetuned"
EVALUATION_FILE = "evaluation.json"
"""A stage's saved measurements, written by ``deepgen evaluate``."""
FINETUNE_STAGES = {
    "backprop": FINETUNED,
    "head": "finetuned-head",
    "updown": "finetuned-updown",
}
"""The stage each fine-tuning method writes."""
STAGE_NAME = re.compile(r"^[a-z][a-z0-9-]{0,40}$")
RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
TENSOR_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*\.safetensors$")
"""A checkpoint's tensor file: a bare name, so it stays in the checkpoint folder."""
ARCHIVED_FILES = ("config.json", "metrics.jsonl")
ARCHIVED_STAGE_FILES = (
    "model.safetensors",
    "model.json",
    "metrics.jsonl",
    EVALUATION_FILE,
)


@dataclass
class RunConfig:
    """Everything needed to train a run again from nothing."""

    dataset: str
    dbn: DBNConfig
    device: str = "auto"
    data_fingerprint: dict | None = None
    """For a user file, what :func:`deepgen_core.data.fingerprint_user_file`
    recorded when the run was created. None for built-in datasets, whose files
    are checked by SHA-256 on every load, and for runs made before deepgen
    recorded fingerprints."""

    def to_dict(self) -> dict:
        values = {
            "dataset": self.dataset,
            "device": self.device,
            "dbn": self.dbn.to_dict(),
        }
        if self.data_fingerprint is not None:
            values["data_fingerprint"] = self.data_fingerprint
        return values

    @classmethod
    def from_dict(cls, values: dict) -> RunConfig:
        """Build the configuration from ``values``, as written by :meth:`to_dict`.

        Raises :class:`InputError` for a missing or mistyped setting.
        """
        check_setting_types(cls, values)
        missing = [name for name in ("dataset", "dbn") if name not in values]
        if missing:
            raise InputError(f"setting {missing[0]!r} is missing")
        return cls(
            dataset=values["dataset"],
            device=values.get("device", "auto"),
            dbn=DBNConfig.from_dict(values["dbn"]),
            data_fingerprint=values.get("data_fingerprint"),
        )


def write_jsonl(path: Path, records: list[dict]) -> None:
    """Write ``records`` as JSON lines, atomically."""
    text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in records)
    atomic_write_bytes(path, text.encode())


def read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class Run:
    """A run folder on disk. Use :func:`create_run` or :func:`open_run`."""

    def __init__(self, path: Path, config: RunConfig) -> None:
        self.path = path
        self.config = config

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / "checkpoint"

    def stage_dir(self, stage: str) -> Path:
        return self.path / "stages" / stage

    def stages(self) -> list[str]:
        """Names of the finished stages, pretrained first."""
        root = self.path / "stages"
        names = (
            sorted(p.name for p in root.glob("*") if (p / "model.safetensors").exists())
            if root.exists()
            else []
        )
        return sorted(names, key=lambda name: (name != PRETRAINED, name))

    def metrics(self) -> list[dict]:
        return read_jsonl(self.path / "metrics.jsonl")

    def dataset(self) -> Dataset:
        """Load the run's dataset, checking a user file against its fingerprint."""
        if self.config.data_fingerprint is None:
            return load_dataset(self.config.dataset)
        return load_fingerprinted_file(
            self.config.dataset, self.config.data_fingerprint
        )

    def device(self) -> torch.device:
        return resolve_device(self.config.device)

    # Stages ---------------------------------------------------------------

    def save_stage(
        self, stage: str, dbn: DBNModule, info: dict, history: list[dict]
    ) -> Path:
        """Write a stage's weights, description and figures."""
        if not STAGE_NAME.match(stage):
            raise InputError(
                f"stage name {stage!r} is invalid; use lowercase letters, digits "
                "and hyphens, starting with a letter"
            )
        folder = self.stage_dir(stage)
        folder.mkdir(parents=True, exist_ok=True)
        # Measurements of the weights being replaced no longer hold.
        (folder / EVALUATION_FILE).unlink(missing_ok=True)
        write_jsonl(folder / "metrics.jsonl", history)
        description = {
            "stage": stage,
            "model": dbn.config(),
            "info": info,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "deepgen_version": __version__,
        }
        atomic_write_json(folder / "model.json", description)
        # The weights go last: a stage counts as finished once they exist.
        save_tensors(folder / "model.safetensors", dbn.state_dict())
        return folder

    def load_stage(self, stage: str, device: torch.device | None = None) -> DBNModule:
        """Load a stage's net onto ``device`` (default: the run's device)."""
        stages = self.stages()
        if stage not in stages:
            available = ", ".join(stages) if stages else "none yet: train it first"
            hint = ""
            methods = {name: method for method, name in FINETUNE_STAGES.items()}
            if stage in methods and PRETRAINED in stages:
                hint = (
                    f"; run `deepgen finetune {self.path} --method "
                    f"{methods[stage]}` to make it"
                )
            elif not stages and (self.checkpoint_dir / "state.json").exists():
                hint = (
                    "; pretraining stopped before it finished, continue it with "
                    f"`deepgen train --resume --out {self.path}`"
                )
            raise InputError(
                f"run {self.path} has no stage {stage!r} (stages: {available}){hint}"
            )

        device = self.device() if device is None else device
        folder = self.stage_dir(stage)
        model, shapes = read_stage_model(folder)
        weights = folder / "model.safetensors"
        check_stage_shapes(weights, shapes)
        tensors = load_tensors(weights, device)
        for name, tensor in tensors.items():
            if not bool(torch.isfinite(tensor).all()):
                raise InputError(
                    f"the weights of stage {stage} are not finite: tensor {name!r} "
                    f"in {weights} contains NaN or inf, so the stage is damaged; "
                    "restore it from a copy of the run, or train or fine-tune it again"
                )

        dbn = DBNModule.from_config(model).to(device)
        dbn.load_state_dict(tensors)
        dbn.eval()
        return dbn

    def stage_info(self, stage: str) -> dict:
        return read_json(self.stage_dir(stage) / "model.json")

    def save_evaluation(self, stage: str, figures: dict) -> Path:
        """Write a stage's measurements as ``evaluation.json``, atomically."""
        path = self.stage_dir(stage) / EVALUATION_FILE
        atomic_write_json(path, figures)
        return path

    def load_evaluation(self, stage: str) -> dict | None:
        """Return a stage's saved measurements, or None if it was not evaluated."""
        path = self.stage_dir(stage) / EVALUATION_FILE
        if stage not in self.stages() or not path.exists():
            return None
        return read_json(path)

    # Checkpoints -------------------------------------------------------------

    def load(self, device: torch.device) -> TrainingState | None:
        """Return the saved training state, or None before the first epoch."""
        state_file = self.checkpoint_dir / "state.json"
        if not state_file.exists():
            return None
        state = read_json(state_file)
        try:
            check_checkpoint_state(
                state, len(self.config.dbn.layers), self.config.dbn.rbm.epochs
            )
        except InputError as error:
            raise InputError(
                f"checkpoint {state_file} is damaged ({error}); restore the run "
                "folder from a copy, or train the run again into a new folder"
            ) from None
        tensors = load_tensors(self.checkpoint_dir / state["tensors"], device)
        if state.get("device_type") not in (None, device.type):
            logger.warning(
                "checkpoint was written on %s and resumes on %s: the random "
                "stream differs, so the weights will not match an uninterrupted run",
                state["device_type"],
                device.type,
            )
        return TrainingState(
            state["layer"],
            state["epoch"],
            tensors,
            state["history"],
            source=f"checkpoint tensor file {self.checkpoint_dir / state['tensors']}",
        )

    def save(self, state: TrainingState) -> None:
        """Store ``state`` as the latest checkpoint and rewrite metrics.jsonl."""
        self.checkpoint_dir.mkdir(exist_ok=True)
        name = f"state-layer{state.layer + 1}-epoch{state.epoch}.safetensors"
        save_tensors(self.checkpoint_dir / name, state.tensors)
        device_type = state.tensors["generator_state"].device.type
        for tensor in state.tensors.values():
            if tensor.device.type != "cpu":
                device_type = tensor.device.type
                break
        atomic_write_json(
            self.checkpoint_dir / "state.json",
            {
                "layer": state.layer,
                "epoch": state.epoch,
                "tensors": name,
                "history": state.history,
                "device_type": device_type,
            },
        )
        for old in self.checkpoint_dir.glob("state-*.safetensors"):
            if old.name != name:
                old.unlink(missing_ok=True)
        write_jsonl(self.path / "metrics.jsonl", state.history)

    def clear_checkpoint(self) -> None:
        for file in self.checkpoint_dir.glob("*"):
            file.unlink()
        if self.checkpoint_dir.exists():
            self.checkpoint_dir.rmdir()


def read_stage_model(folder: Path) -> tuple[dict, dict[str, tuple[int, ...]]]:
    """Read and check the net description in a stage's model.json.

    Returns the description and the shape of each tensor of the net it
    describes. The net is built on the meta device, which allocates no
    memory, so a damaged size cannot exhaust it.
    """
    path = folder / "model.json"
    description = read_json(path)
    try:
        if "model" not in description:
            raise InputError("field 'model' is missing")
        model = description["model"]
        with torch.device("meta"):
            net = DBNModule.from_config(model)
    except InputError as error:
        raise InputError(
            f"{path} is damaged ({error}); restore the stage from a copy of the "
            "run, or train or fine-tune it again"
        ) from None
    shapes = {name: tuple(tensor.shape) for name, tensor in net.state_dict().items()}
    return model, shapes


def check_stage_shapes(path: Path, expected: dict[str, tuple[int, ...]]) -> None:
    """Raise :class:`InputError` unless weights file ``path`` has ``expected`` shapes.

    The shapes are read from the file's header, before any tensor is loaded.
    """
    shapes = read_tensor_shapes(path)
    problem = None
    for name in sorted(expected.keys() | shapes.keys()):
        if name not in shapes:
            problem = f"tensor {name!r} is missing"
        elif name not in expected:
            problem = f"tensor {name!r} is not part of the net"
        elif shapes[name] != expected[name]:
            problem = (
                f"tensor {name!r} has shape {shapes[name]}, model.json describes "
                f"{expected[name]}"
            )
        if problem:
            raise InputError(
                f"weights {path} do not match model.json ({problem}); the stage "
                "was damaged, restore it from a copy of the run, or train or "
                "fine-tune it again"
            )


def check_checkpoint_state(state: dict, n_layers: int, epochs: int) -> None:
    """Raise :class:`InputError` unless ``state`` is a checkpoint's state.json.

    The state must name a layer and epoch within the configuration's
    ``n_layers`` and ``epochs``, a tensor file inside the checkpoint folder,
    and a history of figures that ends at that layer and epoch.
    """
    missing = [
        key for key in ("layer", "epoch", "tensors", "history") if key not in state
    ]
    if missing:
        raise InputError(f"field {missing[0]!r} is missing")
    layer, epoch = state["layer"], state["epoch"]
    if not (is_int(layer, 0) and layer < n_layers):
        raise InputError(
            f"field 'layer' must be an integer from 0 to {n_layers - 1} (layers "
            f"counted from 0), got {layer!r}"
        )
    if not (is_int(epoch, 0) and epoch <= epochs):
        raise InputError(
            f"field 'epoch' must be an integer from 0 to {epochs}, got {epoch!r}"
        )
    tensors = state["tensors"]
    if not (isinstance(tensors, str) and TENSOR_FILE_NAME.match(tensors)):
        raise InputError(
            "field 'tensors' must be the name of a .safetensors file in the "
            f"checkpoint folder, got {tensors!r}"
        )
    check_checkpoint_history(state["history"], layer, epoch, epochs)


def check_checkpoint_history(
    history: object, layer: int, epoch: int, epochs: int
) -> None:
    """Raise :class:`InputError` unless ``history`` ends at ``layer`` and ``epoch``.

    ``layer`` counts from 0, as in state.json, and the figures count from 1.
    """
    if not isinstance(history, list):
        raise InputError(f"field 'history' must be a list, got {history!r}")
    for number, record in enumerate(history, 1):
        valid = (
            isinstance(record, dict)
            and is_int(record.get("layer"), 0)
            and is_int(record.get("epoch"), 0)
            and is_number(record.get("recon_error"))
        )
        if not valid:
            raise InputError(
                f"history record {number} must be an object with an integer layer "
                f"and epoch and a numeric recon_error, got {record!r}"
            )
    # Each finished epoch appended one record before the state was saved.
    if epoch:
        expected = (layer + 1, epoch)
    elif layer:
        expected = (layer, epochs)
    else:
        expected = None
    last = (history[-1]["layer"], history[-1]["epoch"]) if history else None
    if last != expected:
        raise InputError(
            f"the history ends {_after(last)} but the state is {_after(expected)}"
        )


def _after(position: tuple[int, int] | None) -> str:
    if position is None:
        return "before the first epoch"
    return f"after layer {position[0]} epoch {position[1]}"


def create_run(path: str | os.PathLike, config: RunConfig) -> Run:
    """Create a new run folder; reject one that already contains files.

    The folder's name must be a valid run name, so that the app can open it.
    """
    path = Path(path).expanduser()
    check_run_name(path.resolve().name)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise InputError(
            f"run folder {path} already exists and is not empty; choose another "
            f"--out, delete it, or continue it with `deepgen train --resume --out {path}`"
        )
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputError(f"cannot create run folder {path}: {error.strerror}") from None
    config_dict = config.to_dict()
    config_dict["deepgen_version"] = __version__
    atomic_write_json(path / "config.json", config_dict)
    return Run(path, config)


def open_run(path: str | os.PathLike) -> Run:
    """Open an existing run folder, raising :class:`InputError` when missing."""
    path = Path(path).expanduser()
    if not path.is_dir():
        raise InputError(
            f"run folder {path} does not exist; pass the folder given to "
            "`deepgen train --out`"
        )
    if not (path / "config.json").exists():
        raise InputError(
            f"{path} is not a run folder (it has no config.json); pass the folder "
            "given to `deepgen train --out`"
        )
    return Run(path, read_run_config(path / "config.json"))


def read_run_config(path: Path) -> RunConfig:
    """Read a run's config.json and check the types and ranges of its settings."""
    values = read_json(path)
    try:
        config = RunConfig.from_dict(values)
        config.dbn.rbm.validate()
        check_layer_sizes(config.dbn.layers)
    except InputError as error:
        raise InputError(
            f"run configuration {path} is damaged ({error}); restore it from a copy "
            "of the run, or train the run again into a new folder"
        ) from None
    return config


def find_runs(runs_dir: str | os.PathLike) -> list[Run]:
    """Open every run folder directly inside ``runs_dir``, newest first.

    Folders whose config.json cannot be read are skipped with a warning, so
    one damaged run does not hide the others.
    """
    root = Path(runs_dir)
    if not root.is_dir():
        return []
    runs = []
    for folder in root.iterdir():
        if not (folder / "config.json").is_file():
            continue
        try:
            runs.append(open_run(folder))
        except InputError as error:
            logger.warning("skipping run folder %s: %s", folder, error)
    return sorted(runs, key=lambda run: run.path.stat().st_mtime, reverse=True)


def check_run_name(name: str) -> str:
    """Return ``name`` if it can name a run folder, else raise InputError."""
    if not RUN_NAME.match(name):
        raise InputError(
            f"run name {name!r} is invalid; use up to 64 letters, digits, dots, "
            "hyphens and underscores, starting with a letter or digit"
        )
    return name


def rename_run(run: Run, new_name: str) -> Run:
    """Move ``run`` to ``new_name`` in the same parent folder."""
    target = run.path.parent / check_run_name(new_name)
    if target.exists():
        raise InputError(f"a run named {new_name!r} already exists; choose another")
    run.path.rename(target)
    return open_run(target)


def delete_run(run: Run) -> None:
    """Delete the run folder and everything in it."""
    if not (run.path / "config.json").is_file():
        raise InputError(f"{run.path} is not a run folder; nothing was deleted")
    shutil.rmtree(run.path)
    logger.info("deleted run %s", run.path)


def archive_run(run: Run) -> bytes:
    """Zip the run's configuration, figures and stages (weights and JSON).

    Checkpoints, logs and cached projections are left out: they can be
    recomputed, and the archive stays as small as the weights.
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in ARCHIVED_FILES:
            if (run.path / name).is_file():
                archive.write(run.path / name, f"{run.name}/{name}")
        for stage in run.stages():
            for name in ARCHIVED_STAGE_FILES:
                file = run.stage_dir(stage) / name
                if file.is_file():
                    archive.write(file, f"{run.name}/stages/{stage}/{name}")
    return buffer.getvalue()


def to_tensor(array: np.ndarray | None, device: torch.device, dtype=torch.float32):
    """Move a numpy array to ``device`` (labels as int64); None stays None."""
    if array is None:
        return None
    if dtype is torch.int64:
        return torch.as_tensor(np.asarray(array, dtype=np.int64), device=device)
    return torch.as_tensor(np.asarray(array, dtype=np.float32), device=device)
