"""The deepgen command line: a small run end to end and its error messages."""

import json
import logging
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from deepgen_core.cli import main
from deepgen_core.operations import chance_warning, majority_accuracy


def run_cli(capsys, *args):
    try:
        code = main(["-q", *args])
    except SystemExit as stop:  # the argument parser's own errors
        code = stop.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, small_mnist_npz):
    """A 784-64-32 net with labels, pretrained and fine-tuned through the CLI."""
    run_dir = tmp_path_factory.mktemp("runs") / "small"
    args = ["train", "--dataset", str(small_mnist_npz), "--layers", "64,32"]
    args += ["--labels", "--epochs", "2", "--batch-size", "50", "--out", str(run_dir)]
    assert main(["-q", *args]) == 0
    assert main(["-q", "finetune", str(run_dir), "--epochs", "3"]) == 0
    return run_dir


def test_train_writes_config_metrics_and_stages(trained_run):
    config = json.loads((trained_run / "config.json").read_text())
    assert config["dbn"]["layers"] == [64, 32]
    assert config["dbn"]["labels"] is True
    metrics = [
        json.loads(line)
        for line in (trained_run / "metrics.jsonl").read_text().splitlines()
    ]
    assert [(m["layer"], m["epoch"]) for m in metrics] == [
        (1, 1),
        (1, 2),
        (2, 1),
        (2, 2),
    ]
    for m in metrics:
        assert m["recon_error"] > 0
        assert np.isfinite(m["free_energy_gap"])
        assert m["seconds"] >= 0
    stages = sorted(p.name for p in (trained_run / "stages").iterdir())
    assert stages == ["finetuned", "pretrained"]


def test_probe_json_reports_accuracy(capsys, trained_run):
    code, out, _ = run_cli(
        capsys, "probe", str(trained_run), "--units", "1:*,2:0-9", "--json"
    )
    assert code == 0
    result = json.loads(out)
    assert result["n_units"] == 74
    assert result["spec"] == "1:*,2:0-9"
    assert result["n_test"] == 200
    assert 0.5 < result["accuracy"] <= 1.0


def test_features_writes_selected_columns(capsys, trained_run, tmp_path):
    out_file = tmp_path / "feats.npz"
    code, _, _ = run_cli(
        capsys,
        "features",
        str(trained_run),
        "--stage",
        "finetuned",
        "--units",
        "2:3-5,0:0",
        "--split",
        "test",
        "--out",
        str(out_file),
    )
    assert code == 0
    assert sorted(tmp_path.iterdir()) == [out_file]
    saved = np.load(out_file, allow_pickle=False)
    assert saved["features"].shape == (200, 4)
    assert str(saved["spec"]) == "0:0,2:3-5"
    assert saved["labels"].shape == (200,)
    # Column 0 is pixel 0 of each held-out image: always blank in MNIST.
    assert np.all(saved["features"][:, 0] == 0)


