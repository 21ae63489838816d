"""Runs on user files: the fingerprint that finds a data file changed after training."""

import json

import numpy as np
import pytest

from deepgen_core.cli import main
from deepgen_core.data import file_sha256, load_fingerprinted_file
from deepgen_core.dbn import DBNConfig
from deepgen_core.errors import InputError
from deepgen_core.operations import train_run
from deepgen_core.runs import RunConfig, open_run
from deepgen_core.training import RBMTrainingConfig


def write_npz(path, n_features=20, n_classes=3, seed=0, compressed=False):
    """Write 50 training and 10 held-out rows of random values in [0, 1)."""
    rng = np.random.default_rng(seed)
    arrays = {
        "x_train": rng.random((50, n_features)).astype(np.float32),
        "y_train": np.arange(50) % n_classes,
        "x_test": rng.random((10, n_features)).astype(np.float32),
        "y_test": np.arange(10) % n_classes,
    }
    save = np.savez_compressed if compressed else np.savez
    save(path, **arrays)
    return path


def train_small_run(run_dir, data, labels=False):
    rbm = RBMTrainingConfig(epochs=1, batch_size=10)
    layers = [8, 8] if labels else [8]
    dbn = DBNConfig(layers=layers, labels=labels, seed=0, rbm=rbm)
    return train_run(str(run_dir), RunConfig(str(data), dbn, "cpu"))


def test_run_records_data_fingerprint(tmp_path):
    data = write_npz(tmp_path / "a.npz")
    train_small_run(tmp_path / "run", data)

    config = json.loads((tmp_path / "run" / "config.json").read_text())
    fingerprint = config["data_fingerprint"]
    assert fingerprint["sha256"] == file_sha256(data)
    assert fingerprint["size_bytes"] == data.stat().st_size
    assert fingerprint["n_features"] == 20
    assert fingerprint["n_classes"] == 3
    assert fingerprint["n_train"] == 50
    assert fingerprint["n_test"] == 10
    assert len(fingerprint["data_sha256"]) == 64


def test_builtin_dataset_run_has_no_fingerprint(tmp_path):
    rbm = RBMTrainingConfig(epochs=1, batch_size=479)
    config = RunConfig("digits", DBNConfig(layers=[4], seed=0, rbm=rbm), "cpu")
    train_run(str(tmp_path / "run"), config)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["dataset"] == "digits"
    assert "data_fingerprint" not in saved


@pytest.mark.parametrize(
    ("replacement", "difference"),
    [
        (
            {"n_features": 30},
            (
                "It had 50 training and 10 held-out rows of 20 features with 3 classes "
                "and now has 50 training and 10 held-out rows of 30 features with 3 "
                "classes."
            ),
        ),
        (
            {"n_classes": 7},
            (
                "It had 50 training and 10 held-out rows of 20 features with 3 classes "
                "and now has 50 training and 10 held-out rows of 20 features with 7 "
                "classes."
            ),
        ),
        (
            {"seed": 1},
            (
                "It still has 50 training and 10 held-out rows of 20 features with 3 "
                "classes, but other values."
            ),
        ),
    ],
    ids=["wider", "more-classes", "other-values"],
)
def test_changed_data_file_is_rejected(tmp_path, replacement, difference):
    data = write_npz(tmp_path / "a.npz")
    original = file_sha256(data)
    train_small_run(tmp_path / "run", data)
    write_npz(data, **replacement)

    with pytest.raises(InputError) as caught:
        open_run(tmp_path / "run").dataset()
    message = str(caught.value)
    assert message.startswith(
        f"data file {data} changed since the run was trained on it. "
    )
    assert difference in message
    assert f"Restore the original file (SHA-256 {original})" in message
    assert f"train a new run on the new data with `deepgen train --dataset {data}`" in (
        message
    )


def test_restored_data_file_opens_again(tmp_path):
    data = write_npz(tmp_path / "a.npz")
    original = data.read_bytes()
    run = train_small_run(tmp_path / "run", data)
    write_npz(data, n_features=30)
    with pytest.raises(InputError, match="changed since the run was trained"):
        run.dataset()

    data.write_bytes(original)
    dataset = open_run(tmp_path / "run").dataset()
    assert dataset.n_features == 20
    assert dataset.n_classes == 3


def test_data_saved_again_unchanged_still_opens(tmp_path):
    data = write_npz(tmp_path / "a.npz")
    run = train_small_run(tmp_path / "run", data)
    before = run.dataset()
    write_npz(data, compressed=True)
    assert file_sha256(data) != run.config.data_fingerprint["sha256"]

    after = open_run(tmp_path / "run").dataset()
    np.testing.assert_array_equal(after.x_train, before.x_train)
    np.testing.assert_array_equal(after.y_test, before.y_test)


