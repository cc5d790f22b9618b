"""Statistical metrics: does a rollout visit the same states as the truth, whatever the phase?

Chaotic forecasts lose the phase after a few Lyapunov times, but a good model keeps the invariant measure.
Samples are pooled over trajectories and times; ``pred`` and ``true`` (N, T, *S) may differ in N and T.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _samples(x: Tensor, burn_in: int) -> Tensor:
    """x (N, T, *S) without its first ``burn_in`` times, as (coordinates, samples)."""
    if not torch.is_tensor(x) or x.ndim < 3:
        raise ValueError(f"states must be a tensor of shape (N, T, *S), got {getattr(x, 'shape', type(x))}")
    if not 0 <= burn_in < x.shape[1]:
        raise ValueError(f"burn_in must be in [0, {x.shape[1]}), got {burn_in}")
    x = x[:, burn_in:]
    return x.reshape(-1, x[0, 0].numel()).T


def wasserstein_1d(a: Tensor, b: Tensor) -> Tensor:
    """Exact 1-Wasserstein distance between the empirical distributions of the rows of a (C, n) and b (C, m).

    W1 = ∫ |F_a(x) − F_b(x)| dx with F the empirical CDFs, evaluated exactly between the merged sorted
    samples (the construction of scipy.stats.wasserstein_distance, batched over rows). Returns (C,).
    """
    a, b = a.sort(-1).values.contiguous(), b.sort(-1).values.contiguous()
    merged = torch.cat([a, b], -1).sort(-1).values
    x = merged[:, :-1].contiguous()
    cdf_a = torch.searchsorted(a, x, right=True).to(a.dtype) / a.shape[-1]
    cdf_b = torch.searchsorted(b, x, right=True).to(a.dtype) / b.shape[-1]
    return ((cdf_a - cdf_b).abs() * merged.diff(dim=-1)).sum(-1)


def attractor_statistics(pred: Tensor, true: Tensor, *, t: Tensor | None = None,
                         burn_in: int = 0) -> dict[str, Tensor]:
    """Per-coordinate statistics of the visited states, pooled over trajectories and times after ``burn_in``.

    Returns {"mean_pred", "mean_true", "std_pred", "std_true", "wasserstein"}, each (C,) with C the number of
    state coordinates (the elements of S, flattened), in state units. "wasserstein" is the 1-D
    1-Wasserstein distance between the marginal distributions of each coordinate (:func:`wasserstein_1d`):
    0 for identical samples, |μ − μ'| for two equal-shaped distributions shifted by μ − μ'.
    """
    a, b = _samples(pred, burn_in), _samples(true, burn_in)
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"pred and true must have the same state shape, got {tuple(pred.shape[2:])} "
                         f"and {tuple(true.shape[2:])}")
    return {
        "mean_pred": a.mean(-1), "mean_true": b.mean(-1),
        "std_pred": a.std(-1, unbiased=False), "std_true": b.std(-1, unbiased=False),
        "wasserstein": wasserstein_1d(a, b),
    }
