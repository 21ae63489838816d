"""Measure the app's response times in a real browser against a real server.

Run from the repository root (needs /usr/bin/chromium)::

    python bench/dashboard.py              # about 2 minutes on 2 cores
    python bench/dashboard.py --repeats 9  # more widget changes

It trains a 784-500-500 DBN on mnist-10k for one epoch per layer into a
temporary runs folder, starts ``streamlit run app.py`` on 127.0.0.1, and
drives headless Chromium with Playwright. Each figure is printed beside its
target:

- first render: from opening the page until the Runs heading shows, once on
  a fresh server (cold: the script imports torch) and once more in a new
  browser tab (warm); target under 3 s;
- widget change: editing the unit SPEC on Units & SVM until the unit count
  below it updates, on cached activations. The figure is the median of
  ``--repeats`` edits; target under 300 ms;
- linear SVM on 1,000 units (``1:*,2:*``): from the click until the accuracy
  shows, for the first click and for a repeat with another C; target under 2 s;
- UMAP of the 2,000 held-out images with the worker's warm process ready:
  from opening the page until the chart shows; target under 5 s.

Times are wall-clock times seen by the browser, so they include Streamlit's
websocket round trip and drawing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

from deepgen_app.server import (
    CHROMIUM_ARGS,
    free_port,
    start_server,
    stop_server,
    wait_until_ready,
)
from deepgen_core import jobs
from deepgen_core.dbn import DBNConfig
from deepgen_core.operations import train_run
from deepgen_core.runs import RunConfig
from deepgen_core.training import RBMTrainingConfig

TIMEOUT_MS = 180_000


def train_bench_run(runs_dir: Path) -> None:
    rbm = RBMTrainingConfig(epochs=1)
    config = RunConfig("mnist-10k", DBNConfig([500, 500], rbm=rbm), "cpu")
    train_run(str(runs_dir / "bench"), config)


def warm_up_worker(runs_dir: Path) -> float:
    """Run one small UMAP job, so the worker's warm process is up and compiled."""
    params = {
        "run": str(runs_dir / "bench"),
        "units": "1:0-9",
        "method": "umap",
        "n_images": 100,
    }
    job = jobs.submit("embed", params, runs_dir)
    started = time.perf_counter()
    finished = jobs.wait(job.id, timeout=300, runs_dir=runs_dir)
    if finished.state != "done":
        raise RuntimeError(
            f"the warm-up UMAP job ended {finished.state}: {finished.error}"
        )
    return time.perf_counter() - started


def timed(action, until) -> float:
    started = time.perf_counter()
    action()
    until()
    return time.perf_counter() - started


def measure(browser, url: str, runs_dir: Path, repeats: int) -> dict[str, float]:
    figures = {}
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(TIMEOUT_MS)
    heading = page.get_by_role("heading", name="Runs", exact=True)
    figures["first render, cold"] = timed(lambda: page.goto(url), heading.wait_for)
    second = browser.new_page()
    second.set_default_timeout(TIMEOUT_MS)
    figures["first render, warm"] = timed(
        lambda: second.goto(url),
        second.get_by_role("heading", name="Runs", exact=True).wait_for,
    )

    # The worker compiles UMAP when it starts, which loads both cores for a
    # while; the figures below are for a server that has settled.
    print(f"  warm-up UMAP job took {warm_up_worker(runs_dir):.1f} s")
    page.goto(f"{url}/units?run=bench&units=2:*")
    spec = page.get_by_role("textbox", name="Unit SPEC (editable)")
    page.get_by_text("500 units: 500 from layer 2.").wait_for()
    changes = []
    for index in range(repeats):
        text, caption = (
            ("1:0-99", "100 units: 100 from layer 1.")
            if index % 2 == 0
            else ("2:*", "500 units: 500 from layer 2.")
        )

        def edit(text=text):
            spec.fill(text)
            spec.press("Enter")

        changes.append(timed(edit, page.get_by_text(caption).wait_for))
    figures["widget change (median)"] = statistics.median(changes)

    spec.fill("1:*,2:*")
    spec.press("Enter")
    page.get_by_text("1000 units: 500 from layer 1, 500 from layer 2.").wait_for()
    accuracy = page.locator('[data-testid="stMetricValue"]').first
    button = page.get_by_role("button", name="Train classifier")
    figures["linear SVM, 1000 units, first"] = timed(button.click, accuracy.wait_for)
    fit = page.locator('[data-testid="stMetricValue"]').nth(2)
    print(f"  accuracy shown: {accuracy.inner_text()}, fit {fit.inner_text()}")

    # Again with another C: the activations are cached and torch is warm.
    c_box = page.get_by_role("spinbutton", name="C", exact=True)
    c_box.fill("0.2")
    c_box.press("Enter")
    time.sleep(1)
    figures["linear SVM, 1000 units, repeat"] = timed(
        button.click, page.get_by_text("with C = 0.2 on").wait_for
    )
    print(f"  repeat fit {fit.inner_text()}")

    chart = page.locator('[data-testid="stVegaLiteChart"]').first
    try:
        figures["UMAP, 2000 images, warm worker"] = timed(
            lambda: page.goto(f"{url}/projections?run=bench&units=2:*&method=umap"),
            chart.wait_for,
        )
    finally:
        for job in jobs.list(runs_dir):
            if job.kind == "embed" and job.params.get("n_images") == 2000:
                print(
                    f"  UMAP job: queued {job.started - job.created:.2f} s, "
                    f"ran {job.finished - job.started:.2f} s"
                )
    return figures


TARGETS = {
    "first render, cold": 3.0,
    "first render, warm": 3.0,
    "widget change (median)": 0.3,
    "linear SVM, 1000 units, first": 2.0,
    "linear SVM, 1000 units, repeat": 2.0,
    "UMAP, 2000 images, warm worker": 5.0,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="widget changes timed")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        runs_dir = Path(folder) / "runs"
        started = time.perf_counter()
        train_bench_run(runs_dir)
        print(
            f"trained 784-500-500 for 1 epoch in {time.perf_counter() - started:.1f} s"
        )
        port = free_port()
        with open(Path(folder) / "server.log", "wb") as log:
            server = start_server(runs_dir, port, log=log)
            try:
                print(f"server ready in {wait_until_ready(port, server):.1f} s")
                with sync_playwright() as driver:
                    browser = driver.chromium.launch(
                        executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS
                    )
                    figures = measure(
                        browser, f"http://127.0.0.1:{port}", runs_dir, args.repeats
                    )
                    browser.close()
            finally:
                stop_server(server)

    failed = 0
    print(f"{'figure':34} {'seconds':>8} {'target':>7} {'ratio':>6}")
    for name, seconds in figures.items():
        target = TARGETS[name]
        failed += seconds > target
        print(f"{name:34} {seconds:8.3f} {target:7.1f} {seconds / target:6.2f}")
    print(f"{len(figures) - failed} of {len(figures)} figures within target")
    return 0


if __name__ == "__main__":
    sys.exit(main())
