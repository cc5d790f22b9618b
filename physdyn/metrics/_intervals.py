"""Calibration of sampled predictions: how often the truth falls inside the samples' interval."""

from __future__ import annotations

import torch
from torch import Tensor

from ._rollout import _masked_mean, _weights


def spread_coverage(samples: Tensor, true: Tensor, *, t: Tensor | None = None, mask: Tensor | None = None,
                      width: float = 2.0) -> Tensor:
    """The fraction of truth entries inside mean ± ``width`` · std of the samples, at each step; (T,).

    (``interval_coverage`` is the same question for the central quantile interval of the samples.)

    Args:
        samples: (N, K, T, *S) K predictions per trajectory (K ≥ 2: the spread needs two).
        true: (N, T, *S) the truth.
        mask: (N, T, *S) True where the truth is known; the fraction counts those entries only (nan at a
            step with none).
        width: half-width of the interval in sample standard deviations (2: a nominal 95 % for Gaussian
            predictions).

    A calibrated Gaussian forecast covers about 95 % at ``width = 2``; much less says the spread is too
    small (overconfident), much more that it is too wide.
    """
    if samples.ndim < 3 or samples.shape[0] != true.shape[0] or samples.shape[2:] != true.shape[1:]:
        raise ValueError(f"samples must have shape (N, K, T, *S) with (N, T, *S) = {tuple(true.shape)}, "
                         f"got {tuple(samples.shape)}")
    if samples.shape[1] < 2:
        raise ValueError("spread_coverage needs at least 2 samples per trajectory (K >= 2)")
    mean, std = samples.mean(1), samples.std(1)
    inside = ((true - mean).abs() <= width * std).to(true.dtype)
    w = _weights(mask, true)
    dims = (0, *range(2, true.ndim))
    return _masked_mean(torch.where(w > 0, inside, 0), w, dims)
