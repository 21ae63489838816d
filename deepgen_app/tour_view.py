"""The Tour page's steps: stored experiment results, read as answers to five questions.

Every number shown comes from a ``results.json`` that an ``experiments``
command wrote; nothing here trains. ``DEEPGEN_RESULTS_DIR`` points the page
at another results folder (``docs/results`` by default).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from experiments.common import RESULTS_DIR, RESULTS_FILE, load_results
from experiments.report import FEATURE_NAMES, FIGURE_LABELS, STAGE_NAMES

RUNS_PAGE = "pages/runs.py"
UNITS_PAGE = "pages/units.py"
PROJECTIONS_PAGE = "pages/projections.py"
SAMPLES_PAGE = "pages/samples.py"
MATCH_MARGIN = 0.002
"""Accuracy gap below which the subset counts as matching fine-tuning: 20 of
10,000 test images, about 1.4 standard errors of an accuracy near 98%."""
GENERATION_FIGURES = (
    "log_likelihood",
    "frechet_distance",
    "label_confidence",
    "coverage",
)


def results_dir() -> Path:
    """``$DEEPGEN_RESULTS_DIR``, else the repository's ``docs/results``."""
    return Path(os.environ.get("DEEPGEN_RESULTS_DIR") or RESULTS_DIR)


@st.cache_data(show_spinner=False)
def _read(name: str, folder: str, stamp: float) -> dict:
    """Read a results file; ``stamp`` (its mtime) renews the cache when it changes."""
    return load_results(name, Path(folder))


def load(name: str) -> dict | None:
    """Read the stored results of ``name``; on failure show how to make them, return None."""
    path = results_dir() / name / RESULTS_FILE
    if not path.is_file():
        st.warning(
            f"No stored results of `{name}` in {path.parent}. Make them with "
            f"`python -m experiments.{name}` from the repository root. For a "
            f"one-minute version on mnist-10k, run it with `--quick --out-dir "
            f"DIR/{name}` and start the app with `DEEPGEN_RESULTS_DIR=DIR`."
        )
        return None
    try:
        return _read(name, str(path.parent), path.stat().st_mtime)
    except (OSError, ValueError) as error:
        st.error(
            f"The results file {path} cannot be read ({error}); run "
            f"`python -m experiments.{name}` again to rewrite it."
        )
        return None


def device_name(device: str) -> str:
    return "the CPU" if device == "cpu" else f"the GPU ({device})"


def provenance(results: dict) -> None:
    """Say which command made the figures, where and how long it took."""
    minutes = results["wall_seconds"] / 60
    quick = " (quick check, not the full experiment)" if results.get("quick") else ""
    st.caption(
        f"Made by `{results['command']}`{quick} on {device_name(results['device'])}, "
        f"{minutes:.0f} min, finished {results['finished'][:10]}."
    )


@dataclass(frozen=True)
class Step:
    title: str
    question: str
    draw: object
    experiments: tuple[str, ...]


def draw_step(step: Step) -> None:
    """Draw ``step``; a stored file that lacks a figure gets one message naming it."""
    try:
        step.draw()
    except (KeyError, TypeError, IndexError) as error:
        files = ", ".join(
            str(results_dir() / name / RESULTS_FILE) for name in step.experiments
        )
        commands = " and ".join(
            f"`python -m experiments.{name}`" for name in step.experiments
        )
        st.error(
            f"The stored results ({files}) lack a figure this step shows "
            f"({type(error).__name__}: {error}); they were written by another "
            f"version of the experiment. Run {commands} again to rewrite them."
        )


# Step 1 -------------------------------------------------------------------------


