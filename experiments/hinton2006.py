"""Reproduce the DBN of Hinton, Osindero and Teh (2006) and its fine-tuned errors on MNIST.

Run from the repository root, with the MNIST IDX files in ``DEEPGEN_DATA_DIR``::

    python -m experiments.hinton2006
    python -m experiments.hinton2006 --quick

A 784-500-500-2000 DBN whose top RBM also has 10 softmax label units is
pretrained greedily on the 60,000 MNIST training images and scored on the
10,000 test images four ways:

``pretrained``
    The DBN's own classifier: the label whose free energy in the top RBM,
    given the up-pass, is lowest. No weight has seen a label except the top
    RBM's, and those only generatively.
``head``
    A softmax layer fitted on the top hidden layer with every DBN weight
    frozen.
``backprop``
    The recognition weights unrolled into a feed-forward net with a softmax
    output, trained by backprop (the published figure is about 1.2%, from
    Hinton and Salakhutdinov, 2006).
``updown``
    Contrastive wake-sleep fine-tuning of the generative model (1.25% in the
    2006 paper, after 300 epochs).

The results folder gets ``results.json`` and, for each stage, a PNG of
label-clamped samples: row k shows digits generated with label k clamped.
``--quick`` trains a 784-100-100-200 net on mnist-10k for 2 epochs a layer.
"""

from __future__ import annotations

import numpy as np

from deepgen_core.dbn import DBNConfig
from deepgen_core.images import image_grid, save_png
from deepgen_core.operations import class_accuracy, sample_run
from deepgen_core.runs import FINETUNE_STAGES, PRETRAINED, RunConfig, read_jsonl
from deepgen_core.training import RBMTrainingConfig

from .common import (
    BACKPROP_SETTINGS,
    Experiment,
    base_parser,
    prepare_run,
    run_command,
)

NAME = "hinton2006"
ANCHORS = {"backprop": 0.012, "updown": 0.0125}
"""Published test errors: backprop (Hinton and Salakhutdinov, 2006) and up-down
(Hinton, Osindero and Teh, 2006)."""
TARGET = {"backprop": 0.014}
"""The backprop error this reproduction aims to stay under."""
FULL = {
    "dataset": "mnist",
    "layers": [500, 500, 2000],
    "epochs": 30,
    "backprop_epochs": 50,
    "updown_epochs": 20,
}
QUICK = {
    "dataset": "mnist-10k",
    "layers": [100, 100, 200],
    "epochs": 2,
    "backprop_epochs": 3,
    "updown_epochs": 1,
}
METHODS = ("head", "backprop", "updown")
SAMPLES_PER_LABEL = 10


def parse_args(argv=None):
    parser = base_parser(NAME, __doc__)
    parser.add_argument("--epochs", type=int, help="pretraining epochs a layer (30)")
    parser.add_argument("--backprop-epochs", type=int, help="most backprop epochs (50)")
    parser.add_argument("--updown-epochs", type=int, help="up-down epochs (20)")
    parser.add_argument(
        "--sample-steps", type=int, default=1000, help="Gibbs steps a sample (1000)"
    )
    return parser.parse_args(argv)


def settings(args) -> dict:
    chosen = dict(QUICK if args.quick else FULL)
    for key in ("epochs", "backprop_epochs", "updown_epochs"):
        if getattr(args, key) is not None:
            chosen[key] = getattr(args, key)
    return chosen


def method_settings(chosen: dict, seed: int) -> dict[str, dict]:
    return {
        "head": {"seed": seed},
        "backprop": {
            "epochs": chosen["backprop_epochs"],
            "seed": seed,
            **BACKPROP_SETTINGS,
        },
        "updown": {"epochs": chosen["updown_epochs"], "seed": seed},
    }


def sample_picture(run, stage: str, experiment: Experiment) -> str:
    """Write a grid of label-clamped samples of ``stage``; return its file name."""
    n_classes = run.dataset().n_classes
    labels = np.repeat(np.arange(n_classes), SAMPLES_PER_LABEL)
    rows = []
    for label in range(n_classes):
        images, _ = sample_run(
            run,
            stage,
            n=SAMPLES_PER_LABEL,
            label=label,
            steps=experiment.args.sample_steps,
            seed=experiment.args.seed + label,
        )
        rows.append(images)
    picture = image_grid(
        np.concatenate(rows), run.dataset().image_shape, len(labels) // n_classes
    )
    name = f"samples-{stage}.png"
    save_png(experiment.out_dir / name, picture)
    return name


def main(argv=None) -> None:
    args = parse_args(argv)
    experiment = Experiment(NAME, args)
    chosen = settings(args)
    rbm = RBMTrainingConfig(epochs=chosen["epochs"])
    dbn = DBNConfig(chosen["layers"], labels=True, seed=args.seed, rbm=rbm)
    config = RunConfig(chosen["dataset"], dbn, device=str(experiment.device))
    run = prepare_run(
        experiment,
        experiment.runs_dir / "dbn",
        config,
        method_settings(chosen, args.seed),
    )

    dataset = run.dataset()
    stages = {"pretrained": PRETRAINED}
    stages.update({method: FINETUNE_STAGES[method] for method in METHODS})
    errors, pictures = {}, []
    for key, stage in stages.items():
        accuracy = class_accuracy(run.load_stage(stage), dataset.x_test, dataset.y_test)
        errors[key] = 1 - accuracy
        print(f"{key:<10} test error {errors[key]:.2%}", flush=True)
        with experiment.timed(f"samples-{key}"):
            pictures.append(sample_picture(run, stage, experiment))
    figures = {
        "test_error": errors,
        "anchor": ANCHORS,
        "difference": {k: errors[k] - v for k, v in ANCHORS.items()},
        "target": TARGET,
        "meets_target": {k: errors[k] <= v for k, v in TARGET.items()},
        "n_train": len(dataset.x_train),
        "n_test": len(dataset.x_test),
        "backprop_epochs_used": best_epoch(run, FINETUNE_STAGES["backprop"]),
    }
    config = {
        **chosen,
        "labels": True,
        "rbm": run.config.dbn.rbm.to_dict(),
        "methods": {
            method: run.stage_info(FINETUNE_STAGES[method])["info"].get("config")
            for method in METHODS
        },
        "sample_steps": args.sample_steps,
        "run": str(run.path),
    }
    experiment.write(config, figures, pictures)


def best_epoch(run, stage: str) -> int | None:
    """Read the epoch that backprop fine-tuning kept from the stage's metrics."""
    history = read_jsonl(run.stage_dir(stage) / "metrics.jsonl")
    return next((h["epoch"] for h in history if h.get("best")), None)


if __name__ == "__main__":
    run_command(main)
