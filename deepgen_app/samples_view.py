"""The Samples page's parts: sample grids, their figures and the chain view."""

from __future__ import annotations

import streamlit as st

from deepgen_core import jobs
from deepgen_core.images import image_grid
from deepgen_core.operations import sample_run
from deepgen_core.quality import class_probs, describe_difference, sample_quality
from deepgen_core.runs import Run, open_run

from . import context, ui

CHAIN_FRAMES = 10
CHAIN_IMAGES = 16


@st.cache_data(max_entries=32, show_spinner="Running the Gibbs chains")
def generate(
    run_path: str,
    stage: str,
    stamp: float,
    n: int,
    label,
    steps: int,
    seed: int,
    chain_every: int = 0,
):
    """Samples and chain images of one stage; cached per stage file and settings."""
    return sample_run(open_run(run_path), stage, n, label, steps, seed, chain_every)


def stage_panel(
    run: Run, stage: str, n: int, label: int | None, steps: int, seed: int
) -> dict:
    """Draw one stage's grid with its figures; return the figures."""
    stamp = context.stage_stamp(run, stage)
    samples, _ = generate(str(run.path), stage, stamp, n, label, steps, seed)
    data = context.load_data(run.config.dataset)
    if data.image_shape is not None:
        st.image(image_grid(samples, data.image_shape), width="stretch", clamp=True)
    net, _ = context.reference(run.config.dataset)
    probs = class_probs(net, samples)
    figures = sample_quality(samples, probs, data.x_train, label)

    first, second = st.columns(2)
    measure = f"confidence in {label}" if label is not None else "top-class confidence"
    first.metric(
        f"Reference {measure}",
        f"{figures['label_confidence']:.2f}",
        help="Mean probability the reference classifier gives the requested class "
        "(or its most likely class, for free-running chains). 1 is best.",
    )
    second.metric(
        "Classes covered",
        f"{figures['coverage']:.0%}",
        help="Share of the classes that at least one sample is classified as.",
    )
    first.metric(
        "Evenness of classes",
        f"{figures['class_evenness']:.2f}",
        help="Entropy of the predicted classes over its maximum: 1 when every "
        "class appears equally often, 0 when all samples are one class.",
    )
    second.metric(
        "Distance to nearest training image",
        f"{figures['nn_train_distance']:.2f}",
        help="Mean Euclidean distance in pixel space. Near 0 means copies of "
        "training images; very large values mean images unlike any digit.",
    )
    return figures


def reading(before: dict, after: dict, label: int | None) -> str:
    return describe_difference(before, after, label)


def missing_stage(run: Run) -> None:
    """Say that the stage is missing and offer to make it."""
    busy = context.unfinished_job(run)
    if busy is not None:
        wait_for_stage(busy.id)
        return
    st.info(
        "This run has no fine-tuned stage yet. Fine-tuning trains the whole net on "
        "the labels by backpropagation and keeps the pretrained stage."
    )
    if st.button("Fine-tune this run"):
        with ui.reported_errors("start fine-tuning"):
            job = jobs.submit("finetune", {"run": str(run.path)}, context.runs_dir())
            st.success(
                f"Fine-tuning queued as job {job.id}; follow it on the Runs page."
            )


@st.fragment(run_every=1.0)
def wait_for_stage(job_id: int) -> None:
    """Show the job that makes the missing stage; redraw the page when it ends."""
    job = jobs.get(job_id, context.runs_dir())
    if job.state in ("queued", "running"):
        ui.job_status(job)
        return
    st.rerun(scope="app")


def chain_view(run: Run, stage: str, label: int | None, steps: int, seed: int) -> None:
    """Draw a slider over the chain's saved steps and the images at the chosen one."""
    data = context.load_data(run.config.dataset)
    if data.image_shape is None:
        st.caption("This dataset's rows are not images, so the chain is not drawn.")
        return
    every = max(1, steps // CHAIN_FRAMES)
    stamp = context.stage_stamp(run, stage)
    _, chain = generate(
        str(run.path), stage, stamp, CHAIN_IMAGES, label, steps, seed, every
    )
    saved_steps = [s for s in range(1, steps + 1) if s % every == 0 or s == 1]
    step = st.select_slider(
        "Gibbs step", saved_steps, saved_steps[-1], key="chain_step"
    )
    frame = chain[saved_steps.index(step)]
    st.image(
        image_grid(frame, data.image_shape, n_columns=CHAIN_IMAGES), width="stretch"
    )
    st.caption(
        f"{CHAIN_IMAGES} chains of stage {stage} after {step} of {steps} Gibbs steps."
    )
