"""Starting points for a new run, and the demo run trained on first start."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from deepgen_core import jobs
from deepgen_core.dbn import DBNConfig
from deepgen_core.errors import InputError
from deepgen_core.finetune import FinetuneConfig
from deepgen_core.runs import RunConfig, find_runs
from deepgen_core.training import RBMTrainingConfig

logger = logging.getLogger(__name__)

DEMO_RUN = "demo"
DEMO_MARKER = ".demo-started"


@dataclass(frozen=True)
class Preset:
    """A named set of form values for a new run."""

    title: str
    summary: str
    layers: str
    labels: bool = False
    epochs: int = 10
    learning_rate: float | None = None
    lr_schedule: str = "constant"
    persistent: bool = False
    initial_momentum: float = 0.5
    momentum: float = 0.9
    finetune: bool = True
    finetune_epochs: int = 30
    extra: dict = field(default_factory=dict)


PRESETS = {
    "quick": Preset(
        "Quick demo",
        "784-256-256, 3 epochs per layer, then up to 20 epochs of fine-tuning: "
        "one to three minutes on a 2-core CPU.",
        "256,256",
        epochs=3,
        finetune_epochs=20,
    ),
    "hinton2006": Preset(
        "Hinton 2006",
        "784-500-500-2000 with 10 label units joined to the top RBM, as in Hinton, "
        "Osindero and Teh (2006); 10 epochs per layer, tens of minutes on a CPU.",
        "500,500,2000",
        labels=True,
        epochs=10,
    ),
    "labels": Preset(
        "Digits on request",
        "784-500-100-1000 with label units, persistent CD for 100 epochs at a "
        "learning rate falling from 0.01: its label-clamped samples mostly show the "
        "requested digit.",
        "500,100,1000",
        labels=True,
        epochs=100,
        learning_rate=0.01,
        lr_schedule="linear",
        persistent=True,
        momentum=0.5,
    ),
    "custom": Preset(
        "Custom",
        "Start from Hinton's practical-guide defaults and set every value yourself.",
        "500,500",
    ),
}


def parse_layers(text: str) -> list[int]:
    """Hidden layer sizes from text such as ``500, 500, 2000``."""
    try:
        sizes = [int(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        raise InputError(
            f"hidden layer sizes {text!r} are invalid; write whole numbers separated "
            "by commas, for example 500,500"
        ) from None
    if not sizes or min(sizes) < 1:
        raise InputError(
            f"hidden layer sizes {text!r} are invalid; give at least one positive "
            "size, for example 500,500"
        )
    return sizes


def quick_demo_params(runs_dir: Path) -> dict:
    """Job parameters of the demo run: the quick preset on mnist-10k."""
    preset = PRESETS["quick"]
    rbm = RBMTrainingConfig(epochs=preset.epochs)
    config = RunConfig("mnist-10k", DBNConfig(parse_layers(preset.layers), rbm=rbm))
    finetune = FinetuneConfig(epochs=preset.finetune_epochs, patience=5)
    return {
        "out": str(runs_dir / DEMO_RUN),
        "config": config.to_dict(),
        "finetune": finetune.to_dict(),
    }


def start_demo(runs_dir: Path) -> jobs.Job | None:
    """Queue the demo run when the runs folder has never had a run.

    A marker file records that the demo was started, so deleting the demo
    run does not bring it back.
    """
    runs_dir.mkdir(parents=True, exist_ok=True)
    marker = runs_dir / DEMO_MARKER
    if marker.exists() or find_runs(runs_dir):
        return None
    marker.write_text("the demo run was queued once for this folder\n")
    job = jobs.submit("train", quick_demo_params(runs_dir), runs_dir)
    logger.info("queued demo run as job %d", job.id)
    return job
