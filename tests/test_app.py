"""The Streamlit app, page by page, with AppTest against real runs and a real worker."""

import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from deepgen_core import jobs
from deepgen_core.dbn import DBNConfig
from deepgen_core.evaluation import (
    FIGURE_NAMES,
    describe_change,
    evaluate_run,
    figure_rows,
)
from deepgen_core.filters import receptive_fields
from deepgen_core.finetune import FinetuneConfig, HeadConfig
from deepgen_core.operations import (
    finetune_run,
    layer_activations,
    probe_run,
    train_run,
)
from deepgen_core.quality import class_probs, load_reference, sample_quality
from deepgen_core.runs import FINETUNED, PRETRAINED, RunConfig, open_run
from deepgen_core.selection import score_units, top_units
from deepgen_core.training import RBMTrainingConfig
from deepgen_core.units import GRAMMAR

APP = str(Path(__file__).resolve().parents[1] / "app.py")


@pytest.fixture(scope="session")
def app_runs(tmp_path_factory) -> Path:
    """A runs folder with one small label DBN, pretrained and fine-tuned."""
    runs_dir = tmp_path_factory.mktemp("app") / "runs"
    rbm = RBMTrainingConfig(epochs=2)
    config = RunConfig("mnist-10k", DBNConfig([64, 32], labels=True, rbm=rbm), "cpu")
    run = train_run(str(runs_dir / "tiny"), config)
    finetune_run(run, FinetuneConfig(epochs=3, patience=3))
    return runs_dir


@pytest.fixture
def app(app_runs, monkeypatch):
    """An AppTest of app.py on ``app_runs`` with run "tiny" chosen."""
    monkeypatch.setenv("DEEPGEN_RUNS_DIR", str(app_runs))
    monkeypatch.setenv("DEEPGEN_DEMO", "0")
    test = AppTest.from_file(APP, default_timeout=120)
    test.query_params["run"] = "tiny"
    return test


def open_page(app: AppTest, page: str) -> AppTest:
    app.run()
    app.switch_page(f"pages/{page}.py")
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def click(app: AppTest, label: str) -> AppTest:
    labels = [button.label for button in app.button]
    assert label in labels, labels
    app.button[labels.index(label)].click().run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def metrics(app: AppTest) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for metric in app.metric:
        values.setdefault(metric.label, []).append(metric.value)
    return values


def rerun_until(app: AppTest, condition, timeout: float = 120) -> AppTest:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        app.run()
        if condition(app):
            return app
        time.sleep(0.5)
    raise AssertionError("the page did not reach the expected state in time")


# Runs ---------------------------------------------------------------------------


def test_runs_page_lists_run_with_figures(app, app_runs):
    open_page(app, "runs")
    table = app.dataframe[0].value
    row = table[table["run"] == "tiny"].iloc[0]
    run = open_run(app_runs / "tiny")
    expected = run.stage_info(FINETUNED)["info"]["test_accuracy"]
    assert row["status"] == "pretrained, finetuned"
    assert row["layers"] == "64-32"
    assert row["fine-tuned accuracy"] == pytest.approx(expected, abs=1e-4)
    assert row["recon error"] == pytest.approx(
        run.metrics()[-1]["recon_error"], abs=1e-4
    )
    assert not [w.value for w in app.warning if "commonest label" in w.value]


