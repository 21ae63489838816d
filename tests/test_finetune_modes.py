"""Head and up-down fine-tuning: what each changes, and what it must leave alone."""

import json

import numpy as np
import pytest
import torch

from deepgen_core.cli import main
from deepgen_core.data import load_dataset
from deepgen_core.dbn import DBNConfig, DBNModule, train_dbn
from deepgen_core.errors import InputError
from deepgen_core.evaluation import log_likelihood
from deepgen_core.finetune import (
    WARM_START_PENALTY,
    HeadConfig,
    finetune_head,
    fit_softmax,
    unroll,
    warm_start_head,
)
from deepgen_core.likelihood import linear_betas
from deepgen_core.operations import finetune_config
from deepgen_core.runs import open_run
from deepgen_core.training import RBMTrainingConfig
from deepgen_core.updown import UpDownConfig, finetune_updown


@pytest.fixture(scope="module")
def mnist():
    dataset = load_dataset("mnist-10k")
    return (
        torch.as_tensor(dataset.x_train[:3000]),
        torch.as_tensor(dataset.y_train[:3000]).long(),
        torch.as_tensor(dataset.x_test[:1000]),
        torch.as_tensor(dataset.y_test[:1000]).long(),
    )


@pytest.fixture(scope="module")
def label_dbn(mnist):
    """A 784-64-32 DBN with label units, 3 epochs per layer on 3,000 images."""
    x, y, _, _ = mnist
    config = DBNConfig([64, 32], labels=True, rbm=RBMTrainingConfig(epochs=3))
    dbn, _ = train_dbn(x, config, y=y, n_classes=10)
    return dbn


def accuracy(dbn, x, y) -> float:
    with torch.no_grad():
        return float((dbn.class_log_probs(x).argmax(1) == y).float().mean())


def same_weights(first: DBNModule, second: DBNModule) -> bool:
    a, b = first.rbms.state_dict(), second.rbms.state_dict()
    return all(torch.equal(a[key], b[key]) for key in a)


def test_head_keeps_generative_weights(label_dbn, mnist):
    x, y, x_test, y_test = mnist
    before = {k: v.clone() for k, v in label_dbn.state_dict().items()}
    tuned, history = finetune_head(label_dbn, x, y, 10, HeadConfig(units="1:*,2:0-9"))
    assert same_weights(tuned, label_dbn)
    assert all(torch.equal(before[k], v) for k, v in label_dbn.state_dict().items())
    assert tuned.head.in_features == 64 + 10
    assert tuned.head_units == "1:*,2:0-9"
    assert sum(figures["best"] for figures in history) == 1
    # A softmax on 74 units of a briefly trained net: far above chance, and
    # not reliant on the label units, which the head ignores.
    assert accuracy(tuned, x_test, y_test) > 0.8


def test_head_reads_exactly_its_units(label_dbn, mnist):
    x, y, x_test, _ = mnist
    tuned, _ = finetune_head(label_dbn, x, y, 10, HeadConfig(units="2:3-7"))
    with torch.no_grad():
        expected = label_dbn.up(x_test)[1][:, 3:8]
        logits = expected @ tuned.head.weight.T + tuned.head.bias
        assert torch.allclose(
            tuned.class_log_probs(x_test), torch.log_softmax(logits, 1), atol=1e-6
        )


def test_updown_improves_accuracy_and_bound(label_dbn, mnist):
    x, y, x_test, y_test = mnist
    before = {k: v.clone() for k, v in label_dbn.state_dict().items()}
    tuned, history = finetune_updown(label_dbn, x, y, UpDownConfig(epochs=3))
    assert all(torch.equal(before[k], v) for k, v in label_dbn.state_dict().items())
    assert tuned.untied
    assert not label_dbn.untied
    assert not torch.equal(tuned.recognition[0].weight.T, tuned.rbms[0].weight)
    assert [figures["epoch"] for figures in history] == [0, 1, 2, 3]

    assert accuracy(tuned, x_test, y_test) > accuracy(label_dbn, x_test, y_test)
    binary = (x_test[:500] > 0.5).float()

    def bound(dbn):
        figures, _ = log_likelihood(dbn, binary, x, y, 50, linear_betas(500))
        return figures

    old, new = bound(label_dbn), bound(tuned)
    assert old["method"] == new["method"] == "ais-lower-bound"
    assert new["value"] - old["value"] > 3 * np.hypot(old["stderr"], new["stderr"])


