"""Restricted Boltzmann machines with Bernoulli hidden units.

Notation used in this module: ``v`` is a batch of visible vectors of shape
``(batch, n_visible)``, ``h`` a batch of hidden vectors of shape
``(batch, n_hidden)``, ``W`` the weights of shape ``(n_visible, n_hidden)``,
``b`` the visible biases and ``c`` the hidden biases.

Bernoulli visible units have the energy

    E(v, h) = -v.b - h.c - v.W.h

and Gaussian visible units with standard deviations ``sigma`` have

    E(v, h) = sum_i (v_i - b_i)^2 / (2 sigma_i^2) - (v / sigma).W.h - h.c

so that ``p(v_i | h)`` is normal with mean ``b_i + sigma_i (W h)_i`` and
standard deviation ``sigma_i``. Gaussian units expect standardised data, where
the default ``sigma = 1`` is right; ``sigma`` can also be learned, stored as its
logarithm so that it stays strictly positive.

An RBM may end its visible layer with a group of ``n_labels`` softmax units (a
one-hot label), as the top RBM of a Deep Belief Net with labels does. The
energy keeps the same form; only ``p(v | h)`` for that group is a softmax.

References
----------
G. E. Hinton, "A practical guide to training restricted Boltzmann machines",
UTML TR 2010-003, University of Toronto, 2010.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .errors import InputError

VISIBLE_TYPES = ("bernoulli", "gaussian")


def sample_bernoulli(
    probs: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Draw 0/1 values that are 1 with probability ``probs``, same dtype.

    One uniform draw per element compared with its probability: on the CPU
    this is several times faster than ``torch.bernoulli`` (torch 2.13), which
    matters because a 100x500 draw costs as much as one of a CD step's
    matrix products. On the CPU, raises RuntimeError for NaN probabilities,
    which only diverged weights produce. On a GPU the check is skipped:
    reading its result would make every draw wait for the device. There the
    finite checks after each epoch catch the divergence. NOTE: this GPU
    path has not been run on a GPU yet.
    """
    if probs.device.type == "cpu" and torch.isnan(probs.sum()):
        raise RuntimeError(
            "probabilities contain NaN because the weights diverged; lower the "
            "learning rate"
        )
    sample = torch.empty_like(probs).uniform_(generator=generator)
    return sample.lt_(probs)