def test_sample_writes_grid_png(capsys, trained_run, tmp_path):
    grid = tmp_path / "grid.png"
    chain = tmp_path / "chain.png"
    code, _, _ = run_cli(
        capsys,
        "sample",
        str(trained_run),
        "--n",
        "9",
        "--label",
        "3",
        "--steps",
        "20",
        "--out",
        str(grid),
        "--chain-out",
        str(chain),
        "--chain-every",
        "10",
    )
    assert code == 0
    # 3 x 3 tiles of 28 pixels with 1-pixel borders, enlarged twice.
    assert Image.open(grid).size == (2 * (3 * 29 + 1), 2 * (3 * 29 + 1))
    assert Image.open(chain).size == (2 * (3 * 29 + 1), 2 * 29 + 2)
    # A grid of its own kind is replaced: here by one of 4 samples.
    code, _, _ = run_cli(
        capsys, "sample", str(trained_run), "--n", "4", "--out", str(grid)
    )
    assert code == 0
    assert Image.open(grid).size == (2 * (2 * 29 + 1), 2 * (2 * 29 + 1))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["probe", "{run}", "--units", "1:0-99"],
            "unit 99 in unit SPEC '1:0-99' is out of range: layer 1 has units 0 to 63",
        ),
        (
            ["probe", "{run}", "--units", "layer1"],
            "invalid unit SPEC item 'layer1'.*comma-separated list of LAYER:RANGE",
        ),
        (["probe", "{run}", "--units", "1:9-3"], "runs backwards"),
        (
            ["probe", "{missing}", "--units", "1:*"],
            "run folder .*missing does not exist",
        ),
        (
            ["sample", "{run}", "--stage", "finetuned-updown", "--out", "x.png"],
            "no stage 'finetuned-updown'",
        ),
        (
            ["sample", "{run}", "--label", "12", "--out", "x.png"],
            r"label must be in 0..9, got 12",
        ),
        (["train", "--dataset", "mnist-1k", "--out", "{new}"], "mnist-10k"),
        (["sample", "{run}", "--out", "{run}/config.json"], "must end in .png"),
        (["sample", "{run}", "--out", "{tmp}/grid.jpg"], "must end in .png"),
        (
            ["sample", "{run}", "--out", "{tmp}/a.png", "--chain-out", "{tmp}/b.png"]
            + ["--chain-every", "0"],
            "--chain-every must be at least 1",
        ),
        (
            ["sample", "{run}", "--out", "{tmp}/a.png", "--n", "100000000"],
            "must be from 1 to 10,000",
        ),
        (["features", "{run}", "--units", "1:*", "--out", "{tmp}/f"], ".npz"),
        (["probe", "{run}", "--units", "1:*", "--C", "inf"], "positive, finite"),
        (["train", "--seed", "1" + "0" * 30, "--out", "{new}"], "invalid seed"),
        (["train", "--lr", "1e300", "--out", "{new}"], "float32 can hold"),
        (
            ["finetune", "{run}", "--momentum", "1.5", "--overwrite"],
            r"momentum must be in \[0, 1\)",
        ),
        (
            ["train", "--resume", "--out", "{run}", "--epochs", "3", "--lr", "0.5"],
            "would ignore --epochs, --lr",
        ),
        (["train", "--out", "{run}/config.json"], "is a file"),
        (["jobs", "list", "--runs-dir", "{missing}"], "does not exist"),
        (["train", "--layers", "16,,16", "--out", "{new}"], "invalid layer sizes"),
        (["train", "--learn-sigma", "--out", "{new}"], "add --visible gaussian"),
        (["train", "--sparsity-cost", "-1", "--out", "{new}"], "sparsity cost"),
        (["train", "--out", " "], "--out is empty"),
        (["train", "--out", "{tmp}/my run"], "run name 'my run' is invalid"),
    ],
    ids=[
        "unit-out-of-range",
        "bad-spec",
        "backwards-range",
        "missing-run",
        "missing-stage",
        "bad-label",
        "unknown-dataset",
        "sample-onto-run-file",
        "sample-wrong-suffix",
        "chain-every-zero",
        "too-many-samples",
        "features-wrong-suffix",
        "infinite-c",
        "huge-seed",
        "huge-learning-rate",
        "finetune-momentum",
        "resume-with-settings",
        "train-out-is-file",
        "jobs-missing-runs-dir",
        "empty-layer-size",
        "learn-sigma-bernoulli",
        "negative-sparsity-cost",
        "empty-out",
        "run-name-with-space",
    ],
)
def test_bad_input_gives_one_clear_error(capsys, trained_run, tmp_path, args, message):
    fill = {
        "run": str(trained_run),
        "missing": str(tmp_path / "missing"),
        "new": str(tmp_path / "new"),
        "tmp": str(tmp_path),
    }
    args = [a.format(**fill) for a in args]
    saved = {
        path: path.read_bytes() for path in trained_run.rglob("*") if path.is_file()
    }
    code, _, err = run_cli(capsys, *args)
    assert code == 2
    assert err.count("error:") == 1
    assert "Traceback" not in err
    assert re.search(message, err), err
    assert not (tmp_path / "new").exists()
    assert not (tmp_path / "missing").exists()
    assert sorted(tmp_path.iterdir()) == []
    after = {
        path: path.read_bytes() for path in trained_run.rglob("*") if path.is_file()
    }
    assert after == saved


def write_csv(path, rows):
    path.write_text("\n".join(",".join(str(v) for v in row) for row in rows) + "\n")


