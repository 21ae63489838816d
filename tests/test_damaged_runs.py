"""Damaged run folders: one clear error, and every saved file left as it was."""

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from deepgen_core.cli import main
from deepgen_core.dbn import DBNConfig
from deepgen_core.operations import train_run
from deepgen_core.runs import RunConfig
from deepgen_core.training import RBMTrainingConfig


class Interrupt(Exception):
    pass


def stop_at_layer_1_epoch_3(progress):
    if progress.layer == 1 and progress.epoch == 3:
        raise Interrupt


@pytest.fixture(scope="module")
def interrupted_run(tmp_path_factory):
    """A digits run of layers 16,8 with 6 epochs each, stopped after epoch 2."""
    rbm = RBMTrainingConfig(epochs=6, batch_size=100, drop_last=True)
    config = RunConfig("digits", DBNConfig(layers=[16, 8], rbm=rbm), "cpu")
    run_dir = tmp_path_factory.mktemp("runs") / "interrupted"
    with pytest.raises(Interrupt):
        train_run(str(run_dir), config, progress=stop_at_layer_1_epoch_3)
    return run_dir


def files_of(folder):
    """Map each file's path inside ``folder`` to its bytes."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def edit_json(path, change):
    values = json.loads(path.read_text())
    change(values)
    path.write_text(json.dumps(values))


def resume(capsys, run_dir):
    """Run `deepgen train --resume`; return the exit code and stderr."""
    code = main(["-q", "train", "--resume", "--out", str(run_dir)])
    return code, capsys.readouterr().err


def assert_one_error(err, message):
    assert err.count("error:") == 1, err
    assert "Traceback" not in err
    assert message in err


@pytest.mark.parametrize(
    ("keys", "value", "message"),
    [
        (
            ("dbn", "rbm", "epochs"),
            "6",
            "(setting 'epochs' must be an integer, got '6')",
        ),
        (
            ("dbn", "rbm", "learning_rate"),
            "fast",
            "(setting 'learning_rate' must be a number or null, got 'fast')",
        ),
        (("dataset",), 5, "(setting 'dataset' must be a string, got 5)"),
        (
            ("dbn", "layers"),
            "168",
            "(setting 'layers' must be a list of integers, got '168')",
        ),
        (
            ("dbn", "layers"),
            [16, 0],
            "(setting 'layers' must list one or more positive sizes, got [16, 0])",
        ),
        (("dbn", "rbm", "epochs"), 0, "(epochs must be at least 1, got 0)"),
    ],
    ids=[
        "epochs-text",
        "lr-text",
        "dataset-number",
        "layers-text",
        "layer-0",
        "epochs-0",
    ],
)
def test_resume_rejects_damaged_config(
    capsys, tmp_path, interrupted_run, keys, value, message
):
    run_dir = shutil.copytree(interrupted_run, tmp_path / "run")
    config_file = run_dir / "config.json"

    def change(config):
        *parents, last = keys
        for key in parents:
            config = config[key]
        config[last] = value

    edit_json(config_file, change)
    before = files_of(run_dir)

    code, err = resume(capsys, run_dir)

    assert code == 2
    assert_one_error(err, message)
    assert f"run configuration {config_file} is damaged" in err
    assert "restore it from a copy of the run, or train the run again" in err
    assert files_of(run_dir) == before


def set_field(key, value):
    def change(state):
        state[key] = value

    return change


def delete_field(key):
    def change(state):
        del state[key]

    return change


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            set_field("layer", 99),
            (
                "field 'layer' must be an integer from 0 to 1 (layers counted from 0), "
                "got 99"
            ),
        ),
        (set_field("layer", -1), "field 'layer' must be an integer from 0 to 1"),
        (delete_field("layer"), "field 'layer' is missing"),
        (
            set_field("epoch", 1000000),
            "field 'epoch' must be an integer from 0 to 6, got 1000000",
        ),
        (
            set_field("epoch", -3),
            "field 'epoch' must be an integer from 0 to 6, got -3",
        ),
        (
            set_field("epoch", "2"),
            "field 'epoch' must be an integer from 0 to 6, got '2'",
        ),
        (
            set_field("epoch", 5),
            (
                "the history ends after layer 1 epoch 2 but the state is after layer 1 "
                "epoch 5"
            ),
        ),
        (set_field("history", "abc"), "field 'history' must be a list, got 'abc'"),
        (
            set_field("history", [{"layer": 1, "epoch": 1}]),
            (
                "history record 1 must be an object with an integer layer and epoch and "
                "a numeric recon_error"
            ),
        ),
        (
            set_field("tensors", "/etc/passwd"),
            (
                "field 'tensors' must be the name of a .safetensors file in the "
                "checkpoint folder, got '/etc/passwd'"
            ),
        ),
        (
            set_field(
                "tensors", "../../other/checkpoint/state-layer1-epoch2.safetensors"
            ),
            "got '../../other/checkpoint/state-layer1-epoch2.safetensors'",
        ),
        (
            set_field("tensors", 7),
            "a .safetensors file in the checkpoint folder, got 7",
        ),
    ],
    ids=[
        "layer-99",
        "layer-negative",
        "layer-missing",
        "epoch-huge",
        "epoch-negative",
        "epoch-text",
        "epoch-beyond-history",
        "history-text",
        "history-record",
        "tensors-absolute",
        "tensors-other-run",
        "tensors-number",
    ],
)
def test_resume_rejects_damaged_checkpoint_state(
    capsys, tmp_path, interrupted_run, change, message
):
    run_dir = shutil.copytree(interrupted_run, tmp_path / "run")
    # A second run beside it, whose checkpoint file a damaged path may name.
    shutil.copytree(interrupted_run, tmp_path / "other")
    state_file = run_dir / "checkpoint" / "state.json"
    edit_json(state_file, change)
    before = files_of(tmp_path)

    code, err = resume(capsys, run_dir)

    assert code == 2
    assert_one_error(err, message)
    assert f"checkpoint {state_file} is damaged" in err
    assert "restore the run folder from a copy, or train the run again" in err
    assert files_of(tmp_path) == before


def set_field_in(section, key, value):
    def change(values):
        values[section][key] = value

    return change


def test_resume_rejects_checkpoint_of_other_net(capsys, tmp_path, interrupted_run):
    run_dir = shutil.copytree(interrupted_run, tmp_path / "run")
    edit_json(run_dir / "config.json", set_field_in("dbn", "layers", [200, 300]))
    before = files_of(run_dir)

    code, err = resume(capsys, run_dir)

    assert code == 2
    tensor_file = run_dir / "checkpoint" / "state-layer1-epoch2.safetensors"
    assert_one_error(
        err,
        f"checkpoint tensor file {tensor_file} is damaged or does not fit the "
        "run's configuration (tensor 'model.rbms.0.weight' has shape (64, 16), "
        "the net needs (64, 200)); restore the run folder from a copy",
    )
    assert files_of(run_dir) == before


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda tensors: tensors["model.rbms.0.weight"].fill_(float("nan")),
            "tensor 'model.rbms.0.weight' contains NaN or inf",
        ),
        (
            lambda tensors: tensors.pop("trainer.increment.hidden_bias"),
            "tensor 'trainer.increment.hidden_bias' is missing",
        ),
        (
            lambda tensors: tensors.update(generator_state=torch.zeros(3).byte()),
            "tensor 'generator_state' is not a random generator state",
        ),
    ],
    ids=["nan-weights", "missing-increment", "short-generator-state"],
)
def test_resume_rejects_damaged_checkpoint_tensors(
    capsys, tmp_path, interrupted_run, change, message
):
    run_dir = shutil.copytree(interrupted_run, tmp_path / "run")
    tensor_file = run_dir / "checkpoint" / "state-layer1-epoch2.safetensors"
    tensors = load_file(tensor_file)
    change(tensors)
    save_file(tensors, tensor_file)
    before = files_of(run_dir)

    code, err = resume(capsys, run_dir)

    assert code == 2
    assert_one_error(err, f"checkpoint tensor file {tensor_file} is damaged")
    assert message in err
    assert files_of(run_dir) == before


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A digits run of layers 16,8 with 1 epoch each and its pretrained stage."""
    run_dir = tmp_path_factory.mktemp("runs") / "finished"
    args = ["train", "--dataset", "digits", "--drop-last", "--layers", "16,8"]
    assert main(["-q", *args, "--epochs", "1", "--out", str(run_dir)]) == 0
    return run_dir


