"""Projections: a 2-D map of the chosen units' activations for held-out images."""

import streamlit as st

from deepgen_app import context, projections_view, ui
from deepgen_app.units_view import SELECTED_ROWS
from deepgen_core import jobs
from deepgen_core.embedding import METRICS
from deepgen_core.errors import InputError
from deepgen_core.images import image_grid
from deepgen_core.units import parse_units

context.start_page()
st.title("Projections")
ui.intro(
    "Each dot is one held-out image, placed so that images whose chosen units "
    "respond alike land close together, and coloured by its true digit. Tight, "
    "separate colour clusters mean these units already tell the digits apart. PCA "
    "keeps straight-line distances and is instant; UMAP keeps neighbourhoods and "
    "runs in the background. Hover over a dot to see its image; drag a box to pick images."
)

run, stage, dbn, sizes, stamp, data = ui.page_model()
spec_text = ui.spec_input("Unit SPEC", sizes)
left, middle, right, last = st.columns(4)
left.radio(
    "Method",
    ["pca", "umap"],
    format_func=str.upper,
    horizontal=True,
    **context.bound("method"),
)
middle.number_input(
    "Neighbours",
    2,
    200,
    **context.bound("neighbors"),
    help="UMAP: how many nearby images shape each image's place (default 15).",
)
right.number_input(
    "Minimum distance",
    0.0,
    0.99,
    step=0.05,
    **context.bound("min_dist"),
    help="UMAP: how tightly points may pack (default 0.1).",
)
last.selectbox(
    "Metric",
    METRICS,
    **context.bound("metric"),
    help="UMAP: how the distance between two images' activations is measured.",
)
n_test = len(data.x_test)
n_images = st.slider("Held-out images", 3, n_test, min(2000, n_test), key="n_images")

try:
    spec = parse_units(spec_text, sizes).spec()
except InputError as error:
    st.error(str(error))
    st.stop()

method = st.session_state["method"]
coords = None
failed = True
with ui.reported_errors("project the activations"):
    if method == "pca":
        coords = projections_view.pca_coords(
            str(run.path), stage, stamp, spec, n_images, tuple(sizes)
        )
    else:
        params = projections_view.embed_params(run, stage, spec, n_images)
        coords = projections_view.umap_coords(run, params)
    failed = False


@st.fragment(run_every=0.5)
def embed_progress() -> None:
    job_id = st.session_state.get("embed_job")
    if job_id is None:
        return
    job = jobs.get(job_id, context.runs_dir())
    if job.state in ("queued", "running"):
        st.progress(
            0.5 if job.state == "running" else 0.0,
            text=f"UMAP job {job.id}: {job.state}",
        )
        return
    st.session_state.pop("embed_job")
    if job.state != "done":
        st.session_state["embed_error"] = ui.job_error(job)
    st.rerun(scope="app")


if "embed_error" in st.session_state:
    st.error(
        f"Could not project the activations: {st.session_state.pop('embed_error')}"
    )
if failed:
    st.stop()
if coords is None and method == "umap":
    embed_progress()
    st.info("UMAP is running in the background; the map appears here when it is done.")
    st.stop()
if coords is None:
    st.stop()

labels = data.y_test[:n_images] if data.y_test is not None else None
thumbs = projections_view.thumbnails(run.config.dataset, n_test)
chart, frame = projections_view.scatter(
    coords,
    labels,
    thumbs,
    f"{method.upper()} of {spec} ({stage}), {len(coords)} images",
)
event = st.altair_chart(chart, on_select="rerun", key="projection", width="stretch")

picked = projections_view.rows_in_box(frame, event)
if picked:
    st.markdown(f"**{len(picked)} images in the box**")
    if data.image_shape is not None:
        st.image(
            image_grid(data.x_test[picked[:100]], data.image_shape, n_columns=20),
            width=560,
        )
    if st.button(f"Train the SVM on these {len(picked)} images", type="primary"):
        st.session_state[SELECTED_ROWS] = picked
        st.session_state["use_selected_rows"] = True
        st.switch_page("pages/units.py")
else:
    st.caption("Drag a box on the chart to pick images; they can then train the SVM.")