def test_train_rejects_values_outside_unit_interval(capsys, tmp_path):
    rng = np.random.default_rng(0)
    data = tmp_path / "counts.csv"
    rows = rng.integers(0, 256, size=(100, 16))
    write_csv(data, [[f"f{i}" for i in range(16)], *rows.tolist()])
    code, _, err = run_cli(
        capsys,
        "train",
        "--dataset",
        str(data),
        "--layers",
        "8",
        "--batch-size",
        "10",
        "--out",
        str(tmp_path / "run"),
    )
    assert code == 2
    assert (
        "Bernoulli visible units need values in [0, 1], got values from 0 to 255" in err
    )
    assert "divide by 255" in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("batch", "message"),
    [
        ("500", "batch size 500 is larger than the 80 training rows"),
        ("30", "the 80 training rows are not a multiple of the batch size 30"),
    ],
)
def test_train_rejects_bad_batch_size(capsys, tmp_path, batch, message):
    data = tmp_path / "small.csv"
    rows = np.random.default_rng(1).random((100, 4)).round(3)
    write_csv(data, rows.tolist())
    code, _, err = run_cli(
        capsys,
        "train",
        "--dataset",
        str(data),
        "--layers",
        "3",
        "--batch-size",
        batch,
        "--out",
        str(tmp_path / "run"),
    )
    assert code == 2
    assert message in err
    assert not (tmp_path / "run").exists()


def test_digits_batch_error_recommends_drop_last(capsys, tmp_path):
    code, _, err = run_cli(
        capsys,
        "train",
        "--dataset",
        "digits",
        "--layers",
        "64,64",
        "--epochs",
        "2",
        "--out",
        str(tmp_path / "d1"),
    )
    assert code == 2
    assert "the 1437 training rows are not a multiple of the batch size 100" in err
    assert "no batch size from 50 to 200 divides 1437, so use drop_last" in err
    assert "leaves out 37 of the 1437 rows (2.6%) in each epoch" in err
    assert "choose a batch size" not in err
    assert not (tmp_path / "d1").exists()


def test_train_with_drop_last_accepts_short_batch(capsys, tmp_path):
    data = tmp_path / "small.csv"
    rows = np.random.default_rng(1).random((100, 4)).round(3)
    write_csv(data, rows.tolist())
    code, out, err = run_cli(
        capsys,
        "train",
        "--dataset",
        str(data),
        "--layers",
        "3",
        "--batch-size",
        "30",
        "--drop-last",
        "--epochs",
        "1",
        "--out",
        str(tmp_path / "run"),
    )
    assert code == 0, err
    assert "pretrained" in out


def test_train_rejects_text_cell_in_csv(capsys, tmp_path):
    data = tmp_path / "text.csv"
    write_csv(data, [[0.1, 0.2], [0.3, "high"], [0.5, 0.6]])
    code, _, err = run_cli(
        capsys, "train", "--dataset", str(data), "--out", str(tmp_path / "run")
    )
    assert code == 2
    assert "'high'" in err
    assert not (tmp_path / "run").exists()


def test_train_rejects_nan_in_npz(capsys, tmp_path):
    x = np.random.default_rng(2).random((50, 4)).astype(np.float32)
    x[7, 2] = np.nan
    data = tmp_path / "nan.npz"
    np.savez(data, x=x)
    code, _, err = run_cli(
        capsys, "train", "--dataset", str(data), "--out", str(tmp_path / "run")
    )
    assert code == 2
    assert "NaN" in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("labels", [["--labels"], []], ids=["labels", "no-labels"])
def test_train_rejects_huge_label_numbers(capsys, tmp_path, labels):
    rng = np.random.default_rng(3)
    data = tmp_path / "ybig.npz"
    np.savez(
        data,
        x=rng.random((50, 4)).astype(np.float32),
        y=rng.choice([0, 10**9, 2 * 10**9], 50),
    )
    code, _, err = run_cli(
        capsys,
        "train",
        "--dataset",
        str(data),
        "--layers",
        "8,8",
        *labels,
        "--batch-size",
        "10",
        "--out",
        str(tmp_path / "run"),
    )
    assert code == 2
    assert err.count("error:") == 1
    assert "which would mean 2,000,000,001 classes" in err
    assert "Labels must be numbered 0..K-1" in err
    assert not (tmp_path / "run").exists()


def test_cuda_request_without_gpu_is_rejected(capsys, tmp_path):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    code, _, err = run_cli(
        capsys, "train", "--device", "cuda", "--out", str(tmp_path / "run")
    )
    assert code == 2
    assert "no CUDA GPU" in err
    assert not (tmp_path / "run").exists()


