"""Run folders: saving and loading stages, checkpoints, resuming, divergence."""

import json
import os
import stat

import pytest
import torch

from deepgen_core.cli import main
from deepgen_core.data import load_dataset
from deepgen_core.dbn import DBNConfig, train_dbn
from deepgen_core.device import make_generator
from deepgen_core.errors import InputError, TrainingDiverged
from deepgen_core.operations import train_run
from deepgen_core.rbm import sample_bernoulli
from deepgen_core.runs import PRETRAINED, RunConfig, create_run, open_run
from deepgen_core.training import RBMTrainingConfig


class Interrupt(Exception):
    pass


def interrupt_at(layer, epoch):
    """A progress callback that stops training at the first batch of an epoch."""

    def callback(progress):
        if progress.layer == layer and progress.epoch == epoch:
            raise Interrupt

    return callback


def small_config(dataset, **rbm_options):
    rbm = RBMTrainingConfig(epochs=3, batch_size=50, **rbm_options)
    dbn = DBNConfig(layers=[64, 32], labels=True, seed=7, rbm=rbm)
    return RunConfig(dataset=str(dataset), dbn=dbn, device="cpu")


def without_seconds(records):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in records]


def stage_weights(run):
    return run.load_stage(PRETRAINED).state_dict()


@pytest.mark.parametrize(
    ("rbm_options", "stop_layer", "stop_epoch"),
    [
        ({}, 1, 3),
        ({"persistent": True, "cd_k": 2, "sparsity_target": 0.1}, 2, 2),
        ({}, 2, 1),
        ({"persistent": True, "lr_schedule": "linear"}, 1, 2),
    ],
    ids=[
        "cd-mid-layer",
        "pcd-sparsity-second-layer",
        "cd-layer-boundary",
        "pcd-linear-schedule",
    ],
)
def test_resumed_run_matches_uninterrupted(
    tmp_path, small_mnist_npz, rbm_options, stop_layer, stop_epoch
):
    config = small_config(small_mnist_npz, **rbm_options)
    whole = train_run(str(tmp_path / "whole"), config)

    with pytest.raises(Interrupt):
        train_run(
            str(tmp_path / "cut"),
            small_config(small_mnist_npz, **rbm_options),
            progress=interrupt_at(stop_layer, stop_epoch),
        )
    state = json.loads((tmp_path / "cut" / "checkpoint" / "state.json").read_text())
    expected_layer = stop_layer - 1 if stop_epoch > 1 else stop_layer - 2
    assert state["layer"] == expected_layer
    assert state["epoch"] == (stop_epoch - 1 if stop_epoch > 1 else 3)
    resumed = train_run(str(tmp_path / "cut"), resume=True)

    expected, actual = stage_weights(whole), stage_weights(resumed)
    assert expected.keys() == actual.keys()
    for name in expected:
        assert torch.equal(expected[name], actual[name]), name
    assert without_seconds(resumed.metrics()) == without_seconds(whole.metrics())
    assert not (tmp_path / "cut" / "checkpoint").exists()
    leftovers = [p.name for p in (tmp_path / "cut").rglob("*.tmp")]
    assert leftovers == []


def test_saved_stage_gives_same_transform_and_samples(tmp_path, small_mnist_npz):
    config = small_config(small_mnist_npz)
    dataset = load_dataset(str(small_mnist_npz))
    x = torch.as_tensor(dataset.x_train)
    y = torch.as_tensor(dataset.y_train, dtype=torch.int64)
    dbn, history = train_dbn(x, config.dbn, y=y, n_classes=10)
    run = create_run(tmp_path / "run", config)
    run.save_stage(PRETRAINED, dbn, {}, history)
    loaded = open_run(tmp_path / "run").load_stage(PRETRAINED, torch.device("cpu"))

    probe = torch.as_tensor(dataset.x_test)
    with torch.no_grad():
        for before, after in zip(dbn.activations(probe), loaded.activations(probe)):
            assert torch.equal(before, after)
        first, _ = dbn.generate(8, 3, 20, make_generator(1, x.device))
        second, _ = loaded.generate(8, 3, 20, make_generator(1, x.device))
    assert torch.equal(first, second)


