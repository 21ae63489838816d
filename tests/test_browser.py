"""The app in a real headless Chromium, driven by Playwright against a real server.

Needs Debian's chromium at /usr/bin/chromium (`apt-get install -y chromium`);
the test is skipped, with that fix, when it is missing.
"""

from pathlib import Path

import pytest

from deepgen_app.server import (
    CHROMIUM_ARGS,
    free_port,
    start_server,
    stop_server,
    wait_until_ready,
)
from deepgen_app.tour_view import STEPS, results_dir
from deepgen_core import jobs
from deepgen_core.dbn import DBNConfig
from deepgen_core.operations import probe_run, train_run
from deepgen_core.runs import FINETUNED, PRETRAINED, RunConfig, open_run
from deepgen_core.training import RBMTrainingConfig
from experiments.common import load_results

playwright = pytest.importorskip("playwright.sync_api")

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
SPEC = "1:0-15,2:*"
TIMEOUT_MS = 120_000


@pytest.fixture
def runs_dir(tmp_path):
    return tmp_path / "runs"


@pytest.fixture
def server(tmp_path, runs_dir):
    if not CHROMIUM.exists():
        pytest.skip(
            "Chromium not found at /usr/bin/chromium; apt-get install -y chromium"
        )
    port = free_port()
    log = open(tmp_path / "server.log", "wb")  # noqa: SIM115 - closed below
    process = start_server(runs_dir, port, log=log)
    try:
        wait_until_ready(port, process)
        yield f"http://127.0.0.1:{port}", runs_dir
    finally:
        stop_server(process)
        log.close()


@pytest.fixture
def browser():
    with playwright.sync_playwright() as driver:
        chromium = driver.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


def assert_no_traceback(page):
    assert page.locator('[data-testid="stException"]').count() == 0
    assert "Traceback" not in page.content()


def screenshot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / f"{name}.png", full_page=True)


def hover_shows_image(page, chart) -> bool:
    """Move the mouse over a grid of chart positions until a tooltip image shows."""
    box = chart.bounding_box()
    for row in range(2, 19):
        for column in range(2, 19):
            page.mouse.move(
                box["x"] + box["width"] * column / 20,
                box["y"] + box["height"] * row / 20,
            )
            image = page.locator("#vg-tooltip-element img")
            if image.count() and image.first.is_visible():
                source = image.first.get_attribute("src")
                return source.startswith("data:image/png;base64,")
    return False


def open_nav(page, title: str) -> None:
    page.get_by_role("link", name=title).first.click()
    page.get_by_role("heading", name=title, exact=True).wait_for(timeout=TIMEOUT_MS)


def test_user_trains_and_explores_run(server, browser):
    url, runs_dir = server
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(url)
    page.get_by_role("heading", name="Runs", exact=True).wait_for()

    # Train a tiny run with fine-tuning through the form.
    page.get_by_role("textbox", name="Run name", exact=True).fill("browser")
    page.get_by_role("textbox", name="Hidden layers", exact=True).fill("32,16")
    page.get_by_role("spinbutton", name="Epochs per layer", exact=True).fill("1")
    page.get_by_role("spinbutton", name="Fine-tuning epochs", exact=True).fill("2")
    page.get_by_role("button", name="Start training").click()
    page.get_by_text("queued as job").wait_for()
    [job] = jobs.list(runs_dir)
    page.get_by_text(f"Job {job.id} · train").first.wait_for()
    assert jobs.wait(job.id, timeout=300, runs_dir=runs_dir).state == "done"
    run = open_run(runs_dir / "browser")
    assert run.stages() == [PRETRAINED, FINETUNED]
    page.get_by_text("No job is running").wait_for()
    page.get_by_text("Pretraining figures of browser").wait_for()
    assert_no_traceback(page)
    screenshot(page, "runs")

    # Pick units from two layers and train the linear SVM.
    open_nav(page, "Units & SVM")
    spec_box = page.get_by_role("textbox", name="Unit SPEC (editable)")
    spec_box.fill(SPEC)
    spec_box.press("Enter")
    page.get_by_text("32 units: 16 from layer 1, 16 from layer 2.").wait_for()
    page.get_by_role("button", name="Train classifier").click()
    accuracy = page.locator('[data-testid="stMetricValue"]').first
    accuracy.wait_for()
    expected = probe_run(run, PRETRAINED, SPEC)["accuracy"]
    assert accuracy.inner_text() == f"{expected:.2%}"
    assert_no_traceback(page)
    screenshot(page, "units")

    open_nav(page, "Projections")
    chart = page.locator(
        '[data-testid="stVegaLiteChart"] canvas, [data-testid="stVegaLiteChart"] svg'
    )
    chart.first.wait_for()
    page.get_by_text("Drag a box on the chart to pick images").wait_for()
    assert hover_shows_image(page, chart.first)
    assert_no_traceback(page)
    screenshot(page, "projections")

    open_nav(page, "Samples")
    # The sentence comparing both stages is drawn after both panels.
    page.get_by_text("The reference classifier reads the finetuned samples").wait_for()
    assert page.locator('[data-testid="stMetricValue"]').count() == 8
    # Measure both stages in the worker; the page follows the jobs and redraws.
    page.get_by_role("button", name="Measure pretrained, finetuned").click()
    page.get_by_text("pretrained: log-likelihood by exact-lower-bound").wait_for(
        timeout=240_000
    )
    page.get_by_text("finetuned: log-likelihood by exact-lower-bound").wait_for()
    assert open_run(runs_dir / "browser").load_evaluation(FINETUNED) is not None
    assert_no_traceback(page)
    screenshot(page, "samples")

    open_nav(page, "Filters")
    page.get_by_text("Units in this order").wait_for()
    page.get_by_text("Each square shows one layer's hidden probabilities").wait_for()
    assert page.locator('[data-testid="stImage"]').count() >= 2
    assert_no_traceback(page)
    screenshot(page, "filters")

    # A copied link reopens the same selection in a new browser context.
    fresh = browser.new_context().new_page()
    fresh.set_default_timeout(TIMEOUT_MS)
    fresh.goto(f"{url}/units?run=browser&units={SPEC}")
    reopened = fresh.get_by_role("textbox", name="Unit SPEC (editable)")
    reopened.wait_for()
    assert reopened.input_value() == SPEC
    fresh.get_by_text("32 units: 16 from layer 1, 16 from layer 2.").wait_for()
    assert_no_traceback(fresh)


