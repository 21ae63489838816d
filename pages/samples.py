"""Samples: what the pretrained and fine-tuned stages generate, side by side."""

import streamlit as st

from deepgen_app import context, samples_view, ui

context.start_page()
st.title("Samples")
ui.intro(
    "A DBN generates by running a Gibbs chain in its top RBM and passing the result "
    "down to pixels. Both stages below start from the same random seed, so any "
    "difference comes from the weights. A reference classifier trained on real "
    "digits judges the samples: does it see the requested digit, are all digits "
    "produced, and how far are the samples from the nearest training image?"
)

chosen = ui.require_stage()
if chosen is None:
    st.stop()
run, _ = chosen
data = ui.page_data(run)
stages = run.stages()
before, after = samples_view.stage_pickers(run)
dbn, _, _ = context.model_and_sizes(run, stages[0])

left, middle, right, last = st.columns(4)
label_options = ["free-running", *range(dbn.n_labels)]
label = left.selectbox(
    "Label",
    label_options,
    key="sample_label",
    help="Clamp the top RBM's label units to one class; free-running lets them "
    "move. Only nets trained with label units can generate a chosen class.",
)
label = None if label == "free-running" else int(label)
n_samples = middle.select_slider(
    "Samples per stage", [16, 36, 64, 100], 64, key="n_samples"
)
steps = right.select_slider(
    "Chain length",
    [1, 10, 50, 100, 200, 500, 1000],
    200,
    key="chain_steps",
    help="Gibbs steps in the top RBM before the down-pass.",
)
seed = last.number_input("Seed", 0, 10_000, 0, key="sample_seed")
if dbn.n_labels == 0:
    st.caption("This net has no label units, so its chains run free.")

columns = st.columns(2)
results = {}
for column, stage in zip(columns, (before, after)):
    with column:
        st.markdown(f"#### {stage}")
        if stage not in stages:
            samples_view.missing_stage(run)
            continue
        with ui.reported_errors(f"sample from the {stage} stage"):
            results[stage] = samples_view.stage_panel(
                run, stage, n_samples, label, steps, int(seed)
            )

if len(results) == 2 and before != after:
    st.info(samples_view.reading(results[before], results[after], label, after))
    reference = context.reference(run.config.dataset)[1]
    st.caption(
        f"Reference classifier: an MLP ({reference['architecture']}) trained on the "
        f"real training images, {reference['test_accuracy']:.1%} accurate on held-out ones."
    )

st.subheader("Before and after, measured")
with ui.reported_errors("show the stages' measurements"):
    samples_view.evaluation_panel(
        run, [s for s in dict.fromkeys((before, after)) if s in stages]
    )

st.subheader("The chain step by step")
stage = st.radio("Stage", stages, horizontal=True, key="chain_stage")
with ui.reported_errors("show the chain"):
    samples_view.chain_view(run, stage, label, steps, int(seed))