def test_divergence_names_layer_and_keeps_checkpoint(tmp_path, small_mnist_npz):
    run_dir = tmp_path / "run"
    with pytest.raises(Interrupt):
        train_run(
            str(run_dir), small_config(small_mnist_npz), progress=interrupt_at(2, 2)
        )
    checkpoint = run_dir / "checkpoint"
    before = {p.name: p.read_bytes() for p in checkpoint.iterdir()}
    assert "state-layer2-epoch1.safetensors" in before

    config = json.loads((run_dir / "config.json").read_text())
    config["dbn"]["rbm"]["learning_rate"] = 1e38
    (run_dir / "config.json").write_text(json.dumps(config))
    with pytest.raises(
        TrainingDiverged, match=r"layer 2, epoch 2: the weights"
    ) as error:
        train_run(str(run_dir), resume=True)
    assert f"The last good checkpoint was kept in {checkpoint}" in str(error.value)

    after = {p.name: p.read_bytes() for p in checkpoint.iterdir()}
    assert after == before
    assert PRETRAINED not in open_run(run_dir).stages()


def test_existing_run_folder_is_not_overwritten(tmp_path, small_mnist_npz):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "notes.txt").write_text("keep me")
    with pytest.raises(InputError, match="already exists and is not empty"):
        train_run(str(run_dir), small_config(small_mnist_npz))
    assert [p.name for p in run_dir.iterdir()] == ["notes.txt"]
    assert (run_dir / "notes.txt").read_text() == "keep me"


def test_missing_stage_names_available_stages(tmp_path, small_mnist_npz):
    config = small_config(small_mnist_npz)
    config.dbn.rbm.epochs = 1
    run = train_run(str(tmp_path / "run"), config)
    with pytest.raises(
        InputError, match=r"no stage 'finetuned' \(stages: pretrained\)"
    ):
        run.load_stage("finetuned")


def test_unfinished_run_points_at_resume(tmp_path, small_mnist_npz):
    with pytest.raises(Interrupt):
        train_run(
            str(tmp_path / "cut"),
            small_config(small_mnist_npz),
            progress=interrupt_at(2, 1),
        )
    with pytest.raises(InputError) as caught:
        open_run(tmp_path / "cut").load_stage(PRETRAINED)
    assert str(caught.value).endswith(
        "(stages: none yet: train it first); pretraining stopped before it "
        f"finished, continue it with `deepgen train --resume --out {tmp_path / 'cut'}`"
    )


def test_damaged_weights_file_gives_clear_error(tmp_path, small_mnist_npz):
    config = small_config(small_mnist_npz)
    config.dbn.rbm.epochs = 1
    run = train_run(str(tmp_path / "run"), config)
    weights = run.stage_dir(PRETRAINED) / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(InputError, match="could not be read as safetensors"):
        run.load_stage(PRETRAINED)


def test_empty_chain_start_draws_first_state_from_label(small_mnist_npz):
    config = small_config(small_mnist_npz)
    dataset = load_dataset(str(small_mnist_npz))
    x = torch.as_tensor(dataset.x_train)
    y = torch.as_tensor(dataset.y_train, dtype=torch.int64)
    dbn, _ = train_dbn(x, config.dbn, y=y, n_classes=10)
    with torch.no_grad():
        samples, _ = dbn.generate(5, 3, 1, make_generator(2, x.device), start="empty")
        # The same draws by hand: the noise is drawn, then replaced by zeros.
        generator = make_generator(2, x.device)
        top = dbn.rbms[-1]
        n_below = top.n_visible - top.n_labels
        sample_bernoulli(torch.full((5, n_below), 0.5), generator)
        label = torch.nn.functional.one_hot(torch.full((5,), 3), 10).float()
        _, h = top.sample_hidden(
            torch.cat([torch.zeros(5, n_below), label], 1), generator
        )
        mean, _ = top.sample_visible(h, generator)
        expected = dbn.down(mean[:, :n_below])
        noisy, _ = dbn.generate(5, 3, 1, make_generator(2, x.device))
    assert torch.allclose(samples, expected)
    assert not torch.allclose(samples, noisy)


def test_unknown_chain_start_is_rejected(small_mnist_npz):
    config = small_config(small_mnist_npz)
    dataset = load_dataset(str(small_mnist_npz))
    dbn, _ = train_dbn(
        torch.as_tensor(dataset.x_train[:100]),
        config.dbn,
        y=torch.as_tensor(dataset.y_train[:100], dtype=torch.int64),
        n_classes=10,
    )
    with pytest.raises(InputError, match="unknown chain start 'data'.*noise, empty"):
        dbn.generate(2, 1, 1, make_generator(0, dbn.device), start="data")


