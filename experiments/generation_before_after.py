"""Generative measures of a DBN before and after each kind of fine-tuning, over several seeds.

Run from the repository root::

    python -m experiments.generation_before_after
    python -m experiments.generation_before_after --quick

For each seed a 784-500-500 DBN with label units is pretrained on mnist-10k
and fine-tuned three ways. Backprop writes stage ``finetuned``. A softmax
head on the frozen top layer writes ``finetuned-head``, whose generative
weights are the pretrained ones. Up-down writes ``finetuned-updown``. Every
stage is then measured as ``deepgen evaluate`` does: held-out error, the AIS lower
bound on the test log-likelihood, reconstruction error and the sample
figures. The results give, per stage, the mean and standard deviation over
seeds, and, per fine-tuned stage, the paired change from ``pretrained`` with
its standard error over seeds. A backprop stage is measured as the
generative model its fine-tuned weights imply, used both ways.

The results folder also gets ``samples.png``: label-clamped samples of every
stage of the first seed side by side, one block per stage in the order of
``STAGES``, row k of each block generated with label k.
"""

from __future__ import annotations

import numpy as np

from deepgen_core.dbn import DBNConfig
from deepgen_core.evaluation import check_evaluate_settings, evaluate_run, figure_rows
from deepgen_core.images import image_grid, save_png
from deepgen_core.operations import sample_run
from deepgen_core.runs import FINETUNE_STAGES, PRETRAINED, RunConfig
from deepgen_core.training import RBMTrainingConfig

from .common import (
    BACKPROP_SETTINGS,
    Experiment,
    base_parser,
    positive_int,
    prepare_run,
    run_command,
)

NAME = "generation_before_after"
STAGES = (PRETRAINED, *FINETUNE_STAGES.values())
FULL = {
    "dataset": "mnist-10k",
    "layers": [500, 500],
    "epochs": 10,
    "seeds": 3,
    "backprop_epochs": 100,
    "updown_epochs": 20,
    "ais_runs": 100,
    "ais_betas": 5000,
    "n_samples": 500,
    "steps": 500,
    "sample_steps": 1000,
}
QUICK = {
    "dataset": "mnist-10k",
    "layers": [100, 100],
    "epochs": 2,
    "seeds": 2,
    "backprop_epochs": 2,
    "updown_epochs": 1,
    "ais_runs": 10,
    "ais_betas": 300,
    "n_samples": 100,
    "steps": 100,
    "sample_steps": 100,
}
SAMPLES_PER_LABEL = 8


def seed_run(experiment: Experiment, chosen: dict, seed: int):
    """Pretrain and fine-tune one seed's DBN, reusing finished stages."""
    rbm = RBMTrainingConfig(epochs=chosen["epochs"])
    dbn = DBNConfig(chosen["layers"], labels=True, seed=seed, rbm=rbm)
    config = RunConfig(chosen["dataset"], dbn, str(experiment.device))
    methods = {
        "backprop": {
            "epochs": chosen["backprop_epochs"],
            "seed": seed,
            **BACKPROP_SETTINGS,
        },
        "head": {"seed": seed},
        "updown": {"epochs": chosen["updown_epochs"], "seed": seed},
    }
    return prepare_run(
        experiment, experiment.runs_dir / f"seed-{seed}", config, methods
    )


def measure(experiment: Experiment, run, stage: str, chosen: dict, seed: int) -> dict:
    """Evaluate ``stage``, or reuse its saved evaluation when the settings match."""
    settings = {
        "ais_runs": chosen["ais_runs"],
        "ais_betas": chosen["ais_betas"],
        "n_samples": chosen["n_samples"],
        "steps": chosen["steps"],
        "seed": seed,
    }
    saved = run.load_evaluation(stage)
    if saved and all(saved["settings"].get(k) == v for k, v in settings.items()):
        return saved
    with experiment.timed(f"evaluate-{stage}"):
        return evaluate_run(run, stage, **settings)


