"""Learning-rate schedules of CD-k / PCD training."""

import copy

import pytest
import torch

from deepgen_core.cli import build_parser, run_config_from_args
from deepgen_core.errors import InputError
from deepgen_core.rbm import RBMModule
from deepgen_core.training import CDTrainer, RBMTrainingConfig, batch_size_advice


def test_linear_schedule_factors():
    config = RBMTrainingConfig(epochs=4, lr_schedule="linear")
    factors = [config.lr_factor(epoch) for epoch in range(1, 5)]
    assert factors == pytest.approx([1.0, 0.75, 0.5, 0.25])


def test_constant_schedule_keeps_rate():
    config = RBMTrainingConfig(epochs=4)
    assert [config.lr_factor(epoch) for epoch in range(1, 5)] == [1.0] * 4


def test_linear_schedule_scales_each_update():
    torch.manual_seed(0)
    rbm = RBMModule(12, 5)
    with torch.no_grad():
        rbm.weight.normal_(0, 0.1)
    data = torch.rand(20, 12).round()
    linear = RBMTrainingConfig(
        epochs=4, batch_size=20, learning_rate=0.2, lr_schedule="linear"
    )
    constant = RBMTrainingConfig(epochs=4, batch_size=20, learning_rate=0.1)
    scheduled = CDTrainer(copy.deepcopy(rbm), linear, torch.Generator().manual_seed(1))
    fixed = CDTrainer(copy.deepcopy(rbm), constant, torch.Generator().manual_seed(1))
    with torch.no_grad():
        # In epoch 3 of 4 the linear schedule uses half of the rate 0.2.
        scheduled.step(data, epoch=3)
        fixed.step(data, epoch=3)
    for name, increment in fixed.increments.items():
        assert increment.abs().sum() > 0, name
        assert torch.allclose(scheduled.increments[name], increment), name
    assert torch.allclose(scheduled.rbm.weight, fixed.rbm.weight)


def test_unknown_schedule_is_rejected():
    with pytest.raises(InputError, match="must be one of constant, linear"):
        RBMTrainingConfig(lr_schedule="cosine").validate()


def test_cli_flag_sets_schedule():
    args = build_parser().parse_args(
        ["train", "--out", "runs/x", "--lr-schedule", "linear"]
    )
    assert run_config_from_args(args).dbn.rbm.lr_schedule == "linear"


@pytest.mark.parametrize(
    ("n_rows", "batch_size", "advice"),
    [
        (80, 30, "choose a batch size that divides 80, such as 16, 20 or 40, "),
        (1000, 64, "such as 40, 50 or 100, or allow dropping the last 40 rows "),
        (10, 7, "such as 5 or 10, or allow dropping the last 3 rows "),
        (1437, 100, "no batch size from 50 to 200 divides 1437, so use drop_last"),
        (7, 3, "leaves out 1 of the 7 rows (14.3%) in each epoch, another each time"),
    ],
)
def test_batch_size_advice_names_near_divisors(n_rows, batch_size, advice):
    assert advice in batch_size_advice(n_rows, batch_size)
