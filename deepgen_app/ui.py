"""Pieces drawn on several pages: the sidebar, help text, errors and job progress."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator

import streamlit as st

from deepgen_core import jobs
from deepgen_core.data import Dataset
from deepgen_core.errors import InputError, TrainingDiverged
from deepgen_core.runs import Run
from deepgen_core.units import GRAMMAR

from . import context

logger = logging.getLogger(__name__)

RUNS_PAGE = "pages/runs.py"
USER_ERRORS = (InputError, TrainingDiverged)


def intro(text: str) -> None:
    """Show the short help a page opens with."""
    st.caption(text)


@contextlib.contextmanager
def reported_errors(action: str) -> Iterator[None]:
    """Show an error raised inside the block with ``st.error``, never a traceback.

    Input errors already name the fix. Anything else is logged with its
    traceback and shown as one plain sentence.
    """
    try:
        yield
    except USER_ERRORS as error:
        st.error(f"Could not {action}: {error}")
    except Exception:
        logger.exception("failed to %s", action)
        st.error(
            f"Could not {action} because of an unexpected error. The server log has "
            "the details; try again, or choose another run."
        )


def sidebar() -> None:
    """Draw the sidebar: the current run and stage, and a link back to the run list."""
    with st.sidebar:
        run = context.current_run()
        if run is None:
            st.markdown("**No run chosen**")
            st.page_link(
                RUNS_PAGE, label="Choose or train a run", icon=":material/list:"
            )
            return
        st.markdown(f"**Run:** `{run.name}`")
        stages = run.stages()
        if stages:
            stage = context.current_stage(run)
            if stage != st.session_state.get("stage"):
                context.set_shared("stage", stage)
            st.radio(
                "Stage",
                stages,
                index=stages.index(stage),
                **context.bound("stage"),
                help="pretrained: after greedy layer-wise training; finetuned: "
                "after backpropagation on the labels.",
            )
        else:
            st.caption("This run has no finished stage yet.")
        st.page_link(RUNS_PAGE, label="All runs", icon=":material/list:")


def require_stage() -> tuple[Run, str] | None:
    """Return the chosen run and stage, or None after telling the user what to do."""
    run = context.current_run()
    name = st.session_state.get("run")
    if run is None and name:
        st.info(
            f"There is no run named {name!r} in {context.runs_dir()}; choose one on "
            "the Runs page."
        )
        st.page_link(RUNS_PAGE, label="Go to the Runs page", icon=":material/list:")
        return None
    if run is None:
        waiting = context.environment_flag("DEEPGEN_DEMO", True) and context.all_runs()
        st.info(
            "Choose a run on the Runs page first, or wait for the demo run."
            if waiting
            else "Choose or train a run on the Runs page first."
        )
        st.page_link(RUNS_PAGE, label="Go to the Runs page", icon=":material/list:")
        return None
    stage = context.current_stage(run)
    if stage is None:
        st.info(
            f"Run {run.name} has no finished stage yet; its progress is on the Runs "
            "page."
        )
        st.page_link(RUNS_PAGE, label="Go to the Runs page", icon=":material/list:")
        return None
    return run, stage


def page_model():
    """Load the chosen run, stage, net, layer sizes, stage time stamp and dataset.

    Stops the page, after telling the user what to do, when there is no run
    with a finished stage.
    """
    chosen = require_stage()
    if chosen is None:
        st.stop()
    run, stage = chosen
    dbn, sizes, stamp = context.model_and_sizes(run, stage)
    return run, stage, dbn, sizes, stamp, page_data(run)


def page_data(run: Run) -> Dataset:
    """Load the run's dataset, or stop the page saying why it cannot be used."""
    try:
        return context.run_data(run)
    except InputError as error:
        st.error(f"Run {run.name} cannot be shown: {str(error).rstrip('.')}.")
        st.stop()


