"""The Units & SVM page's parts: selection tools, live probes and baselines."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import plotly.express as px
import streamlit as st

from deepgen_core import jobs
from deepgen_core.errors import InputError
from deepgen_core.runs import Run
from deepgen_core.selection import CRITERIA, random_units, score_units, top_units
from deepgen_core.units import parse_units, select_columns

from . import context

LIVE_RBF_LIMIT = 2_000_000
"""Largest training input (rows x units) that an RBF SVM is fitted on in the page.
Larger inputs run as a probe job, so the page stays responsive."""
SELECTED_ROWS = "selected_rows"


def layer_label(layer: int, sizes: list[int]) -> str:
    name = "input pixels" if layer == 0 else f"hidden layer {layer}"
    return f"{layer}: {name} ({sizes[layer]} units)"


def apply_selection(spec: str, sizes: list[int], combine: str) -> None:
    """Replace the current SPEC with ``spec``, or add ``spec`` to it."""
    current = st.session_state.get("units", "")
    if combine == "add" and current.strip():
        try:
            spec = parse_units(f"{current},{spec}", sizes).spec()
        except InputError:
            pass  # the current SPEC is invalid: replace it
    context.show_shared_value("units", spec)


def selection_tools(
    run: Run, stage: str, sizes: list[int], stamp: float, labels: np.ndarray | None
) -> None:
    """Tabs that each build a SPEC: layers, ranges, top-k, random, chart."""
    combine = st.radio(
        "A new choice",
        ["replace", "add"],
        horizontal=True,
        key="combine",
        format_func=lambda value: {
            "replace": "replaces the SPEC",
            "add": "is added to it",
        }[value],
    )
    whole, span, best, draw, chart = st.tabs(
        ["Whole layers", "Index range", "Top-k", "Random k", "From a chart"]
    )
    layers = list(range(len(sizes)))
    hidden = layers[1:]
    with whole:
        chosen = st.multiselect(
            "Layers",
            layers,
            default=hidden[-1:],
            format_func=lambda layer: layer_label(layer, sizes),
        )
        if st.button("Use these layers", disabled=not chosen):
            apply_selection(",".join(f"{layer}:*" for layer in chosen), sizes, combine)
            st.rerun()
    with span:
        layer = st.selectbox(
            "Layer",
            hidden,
            format_func=lambda n: layer_label(n, sizes),
            key="range_layer",
        )
        first, last = st.slider(
            "Units",
            0,
            sizes[layer] - 1,
            (0, min(99, sizes[layer] - 1)),
            key="range_units",
        )
        if st.button("Use this range"):
            apply_selection(f"{layer}:{first}-{last}", sizes, combine)
            st.rerun()
    with best:
        layer = st.selectbox(
            "Layer",
            hidden,
            format_func=lambda n: layer_label(n, sizes),
            key="top_layer",
        )
        criterion = st.selectbox(
            "Ranked by",
            list(CRITERIA),
            format_func=lambda key: CRITERIA[key],
            key="top_by",
        )
        k = st.number_input("k", 1, sizes[layer], min(50, sizes[layer]), key="top_k")
        if st.button("Use the top k"):
            train = context.activations(str(run.path), stage, stamp, "train")
            scores = score_units(train[layer], labels, criterion)
            apply_selection(top_units(layer, scores, int(k), sizes), sizes, combine)
            st.rerun()
    with draw:
        pool = st.multiselect(
            "From layers",
            hidden,
            default=hidden,
            format_func=lambda n: layer_label(n, sizes),
            key="random_layers",
        )
        available = sum(sizes[n] for n in pool) or 1
        k = st.number_input("k", 1, available, min(100, available), key="random_k")
        seed = st.number_input("Seed", 0, 10_000, 0, key="random_seed")
        if st.button("Draw k random units", disabled=not pool):
            apply_selection(
                random_units(pool, int(k), sizes, int(seed)), sizes, combine
            )
            st.rerun()
    with chart:
        chart_selection(run, stage, sizes, stamp, labels, combine)


def chart_selection(run, stage, sizes, stamp, labels, combine) -> None:
    """Draw a bar chart of unit scores whose boxed units can become the SPEC."""
    hidden = list(range(1, len(sizes)))
    layer = st.selectbox(
        "Layer", hidden, format_func=lambda n: layer_label(n, sizes), key="chart_layer"
    )
    criterion = st.selectbox(
        "Bar height",
        list(CRITERIA),
        format_func=lambda key: CRITERIA[key],
        key="chart_by",
    )
    train = context.activations(str(run.path), stage, stamp, "train")
    try:
        scores = score_units(train[layer], labels, criterion)
    except InputError as error:
        st.error(str(error))
        return
    figure = px.bar(
        x=np.arange(sizes[layer]),
        y=scores,
        labels={"x": f"unit of layer {layer}", "y": criterion},
    ).update_layout(height=280, dragmode="select")
    event = st.plotly_chart(
        figure, on_select="rerun", selection_mode=("box", "lasso"), key="unit_chart"
    )
    picked = sorted({int(point["x"]) for point in event.selection.points})
    st.caption(f"{len(picked)} units selected on the chart (drag a box over the bars).")
    if st.button("Use the units selected on the chart", disabled=not picked):
        apply_selection(",".join(f"{layer}:{unit}" for unit in picked), sizes, combine)
        st.rerun()


# Probing ------------------------------------------------------------------------


def probe_data(run: Run, stage: str, stamp: float, spec: str, sizes: list[int]):
    """Training and held-out features and labels for ``spec``.

    With images chosen on the Projections page, only those held-out images
    are used: every other one trains the classifier, the rest test it.
    """
    selection = parse_units(spec, sizes)
    data = context.run_data(run)
    if data.y_train is None or data.y_test is None:
        raise InputError(f"dataset {data.name} has no labels to train a classifier on")
    test = select_columns(
        context.activations(str(run.path), stage, stamp, "test"), selection
    )
    rows = st.session_state.get(SELECTED_ROWS)
    if st.session_state.get("use_selected_rows") and rows:
        rows = np.asarray(rows)
        return (
            test[rows[::2]],
            data.y_test[rows[::2]],
            test[rows[1::2]],
            data.y_test[rows[1::2]],
        )
    train = select_columns(
        context.activations(str(run.path), stage, stamp, "train"), selection
    )
    return train, data.y_train, test, data.y_test


def runs_as_job(classifier: str, n_rows: int, n_units: int) -> bool:
    return classifier == "rbf-svm" and n_rows * n_units > LIVE_RBF_LIMIT


def probe_params(run: Run, stage: str, spec: str, classifier: str, c: float) -> dict:
    return {
        "run": str(run.path),
        "stage": stage,
        "units": spec,
        "classifier": classifier,
        "C": c,
    }


def find_probe(params: dict, stamp: float) -> jobs.Job | None:
    """Return a probe job with these parameters, newer than the stage, not failed."""
    checked = {**params, "run": str(Path(params["run"]).expanduser().resolve())}
    for job in jobs.list(context.runs_dir()):
        if job.kind != "probe" or job.params != checked or job.created < stamp:
            continue
        if job.state in ("queued", "running", "done"):
            return job
    return None


def submit_probe(params: dict, stamp: float) -> jobs.Job:
    """Return the probe job for ``params``: an earlier one if any, else a new one."""
    return find_probe(params, stamp) or jobs.submit("probe", params, context.runs_dir())


def confusion_figure(result: dict):
    return (
        px.imshow(
            np.asarray(result["confusion"]),
            x=[str(c) for c in result["classes"]],
            y=[str(c) for c in result["classes"]],
            labels={"x": "predicted", "y": "true", "color": "images"},
            text_auto=True,
            color_continuous_scale="Blues",
        )
        .update_layout(height=380, title="Confusion matrix (held-out images)")
        .update_xaxes(type="category")
        .update_yaxes(type="category")
    )


def record(result: dict, spec: str, stage: str, run: Run, images: str) -> None:
    """Add a probe result to this tab's history table."""
    st.session_state.setdefault("history", []).append(
        {
            "run": run.name,
            "stage": stage,
            "units": spec,
            "n_units": result["n_units"],
            "classifier": result["classifier"],
            "C": result["C"],
            "images": images,
            "accuracy": round(result["accuracy"], 4),
            "fit_seconds": result["fit_seconds"],
        }
    )


def baseline_specs(sizes: list[int], n_units: int) -> dict[str, str]:
    """Return the SPECs that every selection is compared with, by name."""
    top = len(sizes) - 1
    hidden = list(range(1, len(sizes)))
    specs = {
        "last hidden layer": f"{top}:*",
        "all hidden layers": ",".join(f"{layer}:*" for layer in hidden),
        "raw pixels": "0:*",
    }
    total = sum(sizes[1:])
    if 1 <= n_units <= total:
        specs[f"random {n_units} hidden units"] = random_units(
            hidden, n_units, sizes, 0
        )
    return specs
