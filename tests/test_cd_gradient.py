"""CD-k and PCD updates against the exact log-likelihood gradient.

CD-k is biased: its expected update points roughly along the gradient for
small k and approaches it as k grows. PCD's persistent chains, with the
parameters held still, sample the model distribution, so its negative
statistics are the model's expectations and its update matches the gradient.
"""

import copy

import pytest
import torch

from deepgen_core.rbm import RBMModule, all_binary_states
from deepgen_core.training import CDTrainer, RBMTrainingConfig

N_VISIBLE, N_HIDDEN = 6, 4


@pytest.fixture(scope="module")
def tiny_problem():
    torch.manual_seed(0)
    rbm = RBMModule(N_VISIBLE, N_HIDDEN).double()
    with torch.no_grad():
        rbm.weight.normal_(0, 1.0)
        rbm.visible_bias.normal_(0, 0.5)
        rbm.hidden_bias.normal_(0, 0.5)
    patterns = torch.tensor(
        [[1, 1, 1, 0, 0, 0], [0, 0, 0, 1, 1, 1], [1, 0, 1, 0, 1, 0]],
        dtype=torch.float64,
    )
    return rbm, patterns


def exact_weight_gradient(rbm, data):
    """d mean log p(data) / dW by enumerating every visible state."""
    v_all = all_binary_states(N_VISIBLE)
    p_v = torch.softmax(-rbm.free_energy(v_all), 0)
    model = (v_all * p_v.unsqueeze(1)).T @ rbm.hidden_probs(v_all)
    positive = data.T @ rbm.hidden_probs(data) / data.shape[0]
    return positive - model


def expected_cd_update(rbm, data, k, seed, repeats=20000):
    """Mean CD-k weight update over many chains started at the data."""
    model = copy.deepcopy(rbm)
    config = RBMTrainingConfig(
        learning_rate=1.0,
        cd_k=k,
        initial_momentum=0.0,
        momentum=0.0,
        weight_decay=0.0,
        sample_visible=True,
        batch_size=repeats * len(data),
    )
    trainer = CDTrainer(model, config, torch.Generator().manual_seed(seed))
    trainer.step(data.repeat(repeats, 1), epoch=1)
    return trainer.increments["weight"]


def cosine(a, b):
    return float((a * b).sum() / (a.norm() * b.norm()))


def relative_error(estimate, exact):
    return float((estimate - exact).norm() / exact.norm())


def test_cd_update_nears_gradient_as_k_grows(tiny_problem):
    rbm, data = tiny_problem
    exact = exact_weight_gradient(rbm, data)
    errors = {
        k: relative_error(expected_cd_update(rbm, data, k, seed=k), exact)
        for k in (1, 2, 50)
    }
    cd1 = expected_cd_update(rbm, data, 1, seed=11)

    assert cosine(cd1, exact) > 0.9, "CD-1 should point along the gradient"
    assert errors[1] > 0.1, "CD-1 is biased on this RBM; the test needs that bias"
    assert errors[2] < errors[1]
    assert errors[50] < errors[2]
    assert errors[50] < 0.03, "a long chain should leave only sampling noise"


def test_pcd_update_matches_gradient_with_mixed_chains(tiny_problem):
    rbm, data = tiny_problem
    exact = exact_weight_gradient(rbm, data)
    model = copy.deepcopy(rbm)
    n_chains, lr = 2000, 1e-9  # the step is too small to move the weights
    config = RBMTrainingConfig(
        learning_rate=lr,
        cd_k=1,
        persistent=True,
        initial_momentum=0.0,
        momentum=0.0,
        weight_decay=0.0,
        batch_size=n_chains,
    )
    trainer = CDTrainer(model, config, torch.Generator().manual_seed(5))
    batch = data.repeat(n_chains // len(data) + 1, 1)[:n_chains]
    for _ in range(50):  # burn-in of the persistent chains
        trainer.step(batch, epoch=1)
    total = torch.zeros_like(exact)
    n_updates = 200
    for _ in range(n_updates):
        trainer.step(batch, epoch=1)
        total += trainer.increments["weight"] / lr
    pcd = total / n_updates

    assert cosine(pcd, exact) > 0.995
    assert relative_error(pcd, exact) < 0.05
