"""Filters: each layer's receptive fields, and every layer's response to one image."""

import math

import numpy as np
import plotly.express as px
import streamlit as st

from deepgen_app import context, ui
from deepgen_core.filters import receptive_fields, scale_each
from deepgen_core.images import image_grid

context.start_page()
st.title("Filters")
ui.intro(
    "A hidden unit's receptive field is the pattern of pixels that drives it "
    "hardest. Layer 1 shows its weights directly: light pixels excite the unit, dark "
    "ones inhibit it. Higher layers are drawn through the product of the weight "
    "matrices below them, a linear view that ignores the sigmoids between layers. "
    "Below, pick an image to see how strongly every unit of every layer responds."
)

run, stage, dbn, sizes, stamp, data = ui.page_model()

left, middle, right = st.columns(3)
layer = left.selectbox(
    "Layer",
    list(range(1, len(sizes))),
    format_func=lambda n: f"hidden layer {n} ({sizes[n]} units)",
    key="filter_layer",
)
n_shown = middle.select_slider(
    "Units shown", [25, 64, 100, 196, 400], 100, key="filters_shown"
)
order = right.radio(
    "Order",
    ["unit index", "weight norm"],
    horizontal=True,
    key="filter_order",
    help="Weight norm puts the units with the strongest input connections first.",
)
with ui.reported_errors("draw the receptive fields"):
    fields = receptive_fields(dbn, layer)
    units = np.arange(len(fields))
    if order == "weight norm":
        units = np.argsort(-np.linalg.norm(fields, axis=1), kind="stable")
    units = units[: min(n_shown, len(units))]
    if data.image_shape is not None:
        st.image(
            image_grid(scale_each(fields[units]), data.image_shape),
            caption=f"{len(units)} receptive fields of layer {layer}, stage {stage}, each scaled to full contrast",
            width=640,
        )
    else:
        st.plotly_chart(
            px.imshow(fields[units], aspect="auto", labels={"x": "input", "y": "unit"}),
            width="stretch",
        )
    st.caption(
        "Units in this order: "
        + ", ".join(str(u) for u in units[:30])
        + (" …" if len(units) > 30 else "")
    )

st.subheader("Activations for one image")
index = st.number_input(
    "Held-out image", 0, len(data.x_test) - 1, 0, key="filter_image"
)
with ui.reported_errors("compute the activations"):
    activations = context.activations(str(run.path), stage, stamp, "test")
    columns = st.columns(len(activations))
    for layer_index, (column, values) in enumerate(zip(columns, activations)):
        row = values[index]
        if layer_index == 0 and data.image_shape is not None:
            column.image(
                image_grid(row[None], data.image_shape),
                width=140,
                caption=f"input, label {data.y_test[index] if data.y_test is not None else '?'}",
            )
            continue
        width = math.ceil(math.sqrt(len(row)))
        padded = np.full(width * width, np.nan)
        padded[: len(row)] = row
        column.plotly_chart(
            px.imshow(
                padded.reshape(width, width),
                zmin=0,
                zmax=1,
                color_continuous_scale="gray",
            )
            .update_layout(
                title=f"layer {layer_index}: mean {row.mean():.2f}",
                height=260,
                coloraxis_showscale=False,
            )
            .update_xaxes(showticklabels=False)
            .update_yaxes(showticklabels=False),
            width="stretch",
            key=f"activation-{layer_index}",
        )
    st.caption(
        "Each square shows one layer's hidden probabilities for this image, one cell "
        "per unit in index order, from 0 (black) to 1 (white)."
    )
