"""The RBM's energies and conditionals against brute-force enumeration."""

import math

import pytest
import torch

from deepgen_core.errors import InputError
from deepgen_core.rbm import RBMModule, all_binary_states, log_partition_exact


def random_rbm(n_visible, n_hidden, visible_type="bernoulli", n_labels=0, seed=0):
    torch.manual_seed(seed)
    rbm = RBMModule(n_visible, n_hidden, visible_type, n_labels=n_labels)
    with torch.no_grad():
        rbm.weight.normal_(0, 0.8)
        rbm.visible_bias.normal_(0, 0.5)
        rbm.hidden_bias.normal_(0, 0.5)
        if visible_type == "gaussian":
            rbm.log_sigma.uniform_(-0.4, 0.4)
    return rbm.double()


def valid_visible_states(rbm):
    """Every visible configuration the RBM allows (one-hot label group)."""
    n_units = rbm.n_visible - rbm.n_labels
    units = all_binary_states(n_units)
    if not rbm.n_labels:
        return units
    labels = torch.eye(rbm.n_labels, dtype=torch.float64)
    rows = [torch.cat([u.expand(rbm.n_labels, -1), labels], 1) for u in units]
    return torch.cat(rows)


@pytest.mark.parametrize("n_labels", [0, 3])
def test_bernoulli_joint_matches_enumeration(n_labels):
    rbm = random_rbm(6 + n_labels, 4, n_labels=n_labels)
    v_all, h_all = valid_visible_states(rbm), all_binary_states(4)
    # energies[i, j] = E(v_i, h_j) computed the long way.
    energies = torch.stack(
        [
            torch.stack(
                [
                    -(v @ rbm.visible_bias) - h @ rbm.hidden_bias - v @ rbm.weight @ h
                    for h in h_all
                ]
            )
            for v in v_all
        ]
    )
    vv = v_all.repeat_interleave(len(h_all), 0)
    hh = h_all.repeat(len(v_all), 1)
    assert torch.allclose(rbm.energy(vv, hh), energies.flatten(), atol=1e-10)

    free = -torch.logsumexp(-energies, 1)
    assert torch.allclose(rbm.free_energy(v_all), free, atol=1e-10)

    log_z = float(torch.logsumexp(-energies.flatten(), 0))
    assert log_partition_exact(rbm) == pytest.approx(log_z, abs=1e-9)

    # p(h_j = 1 | v): the marginal of the enumerated conditional.
    p_h_given_v = torch.softmax(-energies, 1) @ h_all
    assert torch.allclose(rbm.hidden_probs(v_all), p_h_given_v, atol=1e-10)

    # E[v | h]: the mean of the enumerated conditional over valid v.
    p_v_given_h = torch.softmax(-energies.T, 1) @ v_all
    assert torch.allclose(rbm.visible_mean(h_all), p_v_given_h, atol=1e-10)


def test_label_log_probs_match_enumeration():
    rbm = random_rbm(5 + 4, 3, n_labels=4, seed=3)
    v_all = valid_visible_states(rbm)
    units = v_all[::4, :5]
    free = rbm.free_energy(v_all).reshape(-1, 4)
    expected = torch.log_softmax(-free, 1)
    assert torch.allclose(rbm.label_log_probs(units), expected, atol=1e-10)


def gaussian_log_density_given_h(rbm, v, h):
    """log p(v | h) from the stated normal conditional."""
    mean = rbm.visible_input(h)
    sigma = rbm.sigma
    z = (v - mean) / sigma
    return (-0.5 * z**2 - torch.log(sigma) - 0.5 * math.log(2 * math.pi)).sum(1)


def test_gaussian_conditionals_match_energy():
    rbm = random_rbm(5, 4, "gaussian", seed=1)
    h_all = all_binary_states(4)
    torch.manual_seed(7)
    v = torch.randn(30, 5, dtype=torch.float64) * 1.5

    # p(h | v) by enumeration over h for each continuous v.
    energies = torch.stack([rbm.energy(v, h.expand(30, -1)) for h in h_all], 1)
    assert torch.allclose(
        rbm.hidden_probs(v), torch.softmax(-energies, 1) @ h_all, atol=1e-10
    )
    assert torch.allclose(
        rbm.free_energy(v), -torch.logsumexp(-energies, 1), atol=1e-10
    )

    # For a fixed h, -E(v, h) - log p(v | h) must not depend on v.
    for h in h_all:
        hh = h.expand(30, -1)
        offset = -rbm.energy(v, hh) - gaussian_log_density_given_h(rbm, v, hh)
        assert float(offset.std()) < 1e-10


def test_gaussian_log_partition_matches_quadrature():
    # One visible unit, so the integral over v can be done on a fine grid.
    rbm = random_rbm(1, 3, "gaussian", seed=2)
    grid = torch.linspace(-30, 30, 200001, dtype=torch.float64).unsqueeze(1)
    log_integrand = -rbm.free_energy(grid)
    step = float(grid[1] - grid[0])
    log_z = float(torch.logsumexp(log_integrand, 0)) + math.log(step)
    assert log_partition_exact(rbm) == pytest.approx(log_z, abs=1e-6)


def test_sample_visible_label_group_is_one_hot():
    rbm = random_rbm(4 + 5, 3, n_labels=5)
    g = torch.Generator().manual_seed(0)
    h = torch.bernoulli(torch.full((200, 3), 0.5, dtype=torch.float64), generator=g)
    _, v = rbm.sample_visible(h, g)
    assert torch.equal(v[:, -5:].sum(1), torch.ones(200, dtype=torch.float64))


def test_pseudo_log_likelihood_matches_definition():
    rbm = random_rbm(6, 4, seed=4)
    v = all_binary_states(6)
    # With one unit drawn per row, averaging over many draws per row gives
    # sum_i log p(v_i | v_-i); compute that exactly to compare.
    exact = torch.zeros(len(v), dtype=torch.float64)
    for i in range(6):
        flipped = v.clone()
        flipped[:, i] = 1 - flipped[:, i]
        exact += torch.nn.functional.logsigmoid(
            rbm.free_energy(flipped) - rbm.free_energy(v)
        )
    g = torch.Generator().manual_seed(1)
    draws = torch.stack([rbm.pseudo_log_likelihood(v, g) for _ in range(3000)])
    assert torch.allclose(draws.mean(0), exact, atol=0.15)


def test_exact_log_partition_rejects_large_rbm():
    rbm = RBMModule(10, 25)
    with pytest.raises(InputError, match="2\\^25 terms, above the limit of 2\\^20"):
        log_partition_exact(rbm)
