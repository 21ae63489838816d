"""Linear and RBF SVMs on pixels, single layers, all layers and unit subsets, against fine-tuning.

Run from the repository root, with the MNIST and Fashion-MNIST IDX files in
``DEEPGEN_DATA_DIR``::

    python -m experiments.svm_on_units
    python -m experiments.svm_on_units --quick

For each dataset a DBN (784-500-500-2000, no label units) is pretrained and,
separately, fine-tuned by backprop. With the pretrained weights left as they
are, SVMs are trained on the hidden probabilities of:

``pixels``       the input itself;
``layer-k``      each hidden layer on its own;
``all-layers``   every hidden layer side by side;
``best-subset``  the units with the highest ANOVA F-score against the labels
                 on the training rows. The ranking is the Units page's, pooled
                 here over all hidden layers, and it keeps as many units as
                 the last layer has.
``random``       that many units drawn at random from all hidden layers. There
                 are ten draws, reported as mean and standard deviation.

Each row is read against ``finetuned``: the fine-tuned net's own test
accuracy. The linear SVM is trained on every training row and scored on
every test row. The RBF SVM, whose cost grows with the square of the rows
and which predicts through its support vectors, is trained on the first
``--rbf-rows`` training rows and scored on the first ``rbf_test_rows`` test
rows, as its time on two CPU cores would otherwise be hours.
"""

from __future__ import annotations

import numpy as np

from deepgen_core.dbn import DBNConfig
from deepgen_core.operations import (
    class_accuracy,
    layer_activations,
    layer_sizes,
    make_classifier,
)
from deepgen_core.runs import FINETUNE_STAGES, PRETRAINED, RunConfig
from deepgen_core.selection import random_units, score_units
from deepgen_core.training import RBMTrainingConfig
from deepgen_core.units import format_units, parse_units, select_columns

from .common import (
    BACKPROP_SETTINGS,
    Experiment,
    base_parser,
    positive_int,
    prepare_run,
    run_command,
)

NAME = "svm_on_units"
FULL = {
    "datasets": ["mnist", "fashion-mnist"],
    "layers": [500, 500, 2000],
    "epochs": 10,
    "backprop_epochs": 30,
    "rbf_rows": 5000,
    "rbf_test_rows": 5000,
    "random_draws": 10,
}
QUICK = {
    "datasets": ["mnist-10k"],
    "layers": [100, 100, 200],
    "epochs": 2,
    "backprop_epochs": 3,
    "rbf_rows": 2000,
    "rbf_test_rows": 2000,
    "random_draws": 3,
}
C = {"linear-svm": 0.1, "rbf-svm": 10.0}
"""SVM penalties: the app's default for the linear SVM, and the usual value
for an RBF SVM on MNIST-sized inputs (gamma is scikit-learn's "scale")."""
SELECTION_RULE = (
    "top units by ANOVA F-score against the training labels, pooled over all "
    "hidden layers, as many as the last layer has"
)


def parse_args(argv=None):
    parser = base_parser(NAME, __doc__)
    parser.add_argument(
        "--datasets", help="comma-separated datasets (mnist,fashion-mnist)"
    )
    parser.add_argument(
        "--rbf-rows", type=positive_int, help="training rows of the RBF SVM (5000)"
    )
    return parser.parse_args(argv)


def dataset_run(experiment: Experiment, dataset: str, chosen: dict):
    """Pretrain and fine-tune the DBN of ``dataset``, reusing finished stages."""
    rbm = RBMTrainingConfig(epochs=chosen["epochs"])
    config = RunConfig(
        dataset,
        DBNConfig(chosen["layers"], seed=experiment.args.seed, rbm=rbm),
        device=str(experiment.device),
    )
    backprop = {
        "epochs": chosen["backprop_epochs"],
        "seed": experiment.args.seed,
        **BACKPROP_SETTINGS,
    }
    return prepare_run(
        experiment,
        experiment.runs_dir / dataset,
        config,
        {"backprop": backprop},
        dataset,
    )


