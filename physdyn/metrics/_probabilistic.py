"""Scores of probabilistic forecasts given as K samples: CRPS, energy score, interval coverage, ranks, and
distances between predicted and true marginals.

Samples lie along axis ``k`` of ``samples`` (default: the one right after the leading batch axes of the
truth's shape, i.e. ``samples`` (..., K, D) against ``truth`` (..., D) for the multivariate scores and
(..., K) against (...) for the per-coordinate ones). These are the ensemble estimators of ``scoringrules``
(Zamo & Naveau 2018; Gneiting & Raftery 2007), written in torch so they batch over trajectories, steps and
coordinates and take masks; tests/test_probabilistic_metrics.py checks them against scoringrules and
closed forms.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def crps_gaussian(mean: Tensor, std: Tensor, y: Tensor) -> Tensor:
    """The CRPS of the Gaussian forecast N(μ, σ²) at y: σ [z (2Φ(z) − 1) + 2φ(z) − 1/√π], z = (y − μ)/σ."""
    z = (y - mean) / std
    cdf = 0.5 * (1 + torch.erf(z / math.sqrt(2)))
    pdf = torch.exp(-0.5 * z**2) / math.sqrt(2 * math.pi)
    return std * (z * (2 * cdf - 1) + 2 * pdf - 1 / math.sqrt(math.pi))


def crps_ensemble(samples: Tensor, y: Tensor, *, fair: bool = False) -> Tensor:
    """The CRPS of the ensemble ``samples`` (..., K) at ``y`` (...): E|X − y| − ½ E|X − X'|.

    E|X − X'| over the K² ordered pairs (scoringrules' "nrg"; the CRPS of the ensemble's empirical
    distribution), or over the K (K − 1) pairs of distinct members with ``fair=True`` (unbiased for the
    distribution the members are drawn from). Computed from the sorted members in O(K log K):
    Σ_ij |x_i − x_j| = 2 Σ_i (2i − K − 1) x_(i).
    """
    k = samples.shape[-1]
    if fair and k < 2:
        raise ValueError("the fair CRPS needs at least 2 samples")
    skill = (samples - y[..., None]).abs().mean(-1)
    ordered = samples.sort(-1).values
    weights = 2 * torch.arange(1, k + 1, dtype=samples.dtype, device=samples.device) - k - 1
    pairs = 2 * (ordered * weights).sum(-1)  # Σ over ordered pairs of |x_i − x_j|
    return skill - 0.5 * pairs / (k * (k - 1) if fair else k * k)


def energy_score(samples: Tensor, y: Tensor, *, fair: bool = False) -> Tensor:
    """The energy score of the ensemble ``samples`` (..., K, D) at ``y`` (..., D): E‖X − y‖ − ½ E‖X − X'‖
    (Gneiting & Raftery 2007), the multivariate CRPS; pairs as in :func:`crps_ensemble`."""
    k = samples.shape[-2]
    if fair and k < 2:
        raise ValueError("the fair energy score needs at least 2 samples")
    skill = (samples - y[..., None, :]).norm(dim=-1).mean(-1)
    spread = torch.cdist(samples, samples).sum((-2, -1))
    return skill - 0.5 * spread / (k * (k - 1) if fair else k * k)


def interval_bounds(samples: Tensor, level: float) -> tuple[Tensor, Tensor]:
    """The central ``level`` interval of the ensemble ``samples`` (..., K): its (1 − level)/2 and
    (1 + level)/2 quantiles at the Weibull plotting positions p (K + 1) (numpy's ``method="weibull"``),
    linearly interpolated between order statistics and clamped to the extreme members.

    Why these positions: the truth's rank among K calibrated members is uniform on 0 … K, so it falls
    between the order statistics at positions a and b (1-based, fractional) with probability (b − a)/(K + 1);
    at p (K + 1) that is exactly ``level``, where numpy's default positions give (K − 1) level / (K + 1),
    0.865 for a calibrated 50-member ensemble at 90 %."""
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level!r}")
    k = samples.shape[-1]
    ordered = samples.sort(-1).values
    bounds = []
    for p in ((1 - level) / 2, (1 + level) / 2):
        position = min(max(p * (k + 1) - 1, 0.0), k - 1.0)  # 0-based
        below = int(math.floor(position))
        above = min(below + 1, k - 1)
        frac = position - below
        bounds.append(ordered[..., below] * (1 - frac) + ordered[..., above] * frac)
    return bounds[0], bounds[1]


def interval_coverage(samples: Tensor, y: Tensor, level: float) -> Tensor:
    """Whether ``y`` (...) lies in the central ``level`` interval of ``samples`` (..., K); bool (...). Its
    mean over many forecasts is the coverage, ``level`` for a calibrated forecast."""
    lo, hi = interval_bounds(samples, level)
    return (lo <= y) & (y <= hi)


def ranks(samples: Tensor, y: Tensor) -> Tensor:
    """The rank of ``y`` (...) among the K members of ``samples`` (..., K): how many lie below it, 0 … K.
    Ties (a member equal to y) are split at random, so a forecast that repeats the truth is not counted as
    always too high; a calibrated ensemble has uniform ranks (the rank histogram, a discrete PIT)."""
    below = (samples < y[..., None]).sum(-1)
    ties = (samples == y[..., None]).sum(-1)
    if bool((ties > 0).any()):
        g = torch.Generator(device=samples.device).manual_seed(0)
        u = torch.rand(ties.shape, generator=g, dtype=torch.float64, device=samples.device)
        below = below + (u * (ties + 1)).floor().long()
    return below


def rank_histogram(samples: Tensor, y: Tensor, mask: Tensor | None = None) -> Tensor:
    """The frequencies (K + 1,) of the ranks of ``y`` among ``samples`` (see :func:`ranks`), over the
    entries where ``mask`` (shape of ``y``) is True; each 1/(K + 1) for a calibrated forecast."""
    r = ranks(samples, y)
    if mask is not None:
        r = r[mask]
    counts = torch.bincount(r.flatten(), minlength=samples.shape[-1] + 1).to(torch.float64)
    return counts / counts.sum().clamp(min=1)


def energy_distance(a: Tensor, b: Tensor) -> Tensor:
    """The energy distance between the empirical distributions of the rows of a (n, D) and b (m, D):
    sqrt(2 E‖A − B‖ − E‖A − A'‖ − E‖B − B'‖) (Székely & Rizzo 2013; scipy.stats.energy_distance in 1-D).
    Zero exactly when the two distributions are equal."""
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"a and b must be (n, D) and (m, D), got {tuple(a.shape)} and {tuple(b.shape)}")
    cross = torch.cdist(a, b).mean()
    within_a, within_b = torch.cdist(a, a).mean(), torch.cdist(b, b).mean()
    return (2 * cross - within_a - within_b).clamp(min=0).sqrt()
