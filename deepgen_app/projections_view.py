"""The Projections page's parts: embeddings, thumbnails and the scatter chart."""

from __future__ import annotations

import base64
import io
import time

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st
from PIL import Image

from deepgen_core import jobs
from deepgen_core.embedding import check_projection_input, project
from deepgen_core.errors import InputError
from deepgen_core.jobs.kinds import get_kind
from deepgen_core.operations import embedding_path
from deepgen_core.runs import Run
from deepgen_core.units import parse_units, select_columns

from . import context

WAIT_SECONDS = 30.0


@st.cache_resource(max_entries=2, show_spinner="Drawing thumbnails")
def thumbnails(dataset_name: str, n_images: int) -> list[str] | None:
    """PNG data URLs of the first held-out images, for chart tooltips."""
    data = context.load_data(dataset_name)
    if data.image_shape is None:
        return None
    urls = []
    for row in data.x_test[:n_images]:
        picture = (np.clip(row, 0, 1).reshape(data.image_shape) * 255).astype(np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(picture).resize((56, 56), Image.NEAREST).save(buffer, "PNG")
        urls.append(
            "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
        )
    return urls


def embed_params(run: Run, stage: str, spec: str, n_images: int) -> dict:
    """Checked embed-job parameters for the page's current settings."""
    state = st.session_state
    params = {
        "run": str(run.path),
        "stage": stage,
        "units": spec,
        "split": "test",
        "n_images": n_images,
        "method": state["method"],
        "n_neighbors": int(state["neighbors"]),
        "min_dist": float(state["min_dist"]),
        "metric": state["metric"],
        "seed": 0,
    }
    return get_kind("embed").validate(params)


@st.cache_data(max_entries=16, show_spinner="Projecting with PCA")
def pca_coords(
    run_path: str, stage: str, stamp: float, spec: str, n_images: int, sizes
):
    acts = context.activations(run_path, stage, stamp, "test")
    selection = parse_units(spec, list(sizes))
    return project(select_columns(acts, selection)[:n_images], "pca")


def umap_coords(run: Run, params: dict) -> np.ndarray | None:
    """UMAP coordinates from the run's cache, computed by a worker job if needed.

    Waits up to ``WAIT_SECONDS`` for the job while showing its state, so a
    projection of a few thousand images appears without a second rerun. A
    widget change during the wait interrupts it as usual. Returns None when
    the job is still running, after recording its id for the page to poll.
    """
    path = embedding_path(run, params)
    if not path.exists():
        # Reject what UMAP cannot project here, rather than in a failed job.
        check_projection_input(chosen_activations(run, params))
        job = find_embed_job(params)
        if job is None or job.state in ("failed", "cancelled"):
            job = jobs.submit("embed", params, context.runs_dir())
        job = wait_for_job(job)
        if job.state in ("queued", "running"):
            st.session_state["embed_job"] = job.id
            return None
        if job.state != "done":
            raise InputError(ui_error(job))
    with np.load(path) as archive:
        return archive["coords"]


def chosen_activations(run: Run, params: dict) -> np.ndarray:
    stamp = context.stage_stamp(run, params["stage"])
    acts = context.activations(str(run.path), params["stage"], stamp, "test")
    selection = parse_units(params["units"], [a.shape[1] for a in acts])
    return select_columns(acts, selection)[: params["n_images"]]


def wait_for_job(job: jobs.Job) -> jobs.Job:
    status = st.empty()
    deadline = time.monotonic() + WAIT_SECONDS
    while job.state in ("queued", "running") and time.monotonic() < deadline:
        status.caption(f"UMAP job {job.id} is {job.state}…")
        time.sleep(0.1)
        job = jobs.get(job.id, context.runs_dir())
    status.empty()
    return job


def ui_error(job: jobs.Job) -> str:
    return job.error or f"UMAP job {job.id} ended {job.state}; its log has the details"


def find_embed_job(params: dict) -> jobs.Job | None:
    for job in jobs.list(context.runs_dir()):
        if job.kind == "embed" and job.params == params:
            return job
    return None


def scatter(coords: np.ndarray, labels, thumbs, title: str):
    """Build an Altair scatter of ``coords`` coloured by label, images in the tooltip."""
    frame = pd.DataFrame(
        {"x": coords[:, 0], "y": coords[:, 1], "image_row": np.arange(len(coords))}
    )
    frame["label"] = labels.astype(str) if labels is not None else "unlabelled"
    tooltip = ["label", "image_row"]
    if thumbs is not None:
        # vega-tooltip draws a field named "image" as a picture.
        frame["image"] = thumbs[: len(frame)]
        tooltip.append("image")
    brush = alt.selection_interval(name="brush", encodings=["x", "y"])
    return (
        alt.Chart(frame, title=title)
        .mark_circle(size=18, opacity=0.8)
        .encode(
            x=alt.X("x:Q", axis=alt.Axis(title=None, labels=False, ticks=False)),
            y=alt.Y("y:Q", axis=alt.Axis(title=None, labels=False, ticks=False)),
            color=alt.Color("label:N", scale=alt.Scale(scheme="category10")),
            tooltip=tooltip,
        )
        .add_params(brush)
        .properties(height=520)
    ), frame


def rows_in_box(frame: pd.DataFrame, event) -> list[int]:
    """Rows of ``frame`` inside the box drawn on the chart, if any."""
    box = (event or {}).get("selection", {}).get("brush") or {}
    if "x" not in box or "y" not in box:
        return []
    (x0, x1), (y0, y1) = sorted(box["x"]), sorted(box["y"])
    inside = frame["x"].between(x0, x1) & frame["y"].between(y0, y1)
    return frame.loc[inside, "image_row"].astype(int).tolist()
