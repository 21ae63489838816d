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
from .progress import Progress, ProgressCallback, StopCheck, check_stop, report
from .rbm import RBMModule, log_partition_exact, sample_bernoulli, sample_exact

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


def scaled_betas(n_steps: int = 14_500) -> np.ndarray:
    """Build a schedule of ``n_steps`` steps in the published proportions.

    The three parts of :func:`salakhutdinov_murray_betas` keep their share
    of the steps (1/29, 8/29 and 20/29); 14,500 steps give that schedule
    itself.
    """
    if n_steps == 14_500:
        return salakhutdinov_murray_betas()
    if n_steps < 3:
        raise InputError(
            f"an AIS schedule needs at least 3 steps, got {n_steps}; the published "
            "protocol uses 14,500"
        )
    first = max(1, round(n_steps * 500 / 14_500))
    second = max(1, round(n_steps * 4000 / 14_500))
    third = max(1, n_steps - first - second)
    return np.concatenate(
        [
            np.linspace(0.0, 0.5, first, endpoint=False),
            np.linspace(0.5, 0.9, second, endpoint=False),
            np.linspace(0.9, 1.0, third + 1),
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


def base_rate_biases(
    data: torch.Tensor, n_labels: int = 0, eps: float = 1e-3
) -> torch.Tensor:
    """Visible biases of the base-rate RBM, float64, shape (n_visible,).

    Bernoulli units get the log-odds of their mean in ``data``; a softmax
    label group at the end gets the log of each class's frequency.
    """
    mean = data.double().mean(0)
    units = mean[: mean.numel() - n_labels].clamp(eps, 1 - eps)
    biases = [torch.log(units / (1 - units))]
    if n_labels:
        biases.append(torch.log(mean[-n_labels:].clamp_min(eps)))
    return torch.cat(biases)


def _check_bernoulli(rbm: RBMModule) -> None:
    if rbm.gaussian:
        raise InputError(
            "AIS is implemented for RBMs with Bernoulli visible units; this RBM has "
            "Gaussian visible units, whose log-likelihood is a density, not a "
            "probability"
        )


def check_schedule(betas: np.ndarray, n_runs: int) -> np.ndarray:
    """Return ``betas`` as float64, or raise when they cannot drive AIS."""
    betas = np.asarray(betas, dtype=np.float64)
    if n_runs < 2:
        raise InputError(
            f"AIS needs at least 2 runs for an error bar, got {n_runs}; the "
            f"published protocol uses {DEFAULT_RUNS}"
        )
    if betas.ndim != 1 or len(betas) < 2:
        raise InputError(
            "an AIS schedule needs at least 2 inverse temperatures, from 0 to 1"
        )
    if betas[0] != 0 or betas[-1] != 1 or np.any(np.diff(betas) <= 0):
        raise InputError(
            "an AIS schedule must rise strictly from 0 to 1; got one from "
            f"{betas[0]:g} to {betas[-1]:g}"
            + ("" if np.all(np.diff(betas) > 0) else " that does not always rise")
        )
    return betas


class _Annealer:
    """The distributions between the base-rate RBM and the target, and their moves.

    Everything runs in float32 except the sums that enter an importance
    weight, which are taken in float64. The hidden part of a weight's
    increment, ``softplus(beta a) - softplus(beta' a)`` for hidden input
    ``a``, is a tiny difference of two large numbers when the temperatures
    are close. It is computed as ``-log1p(sigmoid(beta a) expm1((beta' -
    beta) a))``, which keeps full float32 relative precision. That form also
    reuses the sigmoid that samples the hidden units.
    """

    def __init__(self, rbm: RBMModule, base_bias: torch.Tensor, generator) -> None:
        self.weight = rbm.weight.float()
        self.visible_bias = rbm.visible_bias.float()
        self.hidden_bias = rbm.hidden_bias.float()
        self.base_bias = base_bias.to(rbm.weight.device).float()
        self.bias_gap = self.visible_bias - self.base_bias
        self.n_labels = rbm.n_labels
        self.generator = generator

    def hidden_input(self, v: torch.Tensor) -> torch.Tensor:
        """``c + v W``, shape (n_runs, n_hidden)."""
        return torch.addmm(self.hidden_bias, v, self.weight)

    def step(
        self, v: torch.Tensor, beta: float, previous: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``log p*_beta(v) - log p*_previous(v)`` and the next state.

        The next state is one Gibbs step v -> h -> v at ``beta``.
        """
        inputs = self.hidden_input(v)
        probs = torch.sigmoid(beta * inputs)
        hidden = torch.log1p(probs * torch.expm1((previous - beta) * inputs))
        visible = (beta - previous) * (v @ self.bias_gap).double()
        log_ratio = visible - hidden.sum(1, dtype=torch.float64)
        h = sample_bernoulli(probs, self.generator)
        return log_ratio, self._sample_visible(h, beta)

    def gibbs(self, v: torch.Tensor, beta: float) -> torch.Tensor:
        """Run one Gibbs step v -> h -> v of the distribution at ``beta``."""
        probs = torch.sigmoid(beta * self.hidden_input(v))
        return self._sample_visible(sample_bernoulli(probs, self.generator), beta)

    def sample_base(self, n_runs: int) -> torch.Tensor:
        """Draw ``n_runs`` visible vectors from the base-rate RBM."""
        zeros = torch.zeros(n_runs, self.weight.shape[1], device=self.weight.device)
        return self._sample_visible(zeros, 0.0)

    def _sample_visible(self, h: torch.Tensor, beta: float) -> torch.Tensor:
        drive = torch.addmm(self.visible_bias, h, self.weight.T)
        logits = torch.lerp(self.base_bias, drive, beta)
        k = self.n_labels
        if not k:
            return sample_bernoulli(torch.sigmoid_(logits), self.generator)
        units = sample_bernoulli(torch.sigmoid(logits[:, :-k]), self.generator)
        probs = torch.softmax(logits[:, -k:], 1)
        label = torch.multinomial(probs, 1, generator=self.generator).squeeze(1)
        return torch.cat([units, F.one_hot(label, k).float()], 1)

    def log_base_partition(self, n_hidden: int) -> float:
        k = self.n_labels
        base = self.base_bias.double()
        value = float(F.softplus(base[: base.numel() - k]).sum())
        value += n_hidden * math.log(2)
        if k:
            value += float(torch.logsumexp(base[-k:], 0))
        return value


def _mean_log_weight(log_weights: torch.Tensor) -> tuple[float, float]:
    """log of the mean of exp(log_weights), and its standard error (delta method)."""
    n = log_weights.numel()
    shift = log_weights.max()
    ratios = torch.exp(log_weights - shift)
    mean = ratios.mean()
    log_mean = float(shift + torch.log(mean))
    stderr = float(ratios.std() / (math.sqrt(n) * mean)) if n > 1 else float("inf")
    return log_mean, stderr


EXACT_START_UNITS = 20
"""Reverse AIS starts from exact model samples up to this many hidden units."""
AIS_REPORT_EVERY = 250
"""Temperatures between two progress reports."""


@torch.no_grad()
def ais_log_partition(
    rbm: RBMModule,
    data: torch.Tensor,
    betas: np.ndarray | None = None,
    n_runs: int = DEFAULT_RUNS,
    generator: torch.Generator | None = None,
    reverse: bool = False,
    reverse_burn_in: int = 1000,
    progress: ProgressCallback | None = None,
    should_stop: StopCheck | None = None,
) -> PartitionEstimate:
    """Estimate log Z of a Bernoulli RBM by (reverse) AIS, ``n_runs`` chains at once.

    ``data`` (n_samples, n_visible) sets the base-rate biases; for an RBM
    with label units its last columns are one-hot labels. The default
    schedule is :func:`salakhutdinov_murray_betas`. With ``reverse``, the
    chains anneal from beta = 1 down to 0, starting from exact model samples
    when the hidden layer is small enough to enumerate, and otherwise from
    rows of ``data`` after ``reverse_burn_in`` Gibbs steps. Those approximate
    samples bias reverse AIS when the chain mixes slowly, as it does in
    RBMs trained by CD-1, whose model puts mass where chains started at the
    data rarely go.
    """
    _check_bernoulli(rbm)
    betas = check_schedule(
        salakhutdinov_murray_betas() if betas is None else betas, n_runs
    )
    device = rbm.weight.device
    data = data.to(device)
    annealer = _Annealer(rbm, base_rate_biases(data, rbm.n_labels), generator)
    name = "reverse AIS" if reverse else "AIS"
    burn_in = reverse_burn_in if reverse and rbm.n_hidden > EXACT_START_UNITS else 0
    n_steps = len(betas) - 1 + burn_in
    state = Progress("evaluate", 0, n_steps, 1, 1, message=f"{name}, {n_runs} runs")

    if reverse and rbm.n_hidden <= EXACT_START_UNITS:
        v = sample_exact(rbm, n_runs, generator, EXACT_START_UNITS).float()
        schedule = betas[::-1]
    elif reverse:
        rows = torch.randint(len(data), (n_runs,), generator=generator, device=device)
        v = sample_bernoulli(data[rows].float(), generator)
        if rbm.n_labels:
            v[:, -rbm.n_labels :] = data[rows, -rbm.n_labels :].float()
        for step in range(burn_in):
            v = annealer.gibbs(v, 1.0)
            if step % AIS_REPORT_EVERY == 0:
                check_stop(should_stop)
                state.step = step
                report(progress, state)
        schedule = betas[::-1]
    else:
        v = annealer.sample_base(n_runs)
        schedule = betas

    log_weights = torch.zeros(n_runs, dtype=torch.float64, device=device)
    for step, (previous, beta) in enumerate(itertools.pairwise(schedule)):
        log_ratio, v = annealer.step(v, float(beta), float(previous))
        log_weights += log_ratio
        if step % AIS_REPORT_EVERY == 0:
            check_stop(should_stop)
            state.step = step + burn_in
            report(progress, state)

    log_mean, stderr = _mean_log_weight(log_weights)
    log_z_base = annealer.log_base_partition(rbm.n_hidden)
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
