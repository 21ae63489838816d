"""The experiments' quick runs, and docs/results.md against the stored results."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from deepgen_core.dbn import DBNConfig
from deepgen_core.errors import InputError
from deepgen_core.operations import train_run
from deepgen_core.runs import RunConfig
from deepgen_core.training import RBMTrainingConfig
from experiments import report
from experiments.common import RESULTS_DIR, check_writable, reuse_run

ROOT = Path(__file__).resolve().parents[1]


def run_quick(name: str, tmp_path: Path) -> dict:
    out = tmp_path / name
    command = [
        sys.executable,
        "-m",
        f"experiments.{name}",
        "--quick",
        "--out-dir",
        str(out),
        "--runs-dir",
        str(tmp_path / "runs"),
    ]
    finished = subprocess.run(
        command, check=False, cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert results["experiment"] == name
    assert results["command"].startswith(f"python -m experiments.{name} --quick")
    assert results["quick"] is True
    assert results["environment"]["versions"]["torch"].startswith("2.13")
    assert results["wall_seconds"] > 0
    for picture in results["pictures"]:
        assert (out / picture).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return results


def test_hinton2006_quick(tmp_path):
    results = run_quick("hinton2006", tmp_path)
    figures = results["figures"]
    assert set(figures["test_error"]) == {"pretrained", "head", "backprop", "updown"}
    for error in figures["test_error"].values():
        assert 0 < error < 0.5
    # Fine-tuning on labels beats the generative classifier even after 2 epochs.
    assert figures["test_error"]["backprop"] < figures["test_error"]["pretrained"]
    assert (figures["n_train"], figures["n_test"]) == (8000, 2000)
    assert len(results["pictures"]) == 4


def test_rbm_likelihood_quick(tmp_path):
    figures = run_quick("rbm_likelihood", tmp_path)["figures"]
    for name, anchor in (("cd1", -125.53), ("cd3", -105.50), ("cd25", -86.34)):
        model = figures[name]
        assert model["anchor"] == anchor
        assert -250 < model["test_log_likelihood"] < -60
        # Forward and reverse AIS bracket log Z; on these small RBMs they agree.
        assert abs(model["log_z"] - model["log_z_reverse"]) < 3
        assert math.isclose(model["difference"], model["test_log_likelihood"] - anchor)


def test_svm_on_units_quick(tmp_path):
    figures = run_quick("svm_on_units", tmp_path)["figures"]["mnist-10k"]
    expected = {
        "pixels",
        "layer-1",
        "layer-2",
        "layer-3",
        "all-layers",
        "best-subset",
        "random",
    }
    for classifier in ("linear-svm", "rbf-svm"):
        scores = figures["svm"][classifier]
        assert set(scores) == expected
        assert set(figures["feature_sets"]) == expected
        for score in scores.values():
            assert 0.6 < score["accuracy"] < 1
        assert len(scores["random"]["draws"]) == 3
        assert scores["random"]["std"] > 0
    assert figures["svm"]["linear-svm"]["best-subset"]["n_units"] == 200
    assert figures["svm"]["linear-svm"]["all-layers"]["n_units"] == 400
    assert sum(figures["best_subset_layers"].values()) == 200
    assert 0.6 < figures["finetuned_accuracy"] < 1


def test_generation_before_after_quick(tmp_path):
    results = run_quick("generation_before_after", tmp_path)
    figures = results["figures"]
    stages = ["pretrained", "finetuned", "finetuned-head", "finetuned-updown"]
    assert results["config"]["stages"] == stages
    assert set(figures["stages"]) == set(stages)
    for stage in stages:
        summary = figures["stages"][stage]
        assert set(report.FIGURE_LABELS) <= set(summary)
        assert len(summary["log_likelihood"]["values"]) == 2
        assert -300 < summary["log_likelihood"]["mean"] < -50
        assert 0 <= summary["coverage"]["mean"] <= 1
        assert summary["frechet_distance"]["mean"] > 0
    # A head leaves every generative weight alone.
    head = figures["stages"]["finetuned-head"]["log_likelihood"]["values"]
    assert head == figures["stages"]["pretrained"]["log_likelihood"]["values"]
    assert (
        figures["change_from_pretrained"]["finetuned-head"]["log_likelihood"]["mean"]
        == 0
    )


def test_scaling_quick(tmp_path):
    figures = run_quick("scaling", tmp_path)["figures"]
    assert figures["width"]["sizes"] == [100, 200, 400]
    assert figures["rows"]["sizes"] == [1000, 2000, 4000, 8000]
    for sweep in (figures["width"], figures["rows"]):
        assert all(s > 0 for s in sweep["seconds_per_epoch"])
        assert math.isfinite(sweep["growth_exponent"])


@pytest.mark.parametrize("name", report.EXPERIMENTS)
def test_results_doc_tables_match_stored_json(name):
    tables = report.blocks()
    assert name in tables, f"docs/results.md has no table block for {name}"
    assert tables[name] == report.render(name), (
        f"docs/results.md's {name} table differs from "
        f"{RESULTS_DIR / name / 'results.json'}; run python -m experiments.report"
    )


def test_missing_data_is_one_clear_error(tmp_path):
    command = [
        sys.executable,
        "-m",
        "experiments.svm_on_units",
        "--out-dir",
        str(tmp_path / "out"),
    ]
    finished = subprocess.run(
        command,
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "DEEPGEN_DATA_DIR": str(tmp_path / "empty")},
        timeout=300,
    )
    assert finished.returncode == 2
    assert finished.stderr.startswith("error: mnist data file(s) not found")
    assert "DEEPGEN_DATA_DIR" in finished.stderr
    assert "Traceback" not in finished.stderr
    assert not (tmp_path / "out" / "results.json").exists()


def test_report_rewrites_tables_and_keeps_prose(tmp_path):
    document = tmp_path / "results.md"
    document.write_text(
        "Intro.\n\n<!-- table scaling -->\nold table\n<!-- end scaling -->\n\nReading.\n"
    )
    assert report.update(document) == (["scaling"], [])
    text = document.read_text()
    assert text.startswith("Intro.\n\n<!-- table scaling -->\n")
    assert text.endswith("<!-- end scaling -->\n\nReading.\n")
    assert "old table" not in text
    assert report.blocks(document)["scaling"] == report.render("scaling")


def test_reuse_rejects_run_with_other_settings(tmp_path):
    rbm = RBMTrainingConfig(epochs=1)
    config = RunConfig("mnist-10k", DBNConfig([16], seed=0, rbm=rbm), "cpu")
    train_run(str(tmp_path / "run"), config)
    assert reuse_run(tmp_path / "run", config).config.to_dict() == config.to_dict()
    other = RunConfig("mnist-10k", DBNConfig([16], seed=1, rbm=rbm), "cpu")
    with pytest.raises(InputError, match="trained with other settings.*--runs-dir"):
        reuse_run(tmp_path / "run", other)
    assert reuse_run(tmp_path / "none", config) is None


def test_unwritable_output_folder_is_named(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(InputError, match=f"cannot write to {blocker / 'out'}"):
        check_writable(blocker / "out")


def test_damaged_results_file_is_named(tmp_path):
    folder = tmp_path / "scaling"
    folder.mkdir()
    (folder / "results.json").write_text('{"figures": {}}')
    with pytest.raises(InputError, match="scaling/results.json is missing or damaged"):
        report.render("scaling", folder)