class RBMModule(nn.Module):
    """An RBM as a torch module; its methods are the model's conditionals.

    Parameters
    ----------
    n_visible : int
        Number of visible units, including the label units if any.
    n_hidden : int
        Number of Bernoulli hidden units.
    visible_type : {"bernoulli", "gaussian"}
        Distribution of the visible units (the label group is always softmax).
    n_labels : int
        Size of the softmax label group at the end of the visible layer, or 0.
    learn_sigma : bool
        Whether training updates ``log_sigma`` (Gaussian visible units only).

    Attributes
    ----------
    weight : Parameter of shape (n_visible, n_hidden)
    visible_bias : Parameter of shape (n_visible,)
    hidden_bias : Parameter of shape (n_hidden,)
    log_sigma : Parameter of shape (n_visible,)
        Log standard deviation of each Gaussian visible unit; zero (unused)
        for Bernoulli units.

    The parameters do not require gradients: contrastive divergence updates
    them in place. Set ``requires_grad_(True)`` to use them with autograd.
    """

    def __init__(
        self,
        n_visible: int,
        n_hidden: int,
        visible_type: str = "bernoulli",
        n_labels: int = 0,
        learn_sigma: bool = False,
    ) -> None:
        super().__init__()
        if visible_type not in VISIBLE_TYPES:
            raise InputError(
                f"unknown visible unit type {visible_type!r}; "
                f"valid types are {', '.join(VISIBLE_TYPES)}"
            )
        if n_visible < 1 or n_hidden < 1:
            raise InputError(
                f"an RBM needs at least one visible and one hidden unit, "
                f"got n_visible={n_visible}, n_hidden={n_hidden}"
            )
        if n_labels and visible_type != "bernoulli":
            raise InputError(
                "label units are supported only with Bernoulli visible units; "
                "use visible_type='bernoulli' or n_labels=0"
            )
        if not 0 <= n_labels < n_visible:
            raise InputError(
                f"n_labels={n_labels} must be at least 0 and smaller than "
                f"n_visible={n_visible}"
            )
        self.n_visible = int(n_visible)
        self.n_hidden = int(n_hidden)
        self.visible_type = visible_type
        self.n_labels = int(n_labels)
        self.learn_sigma = bool(learn_sigma) and visible_type == "gaussian"

        def frozen(shape: tuple[int, ...]) -> nn.Parameter:
            return nn.Parameter(torch.zeros(shape), requires_grad=False)

        self.weight = frozen((n_visible, n_hidden))
        self.visible_bias = frozen((n_visible,))
        self.hidden_bias = frozen((n_hidden,))
        self.log_sigma = frozen((n_visible,))

    # Structure -----------------------------------------------------------

    @property
    def gaussian(self) -> bool:
        return self.visible_type == "gaussian"

    @property
    def sigma(self) -> torch.Tensor:
        """Standard deviation of each visible unit, shape (n_visible,)."""
        return self.log_sigma.exp()

    def extra_repr(self) -> str:
        labels = f", n_labels={self.n_labels}" if self.n_labels else ""
        return (
            f"n_visible={self.n_visible}, n_hidden={self.n_hidden}, "
            f"visible_type={self.visible_type!r}{labels}"
        )

    def config(self) -> dict:
        """Return the constructor arguments, for saving beside the weights."""
        return {
            "n_visible": self.n_visible,
            "n_hidden": self.n_hidden,
            "visible_type": self.visible_type,
            "n_labels": self.n_labels,
            "learn_sigma": self.learn_sigma,
        }

    def _scaled(self, v: torch.Tensor) -> torch.Tensor:
        return v / self.sigma if self.gaussian else v

    # Conditionals --------------------------------------------------------

    def hidden_input(self, v: torch.Tensor) -> torch.Tensor:
        """Total input to each hidden unit, ``c + (v / sigma) W``, (batch, n_hidden)."""
        return torch.addmm(self.hidden_bias, self._scaled(v), self.weight)

    def hidden_probs(self, v: torch.Tensor) -> torch.Tensor:
        """``p(h_j = 1 | v)`` for every hidden unit, shape (batch, n_hidden)."""
        return self.hidden_input(v).sigmoid_()

    def visible_input(self, h: torch.Tensor) -> torch.Tensor:
        """Total input to each visible unit, shape (batch, n_visible).

        For Gaussian units this is the conditional mean ``b + sigma (W h)``.
        """
        top_down = h @ self.weight.T
        if self.gaussian:
            return self.visible_bias + self.sigma * top_down
        return top_down.add_(self.visible_bias)

    def visible_mean(self, h: torch.Tensor) -> torch.Tensor:
        """``E[v | h]``, shape (batch, n_visible).

        Bernoulli units give probabilities, the label group a softmax and
        Gaussian units the conditional mean.
        """
        x = self.visible_input(h)
        if self.gaussian:
            return x
        if not self.n_labels:
            # In place, which spares the CD step an allocation.
            return x.sigmoid_()
        k = self.n_labels
        return torch.cat([torch.sigmoid(x[:, :-k]), torch.softmax(x[:, -k:], 1)], 1)

    def sample_hidden(
        self, v: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw ``h ~ p(h | v)``; return ``(probabilities, sample)``."""
        probs = self.hidden_probs(v)
        return probs, sample_bernoulli(probs, generator)

    def sample_visible(
        self, h: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw ``v ~ p(v | h)``; return ``(mean, sample)``."""
        mean = self.visible_mean(h)
        if self.gaussian:
            noise = torch.randn(
                mean.shape, generator=generator, device=mean.device, dtype=mean.dtype
            )
            return mean, mean + self.sigma * noise
        if not self.n_labels:
            return mean, sample_bernoulli(mean, generator)
        k = self.n_labels
        units = sample_bernoulli(mean[:, :-k], generator)
        label = torch.multinomial(mean[:, -k:], 1, generator=generator).squeeze(1)
        return mean, torch.cat([units, F.one_hot(label, k).to(mean.dtype)], 1)

    # Energies ------------------------------------------------------------

    def energy(self, v: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """``E(v, h)`` for each row, shape (batch,)."""
        interaction = ((self._scaled(v) @ self.weight) * h).sum(1)
        if self.gaussian:
            quadratic = ((v - self.visible_bias) ** 2 / (2 * self.sigma**2)).sum(1)
            return quadratic - interaction - h @ self.hidden_bias
        return -(v @ self.visible_bias) - h @ self.hidden_bias - interaction

    def free_energy(self, v: torch.Tensor) -> torch.Tensor:
        """``F(v) = -log sum_h exp(-E(v, h))`` for each row, shape (batch,)."""
        hidden_term = F.softplus(self.hidden_input(v)).sum(1)
        if self.gaussian:
            quadratic = ((v - self.visible_bias) ** 2 / (2 * self.sigma**2)).sum(1)
            return quadratic - hidden_term
        return -(v @ self.visible_bias) - hidden_term

    # Sampling and scores ---------------------------------------------------

    def gibbs(
        self,
        v: torch.Tensor,
        steps: int = 1,
        generator: torch.Generator | None = None,
        clamp: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Run ``steps`` full Gibbs steps ``v -> h -> v`` and return the new ``v``.

        ``clamp``, a boolean mask of shape (n_visible,), keeps those visible
        units at their values in ``v`` (for example a label).
        """
        for _ in range(steps):
            _, h = self.sample_hidden(v, generator)
            _, v_new = self.sample_visible(h, generator)
            v = v_new if clamp is None else torch.where(clamp, v, v_new)
        return v

    def reconstruction_error(self, v: torch.Tensor) -> torch.Tensor:
        """Mean over rows of the squared error of a mean-field reconstruction.

        The reconstruction is ``E[v | h]`` with ``h = p(h | v)``; the squared
        differences are summed over visible units. Returns a 0-d tensor.
        """
        recon = self.visible_mean(self.hidden_probs(v))
        return ((v - recon) ** 2).sum(1).mean()

    def pseudo_log_likelihood(
        self, v: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Stochastic pseudo-log-likelihood of binary ``v``, shape (batch,).

        For each row one non-label visible unit ``i`` is drawn at random and
        ``n * log p(v_i | v_-i)`` is returned, where ``n`` is the number of
        non-label units. Its mean over rows is an unbiased estimate of the
        pseudo-log-likelihood. Bernoulli visible units only, because the
        Gaussian conditional ``p(v_i | v_-i)`` has no closed form.
        """
        if self.gaussian:
            raise InputError(
                "pseudo-log-likelihood is defined here for Bernoulli visible units "
                "only; use reconstruction_error or free_energy for Gaussian units"
            )
        n = self.n_visible - self.n_labels
        index = torch.randint(n, (v.shape[0],), generator=generator, device=v.device)
        flipped = v.clone()
        rows = torch.arange(v.shape[0], device=v.device)
        flipped[rows, index] = 1 - flipped[rows, index]
        return n * F.logsigmoid(self.free_energy(flipped) - self.free_energy(v))

    def label_log_probs(self, v_units: torch.Tensor) -> torch.Tensor:
        """``log p(label | units)`` from the free energy, shape (batch, n_labels).

        ``v_units`` contains the non-label visible units, shape
        (batch, n_visible - n_labels). Exact: one free energy per label.
        """
        if not self.n_labels:
            raise InputError("this RBM has no label units to classify with")
        k = self.n_labels
        base = torch.addmm(self.hidden_bias, v_units, self.weight[:-k])
        # (batch, k, n_hidden): the hidden input with each label switched on.
        with_label = base.unsqueeze(1) + self.weight[-k:].unsqueeze(0)
        negative_free_energy = F.softplus(with_label).sum(2) + self.visible_bias[
            -k:
        ].unsqueeze(0)
        return torch.log_softmax(negative_free_energy, 1)

    # Initialisation ----------------------------------------------------------

    @torch.no_grad()
    def initialize(
        self,
        generator: torch.Generator,
        data_mean: torch.Tensor | None = None,
        weight_std: float = 0.01,
    ) -> None:
        """Draw weights from N(0, weight_std^2) and set biases from the data.

        Bernoulli visible biases become ``log(p / (1 - p))`` for the mean
        activation ``p`` of each unit (clipped to [1e-3, 1 - 1e-3]); Gaussian
        visible biases become the data mean. Hidden biases start at zero and
        ``sigma`` at one.
        """
        self.weight.copy_(
            torch.randn(
                self.weight.shape, generator=generator, device=self.weight.device
            )
            * weight_std
        )
        self.hidden_bias.zero_()
        self.log_sigma.zero_()
        if data_mean is None:
            self.visible_bias.zero_()
        elif self.gaussian:
            self.visible_bias.copy_(data_mean)
        else:
            p = data_mean.clamp(1e-3, 1 - 1e-3)
            self.visible_bias.copy_(torch.log(p / (1 - p)))


def log_partition_exact(rbm: RBMModule, max_units: int = 20) -> float:
    """Compute ``log Z`` by enumerating every hidden configuration.

    Sums ``exp(-F)`` over the ``2^n_hidden`` hidden states with the visible
    units integrated out analytically, so it works for Bernoulli and
    Gaussian visible units. Raises when ``n_hidden > max_units``.
    """
    n_hidden = rbm.n_hidden
    if n_hidden > max_units:
        raise InputError(
            f"exact enumeration of {n_hidden} hidden units needs 2^{n_hidden} "
            f"terms, above the limit of 2^{max_units}; use a smaller RBM"
        )
    w, b, c = rbm.weight.double(), rbm.visible_bias.double(), rbm.hidden_bias.double()
    chunk = min(n_hidden, EXACT_CHUNK_BITS)
    low = all_binary_states(chunk, w.device)  # (2^chunk, chunk)
    terms = []
    for high in range(2 ** (n_hidden - chunk)):
        # Hidden states whose top bits spell ``high``, 2^chunk of them at a time.
        bits = [(high >> i) & 1 for i in range(n_hidden - chunk)]
        upper = torch.tensor(bits, dtype=w.dtype, device=w.device).expand(len(low), -1)
        h = torch.cat([low, upper], 1)
        terms.append(torch.logsumexp(_log_marginal_hidden(rbm, h, w, b, c), 0))
    return float(torch.logsumexp(torch.stack(terms), 0))


def sample_exact(
    rbm: RBMModule,
    n: int,
    generator: torch.Generator | None = None,
    max_units: int = 20,
) -> torch.Tensor:
    """Draw ``n`` independent visible vectors from a Bernoulli RBM exactly.

    The hidden states are drawn from their marginal, computed by enumerating
    all ``2^n_hidden`` of them, and the visible units from ``p(v | h)``. No
    Markov chain is involved, so the samples are exact however slowly Gibbs
    sampling would mix. Raises when ``n_hidden > max_units``.
    """
    if rbm.gaussian:
        raise InputError("exact sampling is implemented for Bernoulli visible units")
    if rbm.n_hidden > max_units:
        raise InputError(
            f"exact sampling of {rbm.n_hidden} hidden units needs 2^{rbm.n_hidden} "
            f"terms, above the limit of 2^{max_units}; use Gibbs sampling instead"
        )
    w, b, c = rbm.weight.double(), rbm.visible_bias.double(), rbm.hidden_bias.double()
    states = all_binary_states(rbm.n_hidden, w.device)
    log_marginal = _log_marginal_hidden(rbm, states, w, b, c)
    probs = torch.softmax(log_marginal, 0)
    rows = torch.multinomial(probs, n, replacement=True, generator=generator)
    h = states[rows].to(rbm.weight.dtype)
    return rbm.sample_visible(h, generator)[1]


EXACT_CHUNK_BITS = 14
"""Hidden states enumerated at once by :func:`log_partition_exact`: 2^14."""


def _log_marginal_hidden(rbm, h, w, b, c) -> torch.Tensor:
    """``log sum_v exp(-E(v, h))`` for each row of ``h``, in float64."""
    top_down = h @ w.T  # (n_states, n_visible)
    if rbm.gaussian:
        sigma = rbm.sigma.double()
        # Integral over v of exp(-E): a Gaussian with mean b + sigma W h.
        return (
            h @ c
            + (top_down**2 / 2).sum(1)
            + (top_down * b / sigma).sum(1)
            + (torch.log(sigma) + 0.5 * math.log(2 * math.pi)).sum()
        )
    inputs = top_down + b
    if rbm.n_labels:
        k = rbm.n_labels
        units = F.softplus(inputs[:, :-k]).sum(1)
        return h @ c + units + torch.logsumexp(inputs[:, -k:], 1)
    return h @ c + F.softplus(inputs).sum(1)


def all_binary_states(n: int, device: torch.device | None = None) -> torch.Tensor:
    """Return every binary vector of length ``n`` as rows, shape (2^n, n), float64."""
    codes = torch.arange(2**n, device=device).unsqueeze(1)
    bits = torch.arange(n, device=device)
    return ((codes >> bits) & 1).double()
