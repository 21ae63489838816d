"""Tour: the stored experiment results, walked through as five questions."""

import streamlit as st

from deepgen_app import context, tour_view, ui

context.start_page()
st.title("Tour")
ui.intro(
    "Five questions people ask about Deep Belief Nets, answered with results "
    "measured by deepgen's experiments and stored with the app, so nothing is "
    "trained here. Each step links to the page where you can try it on your "
    "own run."
)

titles = [f"{i}. {step.title}" for i, step in enumerate(tour_view.STEPS, start=1)]
if "tour_step" not in st.session_state:
    st.session_state.tour_step = titles[0]
choice = st.radio("Step", titles, horizontal=True, key="tour_step")
index = titles.index(choice)
step = tour_view.STEPS[index]
st.subheader(step.question)
with ui.reported_errors(f"show the step {step.title!r}"):
    tour_view.draw_step(step)


def go_to(position: int) -> None:
    st.session_state.tour_step = titles[position]


previous, following, _ = st.columns([1, 1, 6])
previous.button("Previous", disabled=index == 0, on_click=go_to, args=(index - 1,))
following.button(
    "Next", disabled=index == len(titles) - 1, on_click=go_to, args=(index + 1,)
)
