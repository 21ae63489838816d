"""The Tour page in AppTest: the stored experiment results, step by step."""

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from deepgen_app.tour_view import results_dir
from experiments.common import RESULTS_DIR
from experiments.common import load_results as load_stored
from experiments.report import EXPERIMENTS

APP = str(Path(__file__).resolve().parents[1] / "app.py")
STEP_COUNT = 5


def open_tour(tmp_path, monkeypatch, results_dir=None) -> AppTest:
    """Run app.py on the Tour page with an empty runs folder and no demo."""
    if results_dir is not None:
        monkeypatch.setenv("DEEPGEN_RESULTS_DIR", str(results_dir))
    monkeypatch.setenv("DEEPGEN_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("DEEPGEN_DEMO", "0")
    app = AppTest.from_file(APP, default_timeout=60)
    app.run()
    app.switch_page("pages/tour.py")
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    return app


@pytest.fixture
def tour(tmp_path, monkeypatch):
    """An AppTest of app.py opened on the Tour page, on the stored results."""
    return open_tour(tmp_path, monkeypatch)


def load_results(name: str) -> dict:
    """The results the page reads: $DEEPGEN_RESULTS_DIR's, else the stored ones."""
    return load_stored(name, results_dir() / name)


def texts(app: AppTest) -> str:
    return "\n".join(m.value for m in [*app.markdown, *app.caption])


def go_next(app: AppTest) -> AppTest:
    [button] = [b for b in app.button if b.label == "Next"]
    button.click().run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def page_links(app: AppTest) -> list[str]:
    return [link.proto.page for link in app.get("page_link")]


def test_every_step_shows_stored_figures(tour):
    hinton = load_results("hinton2006")["figures"]
    assert f"**{hinton['test_error']['backprop']:.2%}**" in texts(tour)
    likelihood = load_results("rbm_likelihood")
    assert likelihood["command"] in texts(tour)

    go_next(tour)
    changes = load_results("generation_before_after")["figures"][
        "change_from_pretrained"
    ]
    backprop = changes["finetuned"]["log_likelihood"]
    assert f"{abs(backprop['mean']):.1f} ± {backprop['stderr']:.1f} nats" in texts(tour)

    go_next(tour)
    svm = load_results("svm_on_units")["figures"]
    for figures in svm.values():
        assert f"{figures['svm']['linear-svm']['all-layers']['accuracy']:.2%}" in texts(
            tour
        )

    go_next(tour)
    for figures in svm.values():
        assert f"fine-tuned net {figures['finetuned_accuracy']:.2%}" in texts(tour)

    go_next(tour)
    scaling = load_results("scaling")["figures"]
    assert f"exponent {scaling['width']['growth_exponent']:.2f}" in texts(tour)
    assert not tour.warning, [w.value for w in tour.warning]
    assert not tour.error, [e.value for e in tour.error]


def test_steps_draw_charts_and_link_to_live_pages(tour):
    seen_links, seen_charts = set(), 0
    for _ in range(STEP_COUNT):
        seen_charts += len(tour.get("plotly_chart"))
        seen_links.update(page_links(tour))
        if tour.button[-1].disabled:
            break
        go_next(tour)
    assert seen_charts >= STEP_COUNT
    for page in ("runs", "units", "projections", "samples"):
        assert any(
            link.endswith(f"{page}.py") or link == page for link in seen_links
        ), (
            page,
            seen_links,
        )


def test_missing_results_name_the_command(tmp_path, monkeypatch):
    app = open_tour(tmp_path, monkeypatch, tmp_path / "results")
    warnings = " ".join(w.value for w in app.warning)
    assert "python -m experiments.hinton2006" in warnings
    assert "python -m experiments.rbm_likelihood" in warnings


def test_damaged_results_are_named(tmp_path, monkeypatch):
    folder = tmp_path / "results" / "hinton2006"
    folder.mkdir(parents=True)
    (folder / "results.json").write_text("{not json")
    app = open_tour(tmp_path, monkeypatch, tmp_path / "results")
    errors = " ".join(e.value for e in app.error)
    assert str(folder / "results.json") in errors
    assert "python -m experiments.hinton2006" in errors


def test_stored_results_exist_for_every_experiment():
    for name in EXPERIMENTS:
        results = json.loads((RESULTS_DIR / name / "results.json").read_text())
        assert results["command"].startswith(f"python -m experiments.{name}")
        assert not results["quick"]


def test_incomplete_results_are_named(tmp_path, monkeypatch):
    folder = tmp_path / "results" / "scaling"
    folder.mkdir(parents=True)
    stored = load_stored("scaling", RESULTS_DIR / "scaling")
    del stored["figures"]["width"]
    (folder / "results.json").write_text(json.dumps(stored))
    app = open_tour(tmp_path, monkeypatch, tmp_path / "results")
    app.radio[0].set_value(app.radio[0].options[-1]).run()
    errors = " ".join(e.value for e in app.error)
    assert str(folder / "results.json") in errors
    assert "python -m experiments.scaling" in errors
    assert not app.exception