def test_finetune_keeps_existing_stage(capsys, trained_run):
    weights = trained_run / "stages" / "finetuned" / "model.safetensors"
    before = weights.read_bytes()
    code, _, err = run_cli(capsys, "finetune", str(trained_run), "--epochs", "1")
    assert code != 0
    assert "already has a finetuned stage; pass --overwrite" in err
    assert weights.read_bytes() == before


def stage_info(run_dir, stage: str) -> dict:
    return json.loads((run_dir / "stages" / stage / "model.json").read_text())["info"]


def test_chance_warning_needs_three_standard_errors():
    assert majority_accuracy(np.array([0, 0, 1]), np.array([0, 1, 1, 1])) == 0.25
    # chance 0.1 on 1,000 rows: one standard error is 0.0095 (sqrt 0.09/1000)
    assert "no better than always predicting" in chance_warning(0.128, 0.1, 1000)
    assert chance_warning(0.129, 0.1, 1000) is None


def test_finetuning_at_chance_is_flagged(
    tmp_path, trained_run, random_label_npz, caplog
):
    assert "warning" not in stage_info(trained_run, "finetuned")
    run_dir = tmp_path / "run"
    args = ["train", "--dataset", str(random_label_npz), "--layers", "32"]
    assert main(["-q", *args, "--epochs", "1", "--out", str(run_dir)]) == 0
    with caplog.at_level(logging.WARNING):
        assert main(["-q", "finetune", str(run_dir), "--method", "head"]) == 0
    info = stage_info(run_dir, "finetuned-head")
    with np.load(random_label_npz) as data:
        commonest = np.bincount(data["y_train"]).argmax()
        assert info["chance_accuracy"] == np.mean(data["y_test"] == commonest)
    assert "no better than always predicting the commonest label" in info["warning"]
    assert info["warning"] in caplog.text


def test_home_folder_in_paths_is_expanded(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    args = ["train", "--dataset", "digits", "--drop-last", "--layers", "8"]
    code, _, err = run_cli(capsys, *args, "--epochs", "1", "--out", "~/run")
    assert code == 0, err
    assert (tmp_path / "run" / "stages" / "pretrained").is_dir()
    code, _, err = run_cli(capsys, "sample", "~/run", "--n", "4", "--out", "~/a.png")
    assert code == 0, err
    assert Image.open(tmp_path / "a.png").size == (2 * (2 * 9 + 1), 2 * (2 * 9 + 1))


def test_updown_divergence_keeps_no_stage(capsys, trained_run):
    args = ["finetune", str(trained_run), "--method", "updown", "--lr", "3e38"]
    code, _, err = run_cli(capsys, *args, "--epochs", "1")
    assert code == 2
    assert "up-down fine-tuning diverged at epoch 1; lower the learning rate" in err
    assert not (trained_run / "stages" / "finetuned-updown").exists()


def test_empty_job_list_is_reported(capsys, tmp_path):
    code, out, _ = run_cli(capsys, "jobs", "list", "--runs-dir", str(tmp_path))
    assert code == 0
    assert out == f"no jobs in {tmp_path}\n"


def test_sigterm_prints_resume_hint(tmp_path):
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "deepgen_core", "train", "--dataset", "digits"]
    command += ["--drop-last", "--layers", "64", "--epochs", "1000"]
    training = subprocess.Popen(
        [*command, "--out", str(run_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not (run_dir / "checkpoint" / "state.json").exists():
            assert training.poll() is None, training.communicate()
            assert time.monotonic() < deadline, "no checkpoint within 2 minutes"
            time.sleep(0.1)
        training.send_signal(signal.SIGTERM)
        _, err = training.communicate(timeout=60)
    finally:
        if training.poll() is None:
            training.kill()
    assert training.returncode == 130, err
    assert f"deepgen train --resume --out {run_dir}" in err
    assert (run_dir / "checkpoint" / "state.json").exists()


def test_features_to_missing_folder_is_clear(capsys, trained_run, tmp_path):
    out = tmp_path / "missing" / "f.npz"
    code, _, err = run_cli(
        capsys, "features", str(trained_run), "--units", "1:0-3", "--out", str(out)
    )
    assert code != 0
    assert f"folder {out.parent} does not exist" in err
    assert "Traceback" not in err
