"""deepgen in the browser: `streamlit run app.py`.

Starts the background worker and, in an empty runs folder, a small demo run,
then shows the pages. Set DEEPGEN_RUNS_DIR to use another runs folder and
DEEPGEN_DEMO=0 to skip the demo run.
"""

import logging

import streamlit as st

from deepgen_app import context, presets, ui
from deepgen_core.errors import InputError

logging.basicConfig(level=logging.INFO)

st.set_page_config(page_title="deepgen", layout="wide")


@st.cache_resource(show_spinner=False)
def start_services(runs_dir: str) -> None:
    """Start the worker and queue the demo run, once per server process."""
    ui.start_worker(runs_dir)
    if context.environment_flag("DEEPGEN_DEMO", True):
        try:
            presets.start_demo(context.runs_dir())
        except InputError as error:
            logging.getLogger(__name__).error("demo run not started: %s", error)


context.mark_run_through_app()
start_services(str(context.runs_dir()))
context.load_shared_state()
if context.current_run() is None and not st.session_state.get("run"):
    runs = context.all_runs()
    if runs:
        context.choose_run(runs[0].name)

navigation = st.navigation(
    [
        st.Page("pages/runs.py", title="Runs", icon=":material/list:", default=True),
        st.Page("pages/units.py", title="Units & SVM", icon=":material/tune:"),
        st.Page(
            "pages/projections.py", title="Projections", icon=":material/scatter_plot:"
        ),
        st.Page("pages/samples.py", title="Samples", icon=":material/casino:"),
        st.Page("pages/filters.py", title="Filters", icon=":material/grid_view:"),
        st.Page("pages/tour.py", title="Tour", icon=":material/school:"),
    ]
)
ui.sidebar()
navigation.run()