def reproduction() -> None:
    results = load("hinton2006")
    if results is not None:
        figures = results["figures"]
        errors = figures["test_error"]
        layers = "-".join(str(n) for n in [784, *results["config"]["layers"]])
        st.markdown(
            f"A {layers} DBN with label units, trained on "
            f"{figures['n_train']:,} images and tested on {figures['n_test']:,}. "
            f"Backprop fine-tuning ends at **{errors['backprop']:.2%}** test error "
            f"(published: {figures['anchor']['backprop']:.2%}); up-down at "
            f"**{errors['updown']:.2%}** (published: {figures['anchor']['updown']:.2%})."
        )
        st.plotly_chart(error_chart(figures), key="tour_hinton")
        provenance(results)
    results = load("rbm_likelihood")
    if results is not None:
        figures = results["figures"]
        st.markdown(
            "Test log-likelihoods of 500-unit RBMs, estimated by AIS, against "
            "Salakhutdinov and Murray (2008). CD-k's gradient is biased and the "
            "bias shrinks as k grows, so the published figures improve from CD-1 "
            "to CD-25."
        )
        st.plotly_chart(likelihood_chart(figures), key="tour_likelihood")
        provenance(results)
    st.page_link(
        RUNS_PAGE,
        label="Train a DBN on the Runs page (choose the Hinton 2006 preset)",
        icon=":material/list:",
    )


def error_chart(figures: dict):
    import plotly.graph_objects as go

    names = list(STAGE_NAMES)
    figure = go.Figure()
    figure.add_bar(
        x=[STAGE_NAMES[k] for k in names],
        y=[100 * figures["test_error"][k] for k in names],
        name="deepgen",
    )
    anchored = [k for k in names if k in figures["anchor"]]
    figure.add_scatter(
        x=[STAGE_NAMES[k] for k in anchored],
        y=[100 * figures["anchor"][k] for k in anchored],
        mode="markers",
        marker={"symbol": "line-ew-open", "size": 40, "line": {"width": 3}},
        name="published",
    )
    figure.update_layout(yaxis_title="test error (%)", height=360, margin={"t": 20})
    return figure


def likelihood_chart(figures: dict):
    import plotly.graph_objects as go

    names = ["cd1", "cd3", "cd25"]
    labels = ["CD-1", "CD-3", "CD-25"]
    figure = go.Figure()
    figure.add_scatter(
        x=labels,
        y=[figures[k]["test_log_likelihood"] for k in names],
        error_y={"type": "data", "array": [figures[k]["log_z_stderr"] for k in names]},
        mode="markers+lines",
        name="deepgen",
    )
    figure.add_scatter(
        x=labels,
        y=[figures[k]["anchor"] for k in names],
        mode="markers",
        marker={"symbol": "x", "size": 12},
        name="published",
    )
    figure.update_layout(
        yaxis_title="test log-likelihood (nats)", height=340, margin={"t": 20}
    )
    return figure


# Step 2 -------------------------------------------------------------------------


def generation() -> None:
    results = load("generation_before_after")
    if results is not None:
        show_generation(results)
    st.page_link(
        SAMPLES_PAGE,
        label="Compare the stages of your own run on the Samples page",
        icon=":material/casino:",
    )


def show_generation(results: dict) -> None:
    figures = results["figures"]
    n_seeds = len(figures["seeds"])
    st.markdown(
        f"Each stage of the same DBN, over {n_seeds} seeds (error bars: one "
        "standard deviation between seeds). The log-likelihood is a lower bound "
        "from AIS; the sample figures come from a reference classifier trained on "
        "real digits."
    )
    stages = results["config"]["stages"]
    st.markdown(generation_reading(figures, stages))
    st.plotly_chart(generation_chart(figures, stages), key="tour_generation")
    picture = results_dir() / "generation_before_after" / "samples.png"
    if picture.is_file():
        st.image(
            str(picture),
            caption="Label-clamped samples, one block per stage in the order "
            + ", ".join(stages)
            + "; row k asks for digit k.",
        )
    provenance(results)