def sample(capsys, run_dir, out):
    """Run `deepgen sample` for 4 images; return the exit code and stderr."""
    args = ["sample", str(run_dir), "--n", "4", "--steps", "2", "--out", str(out)]
    code = main(["-q", *args])
    return code, capsys.readouterr().err


def set_model_field(key, value):
    def change(description):
        description["model"][key] = value

    return change


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            delete_field("model"),
            (
                "model.json is damaged (field 'model' is missing); restore the stage "
                "from a copy of the run, or train or fine-tune it again"
            ),
        ),
        (
            set_model_field("n_visible", "abc"),
            "(field 'n_visible' must be a positive integer, got 'abc')",
        ),
        (
            set_model_field("layer_sizes", "168"),
            "(field 'layer_sizes' must be a list of positive integers, got '168')",
        ),
        (
            set_model_field("layer_sizes", [16.7, 8]),
            "(field 'layer_sizes' must be a list of positive integers, got [16.7, 8])",
        ),
        (
            set_model_field("n_labels", 1e8),
            "(field 'n_labels' must be an integer >= 0, got 100000000.0)",
        ),
        (
            set_model_field("layer_sizes", [10**9, 8]),
            (
                "model.safetensors do not match model.json (tensor 'rbms.0.hidden_bias' "
                "has shape (16,), model.json describes (1000000000,)); the stage was "
                "damaged, restore it"
            ),
        ),
        (
            set_model_field("n_labels", 10**8),
            (
                "(tensor 'rbms.1.log_sigma' has shape (16,), model.json describes "
                "(100000016,))"
            ),
        ),
        (
            set_model_field("head_classes", 10),
            "(tensor 'head.bias' is missing)",
        ),
    ],
    ids=[
        "model-missing",
        "n-visible-text",
        "layer-sizes-text",
        "layer-size-fraction",
        "n-labels-float",
        "layer-size-huge",
        "n-labels-huge",
        "head-without-weights",
    ],
)
def test_sample_rejects_damaged_stage(capsys, tmp_path, finished_run, change, message):
    run_dir = shutil.copytree(finished_run, tmp_path / "run")
    edit_json(run_dir / "stages" / "pretrained" / "model.json", change)
    before = files_of(tmp_path)

    code, err = sample(capsys, run_dir, tmp_path / "grid.png")

    assert code == 2
    assert_one_error(err, message)
    assert str(run_dir / "stages" / "pretrained") in err
    assert files_of(tmp_path) == before


