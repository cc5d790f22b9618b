"""Rollout metrics: error curves over the forecast horizon and the valid prediction time.

Every metric has the signature ``metric(pred, true, *, t=None, **options)`` with ``pred`` and ``true`` of
shape (N, T, *S): N trajectories, T output times, state shape S (states are compared element by element, so
"coordinate" below means one element of S).
"""

from __future__ import annotations

import torch
from torch import Tensor


def check_pair(pred: Tensor, true: Tensor) -> None:
    """Raise ValueError unless ``pred`` and ``true`` are tensors of one shape (N, T, *S)."""
    if not (torch.is_tensor(pred) and torch.is_tensor(true)):
        raise ValueError("pred and true must be torch tensors")
    if pred.ndim < 3:
        raise ValueError(f"pred and true must have shape (N, T, *S), got {tuple(pred.shape)}")
    if pred.shape != true.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and true {tuple(true.shape)} must have the same shape")


def check_times(t: Tensor | None, n: int, n_t: int) -> Tensor:
    """``t`` as a float64 (N, T) grid; it must be (T,) or (N, T)."""
    if t is None:
        raise ValueError("this metric needs the output times t, shape (T,) or (N, T)")
    t = torch.as_tensor(t, dtype=torch.float64)
    if t.ndim == 1 and t.shape == (n_t,):
        return t.expand(n, n_t)
    if t.ndim == 2 and t.shape == (n, n_t):
        return t
    raise ValueError(f"t must have shape ({n_t},) or ({n}, {n_t}), got {tuple(t.shape)}")


def attractor_scale(true: Tensor) -> Tensor:
    """σ_i: the standard deviation of each coordinate of ``true`` (N, T, *S) over all N and T; shape S.

    A coordinate that never varies (σ_i = 0) gets σ_i = 1, i.e. its error is not normalised.
    """
    std = true.reshape(-1, *true.shape[2:]).std(dim=0, unbiased=False)
    return torch.where(std > 0, std, torch.ones_like(std))


def normalized_error(pred: Tensor, true: Tensor, *, scale: Tensor | float | None = None) -> Tensor:
    """Per-trajectory normalised error e_n(t) = sqrt(mean_i ((x̂_i − x_i) / σ_i)²); returns (N, T).

    σ_i is :func:`attractor_scale` of ``true`` unless ``scale`` (a number or a tensor broadcastable to S)
    is given. Dimensionless.
    """
    check_pair(pred, true)
    scale = attractor_scale(true) if scale is None else torch.as_tensor(scale, dtype=true.dtype)
    z = (pred - true) / scale
    return z.pow(2).flatten(2).mean(-1).sqrt()


def rmse(pred: Tensor, true: Tensor, *, t: Tensor | None = None) -> Tensor:
    """Root-mean-square error at each output time: sqrt(mean_{n,i} (x̂_ni(t) − x_ni(t))²); returns (T,).

    Units: those of the states.
    """
    check_pair(pred, true)
    return (pred - true).pow(2).transpose(0, 1).flatten(1).mean(-1).sqrt()


def nrmse(pred: Tensor, true: Tensor, *, t: Tensor | None = None,
          scale: Tensor | float | None = None) -> Tensor:
    """Normalised RMSE at each output time: sqrt(mean_{n,i} ((x̂_ni(t) − x_ni(t)) / σ_i)²); returns (T,).

    σ_i is the spread of coordinate i over all of ``true`` (:func:`attractor_scale`: for a long trajectory,
    the attractor's standard deviation) unless ``scale`` is given. Dimensionless.
    """
    return normalized_error(pred, true, scale=scale).pow(2).mean(0).sqrt()


def valid_prediction_time(pred: Tensor, true: Tensor, *, t: Tensor, threshold: float = 0.4,
                          scale: Tensor | float | None = None) -> Tensor:
    """Valid prediction time of each trajectory; returns (N,) in the units of ``t``.

    VPT_n = t_k − t_0 for the first output index k with e_n(t_k) > ``threshold``, e_n the
    :func:`normalized_error`; t_{T−1} − t_0 (the whole horizon, a lower bound) when the error never exceeds
    it. The resolution is one output step. ``t``: (T,) or (N, T). Multiply by λ_max
    (:func:`lyapunov_times`) for Lyapunov times. (Pathak et al., Chaos 27, 121102 (2017); threshold 0.4 as
    in Vlachas et al., Neural Networks 126, 191 (2020).)
    """
    err = normalized_error(pred, true, scale=scale)
    n, n_t = err.shape
    t = check_times(t, n, n_t)
    if not threshold > 0:
        raise ValueError(f"threshold must be positive, got {threshold}")
    over = err > threshold
    first = torch.where(over.any(1), over.to(torch.int8).argmax(1), torch.full((n,), n_t - 1))
    return t.gather(1, first[:, None]).squeeze(1) - t[:, 0]


def lyapunov_times(time: Tensor | float, lyapunov_max: float) -> Tensor | float:
    """A duration in Lyapunov times: ``time`` × λ_max (λ_max in inverse time units; Lorenz-63: 0.9056)."""
    if not lyapunov_max > 0:
        raise ValueError(f"lyapunov_max must be positive to count Lyapunov times, got {lyapunov_max}")
    return time * lyapunov_max
