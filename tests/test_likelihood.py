"""AIS estimates of log Z against exact enumeration on small RBMs."""

import numpy as np
import pytest
import torch

from deepgen_core import evaluation
from deepgen_core.data import load_dataset
from deepgen_core.dbn import DBNModule
from deepgen_core.errors import InputError
from deepgen_core.likelihood import (
    ais_log_partition,
    average_log_likelihood,
    estimate_log_partition,
    linear_betas,
    salakhutdinov_murray_betas,
    scaled_betas,
)
from deepgen_core.rbm import (
    RBMModule,
    all_binary_states,
    log_partition_exact,
    sample_exact,
)
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


def random_rbm(n_visible, n_hidden, n_labels=0, scale=0.5, seed=0) -> RBMModule:
    generator = torch.Generator().manual_seed(seed)
    rbm = RBMModule(n_visible + n_labels, n_hidden, n_labels=n_labels)
    with torch.no_grad():
        rbm.weight.copy_(torch.randn(rbm.weight.shape, generator=generator) * scale)
        rbm.visible_bias.copy_(torch.randn(rbm.n_visible, generator=generator) * 0.5)
        rbm.hidden_bias.copy_(torch.randn(n_hidden, generator=generator) * 0.5)
    return rbm


def test_ais_with_label_units_matches_exact():
    rbm = random_rbm(30, 12, n_labels=4)
    generator = torch.Generator().manual_seed(0)
    units = (torch.rand(500, 30, generator=generator) < 0.3).float()
    labels = torch.nn.functional.one_hot(
        torch.randint(4, (500,), generator=generator), 4
    )
    data = torch.cat([units, labels.float()], 1)
    exact = log_partition_exact(rbm)
    for reverse in (False, True):
        estimate = ais_log_partition(
            rbm, data, linear_betas(3000), 100, generator, reverse=reverse
        )
        assert abs(estimate.log_z - exact) < 4 * estimate.stderr + 0.02, reverse


def test_exact_enumeration_in_chunks_matches_one_pass():
    # 16 hidden units take four chunks of 2^14 states.
    rbm = random_rbm(10, 16, scale=0.3)
    states = all_binary_states(16)
    inputs = states @ rbm.weight.double().T + rbm.visible_bias.double()
    one_pass = torch.logsumexp(
        states @ rbm.hidden_bias.double() + torch.nn.functional.softplus(inputs).sum(1),
        0,
    )
    assert log_partition_exact(rbm) == pytest.approx(float(one_pass), abs=1e-9)


def test_too_big_for_enumeration_names_size_and_limit():
    with pytest.raises(InputError, match=r"21 hidden units needs 2\^21 .* 2\^20"):
        log_partition_exact(RBMModule(5, 21))


@pytest.mark.parametrize(
    ("betas", "runs", "message"),
    [
        (np.array([0.0, 0.6, 0.5, 1.0]), 10, "does not always rise"),
        (np.linspace(0, 0.9, 10), 10, "from 0 to 0.9"),
        (np.linspace(0, 1, 10), 0, "at least 2 runs"),
    ],
)
def test_bad_schedules_are_refused(betas, runs, message):
    with pytest.raises(InputError, match=message):
        ais_log_partition(random_rbm(4, 3), torch.zeros(5, 4), betas, runs)


def test_scaled_schedule_keeps_published_shape():
    assert np.array_equal(scaled_betas(14_500), salakhutdinov_murray_betas())
    short = scaled_betas(290)
    assert len(short) == 291
    assert short[0] == 0
    assert short[-1] == 1
    assert np.all(np.diff(short) > 0)
    assert np.sum(short < 0.5) == 10
    assert np.sum(short >= 0.9) == 201


def tiny_dbn(n_labels=0) -> DBNModule:
    """A 6-4-3 DBN with random weights, small enough to enumerate everything."""
    dbn = DBNModule(6, [4, 3], n_labels=n_labels)
    for index, rbm in enumerate(dbn.rbms):
        source = random_rbm(
            rbm.n_visible - rbm.n_labels, rbm.n_hidden, rbm.n_labels, 1.0, index
        )
        rbm.load_state_dict(source.state_dict())
    return dbn


