"""What every page shares: the runs folder, the chosen run and stage, and caches.

The choice of run, stage, unit SPEC and chart parameters lives in
``st.session_state`` (so it survives switching pages) and is mirrored into
the URL's query parameters (so a copied link reopens the same view). Widget
keys are kept apart from these values because Streamlit deletes the state of
a widget that a page does not draw.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import numpy as np
import streamlit as st

from deepgen_core import jobs
from deepgen_core.data import Dataset, load_dataset
from deepgen_core.dbn import DBNModule
from deepgen_core.errors import InputError
from deepgen_core.jobs.kinds import default_runs_dir
from deepgen_core.operations import layer_activations, layer_sizes
from deepgen_core.quality import load_reference
from deepgen_core.runs import PRETRAINED, RUN_NAME, Run, find_runs, open_run

logger = logging.getLogger(__name__)

SHARED_KEYS = {
    "run": None,
    "stage": PRETRAINED,
    "units": "",
    "method": "pca",
    "neighbors": 15,
    "min_dist": 0.1,
    "metric": "euclidean",
}
"""Values mirrored in the URL, with their defaults."""

NUMBER_KEYS = {"neighbors": int, "min_dist": float}


def runs_dir() -> Path:
    """Return the runs folder: ``$DEEPGEN_RUNS_DIR``, else ``runs`` in the working folder."""
    return default_runs_dir().resolve()


_this_run = threading.local()


def mark_run_through_app() -> None:
    """Record that ``app.py`` started this script run (called by ``app.py``)."""
    _this_run.through_app = True


def start_page() -> None:
    """Start a page: keep widget values, and rerun through ``app.py`` if needed.

    Every page calls this first. The rerun is for a page file that Streamlit
    ran on its own: a fresh server that has a ``pages/`` folder treats it as an old-style
    multipage app until some session runs ``st.navigation`` (Streamlit
    1.67). A copied link to a page, opened first after a restart, would then
    run the page file alone, without the sidebar, the worker or the state
    read from the URL. Clearing that mode and rerunning sends the same URL
    through ``app.py``, whose ``st.navigation`` finds the page by its URL path.
    """
    keep_widget_values()
    through_app = getattr(_this_run, "through_app", False)
    _this_run.through_app = False
    if through_app or "run" in st.session_state:
        # A session that already ran app.py has its state; rerunning it here
        # would drop the widget event that started this run.
        return
    from streamlit.runtime.pages_manager import PagesManager

    PagesManager.uses_pages_directory = False
    st.rerun()


# Shared state ----------------------------------------------------------------


def load_shared_state() -> None:
    """Fill session values from the URL on a tab's first run, then write them back.

    Called once per script run by ``app.py``, before the page draws.
    """
    params = st.query_params
    for key, default in SHARED_KEYS.items():
        if key in st.session_state:
            continue
        value = params.get(key, default)
        if key in NUMBER_KEYS and value is not None:
            try:
                value = NUMBER_KEYS[key](value)
            except ValueError:
                value = default
        st.session_state[key] = value
    write_query_params()


def write_query_params() -> None:
    """Mirror the shared values that differ from their defaults into the URL."""
    expected = {
        key: str(st.session_state[key])
        for key, default in SHARED_KEYS.items()
        if st.session_state.get(key) not in (None, "", default)
    }
    if dict(st.query_params) != expected:
        st.query_params.from_dict(expected)


KEPT_WIDGETS = (
    "classifier",
    "svm_c",
    "combine",
    "n_samples",
    "chain_steps",
    "sample_seed",
    "filters_shown",
    "filter_order",
    "top_by",
    "chart_by",
)
"""Widgets whose choices do not depend on the run, kept across page switches."""


def keep_widget_values() -> None:
    """Keep the values of :data:`KEPT_WIDGETS` when their page is not drawn.

    Streamlit deletes a widget's value once a run does not draw it, and writing
    the value back under the same key at the start of each run keeps it.
    """
    for key in KEPT_WIDGETS:
        if key in st.session_state:
            st.session_state[key] = st.session_state[key]


def set_shared(key: str, value) -> None:
    """Change a shared value and the URL with it."""
    st.session_state[key] = value
    write_query_params()


def bound_widget_value(key: str) -> str:
    """Widget key that shows the shared value ``key``, seeded from it."""
    widget_key = f"widget_{key}"
    if widget_key not in st.session_state:
        st.session_state[widget_key] = st.session_state[key]
    return widget_key


def bound(key: str) -> dict:
    """Return the widget arguments that show and update the shared value ``key``."""
    return {
        "key": bound_widget_value(key),
        "on_change": copy_from_widget,
        "args": (key,),
    }


def copy_from_widget(key: str) -> None:
    """Callback that stores a bound widget's value as the shared value."""
    set_shared(key, st.session_state[f"widget_{key}"])


