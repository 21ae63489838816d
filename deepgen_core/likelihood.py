"""Log-likelihoods of Bernoulli RBMs: exact for small ones, by AIS for the rest.

Annealed importance sampling (AIS) estimates log Z of an RBM by moving
chains from a base-rate RBM, whose partition function is known, to the
target through intermediate distributions with inverse temperatures
0 = beta_0 < ... < beta_K = 1:

    p_k(v) ∝ exp((1 - beta_k) b_A.v + beta_k b.v)
             * prod_j (1 + exp(beta_k (c_j + v.W_j)))

where b_A are the base-rate biases (the log-odds of the training data's mean
pixel values) and the base RBM has no weights. Each chain's importance
weight is sum_k log p*_k(v_k) - log p*_{k-1}(v_k); log Z is log Z_A plus the
log of the mean weight. The estimate is unbiased in Z, so log Z tends to be
underestimated, which makes the log-likelihood tend to be overestimated.

Reverse AIS anneals the other way, from the target at beta = 1 to the base,
starting from model samples drawn by a long Gibbs chain. It estimates 1/Z,
so it tends to overestimate log Z. When the two estimates disagree by more
than their error bars, the schedule is too short or the chains too few.

References
----------
R. Salakhutdinov and I. Murray, "On the quantitative analysis of deep belief
networks", ICML 2008.
"""

from __future__ import annotations

import itertools
import logging
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .errors import InputError
from .rbm import RBMModule, log_partition_exact

logger = logging.getLogger(__name__)

DEFAULT_RUNS = 100


def salakhutdinov_murray_betas() -> np.ndarray:
    """Return the schedule of Salakhutdinov and Murray (2008): 14,500 steps.

    500 steps from 0 to 0.5, 4,000 from 0.5 to 0.9 and 10,000 from 0.9
    to 1, uniformly spaced within each part (14,501 temperatures).
    """
    return np.concatenate(
        [
            np.linspace(0.0, 0.5, 500, endpoint=False),
            np.linspace(0.5, 0.9, 4000, endpoint=False),
            np.linspace(0.9, 1.0, 10001),
        ]
    )


def linear_betas(n: int) -> np.ndarray:
    """``n`` inverse temperatures spaced uniformly from 0 to 1."""
    if n < 2:
        raise InputError(f"an AIS schedule needs at least 2 temperatures, got {n}")
    return np.linspace(0.0, 1.0, n)


