"""AIS estimates of log Z against exact enumeration on small RBMs."""

import numpy as np
import pytest
import torch

from deepgen_core.data import load_dataset
from deepgen_core.errors import InputError
from deepgen_core.likelihood import (
    ais_log_partition,
    average_log_likelihood,
    estimate_log_partition,
    linear_betas,
    salakhutdinov_murray_betas,
)
from deepgen_core.rbm import RBMModule, log_partition_exact
from deepgen_core.training import RBMTrainingConfig, train_rbm


@pytest.fixture(scope="module")
def small_rbm():
    """A 64-12 RBM trained on the 8x8 digits, small enough to enumerate."""
    data = torch.as_tensor(load_dataset("digits").x_train)
    rbm = RBMModule(64, 12)
    config = RBMTrainingConfig(epochs=20, batch_size=479)
    train_rbm(rbm, data, config, torch.Generator().manual_seed(0))
    return rbm, data


def test_schedule_has_published_length():
    betas = salakhutdinov_murray_betas()
    assert len(betas) == 14501
    assert betas[0] == 0.0
    assert betas[-1] == 1.0
    assert np.all(np.diff(betas) > 0)


def test_ais_matches_exact_log_partition(small_rbm):
    rbm, data = small_rbm
    exact = log_partition_exact(rbm)
    generator = torch.Generator().manual_seed(1)
    estimate = ais_log_partition(rbm, data, linear_betas(2000), 200, generator)
    assert estimate.method == "ais"
    assert estimate.stderr < 0.05
    assert abs(estimate.log_z - exact) < 4 * estimate.stderr + 0.02


def test_reverse_ais_matches_exact(small_rbm):
    rbm, data = small_rbm
    exact = log_partition_exact(rbm)
    generator = torch.Generator().manual_seed(2)
    estimate = ais_log_partition(
        rbm, data, linear_betas(2000), 200, generator, reverse=True
    )
    assert estimate.method == "reverse-ais"
    assert abs(estimate.log_z - exact) < 4 * estimate.stderr + 0.05


def test_short_schedule_has_larger_error(small_rbm):
    rbm, data = small_rbm
    generator = torch.Generator().manual_seed(3)
    short = ais_log_partition(rbm, data, linear_betas(10), 200, generator)
    long = ais_log_partition(rbm, data, linear_betas(2000), 200, generator)
    assert short.stderr > long.stderr


def test_log_likelihood_uses_free_energy(small_rbm):
    rbm, data = small_rbm
    log_z = estimate_log_partition(rbm, data).log_z
    value = average_log_likelihood(rbm, data, log_z)
    expected = float((-rbm.free_energy(data)).double().mean() - log_z)
    assert value == pytest.approx(expected)
    assert value < 0


def test_gaussian_rbm_is_rejected():
    rbm = RBMModule(4, 3, "gaussian")
    with pytest.raises(InputError, match="Bernoulli"):
        ais_log_partition(rbm, torch.zeros(5, 4), linear_betas(5), 4)
