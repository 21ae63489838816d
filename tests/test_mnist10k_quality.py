"""Classification quality of a 784-500-500 DBN on mnist-10k.

The net is pretrained for 10 epochs per layer with the default settings
(seed 0, CPU), as a user would with
``deepgen train --dataset mnist-10k --layers 500,500 --epochs 10``.
"""

import json

import pytest

from deepgen_core.cli import main
from deepgen_core.dbn import DBNConfig
from deepgen_core.finetune import FinetuneConfig
from deepgen_core.operations import finetune_run, probe_run, train_run
from deepgen_core.runs import FINETUNED, PRETRAINED, RunConfig
from deepgen_core.training import RBMTrainingConfig


@pytest.fixture(scope="module")
def mnist10k_run(tmp_path_factory):
    config = RunConfig(
        dataset="mnist-10k",
        dbn=DBNConfig(layers=[500, 500], seed=0, rbm=RBMTrainingConfig(epochs=10)),
        device="cpu",
    )
    return train_run(str(tmp_path_factory.mktemp("runs") / "mnist10k"), config)


def probe_json(capsys, run, units):
    code = main(["-q", "probe", str(run.path), "--units", units, "--json"])
    assert code == 0
    return json.loads(capsys.readouterr().out)


def test_linear_svm_on_dbn_units_beats_pixels(capsys, mnist10k_run):
    hidden = probe_json(capsys, mnist10k_run, "1:*,2:*")
    pixels = probe_json(capsys, mnist10k_run, "0:*")
    assert hidden["n_units"] == 1000
    assert pixels["n_units"] == 784
    assert hidden["n_test"] == pixels["n_test"] == 2000
    assert hidden["accuracy"] >= 0.95
    assert 0.87 <= pixels["accuracy"] <= 0.92
    assert hidden["accuracy"] > pixels["accuracy"] + 0.03


def test_top_layer_alone_is_close_behind(mnist10k_run):
    top = probe_run(mnist10k_run, PRETRAINED, "2:*")
    assert top["accuracy"] >= 0.94


def test_finetuning_beats_pretrained_top_layer(mnist10k_run):
    # NOTE: seed 0 gives 0.9635 with one thread. Over pretraining seeds 0-7
    # the default fine-tuning ranges from 0.958 to 0.965, mean 0.963
    # (bench/finetune_accuracy.py), so another seed or CPU can miss 0.96.
    weights = mnist10k_run.stage_dir(PRETRAINED) / "model.safetensors"
    before = weights.read_bytes()
    finetune_run(mnist10k_run, FinetuneConfig(seed=0))
    info = mnist10k_run.stage_info(FINETUNED)["info"]
    pretrained_top = probe_run(mnist10k_run, PRETRAINED, "2:*")
    assert info["test_accuracy"] >= 0.96
    assert info["test_accuracy"] > pretrained_top["accuracy"]
    assert weights.read_bytes() == before
    tuned = probe_run(mnist10k_run, FINETUNED, "2:*")
    assert tuned["accuracy"] >= 0.95