def generation_reading(figures: dict, stages: list[str]) -> str:
    """Describe each fine-tuned stage's change of the likelihood bound in one sentence."""
    sentences = []
    for stage in stages[1:]:
        change = figures["change_from_pretrained"][stage].get("log_likelihood")
        if change is None:
            continue
        size = abs(change["mean"])
        direction = "raises" if change["mean"] > 0 else "lowers"
        steady = (
            "in every seed"
            if change["same_sign_in_every_seed"]
            else "but not in every seed"
        )
        if change["mean"] == 0 and change["stderr"] == 0:
            sentences.append(
                f"- **{stage}** gives exactly the pretrained bound in every seed: "
                "it changes no generative weight."
            )
        elif size <= 2 * change["stderr"]:
            sentences.append(
                f"- **{stage}** {direction} the log-likelihood bound by {size:.1f} ± "
                f"{change['stderr']:.1f} nats, {steady}, a change within twice its "
                "standard error over the seeds."
            )
        else:
            sentences.append(
                f"- **{stage}** {direction} the log-likelihood bound by "
                f"{size:.1f} ± {change['stderr']:.1f} nats, {steady}."
            )
    return "\n".join(sentences)


def generation_chart(figures: dict, stages: list[str]):
    from plotly.subplots import make_subplots

    names = [FIGURE_LABELS[key] for key in GENERATION_FIGURES]
    chart = make_subplots(rows=1, cols=len(names), subplot_titles=names)
    for column, key in enumerate(GENERATION_FIGURES, start=1):
        means = [figures["stages"][s][key]["mean"] for s in stages]
        spreads = [figures["stages"][s][key]["std"] for s in stages]
        chart.add_scatter(
            x=stages,
            y=means,
            error_y={"type": "data", "array": spreads},
            mode="markers",
            marker={"size": 10},
            showlegend=False,
            row=1,
            col=column,
        )
    chart.update_layout(height=340, margin={"t": 40})
    return chart


# Steps 3 and 4 ----------------------------------------------------------------


def which_layer() -> None:
    results = load("svm_on_units")
    if results is not None:
        show_layers(results)
    st.page_link(
        UNITS_PAGE,
        label="Train an SVM on any layer on the Units & SVM page",
        icon=":material/tune:",
    )


def show_layers(results: dict) -> None:
    for dataset in results["config"]["datasets"]:
        figures = results["figures"][dataset]
        linear = figures["svm"]["linear-svm"]
        layers = [name for name in figures["feature_sets"] if name.startswith("layer-")]
        best = max(layers, key=lambda name: linear[name]["accuracy"])
        st.markdown(
            f"**{dataset}**: the linear SVM reads {linear[layers[-1]]['accuracy']:.2%} "
            f"from the last hidden layer and {linear[best]['accuracy']:.2%} from "
            f"the best single one ({best}); all hidden layers together give "
            f"{linear['all-layers']['accuracy']:.2%}."
        )
        st.plotly_chart(
            accuracy_chart(figures, ["pixels", *layers, "all-layers"]),
            key=f"tour_layers_{dataset}",
        )
    provenance(results)


def subsets() -> None:
    results = load("svm_on_units")
    if results is not None:
        show_subsets(results)
    st.page_link(
        UNITS_PAGE,
        label="Choose units from several layers on the Units & SVM page",
        icon=":material/tune:",
    )
    st.page_link(
        PROJECTIONS_PAGE,
        label="See how the chosen units separate the classes on the Projections page",
        icon=":material/scatter_plot:",
    )


def show_subsets(results: dict) -> None:
    for dataset in results["config"]["datasets"]:
        figures = results["figures"][dataset]
        linear = figures["svm"]["linear-svm"]
        gap = linear["best-subset"]["accuracy"] - figures["finetuned_accuracy"]
        if abs(gap) < MATCH_MARGIN:
            verdict = "matches"
        elif gap > 0:
            verdict = "beats"
        else:
            verdict = "trails"
        st.markdown(
            f"**{dataset}**: the linear SVM on the {linear['best-subset']['n_units']:,} "
            f"units of the best subset reaches {linear['best-subset']['accuracy']:.2%}, "
            f"random subsets of that size {linear['random']['accuracy']:.2%} ± "
            f"{linear['random']['std']:.2%}, and the fine-tuned net "
            f"{figures['finetuned_accuracy']:.2%}: with the weights unchanged, the "
            f"subset {verdict} fine-tuning ({100 * gap:+.2f} points)."
        )
        st.plotly_chart(
            accuracy_chart(figures, ["all-layers", "best-subset", "random"]),
            key=f"tour_subsets_{dataset}",
        )
    st.caption(
        "Best subset: " + results["config"]["selection_rule"] + ". The RBF SVM is "
        "trained on fewer rows; see the table in docs/results.md."
    )
    provenance(results)


