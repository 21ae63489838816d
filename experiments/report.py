"""Render the stored experiment results as the tables of ``docs/results.md``.

Run from the repository root after an experiment has written new results::

    python -m experiments.report

Each table sits in ``docs/results.md`` between ``<!-- table NAME -->`` and
``<!-- end NAME -->``. This command rewrites what lies between the markers
from the JSON files and leaves the prose around them alone. The test suite
renders the tables again and checks that the document still contains them.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from deepgen_core.errors import InputError

from .common import RESULTS_DIR, RESULTS_FILE, load_results, run_command

DOCUMENT = RESULTS_DIR.parent / "results.md"
EXPERIMENTS = (
    "hinton2006",
    "rbm_likelihood",
    "svm_on_units",
    "generation_before_after",
    "scaling",
)
BLOCK = re.compile(r"(<!-- table (\S+) -->\n)(.*?)(<!-- end \2 -->)", re.DOTALL)
STAGE_NAMES = {
    "pretrained": "pretrained, label units of the top RBM",
    "head": "softmax head on the frozen top layer",
    "backprop": "backprop fine-tuning",
    "updown": "up-down fine-tuning",
}
FEATURE_NAMES = {
    "pixels": "raw pixels",
    "all-layers": "all hidden layers",
    "best-subset": "best subset (top ANOVA F)",
    "random": "random subsets",
}
DATASET_NAMES = {
    "mnist": "MNIST",
    "fashion-mnist": "Fashion-MNIST",
    "mnist-10k": "mnist-10k",
}
FIGURE_LABELS = {
    "test_error": "held-out error",
    "log_likelihood": "log-likelihood bound (nats)",
    "recon_error": "reconstruction error",
    "label_confidence": "confidence in the asked digit",
    "class_entropy": "class entropy (nats)",
    "coverage": "share of classes covered",
    "nn_train_distance": "distance to nearest training image",
    "nn_sample_distance": "distance to nearest other sample",
    "frechet_distance": "Fréchet distance",
}


DIGITS = {
    "test_error": 2,
    "log_likelihood": 1,
    "recon_error": 4,
    "label_confidence": 3,
    "class_entropy": 2,
    "coverage": 2,
    "nn_train_distance": 2,
    "nn_sample_distance": 2,
    "frechet_distance": 1,
}
"""Decimals shown for each generative figure; the error is shown in percent."""


def figure_value(key: str, value: float, signed: bool = False) -> str:
    """Format ``value`` of figure ``key``; errors as percentage points."""
    sign = "+" if signed else ""
    if key == "test_error":
        return f"{100 * value:{sign}.{DIGITS[key]}f}" + ("" if signed else "%")
    return f"{value:{sign}.{DIGITS[key]}f}"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def percent(value: float) -> str:
    return f"{100 * value:.2f}%"


def signed_percent(value: float) -> str:
    return f"{100 * value:+.2f} points"


def number(value: float, digits: int = 2) -> str:
    return f"{value:.{digits}f}"


def hinton2006(results: dict) -> str:
    figures = results["figures"]
    rows = []
    for key, name in STAGE_NAMES.items():
        error = figures["test_error"][key]
        anchor = figures["anchor"].get(key)
        rows.append(
            [
                name,
                percent(error),
                percent(anchor) if anchor is not None else "-",
                signed_percent(error - anchor) if anchor is not None else "-",
            ]
        )
    return table(["classifier", "test error", "published", "difference"], rows)


def rbm_likelihood(results: dict) -> str:
    figures = results["figures"]
    rows = []
    for name in ("cd1", "cd3", "cd25"):
        model = figures[name]
        rows.append(
            [
                name.upper().replace("CD", "CD-"),
                str(model["epochs"]),
                f"{number(model['log_z'])} ± {number(model['log_z_stderr'])}",
                number(model["test_log_likelihood"]),
                number(model["test_log_likelihood_reverse"]),
                number(model["anchor"]),
                f"{model['difference']:+.2f}",
            ]
        )
    header = [
        "RBM",
        "epochs",
        "log Z (forward AIS)",
        "test log-likelihood",
        "with reverse-AIS log Z",
        "published",
        "difference",
    ]
    return table(header, rows)


def svm_on_units(results: dict) -> str:
    blocks = []
    for dataset in results["config"]["datasets"]:
        figures = results["figures"][dataset]
        names = figures["feature_sets"]
        rows = []
        for name in names:
            cells = [
                feature_name(name, results["config"]["random_draws"]),
                str(figures["svm"]["linear-svm"][name]["n_units"]),
            ]
            for classifier in ("linear-svm", "rbf-svm"):
                score = figures["svm"][classifier][name]
                cell = percent(score["accuracy"])
                if "std" in score:
                    cell += f" ± {100 * score['std']:.2f}"
                cells.append(cell)
            rows.append(cells)
        title = (
            f"**{DATASET_NAMES.get(dataset, dataset)}** "
            f"({figures['n_train']:,} training rows; the RBF SVM on the first "
            f"{figures['rbf_rows']:,} of them, scored on {figures['rbf_test_rows']:,} "
            "test rows)\n\n"
        )
        header = ["features", "units", "linear SVM", "RBF SVM"]
        finetuned = (
            "\nThe same DBN fine-tuned by backprop, scored by its own softmax "
            f"output: **{percent(figures['finetuned_accuracy'])}**.\n"
        )
        blocks.append(title + table(header, rows) + finetuned)
    return "\n".join(blocks)


def feature_name(name: str, draws: int = 0) -> str:
    if name.startswith("layer-"):
        return f"hidden layer {name.split('-')[1]} alone"
    if name == "random" and draws:
        return f"{FEATURE_NAMES[name]}, {draws} draws"
    return FEATURE_NAMES.get(name, name)


def generation_before_after(results: dict) -> str:
    figures = results["figures"]
    stages = results["config"]["stages"]
    rows = []
    for key, label in FIGURE_LABELS.items():
        cells = [label]
        for stage in stages:
            figure = figures["stages"][stage].get(key)
            if figure is None:
                cells.append("-")
            else:
                mean = figure_value(key, figure["mean"])
                cells.append(f"{mean} ± {figure_value(key, figure['std'])}")
        rows.append(cells)
    means = table(["figure", *stages], rows)
    rows = []
    changes = figures["change_from_pretrained"]
    for key, label in FIGURE_LABELS.items():
        cells = [label]
        for stage in stages[1:]:
            change = changes[stage].get(key)
            if change is None:
                cells.append("-")
                continue
            if same_values(figures["stages"], stage, stages[0], key):
                cells.append("none (same weights)")
                continue
            mark = "" if change["same_sign_in_every_seed"] else " (sign varies)"
            mean = figure_value(key, change["mean"], signed=True)
            cells.append(f"{mean} ± {figure_value(key, change['stderr'])}{mark}")
        rows.append(cells)
    deltas = table(["change from pretrained", *stages[1:]], rows)
    return means + "\n" + deltas


def same_values(stages: dict, stage: str, base: str, key: str) -> bool:
    """Tell whether ``key`` of ``stage`` equals that of ``base`` in every seed."""
    return stages[stage][key]["values"] == stages[base][key]["values"]


def scaling(results: dict) -> str:
    figures = results["figures"]
    config = results["config"]
    parts = []
    for key, label, fixed in (
        ("width", "hidden units", f"{config['width_rows']:,} images"),
        ("rows", "images", f"{config['rows_width']} hidden units"),
    ):
        sweep = figures[key]
        rows = [
            [f"{size:,}", number(seconds, 3), number(per_unit, 3)]
            for size, seconds, per_unit in zip(
                sweep["sizes"],
                sweep["seconds_per_epoch"],
                sweep["microseconds_per_image_unit"],
            )
        ]
        parts.append(
            f"By {label} ({fixed}; growth exponent "
            f"{sweep['growth_exponent']:.2f})\n\n"
            + table([label, "seconds an epoch", "µs per image and unit"], rows)
        )
    return "\n".join(parts)


RENDERERS = {name: globals()[name] for name in EXPERIMENTS}


def render(name: str, folder: Path | None = None) -> str:
    """Render the markdown table of experiment ``name`` from its stored results."""
    path = (folder or RESULTS_DIR / name) / RESULTS_FILE
    try:
        return RENDERERS[name](load_results(name, folder))
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise InputError(
            f"the results file {path} is missing or damaged ({type(error).__name__}: "
            f"{error}); run python -m experiments.{name} again to rewrite it"
        ) from None


def update(document: Path = DOCUMENT) -> tuple[list[str], list[str]]:
    """Rewrite the table blocks of ``document`` whose results exist.

    Returns the names rewritten and the names left alone for lack of results.
    """
    text = document.read_text()
    rendered, missing = [], []

    def replace(match: re.Match) -> str:
        name = match.group(2)
        if not (RESULTS_DIR / name / RESULTS_FILE).is_file():
            missing.append(name)
            return match.group(0)
        rendered.append(name)
        return match.group(1) + render(name) + match.group(4)

    document.write_text(BLOCK.sub(replace, text))
    return rendered, missing


def blocks(document: Path = DOCUMENT) -> dict[str, str]:
    """Read the table blocks of ``document``, by experiment name."""
    return {m.group(2): m.group(3) for m in BLOCK.finditer(document.read_text())}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m experiments.report", description=__doc__.split("\n")[0]
    )
    parser.parse_args(argv)
    done, left = update()
    for name in done:
        print(f"rendered {name}")
    for name in left:
        print(
            f"no results for {name} yet; run python -m experiments.{name}",
            file=sys.stderr,
        )


if __name__ == "__main__":
    run_command(main)