def digits_config(layers=(8,), epochs=2):
    """A one-layer net that trains on the digits dataset in about a second."""
    rbm = RBMTrainingConfig(epochs=epochs, batch_size=100, drop_last=True)
    return RunConfig("digits", DBNConfig(layers=list(layers), rbm=rbm), "cpu")


def file_modes(folder):
    return {
        str(p.relative_to(folder)): stat.S_IMODE(p.stat().st_mode)
        for p in folder.rglob("*")
        if p.is_file()
    }


@pytest.mark.parametrize("umask", [0o022, 0o027], ids=["022", "027"])
def test_run_files_get_mode_of_umask(tmp_path, umask):
    run_dir = tmp_path / "run"
    old_umask = os.umask(umask)
    try:
        with pytest.raises(Interrupt):
            train_run(str(run_dir), digits_config(), progress=interrupt_at(1, 2))
        checkpoint_modes = file_modes(run_dir)
        run = train_run(str(run_dir), resume=True)
        run.save_evaluation(PRETRAINED, {"test_error": 0.5})
        outputs = tmp_path / "outputs"
        outputs.mkdir()
        sample = ["sample", str(run_dir), "--n", "4", "--steps", "2"]
        assert main(["-q", *sample, "--out", str(outputs / "grid.png")]) == 0
        features = ["features", str(run_dir), "--units", "1:*"]
        assert main(["-q", *features, "--out", str(outputs / "f.npz")]) == 0
    finally:
        os.umask(old_umask)

    expected = 0o666 & ~umask
    assert checkpoint_modes == {
        "config.json": expected,
        "metrics.jsonl": expected,
        "checkpoint/state.json": expected,
        "checkpoint/state-layer1-epoch1.safetensors": expected,
    }
    assert file_modes(run_dir) == {
        "config.json": expected,
        "metrics.jsonl": expected,
        "stages/pretrained/metrics.jsonl": expected,
        "stages/pretrained/model.json": expected,
        "stages/pretrained/model.safetensors": expected,
        "stages/pretrained/evaluation.json": expected,
    }
    assert file_modes(outputs) == {"grid.png": expected, "f.npz": expected}


@pytest.mark.parametrize("folder_existed", [False, True], ids=["new", "empty"])
def test_first_epoch_divergence_frees_out(tmp_path, folder_existed):
    run_dir = tmp_path / "run"
    if folder_existed:
        run_dir.mkdir()
    config = digits_config(layers=(16,), epochs=1)
    config.dbn.rbm.learning_rate = 1e30

    with pytest.raises(TrainingDiverged) as error:
        train_run(str(run_dir), config)

    message = str(error.value)
    assert "training diverged at layer 1, epoch 1: the weights became NaN" in message
    removed = (
        f"config.json was removed from {run_dir}"
        if folder_existed
        else f"the run folder {run_dir} was removed"
    )
    assert f"No epoch finished, so nothing was saved and {removed}: train " in message
    assert "last good checkpoint" not in message
    assert run_dir.exists() == folder_existed
    if folder_existed:
        assert list(run_dir.iterdir()) == []

    run = train_run(str(run_dir), digits_config(layers=(16,), epochs=1))
    assert run.stages() == [PRETRAINED]


def test_resume_diverging_without_checkpoint_keeps_folder(tmp_path):
    run_dir = tmp_path / "run"
    with pytest.raises(Interrupt):
        train_run(str(run_dir), digits_config(), progress=interrupt_at(1, 1))
    config = json.loads((run_dir / "config.json").read_text())
    config["dbn"]["rbm"]["learning_rate"] = 1e30
    (run_dir / "config.json").write_text(json.dumps(config))
    before = {p.name: p.read_bytes() for p in run_dir.iterdir()}
    assert list(before) == ["config.json"]

    with pytest.raises(TrainingDiverged) as error:
        train_run(str(run_dir), resume=True)

    assert (
        f"No epoch finished, so {run_dir} has no checkpoint and resuming it would "
        "diverge again: remove that folder and train again with a lower --lr, or "
        "train into a new --out"
    ) in str(error.value)
    assert {p.name: p.read_bytes() for p in run_dir.iterdir()} == before