def accuracy_chart(figures: dict, names: list[str]):
    import plotly.graph_objects as go

    chart = go.Figure()
    for classifier in ("linear-svm", "rbf-svm"):
        scores = figures["svm"][classifier]
        chart.add_bar(
            x=[feature_label(name) for name in names],
            y=[100 * scores[name]["accuracy"] for name in names],
            error_y={
                "type": "data",
                "array": [100 * scores[name].get("std", 0.0) for name in names],
            },
            name=classifier,
        )
    chart.add_hline(
        y=100 * figures["finetuned_accuracy"],
        line_dash="dash",
        annotation_text="fine-tuned net",
    )
    accuracies = [
        figures["svm"][c][n]["accuracy"] for c in figures["svm"] for n in names
    ]
    low = 100 * min(*accuracies, figures["finetuned_accuracy"])
    chart.update_layout(
        yaxis={"title": "test accuracy (%)", "range": [max(0, low - 3), 100]},
        height=340,
        margin={"t": 20},
    )
    return chart


def feature_label(name: str) -> str:
    if name.startswith("layer-"):
        return f"layer {name.split('-')[1]}"
    return FEATURE_NAMES.get(name, name)


# Step 5 -------------------------------------------------------------------------


def cost() -> None:
    results = load("scaling")
    if results is not None:
        show_cost(results)
    st.page_link(
        RUNS_PAGE, label="Time your own run on the Runs page", icon=":material/list:"
    )


def show_cost(results: dict) -> None:
    figures = results["figures"]
    st.markdown(
        f"Seconds for one CD-1 epoch of one RBM on {device_name(figures['device'])}. "
        "The cost "
        f"grows with exponent {figures['width']['growth_exponent']:.2f} in the "
        f"layer width and {figures['rows']['growth_exponent']:.2f} in the number "
        "of images (1 is linear)."
    )
    from plotly.subplots import make_subplots

    chart = make_subplots(
        rows=1, cols=2, subplot_titles=["by hidden units", "by images"]
    )
    for column, key in enumerate(("width", "rows"), start=1):
        chart.add_scatter(
            x=figures[key]["sizes"],
            y=figures[key]["seconds_per_epoch"],
            mode="markers+lines",
            showlegend=False,
            row=1,
            col=column,
        )
        chart.update_xaxes(type="log", row=1, col=column)
        chart.update_yaxes(type="log", title_text="seconds an epoch", row=1, col=column)
    chart.update_layout(height=320, margin={"t": 40})
    st.plotly_chart(chart, key="tour_scaling")
    provenance(results)


STEPS = (
    Step(
        "Published results",
        "Does deepgen reproduce what the papers report?",
        reproduction,
        ("hinton2006", "rbm_likelihood"),
    ),
    Step(
        "Generation after fine-tuning",
        "Does fine-tuning on labels cost a DBN its ability to generate?",
        generation,
        ("generation_before_after",),
    ),
    Step(
        "Which layer",
        "Why classify from the last hidden layer only?",
        which_layer,
        ("svm_on_units",),
    ),
    Step(
        "Units instead of fine-tuning",
        "Can an SVM on units from several layers, with the weights unchanged, "
        "match fine-tuning?",
        subsets,
        ("svm_on_units",),
    ),
    Step(
        "Cost",
        "How does training time grow with the net and the data?",
        cost,
        ("scaling",),
    ),
)