def feature_sets(
    activations: list[np.ndarray],
    y: np.ndarray,
    sizes: list[int],
    chosen: dict,
    seed: int,
) -> dict[str, str | list[str]]:
    """SPEC of every feature set, or a list of SPECs for the random draws."""
    hidden = list(range(1, len(sizes)))
    k = sizes[-1]
    sets: dict[str, str | list[str]] = {"pixels": "0:*"}
    sets.update({f"layer-{layer}": f"{layer}:*" for layer in hidden})
    sets["all-layers"] = ",".join(f"{layer}:*" for layer in hidden)
    scores = np.concatenate(
        [score_units(activations[layer], y, "anova-f") for layer in hidden]
    )
    owners = np.concatenate([np.full(sizes[layer], layer) for layer in hidden])
    units = np.concatenate([np.arange(sizes[layer]) for layer in hidden])
    best = np.argsort(-scores, kind="stable")[:k]
    sets["best-subset"] = format_units(
        {
            layer: np.sort(units[best][owners[best] == layer])
            for layer in hidden
            if (owners[best] == layer).any()
        },
        sizes,
    )
    sets["random"] = [
        random_units(hidden, k, sizes, seed=seed + draw)
        for draw in range(chosen["random_draws"])
    ]
    return sets


def accuracy(classifier: str, train, y_train, test, y_test) -> float:
    model = make_classifier(classifier, C[classifier])
    model.fit(train, y_train)
    return float((model.predict(test) == y_test).mean())


def measure_dataset(experiment: Experiment, dataset: str, chosen: dict) -> dict:
    """Train every SVM of the table on ``dataset`` and return its figures."""
    run = dataset_run(experiment, dataset, chosen)
    data = run.dataset()
    dbn = run.load_stage(PRETRAINED)
    sizes = layer_sizes(dbn)

    with experiment.timed(f"{dataset}-features"):
        train = layer_activations(dbn, data.x_train)
        test = layer_activations(dbn, data.x_test)
    sets = feature_sets(train, data.y_train, sizes, chosen, experiment.args.seed)
    rbf_rows = min(chosen["rbf_rows"], len(data.x_train))
    rbf_tested = min(chosen["rbf_test_rows"], len(data.x_test))

    table: dict[str, dict] = {}
    for classifier in C:
        rows = len(data.x_train) if classifier == "linear-svm" else rbf_rows
        tested = len(data.x_test) if classifier == "linear-svm" else rbf_tested
        scores: dict[str, dict] = {}
        with experiment.timed(f"{dataset}-{classifier}"):
            for name, specs in sets.items():
                draws = []
                for spec in specs if isinstance(specs, list) else [specs]:
                    selection = parse_units(spec, sizes)
                    draws.append(
                        accuracy(
                            classifier,
                            select_columns(train, selection)[:rows],
                            data.y_train[:rows],
                            select_columns(test, selection)[:tested],
                            data.y_test[:tested],
                        )
                    )
                scores[name] = {
                    "accuracy": float(np.mean(draws)),
                    "n_units": parse_units(
                        specs[0] if isinstance(specs, list) else specs, sizes
                    ).n_units,
                }
                if len(draws) > 1:
                    scores[name]["std"] = float(np.std(draws, ddof=1))
                    scores[name]["draws"] = draws
                print(
                    f"{dataset:<14} {classifier:<10} {name:<12} "
                    f"{scores[name]['accuracy']:.4f}",
                    flush=True,
                )
        table[classifier] = scores

    finetuned = class_accuracy(
        run.load_stage(FINETUNE_STAGES["backprop"]), data.x_test, data.y_test
    )
    return {
        "feature_sets": list(sets),
        "svm": table,
        "finetuned_accuracy": finetuned,
        "best_subset_spec": sets["best-subset"],
        "best_subset_layers": {
            str(layer): len(units)
            for layer, units in parse_units(sets["best-subset"], sizes).items()
        },
        "n_train": len(data.x_train),
        "n_test": len(data.x_test),
        "rbf_rows": rbf_rows,
        "rbf_test_rows": rbf_tested,
    }


def main(argv=None) -> None:
    args = parse_args(argv)
    experiment = Experiment(NAME, args)
    chosen = dict(QUICK if args.quick else FULL)
    if args.datasets:
        chosen["datasets"] = args.datasets.split(",")
    if args.rbf_rows:
        chosen["rbf_rows"] = args.rbf_rows
    figures = {
        dataset: measure_dataset(experiment, dataset, chosen)
        for dataset in chosen["datasets"]
    }
    config = {**chosen, "C": C, "selection_rule": SELECTION_RULE}
    experiment.write(config, figures, [])


if __name__ == "__main__":
    run_command(main)