@pytest.fixture
def trained(runs_dir):
    """A run trained before the server starts."""
    config = RunConfig(
        "mnist-10k", DBNConfig([32, 16], rbm=RBMTrainingConfig(epochs=1))
    )
    train_run(str(runs_dir / "early"), config)


def test_link_opened_first_after_restart(trained, server, browser):
    url, _ = server
    page = browser.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(f"{url}/units?run=early&units=1:0-9,2:*")
    spec_box = page.get_by_role("textbox", name="Unit SPEC (editable)")
    spec_box.wait_for()
    assert spec_box.input_value() == "1:0-9,2:*"
    page.get_by_text("26 units: 10 from layer 1, 16 from layer 2.").wait_for()
    # The app's own navigation is shown, not one made from the file names.
    assert page.get_by_role("link", name="Units & SVM").count() == 1
    assert page.get_by_role("link", name="units", exact=True).count() == 0
    assert_no_traceback(page)


def test_upload_checks_dataset(server, browser, tmp_path, small_mnist_npz):
    url, runs_dir = server
    page = browser.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(url)
    page.get_by_text("Upload your own dataset").click()
    uploader = page.locator('[data-testid="stFileUploaderDropzoneInput"]')

    broken = tmp_path / "broken.csv"
    broken.write_text("0.1,0.2,1\n0.3,abc,0\n")
    uploader.set_input_files(broken)
    message = page.get_by_text("Could not use broken.csv")
    message.wait_for()
    assert "abc" in message.inner_text()
    assert not (runs_dir / "uploads" / "broken.csv").exists()

    uploader.set_input_files(small_mnist_npz)
    page.get_by_text("small-mnist.npz: 1000 training and 200 held-out rows").wait_for()
    assert (runs_dir / "uploads" / "small-mnist.npz").read_bytes() == (
        small_mnist_npz.read_bytes()
    )
    assert_no_traceback(page)


def wait_until_idle(page) -> None:
    """Wait until the script run has ended and no element is left over from the last."""
    page.wait_for_function(
        "!document.querySelector('[data-testid=\"stStatusWidgetRunningIcon\"]')"
        " && !document.querySelector('[data-stale=\"true\"]')"
    )


def test_tour_walks_through_stored_results(server, browser):
    url, _ = server
    hinton = load_results("hinton2006", results_dir() / "hinton2006")["figures"]
    scaling = load_results("scaling", results_dir() / "scaling")["figures"]
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(f"{url}/tour")
    page.get_by_role("heading", name="Tour", exact=True).wait_for()
    page.get_by_text(f"{hinton['test_error']['backprop']:.2%}").first.wait_for()
    page.locator(".js-plotly-plot").first.wait_for()
    screenshot(page, "tour-published")
    for step in STEPS[1:]:
        wait_until_idle(page)
        page.get_by_role("button", name="Next").click()
        page.get_by_role("heading", name=step.question).wait_for()
    page.get_by_text(
        f"exponent {scaling['width']['growth_exponent']:.2f}"
    ).first.wait_for()
    playwright.expect(page.get_by_role("button", name="Next")).to_be_disabled()
    page.get_by_role("link", name="Time your own run on the Runs page").click()
    page.get_by_role("heading", name="Runs", exact=True).wait_for()
    assert_no_traceback(page)