def spec_input(label: str, sizes: list[int]) -> str:
    """Draw the editable unit SPEC, bound to the shared value, and return its text.

    An unset SPEC starts as the whole top hidden layer.
    """
    if not st.session_state.get("units"):
        context.set_shared("units", f"{len(sizes) - 1}:*")
    return st.text_input(
        label,
        **context.bound("units"),
        help=GRAMMAR,
    )


# Job progress ------------------------------------------------------------------


def fraction_done(progress: dict) -> float:
    """Fraction of a job's work done, from its latest progress report."""
    if not progress or not progress.get("total"):
        return 0.0
    # A measurement reports how far it is inside its current part.
    inside = (progress.get("metrics") or {}).get("fraction", 0.0)
    within_epoch = min(progress["step"] + inside, progress["total"]) / progress["total"]
    n_epochs = max(progress.get("n_epochs") or 1, 1)
    epochs_done = (progress.get("epoch", 1) - 1 + within_epoch) / n_epochs
    n_layers = progress.get("n_layers")
    if progress.get("stage") == "pretrain" and n_layers:
        return min(1.0, ((progress["layer"] or 1) - 1 + epochs_done) / n_layers)
    return min(1.0, epochs_done)


def describe_progress(progress: dict) -> str:
    """Describe in one line where a job is: stage, layer, epoch and batch."""
    if not progress:
        return "waiting for the first progress report"
    parts = [progress.get("stage", "working")]
    if progress.get("layer"):
        parts.append(f"layer {progress['layer']} of {progress.get('n_layers')}")
    if progress.get("stage") == "evaluate":
        total = progress.get("total", 0)
        parts.append(f"part {min(progress.get('step', 0) + 1, total)} of {total}")
    else:
        if progress.get("n_epochs"):
            parts.append(f"epoch {progress['epoch']} of {progress['n_epochs']}")
        parts.append(f"batch {progress.get('step', 0)} of {progress.get('total', 0)}")
    if progress.get("message"):
        parts.append(progress["message"])
    return ", ".join(parts)


def time_left(job: jobs.Job) -> str:
    """Estimated time left in the job's current stage, from its recent pace.

    The pace is measured from the first report this browser tab saw of the
    current attempt and stage, so work done before a resume, or in an
    earlier stage, does not count. The estimate assumes the remaining epochs
    take as long as the ones seen, so it is rough while fine-tuning, which
    may stop early.
    """
    fraction = fraction_done(job.progress)
    stage = job.progress.get("stage", "")
    baselines = st.session_state.setdefault("progress_baselines", {})
    now = time.time()
    first_time, first_fraction = baselines.setdefault(
        (job.id, job.started, stage), (now, fraction)
    )
    gained = fraction - first_fraction
    if gained < 0.01 or now - first_time < 2:
        return "estimating time left"
    seconds = (now - first_time) * (1 - fraction) / gained
    then = (
        ", then fine-tuning" if stage == "pretrain" and "finetune" in job.params else ""
    )
    if seconds < 90:
        return f"about {seconds:.0f} s left in this stage{then}"
    return f"about {seconds / 60:.0f} min left in this stage{then}"


def job_status(job: jobs.Job) -> None:
    """Draw a progress bar with its line of text for one unfinished job."""
    label = f"Job {job.id} · {job.kind} · {job.state}"
    if job.state == "queued":
        st.progress(0.0, text=f"{label}: waiting for the worker")
        return
    st.progress(
        fraction_done(job.progress),
        text=f"{label}: {describe_progress(job.progress)} ({time_left(job)})",
    )


def job_error(job: jobs.Job) -> str:
    return job.error or "the job ended without a message; its log has the details"


# Services started once per server -------------------------------------------


@st.cache_resource(show_spinner=False)
def start_worker(runs_dir: str) -> int | None:
    """Start the background worker for ``runs_dir`` once per server process.

    The worker stops when the server process exits. Two jobs may run at once,
    so a projection or probe need not wait for a long training job.
    """
    return jobs.ensure_worker(runs_dir, parent_pid=os.getpid(), max_jobs=2)