def test_unreadable_changed_file_names_both_problems(tmp_path):
    data = write_npz(tmp_path / "a.npz")
    run = train_small_run(tmp_path / "run", data)
    data.write_bytes(b"not an archive")
    with pytest.raises(InputError) as caught:
        run.dataset()
    message = str(caught.value)
    assert "changed since the run was trained on it." in message
    assert "Reading it now fails: NPZ file a.npz is not an NPZ archive" in message


def test_damaged_fingerprint_is_reported(tmp_path):
    data = write_npz(tmp_path / "a.npz")
    with pytest.raises(InputError, match="in the run's config.json is damaged"):
        load_fingerprinted_file(data, {"sha256": "abc"})


def run_cli(capsys, *args):
    code = main(["-q", *args])
    _, err = capsys.readouterr()
    return code, err


def run_failing_command(capsys, run_dir, command) -> str:
    """Run ``command`` on ``run_dir``, check it fails with one error, return stderr."""
    name, *options = command
    options = [option.format(folder=run_dir.parent) for option in options]
    code, err = run_cli(capsys, name, str(run_dir), *options)
    assert code == 2
    assert err.count("error:") == 1
    assert "Traceback" not in err
    return err


@pytest.fixture
def run_with_labels(tmp_path):
    """A 20-8-8 net with label units, trained through the CLI on ``a.npz``."""
    data = write_npz(tmp_path / "a.npz")
    args = ["train", "--dataset", str(data), "--layers", "8,8", "--labels"]
    args += ["--epochs", "1", "--batch-size", "10", "--out", str(tmp_path / "a")]
    assert main(["-q", *args]) == 0
    return tmp_path / "a", data


@pytest.mark.parametrize(
    "command",
    [
        ["features", "--units", "1:*", "--out", "{folder}/f.npz"],
        ["probe", "--units", "1:*"],
        ["finetune", "--method", "updown", "--epochs", "1"],
        ["finetune", "--epochs", "1"],
    ],
    ids=["features", "probe", "finetune-updown", "finetune-backprop"],
)
@pytest.mark.parametrize("change", [{"n_features": 30}, {"n_classes": 7}])
def test_cli_rejects_changed_data_file(capsys, run_with_labels, command, change):
    run_dir, data = run_with_labels
    stages = sorted(path.name for path in (run_dir / "stages").iterdir())
    write_npz(data, **change)

    err = run_failing_command(capsys, run_dir, command)
    assert f"data file {data} changed since the run was trained on it." in err
    assert sorted(path.name for path in (run_dir / "stages").iterdir()) == stages
    assert not (run_dir.parent / "f.npz").exists()


def remove_fingerprint(run_dir):
    """Rewrite config.json as deepgen wrote it before it recorded fingerprints."""
    path = run_dir / "config.json"
    config = json.loads(path.read_text())
    del config["data_fingerprint"]
    path.write_text(json.dumps(config))


def test_run_without_fingerprint_still_opens(capsys, run_with_labels):
    run_dir, _ = run_with_labels
    remove_fingerprint(run_dir)
    assert open_run(run_dir).config.data_fingerprint is None

    code, err = run_cli(capsys, "probe", str(run_dir), "--units", "1:*")
    assert code == 0, err
    dataset = open_run(run_dir).dataset()
    assert dataset.n_features == 20
    assert dataset.n_classes == 3


@pytest.mark.parametrize(
    ("command", "change", "problem"),
    [
        (
            ["features", "--units", "1:*", "--out", "{folder}/f.npz"],
            {"n_features": 30},
            "has 30 features per row, but the run's net has 20 input units",
        ),
        (
            ["finetune", "--method", "updown", "--epochs", "1"],
            {"n_classes": 7},
            "has labels up to 6, but the run's net has 3 label units",
        ),
    ],
    ids=["wider", "more-classes"],
)
def test_run_without_fingerprint_checks_net_shape(
    capsys, run_with_labels, command, change, problem
):
    run_dir, data = run_with_labels
    remove_fingerprint(run_dir)
    write_npz(data, **change)

    err = run_failing_command(capsys, run_dir, command)
    assert f"dataset {data} {problem}, so it is not the data that run " in err
    assert "restore that data, or train a new run on this data" in err
    assert sorted(path.name for path in (run_dir / "stages").iterdir()) == [
        "pretrained"
    ]
    assert not (run_dir.parent / "f.npz").exists()