def show_shared_value(key: str, value) -> None:
    """Set a shared value and the widget that shows it, before the widget draws."""
    set_shared(key, value)
    st.session_state[f"widget_{key}"] = value


# The chosen run --------------------------------------------------------------


def current_run() -> Run | None:
    """Return the run named in the shared state, or None when it is unset or gone."""
    name = st.session_state.get("run")
    if not name or not RUN_NAME.match(name):
        # A name from the URL never reaches outside the runs folder.
        return None
    try:
        return open_run(runs_dir() / name)
    except InputError:
        return None


def choose_run(name: str | None, stage: str = PRETRAINED) -> None:
    set_shared("run", name)
    set_shared("stage", stage)


def current_stage(run: Run) -> str | None:
    """Return the chosen stage of ``run``, falling back to its first finished stage."""
    stages = run.stages()
    if not stages:
        return None
    stage = st.session_state.get("stage")
    return stage if stage in stages else stages[0]


def all_runs() -> list[Run]:
    return find_runs(runs_dir())


def stage_stamp(run: Run, stage: str) -> float:
    """Modification time of a stage's weights: part of every cache key."""
    return (run.stage_dir(stage) / "model.safetensors").stat().st_mtime


def unfinished_job(run: Run) -> jobs.Job | None:
    """Return the queued or running job that reads or writes ``run``, if any."""
    path = str(run.path.resolve())
    for job in jobs.list(runs_dir(), ("queued", "running")):
        if path in (job.run_dir, job.params.get("run")):
            return job
    return None


# Caches of heavy objects -------------------------------------------------------


@st.cache_resource(max_entries=8, show_spinner="Loading the model")
def load_stage(run_path: str, stage: str, stamp: float) -> DBNModule:
    return open_run(run_path).load_stage(stage)


@st.cache_resource(max_entries=4, show_spinner="Loading the dataset")
def load_data(name: str) -> Dataset:
    return load_dataset(name)


def run_data(run: Run) -> Dataset:
    """Load the run's dataset; a user file must still match its fingerprint.

    Raises :class:`InputError` when the file changed since the run was
    trained. The check runs again whenever the file's size or time changes.
    """
    if run.config.data_fingerprint is None:
        return load_data(run.config.dataset)
    path = Path(run.config.dataset)
    stat = path.stat() if path.is_file() else None
    stamp = (stat.st_mtime_ns, stat.st_size) if stat else None
    return _checked_data(str(run.path), run.config.dataset, stamp)


@st.cache_resource(max_entries=4, show_spinner="Loading the dataset")
def _checked_data(run_path: str, name: str, stamp: tuple | None) -> Dataset:
    return open_run(run_path).dataset()


@st.cache_resource(max_entries=6, show_spinner="Computing every layer's activations")
def activations(
    run_path: str, stage: str, stamp: float, split: str
) -> list[np.ndarray]:
    """Activations of layers 0..L for a split of the run's dataset."""
    data = run_data(open_run(run_path))
    x = data.x_train if split == "train" else data.x_test
    return layer_activations(load_stage(run_path, stage, stamp), x)


@st.cache_resource(
    show_spinner="Training the reference classifier once for this dataset"
)
def reference(dataset_name: str):
    """Load (training once) the dataset's reference classifier and its description."""
    return load_reference(load_data(dataset_name), runs_dir() / "references")


def model_and_sizes(run: Run, stage: str) -> tuple[DBNModule, list[int], float]:
    stamp = stage_stamp(run, stage)
    dbn = load_stage(str(run.path), stage, stamp)
    return dbn, layer_sizes(dbn), stamp


def environment_flag(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() not in ("0", "false", "no", "off", "")