def test_untied_stage_round_trips(label_dbn, mnist, tmp_path):
    x, y, x_test, _ = mnist
    tuned, _ = finetune_updown(label_dbn, x, y, UpDownConfig(epochs=1))
    tuned, _ = finetune_head(tuned, x, y, 10, HeadConfig(units="1:0-9"))
    copy = DBNModule.from_config(tuned.config())
    copy.load_state_dict(tuned.state_dict())
    assert copy.untied
    assert copy.head_units == "1:0-9"
    with torch.no_grad():
        assert torch.equal(copy.class_log_probs(x_test), tuned.class_log_probs(x_test))
        assert torch.equal(copy.up(x_test)[0], tuned.up(x_test)[0])


def test_updown_needs_label_units(mnist):
    x, y, _, _ = mnist
    dbn, _ = train_dbn(x[:200], DBNConfig([16, 8], rbm=RBMTrainingConfig(epochs=1)))
    with pytest.raises(InputError, match="needs a net with label units"):
        finetune_updown(dbn, x[:200], y[:200], UpDownConfig(epochs=1))


@pytest.mark.parametrize(
    ("method", "values", "message"),
    [
        ("sideways", {}, "unknown fine-tuning method 'sideways'"),
        ("updown", {"cd_k": 0}, "cd_k and batch size must be at least 1"),
        ("head", {"max_iterations": 0}, "max iterations must be at least 1"),
        ("backprop", {"warm_start_head": "yes"}, "warm_start_head must be true or"),
    ],
)
def test_bad_finetune_settings_are_named(method, values, message):
    with pytest.raises(InputError, match=message):
        finetune_config(method, values)


def test_cli_writes_one_stage_per_method(capsys, tmp_path, small_mnist_npz):
    run_dir = tmp_path / "run"
    args = ["-q", "train", "--dataset", str(small_mnist_npz), "--layers", "32,16"]
    assert main([*args, "--labels", "--epochs", "1", "--out", str(run_dir)]) == 0
    assert main(["-q", "finetune", str(run_dir), "--method", "head"]) == 0
    assert (
        main(["-q", "finetune", str(run_dir), "--method", "updown", "--epochs", "1"])
        == 0
    )
    out = capsys.readouterr().out
    assert "into stage finetuned-head" in out
    assert "into stage finetuned-updown" in out
    run = open_run(run_dir)
    assert run.stages() == ["pretrained", "finetuned-head", "finetuned-updown"]
    info = run.stage_info("finetuned-updown")["info"]
    assert info["method"] == "updown"
    assert info["config"]["epochs"] == 1
    assert (
        json.loads((run.stage_dir("finetuned-head") / "model.json").read_text())[
            "model"
        ]["head_units"]
        is None
    )

    no_labels = tmp_path / "plain"
    args = ["-q", "train", "--dataset", str(small_mnist_npz), "--layers", "16"]
    assert main([*args, "--epochs", "1", "--out", str(no_labels)]) == 0
    capsys.readouterr()
    assert main(["-q", "finetune", str(no_labels), "--method", "updown"]) == 2
    assert "needs a net with label units" in capsys.readouterr().err


def test_warm_start_fits_only_softmax_layer(label_dbn, mnist):
    x, y, x_test, y_test = mnist
    net = unroll(label_dbn, 10, torch.Generator().manual_seed(0), 0.0, 0.5)
    hidden_before = [p.clone() for p in net[:-1].parameters()]
    with torch.no_grad():
        random_head = float((net(x_test).argmax(1) == y_test).float().mean())
    warm_start_head(net, x, y, 10)
    net.eval()
    with torch.no_grad():
        features = net[:-1](x)
        warm = float((net(x_test).argmax(1) == y_test).float().mean())
    # A softmax on the 32 top units of this small net scores about 0.71.
    assert random_head < 0.3
    assert warm > 0.65
    for before, after in zip(hidden_before, net[:-1].parameters()):
        assert torch.equal(before, after)
    expected = fit_softmax(features, y, 10, WARM_START_PENALTY, 200)
    assert torch.allclose(net[-1].weight, expected.weight, atol=1e-5)