@dataclass
class PartitionEstimate:
    """An estimate of log Z with its standard error."""

    log_z: float
    stderr: float
    method: str
    n_runs: int
    n_betas: int

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def base_rate_biases(data: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """Visible biases of the base-rate RBM: log-odds of each unit's mean."""
    p = data.double().mean(0).clamp(eps, 1 - eps)
    return torch.log(p / (1 - p))


def _check_bernoulli(rbm: RBMModule) -> None:
    if rbm.gaussian or rbm.n_labels:
        raise InputError(
            "AIS is implemented for RBMs with Bernoulli visible units and no label "
            "units; this RBM has "
            + ("Gaussian visible units" if rbm.gaussian else "label units")
        )


def _log_unnormalised(v, beta, base_bias, rbm_params) -> torch.Tensor:
    """log p*_beta(v) with the hidden units summed out, shape (n_runs,)."""
    weight, visible_bias, hidden_bias = rbm_params
    hidden = F.softplus(beta * (v @ weight + hidden_bias)).sum(1)
    return (1 - beta) * (v @ base_bias) + beta * (v @ visible_bias) + hidden


def _gibbs_at(v, beta, base_bias, rbm_params, generator) -> torch.Tensor:
    """Run one Gibbs step v -> h -> v of the distribution at ``beta``."""
    weight, visible_bias, hidden_bias = rbm_params
    hidden_probs = torch.sigmoid(beta * (v @ weight + hidden_bias))
    h = (
        torch.rand(
            hidden_probs.shape, generator=generator, device=v.device, dtype=v.dtype
        )
        < hidden_probs
    ).to(v.dtype)
    visible_input = (1 - beta) * base_bias + beta * (visible_bias + h @ weight.T)
    visible_probs = torch.sigmoid(visible_input)
    return (
        torch.rand(
            visible_probs.shape, generator=generator, device=v.device, dtype=v.dtype
        )
        < visible_probs
    ).to(v.dtype)


def _mean_log_weight(log_weights: torch.Tensor) -> tuple[float, float]:
    """log of the mean of exp(log_weights), and its standard error (delta method)."""
    n = log_weights.numel()
    shift = log_weights.max()
    ratios = torch.exp(log_weights - shift)
    mean = ratios.mean()
    log_mean = float(shift + torch.log(mean))
    stderr = float(ratios.std() / (math.sqrt(n) * mean)) if n > 1 else float("inf")
    return log_mean, stderr


@torch.no_grad()
def ais_log_partition(
    rbm: RBMModule,
    data: torch.Tensor,
    betas: np.ndarray | None = None,
    n_runs: int = DEFAULT_RUNS,
    generator: torch.Generator | None = None,
    reverse: bool = False,
    reverse_burn_in: int = 1000,
) -> PartitionEstimate:
    """Estimate log Z of a Bernoulli RBM by (reverse) AIS, ``n_runs`` chains at once.

    ``data`` (n_samples, n_visible) sets the base-rate biases. The default
    schedule is :func:`salakhutdinov_murray_betas`. With ``reverse``, the
    chains start from model samples after ``reverse_burn_in`` Gibbs steps
    from the data and anneal from beta = 1 down to 0.
    """
    _check_bernoulli(rbm)
    if n_runs < 2:
        raise InputError(f"AIS needs at least 2 runs for an error bar, got {n_runs}")
    betas = salakhutdinov_murray_betas() if betas is None else np.asarray(betas)
    if betas[0] != 0 or betas[-1] != 1 or np.any(np.diff(betas) <= 0):
        raise InputError("an AIS schedule must rise strictly from 0 to 1")
    device = rbm.weight.device
    params = (
        rbm.weight.double(),
        rbm.visible_bias.double(),
        rbm.hidden_bias.double(),
    )
    base_bias = base_rate_biases(data).to(device)
    log_z_base = float(F.softplus(base_bias).sum()) + rbm.n_hidden * math.log(2)

    if reverse:
        start = data[
            torch.randint(len(data), (n_runs,), generator=generator, device=data.device)
        ]
        v = start.to(device).double()
        v = (
            torch.rand(v.shape, generator=generator, device=device, dtype=v.dtype) < v
        ).to(v.dtype)
        for _ in range(reverse_burn_in):
            v = _gibbs_at(v, 1.0, base_bias, params, generator)
        schedule = betas[::-1]
    else:
        p = torch.sigmoid(base_bias).expand(n_runs, -1)
        v = (
            torch.rand(p.shape, generator=generator, device=device, dtype=p.dtype) < p
        ).to(p.dtype)
        schedule = betas

    log_weights = torch.zeros(n_runs, dtype=torch.float64, device=device)
    for previous, beta in itertools.pairwise(schedule):
        log_weights += _log_unnormalised(v, beta, base_bias, params)
        log_weights -= _log_unnormalised(v, previous, base_bias, params)
        v = _gibbs_at(v, beta, base_bias, params, generator)

    log_mean, stderr = _mean_log_weight(log_weights)
    # Forward: the weights average Z / Z_A. Reverse: they average Z_A / Z.
    log_z = log_z_base - log_mean if reverse else log_z_base + log_mean
    method = "reverse-ais" if reverse else "ais"
    return PartitionEstimate(log_z, stderr, method, n_runs, len(betas))


@torch.no_grad()
def average_log_likelihood(rbm: RBMModule, data: torch.Tensor, log_z: float) -> float:
    """Mean log p(v) over rows of ``data``: -F(v) - log Z."""
    free_energy = rbm.free_energy(data.to(rbm.weight.device).float()).double()
    return float(-free_energy.mean() - log_z)


def estimate_log_partition(
    rbm: RBMModule,
    data: torch.Tensor,
    betas: np.ndarray | None = None,
    n_runs: int = DEFAULT_RUNS,
    generator: torch.Generator | None = None,
    max_exact_units: int = 20,
) -> PartitionEstimate:
    """log Z exactly when the hidden layer is small enough to enumerate, else by AIS."""
    if rbm.n_hidden <= max_exact_units:
        value = log_partition_exact(rbm, max_exact_units)
        return PartitionEstimate(value, 0.0, "exact", 0, 0)
    return ais_log_partition(rbm, data, betas, n_runs, generator)