@pytest.mark.parametrize(
    "command",
    [
        ["sample", "--n", "4", "--steps", "2", "--out", "{out}.png"],
        ["features", "--units", "1:*", "--out", "{out}.npz"],
        ["probe", "--units", "1:*"],
        ["evaluate", "--ais-runs", "2", "--ais-betas", "10", "--n-samples", "4"],
    ],
    ids=["sample", "features", "probe", "evaluate"],
)
@pytest.mark.parametrize("value", [float("nan"), float("inf")], ids=["nan", "inf"])
def test_stage_with_non_finite_weights_is_rejected(
    capsys, tmp_path, finished_run, command, value
):
    run_dir = shutil.copytree(finished_run, tmp_path / "run")
    weights = run_dir / "stages" / "pretrained" / "model.safetensors"
    tensors = load_file(weights)
    tensors["rbms.1.weight"][3, 2] = value
    save_file(tensors, weights)
    before = files_of(tmp_path)

    name, *options = command
    options = [option.format(out=tmp_path / "output") for option in options]
    code = main(["-q", name, str(run_dir), *options])
    err = capsys.readouterr().err

    assert code == 2
    assert_one_error(
        err,
        f"the weights of stage pretrained are not finite: tensor 'rbms.1.weight' "
        f"in {weights} contains NaN or inf, so the stage is damaged; restore it "
        "from a copy of the run, or train or fine-tune it again",
    )
    assert files_of(tmp_path) == before
