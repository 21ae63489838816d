"""Units & SVM: pick hidden units from any layers and train a classifier on them."""

import pandas as pd
import plotly.express as px
import streamlit as st

from deepgen_app import context, ui, units_view
from deepgen_core import jobs
from deepgen_core.errors import InputError
from deepgen_core.operations import CLASSIFIERS, DEFAULT_C, probe_features
from deepgen_core.units import parse_units

context.start_page()
st.title("Units & SVM")
ui.intro(
    "Does a simple classifier on a few hidden units, read without changing any "
    "weight, recognise digits as well as fine-tuning does? Choose units from any "
    "layers (layer 0 is the raw pixels), train a support vector machine on their "
    "activations, and compare its held-out accuracy with the baselines below."
)

run, stage, dbn, sizes, stamp, data = ui.page_model()
st.caption(
    f"Run **{run.name}**, stage **{stage}**: layers "
    + ", ".join(units_view.layer_label(n, sizes) for n in range(len(sizes)))
)

# The first classifier needs the training split's activations; computing them
# now keeps that first click as quick as the next ones.
context.activations(str(run.path), stage, stamp, "train")

st.subheader("1. Choose units")
units_view.selection_tools(run, stage, sizes, stamp, data.y_train)
spec_text = ui.spec_input("Unit SPEC (editable)", sizes)
try:
    selection = parse_units(spec_text, sizes)
except InputError as error:
    selection = None
    st.error(str(error))
else:
    per_layer = ", ".join(
        f"{len(units)} from layer {layer}" for layer, units in selection.items()
    )
    st.caption(f"{selection.n_units} units: {per_layer}.")

st.subheader("2. Train a classifier")
left, middle, right = st.columns(3)
classifier = left.radio(
    "Classifier",
    CLASSIFIERS,
    format_func={"linear-svm": "Linear SVM", "rbf-svm": "RBF SVM"}.get,
    horizontal=True,
    key="classifier",
)
c = middle.number_input(
    "C",
    min_value=1e-4,
    max_value=1e4,
    value=DEFAULT_C,
    format="%.4f",
    key="svm_c",
    help="Inverse regularisation strength; larger C fits the training images harder.",
)
rows = st.session_state.get(units_view.SELECTED_ROWS) or []
right.checkbox(
    f"Only the {len(rows)} images chosen on Projections",
    key="use_selected_rows",
    disabled=not rows,
    help="Every other chosen image trains the classifier; the rest test it.",
)
images = (
    f"{len(rows)} chosen"
    if st.session_state.get("use_selected_rows") and rows
    else "all"
)

if st.button("Train classifier", type="primary", disabled=selection is None):
    with ui.reported_errors("train the classifier"):
        spec = selection.spec()
        train, y_train, test, y_test = units_view.probe_data(
            run, stage, stamp, spec, sizes
        )
        if (
            units_view.runs_as_job(classifier, len(train), train.shape[1])
            and images == "all"
        ):
            params = units_view.probe_params(run, stage, spec, classifier, float(c))
            st.session_state["probe_job"] = units_view.submit_probe(params, stamp).id
            st.session_state.pop("probe_result", None)
        else:
            with st.spinner("Training the classifier"):
                result = probe_features(
                    train, y_train, test, y_test, classifier, float(c)
                )
            result.update(spec=spec, stage=stage, run=run.name)
            st.session_state["probe_result"] = result
            st.session_state.pop("probe_job", None)
            units_view.record(result, spec, stage, run, images)


# Fragments poll only while there is something to wait for: a timer that
# fires every second also competes with the live classifier for the CPU.
@st.fragment(run_every=1.0 if "probe_job" in st.session_state else None)
def probe_job_progress() -> None:
    job_id = st.session_state.get("probe_job")
    if job_id is None:
        return
    job = jobs.get(job_id, context.runs_dir())
    if job.state in ("queued", "running"):
        ui.job_status(job)
        st.caption("A large RBF SVM runs in the background; this page stays usable.")
        return
    st.session_state.pop("probe_job")
    if job.state == "done":
        result = dict(job.result)
        result["run"] = run.name
        st.session_state["probe_result"] = result
        units_view.record(result, result["spec"], stage, run, "all")
    else:
        st.session_state["probe_error"] = ui.job_error(job)
    st.rerun(scope="app")


probe_job_progress()
if "probe_error" in st.session_state:
    st.error(f"The classifier job failed: {st.session_state.pop('probe_error')}")

result = st.session_state.get("probe_result")
if result is not None:
    figures, matrix = st.columns([1, 2])
    figures.metric("Held-out accuracy", f"{result['accuracy']:.2%}")
    figures.metric("Units", result["n_units"])
    figures.metric("Training time", f"{result['fit_seconds']:.2f} s")
    figures.caption(
        f"{result['classifier']} with C = {result['C']:g} on `{result['spec']}` of stage "
        f"{result['stage']}: {result['n_train']} training and {result['n_test']} "
        "held-out images."
    )
    matrix.plotly_chart(units_view.confusion_figure(result), width="stretch")

st.subheader("3. Baselines")
st.caption(
    "The same classifier on standard inputs, computed once in the background and "
    "kept: the last hidden layer alone (the usual choice), all hidden layers, the "
    "raw pixels, and a random subset of hidden units as large as your selection."
)
n_units = selection.n_units if selection is not None else 0
baseline_specs = units_view.baseline_specs(sizes, n_units)
if st.button("Compute baselines"):
    with ui.reported_errors("start the baselines"):
        for spec in baseline_specs.values():
            params = units_view.probe_params(run, stage, spec, classifier, float(c))
            units_view.submit_probe(params, stamp)


def baseline_jobs() -> dict:
    found = {}
    for name, spec in baseline_specs.items():
        params = units_view.probe_params(run, stage, spec, classifier, float(c))
        job = units_view.find_probe(params, stamp)
        if job is not None:
            found[name] = job
    return found


baselines_pending = any(job.state != "done" for job in baseline_jobs().values())


@st.fragment(run_every=1.0 if baselines_pending else None)
def baselines() -> None:
    rows, waiting = [], False
    for name, job in baseline_jobs().items():
        done = job.state == "done"
        waiting |= not done
        rows.append(
            {
                "input": name,
                "units": job.params["units"],
                "accuracy": job.result["accuracy"] if done else None,
                "state": job.state,
            }
        )
    if baselines_pending and not waiting:
        st.rerun(scope="app")  # all done: redraw without the timer
    if result is not None and result["classifier"] == classifier:
        rows.append(
            {
                "input": "your selection",
                "units": result["spec"],
                "accuracy": result["accuracy"],
                "state": "done",
            }
        )
    if not rows:
        st.caption("Press *Compute baselines* to fill this table.")
        return
    table = pd.DataFrame(rows)
    st.dataframe(table, hide_index=True, width="stretch")
    finished = table.dropna(subset=["accuracy"])
    if len(finished):
        st.plotly_chart(
            px.bar(
                finished,
                x="input",
                y="accuracy",
                text_auto=".2%",
                range_y=[max(0.0, finished["accuracy"].min() - 0.05), 1.0],
            ).update_layout(height=300),
            width="stretch",
        )
    if waiting:
        st.caption("Baselines still running…")


baselines()

st.subheader("History")
history = st.session_state.get("history", [])
if history:
    frame = pd.DataFrame(history)
    st.dataframe(frame, hide_index=True, width="stretch")
    st.download_button(
        "Download as CSV", frame.to_csv(index=False), "unit-subsets.csv", "text/csv"
    )
else:
    st.caption("Every subset you train a classifier on is listed here.")
