"""Physics metrics: how well a rollout keeps what the true dynamics conserve.

Signature as for every metric: ``metric(pred, true, *, t=None, **options)``, ``pred``/``true`` (N, T, *S).
Metrics that judge the prediction alone accept ``true=None``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ._rollout import check_pair

Energy = Callable[[Tensor], Tensor]


def _states(pred: Tensor) -> Tensor:
    if not torch.is_tensor(pred) or pred.ndim < 3:
        got = getattr(pred, "shape", type(pred))
        raise ValueError(f"pred must be a tensor of shape (N, T, *S), got {got}")
    return pred


def energies(energy: Energy, x: Tensor) -> Tensor:
    """``energy`` applied to every state of x (N, T, *S); returns (N, T)."""
    n, n_t = x.shape[:2]
    e = energy(x.reshape(n * n_t, *x.shape[2:]))
    if e.shape != (n * n_t,):
        raise ValueError(f"energy must map states (B, *S) to energies (B,), got shape {tuple(e.shape)}")
    return e.reshape(n, n_t)


def energy_drift(pred: Tensor, true: Tensor | None = None, *, t: Tensor | None = None, energy: Energy,
                 relative: bool = True) -> dict[str, Tensor]:
    """Drift of the energy along each predicted trajectory, from its own initial value.

    d_n(t) = |H(x̂_n(t)) − H(x̂_n(t_0))| / |H(x̂_n(t_0))| (``relative``; dimensionless, undefined where
    H(x̂_n(t_0)) = 0) or without the denominator (energy units). ``energy``: states (B, *S) -> (B,), usually
    the true system's H. Returns {"max": max_t d_n(t), "final": d_n(t_{T−1})}, each (N,).
    """
    h = energies(energy, _states(pred))
    d = (h - h[:, :1]).abs()
    if relative:
        d = d / h[:, :1].abs()
    return {"max": d.amax(1), "final": d[:, -1]}


def energy_error(pred: Tensor, true: Tensor, *, t: Tensor | None = None, energy: Energy,
                 mask: Tensor | None = None) -> Tensor:
    """Mean squared energy error mean_{n,t} (H(x̂_n(t)) − H(x_n(t)))²; a 0-d tensor in energy units squared.

    This is the energy metric of Greydanus et al., "Hamiltonian Neural Networks" (NeurIPS 2019) made
    precise: ``energy`` the true H, the mean over all trajectories and output times (with ``mask``, over the
    fully observed true states only, since H needs the whole state; nan if there are none).
    """
    check_pair(pred, true)
    e2 = (energies(energy, pred) - energies(energy, true)).pow(2)
    if mask is None:
        return e2.mean()
    full = torch.as_tensor(mask).flatten(2).all(-1)
    return e2[full].mean() if bool(full.any()) else e2.new_tensor(float("nan"))


def mass_error(pred: Tensor, true: Tensor | None = None, *, t: Tensor | None = None,
               weights: Tensor | None = None) -> dict[str, Tensor]:
    """Violation of a linear conservation law along each predicted trajectory.

    m_n(t) = |Σ_i w_i x̂_ni(t) − Σ_i w_i x̂_ni(t_0)|, summing over every state coordinate i (for chemical
    kinetics: the species) with weights ``w`` broadcastable to S (default 1: total mass). Returns
    {"max": max_t m_n(t), "final": m_n(t_{T−1})}, each (N,), in state units.
    """
    x = _states(pred)
    if weights is not None:
        x = x * torch.as_tensor(weights, dtype=x.dtype, device=x.device)
    total = x.flatten(2).sum(-1)
    m = (total - total[:, :1]).abs()
    return {"max": m.amax(1), "final": m[:, -1]}


def positivity_violation(pred: Tensor, true: Tensor | None = None, *,
                         t: Tensor | None = None) -> dict[str, Tensor]:
    """How far each predicted trajectory leaves the non-negative orthant (concentrations, densities).

    Returns {"depth": max(0, −min_{t,i} x̂_ni(t)) (state units: how negative the most negative entry is,
    0 when none is), "fraction": the fraction of entries x̂_ni(t) < 0}, each (N,).
    """
    x = _states(pred).flatten(1)
    return {"depth": (-x.amin(1)).clamp(min=0), "fraction": (x < 0).to(x.dtype).mean(1)}
