"""The Samples page's parts: sample grids, their figures and the chain view."""

from __future__ import annotations

import streamlit as st

from deepgen_core import jobs
from deepgen_core.evaluation import FIGURE_NAMES, describe_change, figure_rows
from deepgen_core.images import image_grid
from deepgen_core.operations import sample_run
from deepgen_core.quality import class_probs, describe_difference, sample_quality
from deepgen_core.runs import FINETUNED, PRETRAINED, Run, open_run

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
    data = context.run_data(run)
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
        help="Share of the classes that get at least half of an even share of "
        "the samples.",
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


def reading(before: dict, after: dict, label: int | None, after_stage: str) -> str:
    return describe_difference(before, after, label, after_stage)


def stage_pickers(run: Run) -> tuple[str, str]:
    """Draw the two stage choices and return them (before, after).

    "after" defaults to the first fine-tuned stage; a run without one offers
    ``finetuned``, whose column then offers to make it.
    """
    stages = run.stages()
    tuned = [stage for stage in stages if stage != PRETRAINED]
    options = stages if tuned else [*stages, FINETUNED]
    left, right = st.columns(2)
    before = left.selectbox(
        "Before",
        options,
        options.index(PRETRAINED) if PRETRAINED in options else 0,
        key="before_stage",
        help="The stage shown on the left, usually the pretrained one.",
    )
    after = right.selectbox(
        "After",
        options,
        options.index(tuned[0] if tuned else FINETUNED),
        key="after_stage",
        help="The stage shown on the right: finetuned is backprop, finetuned-head "
        "a classifier on frozen units, finetuned-updown the up-down algorithm.",
    )
    return before, after


def evaluation_panel(run: Run, stages: list[str]) -> None:
    """Show each stage's saved measurements side by side, or offer to make them."""
    evaluations = {stage: run.load_evaluation(stage) for stage in stages}
    missing = [stage for stage, figures in evaluations.items() if figures is None]
    busy = [job for job in evaluate_jobs(run) if job.params.get("stage") in missing]
    if busy:
        follow_job(busy[0].id)
    elif missing:
        st.info(
            f"Not measured yet: {', '.join(missing)}. A measurement estimates the "
            "log-likelihood by annealed importance sampling and judges 500 samples; "
            "it runs in the background and can take a few minutes for large nets."
        )
        if st.button(f"Measure {', '.join(missing)}", key="measure_stages"):
            with ui.reported_errors("start the measurement"):
                for stage in missing:
                    jobs.submit(
                        "evaluate",
                        {"run": str(run.path), "stage": stage},
                        context.runs_dir(),
                    )
                st.rerun()
    measured = {stage: f for stage, f in evaluations.items() if f is not None}
    if not measured:
        return
    table = evaluation_table(measured)
    numbers = {
        column: st.column_config.NumberColumn(format="%.4g")
        for column in table.columns
        if column != "figure"
    }
    st.dataframe(table, hide_index=True, width="stretch", column_config=numbers)
    st.plotly_chart(
        evaluation_figure(measured), width="stretch", key="evaluation_chart"
    )
    if len(measured) == 2:
        before, after = measured.values()
        st.info(describe_change(before, after))
    likelihood_notes(measured)


def likelihood_notes(measured: dict[str, dict]) -> None:
    """Say how each stage's log-likelihood was measured, and show its warnings."""
    for stage, figures in measured.items():
        likelihood = figures["log_likelihood"]
        if likelihood.get("value") is None:
            st.caption(f"{stage}: log-likelihood not measured: {likelihood['reason']}")
            continue
        settings = figures["settings"]
        st.caption(
            f"{stage}: log-likelihood by {likelihood['method']} on "
            f"{likelihood['test_images']}; generative model: "
            f"{likelihood['generative_model']}. {settings['ais_runs']} AIS runs, "
            f"{settings['ais_betas']:,} temperatures, {settings['n_samples']} samples "
            f"after {settings['steps']} Gibbs steps, labels "
            f"{settings['labels']}. Error bars are one standard error."
        )
        if likelihood.get("warning"):
            st.warning(f"{stage}: {likelihood['warning']}")


def evaluation_table(measured: dict[str, dict]):
    """Build a table with one row per figure and a value and error column per stage."""
    import pandas as pd

    rows = {stage: figure_rows(figures) for stage, figures in measured.items()}
    table = {"figure": list(FIGURE_NAMES.values())}
    for stage, figures in rows.items():
        table[stage] = [figures[key][0] for key in FIGURE_NAMES]
        table[f"{stage} ±"] = [figures[key][1] for key in FIGURE_NAMES]
    return pd.DataFrame(table)


def evaluation_figure(measured: dict[str, dict]):
    """Small charts, one per figure, each stage a point with its error bar."""
    import plotly.colors
    from plotly.subplots import make_subplots

    names = list(FIGURE_NAMES.values())
    palette = plotly.colors.qualitative.Plotly
    figure = make_subplots(rows=3, cols=3, subplot_titles=names)
    for index, key in enumerate(FIGURE_NAMES):
        for order, (stage, figures) in enumerate(measured.items()):
            value, error = figure_rows(figures)[key]
            if value is None:
                continue
            figure.add_scatter(
                x=[stage],
                y=[value],
                error_y={"type": "data", "array": [error or 0.0]},
                mode="markers",
                marker={"size": 10, "color": palette[order % len(palette)]},
                name=stage,
                legendgroup=stage,
                showlegend=index == 0,
                row=index // 3 + 1,
                col=index % 3 + 1,
            )
    figure.update_layout(height=640, margin={"t": 40, "b": 10})
    return figure


def evaluate_jobs(run: Run) -> list[jobs.Job]:
    """List the queued or running measurement jobs of ``run``."""
    path = str(run.path.resolve())
    return [
        job
        for job in jobs.list(context.runs_dir(), ("queued", "running"))
        if job.kind == "evaluate" and job.params.get("run") == path
    ]


def missing_stage(run: Run) -> None:
    """Say that the stage is missing and offer to make it."""
    path = str(run.path.resolve())
    makers = [
        job
        for job in jobs.list(context.runs_dir(), ("queued", "running"))
        if job.kind in ("train", "finetune")
        and path in (job.run_dir, job.params.get("run"))
    ]
    if makers:
        follow_job(makers[0].id)
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
def follow_job(job_id: int) -> None:
    """Show a queued or running job's progress; redraw the page when it ends."""
    job = jobs.get(job_id, context.runs_dir())
    if job.state in ("queued", "running"):
        ui.job_status(job)
        return
    st.rerun(scope="app")


def chain_view(run: Run, stage: str, label: int | None, steps: int, seed: int) -> None:
    """Draw a slider over the chain's saved steps and the images at the chosen one."""
    data = context.run_data(run)
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
