"""Draw the README's screenshots of each page into assets/.

Run from the repository root (needs /usr/bin/chromium)::

    python scripts/screenshots.py

It trains the quick-demo run (784-256-256, 3 epochs per layer, then up to 20
epochs of fine-tuning) in a temporary runs folder, which takes one to three
minutes on 2 cores, and measures both stages as `deepgen evaluate` does (a few
more minutes). Then it starts the app on that run and saves one PNG per page,
and a second one of the Samples page's measurements. The Tour page shows the
stored experiment results, at its second step; ``--pages tour`` draws only
that one, without training.
"""

from __future__ import annotations

import argparse
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
from deepgen_core.evaluation import evaluate_run
from deepgen_core.finetune import FinetuneConfig
from deepgen_core.operations import finetune_run, train_run
from deepgen_core.runs import RunConfig
from deepgen_core.training import RBMTrainingConfig

ASSETS = Path(__file__).resolve().parents[1] / "assets"
PAGES = {
    "runs": "",
    "units": "units?run=demo&units=1:0-99,2:*",
    "projections": "projections?run=demo&units=2:*&method=umap",
    "samples": "samples?run=demo",
    "filters": "filters?run=demo",
    "tour": "tour",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--pages",
        default=",".join(PAGES),
        help=f"comma-separated pages to draw (default: all of {', '.join(PAGES)})",
    )
    chosen = parser.parse_args().pages.split(",")
    with tempfile.TemporaryDirectory() as folder:
        runs_dir = Path(folder) / "runs"
        if set(chosen) - {"tour"}:
            train_demo(runs_dir)
        port = free_port()
        server = start_server(runs_dir, port)
        try:
            wait_until_ready(port, server)
            url = f"http://127.0.0.1:{port}"
            with sync_playwright() as driver:
                browser = driver.chromium.launch(
                    executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS
                )
                page = browser.new_page(viewport={"width": 1400, "height": 1100})
                page.set_default_timeout(180_000)
                for name in chosen:
                    page.goto(f"{url}/{PAGES[name]}")
                    page.get_by_role("heading").first.wait_for()
                    if name == "units":
                        page.get_by_role("button", name="Train classifier").click()
                        page.locator('[data-testid="stMetricValue"]').first.wait_for()
                        page.get_by_text(
                            "Held-out accuracy"
                        ).first.scroll_into_view_if_needed()
                    if name == "projections":
                        page.locator('[data-testid="stVegaLiteChart"]').first.wait_for()
                    if name == "samples":
                        page.get_by_text("The reference classifier reads").wait_for()
                    if name == "tour":
                        page.get_by_role("button", name="Next").click()
                        page.get_by_text("Label-clamped samples, one block").wait_for()
                        page.locator(".js-plotly-plot").first.wait_for()
                    time.sleep(2)  # let charts finish drawing
                    page.screenshot(path=ASSETS / f"page-{name}.png")
                    print(f"saved assets/page-{name}.png")
                    if name == "samples":
                        heading = page.get_by_role("heading", name="Before and after")
                        heading.scroll_into_view_if_needed()
                        time.sleep(2)
                        page.screenshot(path=ASSETS / "page-samples-measured.png")
                        print("saved assets/page-samples-measured.png")
                browser.close()
        finally:
            stop_server(server)
            for job in jobs.list(runs_dir, ("queued", "running")):
                jobs.cancel(job.id, runs_dir)


def train_demo(runs_dir: Path) -> None:
    """Train, fine-tune and measure the quick-demo run the pages show."""
    config = RunConfig(
        "mnist-10k", DBNConfig([256, 256], rbm=RBMTrainingConfig(epochs=3))
    )
    run = train_run(str(runs_dir / "demo"), config)
    finetune_run(run, FinetuneConfig(epochs=20, patience=5))
    for stage in run.stages():
        evaluate_run(run, stage)


if __name__ == "__main__":
    main()