def summarise(per_seed: dict[str, list[dict]]) -> dict:
    """Mean, standard deviation and values over seeds of every figure."""
    summary = {}
    for stage, evaluations in per_seed.items():
        rows = [figure_rows(evaluation) for evaluation in evaluations]
        summary[stage] = {}
        for key in rows[0]:
            values = [row[key][0] for row in rows]
            if any(value is None for value in values):
                continue
            summary[stage][key] = {
                "mean": float(np.mean(values)),
                "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
                "values": [float(v) for v in values],
                "within_seed_stderr": [row[key][1] for row in rows],
            }
    return summary


def paired_changes(summary: dict) -> dict:
    """Per fine-tuned stage, the mean change from pretrained over seeds."""
    base = summary[PRETRAINED]
    changes = {}
    for stage in STAGES[1:]:
        changes[stage] = {}
        for key, figure in summary[stage].items():
            if key not in base:
                continue
            deltas = np.subtract(figure["values"], base[key]["values"])
            stderr = (
                float(np.std(deltas, ddof=1) / np.sqrt(len(deltas)))
                if len(deltas) > 1
                else 0.0
            )
            changes[stage][key] = {
                "mean": float(deltas.mean()),
                "stderr": stderr,
                "same_sign_in_every_seed": bool(
                    (deltas > 0).all() or (deltas < 0).all()
                ),
            }
    return changes


def side_by_side(experiment: Experiment, run, steps: int) -> str:
    """Write label-clamped samples of every stage of ``run`` as one picture."""
    shape = run.dataset().image_shape
    n_classes = run.dataset().n_classes
    blocks = []
    for stage in STAGES:
        images = [
            sample_run(run, stage, SAMPLES_PER_LABEL, label, seed=label, steps=steps)[0]
            for label in range(n_classes)
        ]
        blocks.append(image_grid(np.concatenate(images), shape, SAMPLES_PER_LABEL))
    gap = np.full((blocks[0].shape[0], 6), 255, dtype=np.uint8)
    picture = np.hstack([part for block in blocks for part in (block, gap)][:-1])
    name = "samples.png"
    save_png(experiment.out_dir / name, picture)
    return name


def main(argv=None) -> None:
    parser = base_parser(NAME, __doc__)
    parser.add_argument("--seeds", type=positive_int, help="number of seeds (3)")
    parser.add_argument(
        "--ais-betas", type=positive_int, help="AIS temperatures (5000)"
    )
    args = parser.parse_args(argv)
    experiment = Experiment(NAME, args)
    chosen = dict(QUICK if args.quick else FULL)
    if args.seeds:
        chosen["seeds"] = args.seeds
    if args.ais_betas:
        chosen["ais_betas"] = args.ais_betas
    check_evaluate_settings(chosen)
    seeds = [args.seed + i for i in range(chosen["seeds"])]

    per_seed: dict[str, list[dict]] = {stage: [] for stage in STAGES}
    runs = []
    for seed in seeds:
        run = seed_run(experiment, chosen, seed)
        runs.append(run)
        for stage in STAGES:
            per_seed[stage].append(measure(experiment, run, stage, chosen, seed))

    summary = summarise(per_seed)
    figures = {
        "stages": summary,
        "change_from_pretrained": paired_changes(summary),
        "likelihood_method": {
            stage: per_seed[stage][0]["log_likelihood"]["method"] for stage in STAGES
        },
        "generative_model": {
            stage: per_seed[stage][0]["log_likelihood"]["generative_model"]
            for stage in STAGES
        },
        "seeds": seeds,
    }
    with experiment.timed("samples"):
        picture = side_by_side(experiment, runs[0], chosen["sample_steps"])
    config = {**chosen, "stages": list(STAGES), "seeds": seeds}
    experiment.write(config, figures, [picture])


if __name__ == "__main__":
    run_command(main)
