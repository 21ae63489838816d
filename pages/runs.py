"""Runs: train a DBN, follow its progress, and manage past runs."""

import pandas as pd
import plotly.express as px
import streamlit as st

from deepgen_app import context, runs_view, ui
from deepgen_core import jobs
from deepgen_core.runs import (
    FINETUNE_STAGES,
    PRETRAINED,
    archive_run,
    delete_run,
    rename_run,
)

FINETUNE_METHODS = {
    "backprop": "backprop",
    "head": "classifier head",
    "updown": "up-down",
}

context.start_page()
st.title("Runs")
ui.intro(
    "A run is one Deep Belief Net trained on one dataset. Training runs in the "
    "background, so you can explore other runs while it works. Each run keeps a "
    "*pretrained* stage (greedy layer-by-layer RBM training) and one stage per "
    "fine-tuning method: *finetuned* (backprop), *finetuned-head* and "
    "*finetuned-updown*, so any two can be compared on every page."
)

runs_dir = context.runs_dir()


@st.fragment(run_every=1.0)
def live_jobs() -> None:
    """Progress of unfinished jobs, refreshed every second without a full rerun."""
    unfinished = jobs.list(runs_dir, ("queued", "running"))
    known = set(st.session_state.get("unfinished_jobs", []))
    current = {job.id for job in unfinished}
    st.session_state["unfinished_jobs"] = sorted(current)
    if known - current:
        # A job has finished: redraw the whole page so the table shows it.
        st.rerun(scope="app")
    if not unfinished:
        st.caption("No job is running. Start one below.")
        return
    for job in unfinished:
        with st.container(border=True):
            ui.job_status(job)
            if job.kind == "train" and job.run_dir:
                runs_view.training_curves(job.run_dir, f"job-{job.id}")
            if st.button("Cancel", key=f"cancel-{job.id}"):
                with ui.reported_errors("cancel the job"):
                    jobs.cancel(job.id, runs_dir)
                    st.toast(f"Job {job.id} will stop at its next batch.")


st.subheader("Jobs")
live_jobs()

with st.expander("Train a new run", expanded=not context.all_runs()):
    runs_view.new_run_form(runs_dir)

with st.expander("Upload your own dataset"):
    runs_view.upload_form(runs_dir)

st.subheader("Past runs")
all_runs = context.all_runs()
if not all_runs:
    st.info("No run has finished its first epoch yet; progress is shown above.")
    st.stop()

table = pd.DataFrame([runs_view.run_row(run) for run in all_runs])
st.dataframe(table, hide_index=True, width="stretch")

names = [run.name for run in all_runs]
chosen = st.session_state.get("run")
selected = st.selectbox(
    "Run to open or change",
    names,
    index=names.index(chosen) if chosen in names else 0,
    key="manage_run",
)
run = next(run for run in all_runs if run.name == selected)
busy = context.unfinished_job(run)

open_column, finetune_column, resume_column, download_column = st.columns(4)
if open_column.button("Open", type="primary", help="Make this the current run"):
    context.choose_run(run.name, context.current_stage(run) or PRETRAINED)
    st.switch_page("pages/units.py")

stages = run.stages()
method = finetune_column.selectbox(
    "Fine-tuning method",
    list(FINETUNE_METHODS),
    format_func=FINETUNE_METHODS.get,
    key="finetune_method",
    help="backprop trains the whole net on the labels. A classifier head trains "
    "only a softmax layer on the top hidden layer and leaves the DBN as it was. "
    "Up-down (for nets with label units) fine-tunes the generative model and the "
    "classifier together. Each writes its own stage beside the pretrained one.",
)
target = FINETUNE_STAGES[method]
labelled = run.config.dbn.labels
can_finetune = (
    PRETRAINED in stages
    and target not in stages
    and busy is None
    and (method != "updown" or labelled)
)
if finetune_column.button(
    "Fine-tune",
    disabled=not can_finetune,
    help=f"Write the '{target}' stage; the pretrained stage is kept."
    + ("" if labelled or method != "updown" else " Up-down needs label units."),
):
    with ui.reported_errors("start fine-tuning"):
        job = jobs.submit(
            "finetune", {"run": str(run.path), "method": method}, runs_dir
        )
        st.toast(f"Fine-tuning ({method}) queued as job {job.id}.")
        st.rerun()

stopped = runs_view.stopped_train_job(run)
if resume_column.button(
    "Resume",
    disabled=stopped is None or busy is not None,
    help="Continue a cancelled or failed training from its last checkpoint.",
):
    with ui.reported_errors("resume the training"):
        jobs.resume(stopped.id, runs_dir)
        st.rerun()

if stages:
    download_column.download_button(
        "Download zip",
        data=archive_run(run),
        file_name=f"{run.name}.zip",
        mime="application/zip",
        help="The configuration, figures and every stage's weights (safetensors "
        "and JSON).",
    )

if stopped is not None and stopped.state == "failed":
    st.error(f"The last training job of {run.name} failed: {ui.job_error(stopped)}")

rename_column, delete_column = st.columns(2)
with rename_column.form("rename"):
    new_name = st.text_input("New name", value=run.name)
    if st.form_submit_button("Rename", disabled=busy is not None):
        with ui.reported_errors("rename the run"):
            renamed = rename_run(run, new_name.strip())
            if st.session_state.get("run") == run.name:
                context.choose_run(renamed.name, context.current_stage(renamed))
            st.session_state.pop("manage_run", None)
            st.rerun()

with delete_column.form("delete"):
    confirmed = st.checkbox(f"Yes, delete {run.name} and all its files")
    if st.form_submit_button("Delete", disabled=busy is not None):
        if not confirmed:
            st.warning("Tick the box to confirm; nothing was deleted.")
        else:
            with ui.reported_errors("delete the run"):
                delete_run(run)
                if st.session_state.get("run") == run.name:
                    context.choose_run(None)
                st.session_state.pop("manage_run", None)
                st.rerun()

if busy is not None:
    st.caption(f"Job {busy.id} is writing this run; rename and delete wait for it.")

figures = run.metrics()
if figures:
    st.markdown(f"**Pretraining figures of {run.name}**")
    runs_view.training_curves(str(run.path), "chosen")
    losses = runs_view.finetune_figures(run)
    if losses is not None:
        st.plotly_chart(
            px.line(
                losses,
                x="epoch",
                y="validation_accuracy",
                markers=True,
                title="Fine-tuning: validation accuracy by epoch",
            ),
            width="stretch",
        )
    for stage, warning in runs_view.finetune_warnings(run).items():
        st.warning(f"Stage {stage}: {warning}.")