def test_runs_page_warns_at_chance(tmp_path, monkeypatch, random_label_npz):
    rbm = RBMTrainingConfig(epochs=1)
    config = RunConfig(str(random_label_npz), DBNConfig([32], rbm=rbm), "cpu")
    run = train_run(str(tmp_path / "runs" / "noise"), config)
    finetune_run(run, HeadConfig())
    warning = run.stage_info("finetuned-head")["info"]["warning"]
    monkeypatch.setenv("DEEPGEN_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("DEEPGEN_DEMO", "0")
    app = AppTest.from_file(APP, default_timeout=120)
    app.query_params["run"] = "noise"
    open_page(app, "runs")
    assert f"Stage finetuned-head: {warning}." in [w.value for w in app.warning]


def test_pages_reject_changed_data_file(tmp_path, monkeypatch, random_label_npz):
    data = tmp_path / "data.npz"
    shutil.copy(random_label_npz, data)
    rbm = RBMTrainingConfig(epochs=1)
    config = RunConfig(str(data), DBNConfig([16], rbm=rbm), "cpu")
    train_run(str(tmp_path / "runs" / "changed"), config)
    with np.load(random_label_npz) as arrays:
        narrow = {key: arrays[key] for key in arrays.files}
    narrow["x_train"], narrow["x_test"] = (
        narrow["x_train"][:, :700],
        narrow["x_test"][:, :700],
    )
    np.savez(data, **narrow)
    monkeypatch.setenv("DEEPGEN_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("DEEPGEN_DEMO", "0")
    app = AppTest.from_file(APP, default_timeout=120)
    app.query_params["run"] = "changed"
    for page in ("units", "samples"):
        open_page(app, page)
        errors = [e.value for e in app.error]
        assert any(
            f"data file {data} changed since the run was trained on it" in e
            for e in errors
        ), errors


def test_first_start_queues_demo_run(tmp_path, monkeypatch):
    runs_dir = tmp_path / "fresh"
    monkeypatch.setenv("DEEPGEN_RUNS_DIR", str(runs_dir))
    monkeypatch.delenv("DEEPGEN_DEMO", raising=False)
    app = AppTest.from_file(APP, default_timeout=120)
    app.run()
    assert not app.exception
    [job] = jobs.list(runs_dir)
    assert job.kind == "train"
    assert job.params["out"] == str((runs_dir / "demo").resolve())
    assert job.params["config"]["dbn"]["layers"] == [256, 256]
    assert job.params["finetune"]["epochs"] == 20
    assert any(f"Job {job.id} · train" in bar.text for bar in app.get("progress"))

    click(app, "Cancel")
    assert jobs.wait(job.id, timeout=60, runs_dir=runs_dir).state == "cancelled"
    app.run()
    assert len(jobs.list(runs_dir)) == 1, "a second start must not queue another demo"


def test_new_run_form_trains_run(app, app_runs):
    open_page(app, "runs")
    app.selectbox(key="preset").set_value("custom").run()
    form = app.get("form")
    assert form, "the new-run form is missing"
    app.text_input[0].set_value("form-run")
    inputs = {widget.label: widget for widget in app.text_input}
    inputs["Hidden layers"].set_value("24")
    numbers = {widget.label: widget for widget in app.number_input}
    numbers["Epochs per layer"].set_value(1)
    boxes = {widget.label: widget for widget in app.checkbox}
    boxes["Fine-tune afterwards"].uncheck()
    [schedule] = [w for w in app.selectbox if w.label == "Learning-rate schedule"]
    assert schedule.value == "constant"
    schedule.set_value("linear")
    click(app, "Start training")
    assert any("queued as job" in message.value for message in app.success)

    [job] = [
        j for j in jobs.list(app_runs) if j.params.get("out", "").endswith("form-run")
    ]
    assert job.params["config"]["dbn"]["layers"] == [24]
    assert job.params["config"]["dbn"]["rbm"]["epochs"] == 1
    assert job.params["config"]["dbn"]["rbm"]["lr_schedule"] == "linear"
    assert "finetune" not in job.params
    assert jobs.wait(job.id, timeout=120, runs_dir=app_runs).state == "done"
    app.run()
    table = app.dataframe[0].value
    assert table[table["run"] == "form-run"].iloc[0]["status"] == "pretrained"


def test_invalid_layers_are_shown_as_error(app, app_runs):
    open_page(app, "runs")
    inputs = {widget.label: widget for widget in app.text_input}
    inputs["Hidden layers"].set_value("500,abc")
    click(app, "Start training")
    assert any("hidden layer sizes '500,abc' are invalid" in e.value for e in app.error)
    assert not (app_runs / "quick-1").exists()


def test_rename_then_delete_run(app, app_runs):
    shutil.copytree(app_runs / "tiny", app_runs / "copy")
    open_page(app, "runs")
    app.selectbox(key="manage_run").set_value("copy").run()
    renamed = next(w for w in app.text_input if w.label == "New name")
    renamed.set_value("copy-renamed")
    click(app, "Rename")
    assert (app_runs / "copy-renamed" / "config.json").exists()
    assert not (app_runs / "copy").exists()

    app.selectbox(key="manage_run").set_value("copy-renamed").run()
    click(app, "Delete")
    assert any("Tick the box" in w.value for w in app.warning)
    assert (app_runs / "copy-renamed").exists()
    [box] = [w for w in app.checkbox if w.label.startswith("Yes, delete")]
    box.check()
    click(app, "Delete")
    assert not (app_runs / "copy-renamed").exists()
    assert (app_runs / "tiny").exists()


# Units & SVM --------------------------------------------------------------------


def test_svm_accuracy_matches_core_probe(app, app_runs):
    open_page(app, "units")
    app.text_input(key="widget_units").set_value("1:*").run()
    click(app, "Train classifier")
    expected = probe_run(open_run(app_runs / "tiny"), PRETRAINED, "1:*")
    displayed = metrics(app)
    assert displayed["Held-out accuracy"] == [f"{expected['accuracy']:.2%}"]
    assert displayed["Units"] == ["64"]
    assert app.query_params["units"] == "1:*"
    history = app.dataframe[-1].value
    assert history.iloc[-1]["accuracy"] == pytest.approx(expected["accuracy"], abs=1e-4)


def test_invalid_spec_shows_grammar(app):
    open_page(app, "units")
    app.text_input(key="widget_units").set_value("2:x").run()
    assert any(GRAMMAR in e.value for e in app.error)
    assert next(b for b in app.button if b.label == "Train classifier").disabled


def test_one_class_images_are_refused(app, app_runs):
    data = open_run(app_runs / "tiny").dataset()
    sevens = np.flatnonzero(data.y_test == 7)[:40].tolist()
    app.session_state["selected_rows"] = sevens
    open_page(app, "units")
    app.checkbox(key="use_selected_rows").check().run()
    click(app, "Train classifier")
    assert any("single class" in e.value for e in app.error)
    assert "Held-out accuracy" not in metrics(app)


def test_top_k_selection_ranks_by_anova(app, app_runs):
    open_page(app, "units")
    app.selectbox(key="top_layer").set_value(2)
    app.number_input(key="top_k").set_value(5).run()
    click(app, "Use the top k")
    run = open_run(app_runs / "tiny")
    dbn = run.load_stage(PRETRAINED)
    data = run.dataset()
    scores = score_units(
        layer_activations(dbn, data.x_train)[2], data.y_train, "anova-f"
    )
    expected = top_units(2, scores, 5, [784, 64, 32])
    assert app.text_input(key="widget_units").value == expected
    assert app.query_params["units"] == expected


def test_query_params_restore_selection(app):
    app.query_params["units"] = "1:0-9,2:*"
    open_page(app, "units")
    assert app.text_input(key="widget_units").value == "1:0-9,2:*"
    assert "42 units" in " ".join(c.value for c in app.caption)


def test_large_rbf_svm_runs_as_job(app, app_runs):
    open_page(app, "units")
    app.text_input(key="widget_units").set_value("0:100-499").run()
    app.radio(key="classifier").set_value("rbf-svm").run()
    click(app, "Train classifier")
    assert app.session_state["probe_job"] is not None
    rerun_until(app, lambda a: "Held-out accuracy" in metrics(a), timeout=300)
    expected = probe_run(
        open_run(app_runs / "tiny"), PRETRAINED, "0:100-499", "rbf-svm"
    )
    assert metrics(app)["Held-out accuracy"] == [f"{expected['accuracy']:.2%}"]


# Projections ----------------------------------------------------------------------


def charts(app: AppTest) -> list:
    return app.get("vega_lite_chart")


def test_pca_projection_draws_at_once(app):
    app.query_params["units"] = "2:*"
    open_page(app, "projections")
    assert len(charts(app)) == 1
    app.slider(key="n_images").set_value(3).run()
    assert not app.error
    assert len(charts(app)) == 1


def test_single_constant_unit_gets_message(app, app_runs):
    run = open_run(app_runs / "tiny")
    pixels = run.dataset().x_test[:3]
    dead = int(np.flatnonzero(np.ptp(pixels, axis=0) == 0)[0])
    app.query_params["units"] = f"0:{dead}"
    open_page(app, "projections")
    app.slider(key="n_images").set_value(3).run()
    assert any("nothing to project" in e.value for e in app.error)
    assert not charts(app)


def test_umap_runs_in_worker_and_is_cached(app, app_runs):
    app.query_params["units"] = "2:*"
    app.query_params["method"] = "umap"
    open_page(app, "projections")
    app.slider(key="n_images").set_value(300).run()
    rerun_until(app, lambda a: len(charts(a)) == 1, timeout=300)
    cached = list((app_runs / "tiny" / "embeddings").glob("*.npz"))
    assert cached
    [job] = [
        j
        for j in jobs.list(app_runs)
        if j.kind == "embed" and j.params["n_images"] == 300
    ]
    assert job.state == "done"
    app.run()
    assert len([j for j in jobs.list(app_runs) if j.kind == "embed"]) == len(
        {
            tuple(sorted(j.params.items()))
            for j in jobs.list(app_runs)
            if j.kind == "embed"
        }
    ), "a cached projection must not be computed again"


# Samples ----------------------------------------------------------------------------


def test_samples_show_figures_for_both_stages(app, app_runs):
    open_page(app, "samples")
    app.selectbox(key="sample_label").set_value(3).run()
    displayed = metrics(app)
    run = open_run(app_runs / "tiny")
    dataset = run.dataset()
    net, _ = load_reference(dataset, app_runs / "references")
    from deepgen_core.operations import sample_run

    for column, stage in enumerate((PRETRAINED, FINETUNED)):
        samples, _ = sample_run(run, stage, 64, 3, 200, 0)
        expected = sample_quality(
            samples, class_probs(net, samples), dataset.x_train, 3
        )
        confidence = displayed["Reference confidence in 3"][column]
        assert confidence == f"{expected['label_confidence']:.2f}"
        distance = displayed["Distance to nearest training image"][column]
        assert distance == f"{expected['nn_train_distance']:.2f}"
    assert any(f"{FINETUNED} samples" in i.value for i in app.info)
    assert len(app.get("image")) >= 3  # two grids and the chain


def test_samples_show_saved_measurements(app, app_runs):
    run = open_run(app_runs / "tiny")
    saved = {
        stage: evaluate_run(run, stage, 10, 100, n_samples=50, steps=10)
        for stage in (PRETRAINED, FINETUNED)
    }
    try:
        open_page(app, "samples")
        table = app.dataframe[0].value
        assert list(table["figure"]) == list(FIGURE_NAMES.values())
        for stage, evaluation in saved.items():
            expected = figure_rows(evaluation)
            for row, key in enumerate(FIGURE_NAMES):
                value, error = expected[key]
                assert table[stage][row] == value, (stage, key)
                if error is not None:
                    assert table[f"{stage} ±"][row] == error, (stage, key)
        assert table[PRETRAINED][1] == saved[PRETRAINED]["log_likelihood"]["value"]
        reading = describe_change(saved[PRETRAINED], saved[FINETUNED])
        assert reading in [i.value for i in app.info]
    finally:
        for stage in saved:
            (run.stage_dir(stage) / "evaluation.json").unlink()


def test_samples_offer_to_measure_stages(app, app_runs):
    open_page(app, "samples")
    assert any("Not measured yet: pretrained, finetuned" in i.value for i in app.info)
    click(app, "Measure pretrained, finetuned")
    assert not app.error, [e.value for e in app.error]
    queued = [
        job
        for job in jobs.list(app_runs, ("queued", "running"))
        if job.kind == "evaluate"
    ]
    assert sorted(job.params["stage"] for job in queued) == [FINETUNED, PRETRAINED]
    for job in queued:
        jobs.cancel(job.id, app_runs)
    deadline = time.monotonic() + 60
    while jobs.list(app_runs, ("queued", "running")) and time.monotonic() < deadline:
        time.sleep(0.2)
    run = open_run(app_runs / "tiny")
    for stage in (PRETRAINED, FINETUNED):
        (run.stage_dir(stage) / "evaluation.json").unlink(missing_ok=True)


def test_samples_offer_finetuning_when_stage_missing(app, app_runs, monkeypatch):
    shutil.copytree(
        app_runs / "tiny",
        app_runs / "unfinished",
        ignore=shutil.ignore_patterns("finetuned"),
    )
    app.query_params["run"] = "unfinished"
    open_page(app, "samples")
    assert any("no fine-tuned stage" in i.value for i in app.info)
    assert "Fine-tune this run" in [b.label for b in app.button]
    shutil.rmtree(app_runs / "unfinished")


# Filters ---------------------------------------------------------------------------


def test_filters_show_each_layer(app, app_runs):
    open_page(app, "filters")
    assert not app.error
    order = [c.value for c in app.caption if c.value.startswith("Units in this order")]
    assert order == ["Units in this order: " + ", ".join(map(str, range(30))) + " …"]
    app.selectbox(key="filter_layer").set_value(2).run()
    app.radio(key="filter_order").set_value("weight norm").run()
    fields = receptive_fields(open_run(app_runs / "tiny").load_stage(PRETRAINED), 2)
    strongest = np.argsort(-np.linalg.norm(fields, axis=1), kind="stable")[:30]
    order = [c.value for c in app.caption if c.value.startswith("Units in this order")]
    assert order == ["Units in this order: " + ", ".join(map(str, strongest)) + " …"]
    assert len(app.get("plotly_chart")) == 2  # layers 1 and 2 for the chosen image


def test_missing_run_shows_plain_message(app):
    app.query_params["run"] = "no-such-run"
    open_page(app, "units")
    assert any("There is no run named 'no-such-run'" in i.value for i in app.info)
    assert not app.error


def test_umap_on_constant_unit_submits_nothing(app, app_runs):
    run = open_run(app_runs / "tiny")
    pixels = run.dataset().x_test[:3]
    dead = int(np.flatnonzero(np.ptp(pixels, axis=0) == 0)[0])
    app.query_params["units"] = f"0:{dead}"
    app.query_params["method"] = "umap"
    before = len(jobs.list(app_runs))
    open_page(app, "projections")
    app.slider(key="n_images").set_value(3).run()
    assert any("nothing to project" in e.value for e in app.error)
    assert not any("running in the background" in i.value for i in app.info)
    assert len(jobs.list(app_runs)) == before


def test_run_outside_runs_folder_is_not_opened(app, app_runs, tmp_path):
    outside = tmp_path / "elsewhere"
    shutil.copytree(app_runs / "tiny", outside)
    app.query_params["run"] = "../../" + str(outside).lstrip("/")
    open_page(app, "units")
    assert any("There is no run named" in i.value for i in app.info)
    assert not app.metric
    assert "Run **elsewhere**" not in " ".join(c.value for c in app.caption)


def test_classifier_choice_survives_page_switch(app):
    open_page(app, "units")
    app.radio(key="classifier").set_value("rbf-svm").run()
    app.switch_page("pages/filters.py").run()
    app.switch_page("pages/units.py").run()
    assert app.radio(key="classifier").value == "rbf-svm"


@pytest.mark.parametrize(
    ("progress", "expected"),
    [
        ({}, 0.0),
        (
            {
                "stage": "pretrain",
                "step": 50,
                "total": 100,
                "epoch": 1,
                "n_epochs": 2,
                "layer": 2,
                "n_layers": 2,
            },
            0.625,
        ),
        (
            {"stage": "finetune", "step": 10, "total": 40, "epoch": 3, "n_epochs": 4},
            0.5625,
        ),
    ],
)
def test_fraction_done_counts_layers_and_epochs(progress, expected):
    from deepgen_app.ui import fraction_done

    assert fraction_done(progress) == pytest.approx(expected)


def test_runs_page_finetunes_chosen_method(app, app_runs):
    shutil.copytree(app_runs / "tiny", app_runs / "methods")
    try:
        app.query_params["run"] = "methods"
        open_page(app, "runs")
        app.selectbox(key="finetune_method").set_value("updown").run()
        click(app, "Fine-tune")
        job = next(
            job
            for job in jobs.list(app_runs)
            if job.kind == "finetune" and job.params["run"].endswith("methods")
        )
        assert job.params["method"] == "updown"
        finished = jobs.wait(job.id, timeout=180, runs_dir=app_runs)
        assert finished.state == "done", finished.error
        run = open_run(app_runs / "methods")
        assert "finetuned-updown" in run.stages()
        assert run.stage_info("finetuned-updown")["info"]["method"] == "updown"
        app.run()
        button = next(b for b in app.button if b.label == "Fine-tune")
        assert button.disabled, "the stage exists, so the button must wait"
    finally:
        shutil.rmtree(app_runs / "methods")
