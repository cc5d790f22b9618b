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


def _weights(mask: Tensor | None, like: Tensor) -> Tensor:
    """The mask as weights of ``like``'s dtype (1 everywhere when None), checked against its shape."""
    if mask is None:
        return torch.ones_like(like)
    mask = torch.as_tensor(mask)
    if mask.shape != like.shape:
        raise ValueError(f"mask must have the shape of the states {tuple(like.shape)}, "
                         f"got {tuple(mask.shape)}")
    return mask.to(like.dtype)


def _masked_mean(x: Tensor, w: Tensor, dims: tuple[int, ...]) -> Tensor:
    """mean of x over ``dims`` where w (0/1) is 1; nan where no entry is observed.

    Unobserved entries are left out, not multiplied by 0: an infinite prediction there must not turn the
    mean into nan.
    """
    count = w.sum(dims)
    return torch.where(w > 0, x, 0).sum(dims) / torch.where(count > 0, count, torch.nan)


def attractor_scale(true: Tensor, *, mask: Tensor | None = None) -> Tensor:
    """σ_i: the standard deviation of each coordinate of ``true`` (N, T, *S) over all N and T; shape S.

    With ``mask`` (N, T, *S), over the observed entries only. A coordinate that never varies or is never
    observed gets σ_i = 1, i.e. its error is not normalised.
    """
    w = _weights(mask, true)
    mean = _masked_mean(true, w, (0, 1))
    std = _masked_mean((true - mean) ** 2, w, (0, 1)).sqrt()
    return torch.where(std > 0, std, torch.ones_like(std))  # nan > 0 is False: never observed -> 1


def _scale(true: Tensor, scale: Tensor | float | None, mask: Tensor | None) -> Tensor:
    return attractor_scale(true, mask=mask) if scale is None else torch.as_tensor(scale, dtype=true.dtype)


def normalized_error(pred: Tensor, true: Tensor, *, scale: Tensor | float | None = None,
                     mask: Tensor | None = None) -> Tensor:
    """Per-trajectory normalised error e_n(t) = sqrt(mean_i ((x̂_i − x_i) / σ_i)²); returns (N, T).

    σ_i is :func:`attractor_scale` of ``true`` unless ``scale`` (a number or a tensor broadcastable to S)
    is given. With ``mask``, the mean is over the observed coordinates of each state; nan where none is.
    Dimensionless.
    """
    check_pair(pred, true)
    z2 = ((pred - true) / _scale(true, scale, mask)).pow(2)
    return _masked_mean(z2.flatten(2), _weights(mask, true).flatten(2), (2,)).sqrt()


def rmse(pred: Tensor, true: Tensor, *, t: Tensor | None = None, mask: Tensor | None = None) -> Tensor:
    """Root-mean-square error at each output time: sqrt(mean_{n,i} (x̂_ni(t) − x_ni(t))²); returns (T,).

    With ``mask`` the mean is over the observed entries; nan at a time where nothing is observed.
    Units: those of the states.
    """
    check_pair(pred, true)
    e2 = (pred - true).pow(2).transpose(0, 1).flatten(1)
    return _masked_mean(e2, _weights(mask, true).transpose(0, 1).flatten(1), (1,)).sqrt()


def nrmse(pred: Tensor, true: Tensor, *, t: Tensor | None = None, scale: Tensor | float | None = None,
          mask: Tensor | None = None) -> Tensor:
    """Normalised RMSE at each output time: sqrt(mean_{n,i} ((x̂_ni(t) − x_ni(t)) / σ_i)²); returns (T,).

    σ_i is the spread of coordinate i over all of ``true`` (:func:`attractor_scale`: for a long trajectory,
    the attractor's standard deviation) unless ``scale`` is given. With ``mask``, over observed entries
    (nan where none is). Dimensionless.
    """
    check_pair(pred, true)
    z2 = ((pred - true) / _scale(true, scale, mask)).pow(2).transpose(0, 1).flatten(1)
    return _masked_mean(z2, _weights(mask, true).transpose(0, 1).flatten(1), (1,)).sqrt()


def _first_exceedance(pred: Tensor, true: Tensor, threshold: float, scale: Tensor | float | None,
                      mask: Tensor | None, start: int) -> Tensor:
    """Per trajectory, the first output index k >= ``start`` with e_n(t_k) > threshold, or −1 if none.

    Unobserved steps (nan error) never count. A nan in ``pred`` where the truth is observed counts as an
    infinite error: a blown-up rollout has left the valid prediction for good.
    """
    if not threshold > 0:
        raise ValueError(f"threshold must be positive, got {threshold}")
    pred = torch.where(pred.isnan(), torch.inf, pred)
    err = normalized_error(pred, true, scale=scale, mask=mask)
    over = err > threshold
    over[:, :start] = False
    return torch.where(over.any(1), over.to(torch.int8).argmax(1), torch.full_like(over[:, 0], -1,
                                                                                   dtype=torch.long))


def valid_prediction_time(pred: Tensor, true: Tensor, *, t: Tensor, threshold: float = 0.4,
                          scale: Tensor | float | None = None, mask: Tensor | None = None,
                          start: int = 0) -> Tensor:
    """Valid prediction time of each trajectory; returns (N,) in the units of ``t``.

    VPT_n = t_k − t_start for the first output index k > ``start`` with e_n(t_k) > ``threshold``, e_n the
    :func:`normalized_error` (observed entries only, with ``mask``); t_{T−1} − t_start (the whole horizon, a
    lower bound, see :func:`horizon_reached`) when the error never exceeds it. ``start`` is the index of
    the forecast's initial state (the end of a context). The resolution is one output step. ``t``: (T,) or
    (N, T). Multiply by λ_max (:func:`lyapunov_times`) for Lyapunov times. (Pathak et al., Chaos 27, 121102
    (2017); threshold 0.4 as in Vlachas et al., Neural Networks 126, 191 (2020).)
    """
    check_pair(pred, true)
    n, n_t = pred.shape[:2]
    t = check_times(t, n, n_t)
    first = _first_exceedance(pred, true, threshold, scale, mask, start)
    first = torch.where(first >= 0, first, n_t - 1)
    return t.gather(1, first[:, None]).squeeze(1) - t[:, start]


def horizon_reached(pred: Tensor, true: Tensor, *, threshold: float = 0.4,
                    scale: Tensor | float | None = None, mask: Tensor | None = None,
                    start: int = 0) -> Tensor:
    """(N,) bool: True where the error never exceeds ``threshold``, i.e. the VPT is only a lower bound."""
    check_pair(pred, true)
    return _first_exceedance(pred, true, threshold, scale, mask, start) < 0


def lyapunov_times(time: Tensor | float, lyapunov_max: float) -> Tensor | float:
    """A duration in Lyapunov times: ``time`` × λ_max (λ_max in inverse time units; Lorenz-63: 0.9056)."""
    if not lyapunov_max > 0:
        raise ValueError(f"lyapunov_max must be positive to count Lyapunov times, got {lyapunov_max}")
    return time * lyapunov_max