def exact_log_probs(dbn: DBNModule, v: torch.Tensor) -> torch.Tensor:
    """log p(v) of a two-layer DBN by summing over every state of layer 1."""
    top, bottom = dbn.rbms[1], dbn.rbms[0]
    h1 = all_binary_states(4).float()
    prior = evaluation._log_unnormalised_top(dbn, h1).double() - log_partition_exact(
        top
    )
    logits = bottom.visible_input(h1)  # (16, 6)
    likelihood = -torch.nn.functional.binary_cross_entropy_with_logits(
        logits.unsqueeze(0).expand(len(v), -1, -1),
        v.unsqueeze(1).expand(-1, 16, -1),
        reduction="none",
    ).sum(2)
    return torch.logsumexp(likelihood.double() + prior, 1)


@pytest.mark.parametrize("n_labels", [0, 3])
def test_lower_bound_matches_its_exact_value(n_labels):
    dbn = tiny_dbn(n_labels)
    v = all_binary_states(6).float()
    exact = exact_log_probs(dbn, v)
    # The bound's exact value: sum over h1 of q(h1|v) (log p(v, h1) - log q(h1|v)).
    h1 = all_binary_states(4).float()
    logits = dbn.layer_input(0, v)  # (64, 4)
    log_q = (
        -torch.nn.functional.binary_cross_entropy_with_logits(
            logits.unsqueeze(1).expand(-1, 16, -1),
            h1.unsqueeze(0).expand(len(v), -1, -1),
            reduction="none",
        )
        .sum(2)
        .double()
    )
    prior = evaluation._log_unnormalised_top(dbn, h1).double() - log_partition_exact(
        dbn.rbms[1]
    )
    joint = (
        -torch.nn.functional.binary_cross_entropy_with_logits(
            dbn.rbms[0].visible_input(h1).unsqueeze(0).expand(len(v), -1, -1),
            v.unsqueeze(1).expand(-1, 16, -1),
            reduction="none",
        )
        .sum(2)
        .double()
        + prior
    )
    bound = (log_q.exp() * (joint - log_q)).sum(1)
    assert torch.all(bound <= exact + 1e-9)

    generator = torch.Generator().manual_seed(0)
    draws = evaluation.bound_terms(dbn, v.repeat(200, 1), 1, generator)
    log_z = log_partition_exact(dbn.rbms[1])
    estimate = float(draws.mean()) - log_z
    spread = float(draws.std()) / np.sqrt(draws.numel())
    assert abs(estimate - float(bound.mean())) < 4 * spread

    figures, _ = evaluation.log_likelihood(
        dbn, v, v, None if not n_labels else torch.zeros(64, dtype=torch.long)
    )
    assert figures["method"] == "exact-lower-bound"
    assert figures["value"] <= float(exact.mean()) + 4 * figures["stderr"]


def test_one_layer_log_likelihood_is_exact():
    dbn = DBNModule(8, [10])
    dbn.rbms[0].load_state_dict(random_rbm(8, 10).state_dict())
    v = all_binary_states(8).float()
    figures, reverse = evaluation.log_likelihood(dbn, v, v, None)
    assert figures["method"] == reverse["method"] == "exact"
    # Probabilities of every visible state sum to one.
    total = torch.logsumexp(
        -dbn.rbms[0].free_energy(v).double(), 0
    ) - log_partition_exact(dbn.rbms[0])
    assert float(total) == pytest.approx(0.0, abs=1e-5)
    expected = float(
        (-dbn.rbms[0].free_energy(v)).double().mean()
    ) - log_partition_exact(dbn.rbms[0])
    assert figures["value"] == pytest.approx(expected, abs=1e-5)


def test_exact_samples_follow_the_model():
    rbm = random_rbm(4, 3, scale=1.5)
    generator = torch.Generator().manual_seed(0)
    samples = sample_exact(rbm, 40_000, generator)
    states = all_binary_states(4).float()
    expected = torch.exp(
        -rbm.free_energy(states).double() - log_partition_exact(rbm)
    ).numpy()
    codes = (samples.double() @ (2.0 ** torch.arange(4)).double()).long()
    observed = np.bincount(codes.numpy(), minlength=16) / len(samples)
    spread = np.sqrt(expected * (1 - expected) / len(samples))
    assert np.all(np.abs(observed - expected) < 5 * spread + 1e-4)
