"""Robertson's stiff chemical kinetics (problem ROBER of the Bari "Test Set for IVP Solvers").

Three species, A -> B (k1), B + B -> C + B (k2), B + C -> A + C (k3):

    y1' = −k1 y1 + k3 y2 y3
    y2' =  k1 y1 − k3 y2 y3 − k2 y2²
    y3' =  k2 y2²

with k1 = 0.04, k2 = 3e7, k3 = 1e4 and y(0) = (1, 0, 0) (H. H. Robertson, 1966). The rates span eleven
orders of magnitude, so the system is stiff; y1 + y2 + y3 is conserved and every y_i stays >= 0.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ._base import System, along_batch

Rate = float | Tensor


def robertson_field(x: Tensor, k1: Rate, k2: Rate, k3: Rate) -> Tensor:
    """dy/dt for states ``x`` (..., 3); rates are numbers or tensors broadcastable to ``x[..., 0]``."""
    y1, y2, y3 = x.unbind(-1)
    a, b, c = k1 * y1, k2 * y2 * y2, k3 * y2 * y3
    return torch.stack([c - a, a - c - b, b], dim=-1)


def robertson_jacobian(x: Tensor, k1: Rate, k2: Rate, k3: Rate) -> Tensor:
    """∂f/∂y for states ``x`` (..., 3), shape (..., 3, 3); rates as in :func:`robertson_field`."""
    y1, y2, y3 = x.unbind(-1)
    zero = torch.zeros_like(y1)
    k1 = zero + k1  # rates as tensors of the batch shape
    rows = [
        torch.stack([-k1, k3 * y3, k3 * y2], dim=-1),
        torch.stack([k1, -k3 * y3 - 2 * k2 * y2, -k3 * y2], dim=-1),
        torch.stack([zero, 2 * k2 * y2, zero], dim=-1),
    ]
    return torch.stack(rows, dim=-2)


def log_time_grid(t_end: float, t_first: float, points_per_decade: float) -> Tensor:
    """0 followed by log-spaced times from ``t_first`` to ``t_end`` (both included), float64 (T,)."""
    if not (math.isfinite(t_end) and t_end > 0):
        raise ValueError(f"t_end must be a positive number, got {t_end}")
    if not (math.isfinite(t_first) and 0 < t_first < t_end):
        raise ValueError(f"dt (the first output time) must be a positive number below t_end={t_end:g}, "
                         f"got {t_first}")
    n = max(2, round(math.log10(t_end / t_first) * points_per_decade) + 1)
    grid = torch.logspace(math.log10(t_first), math.log10(t_end), n, dtype=torch.float64)
    grid[0], grid[-1] = t_first, t_end  # exact end points, free of pow round-off
    return torch.cat([torch.zeros(1, dtype=torch.float64), grid])


class Robertson(System):
    """Robertson's kinetics; the rate constants may differ per trajectory (``simulate(params=...)``)."""

    name = "robertson"
    invariants = ("mass", "positivity")

    def _rates(self, like: Tensor) -> tuple[Rate, Rate, Rate]:
        """(k1, k2, k3), aligned with the leading axis of ``like`` (see ``along_batch``)."""
        return tuple(along_batch(self.params[k], like) for k in ("k1", "k2", "k3"))  # type: ignore[return-value]

    def vector_field(self, t: Tensor | float, x: Tensor) -> Tensor:
        return robertson_field(x, *self._rates(x[..., 0]))

    def jacobian(self, t: Tensor | float, x: Tensor) -> Tensor:
        return robertson_jacobian(x, *self._rates(x[..., 0]))

    def mass(self, x: Tensor) -> Tensor:
        """Total concentration y1 + y2 + y3 (conserved), shape ``x.shape[:-1]``."""
        return x.sum(-1)

    def random_initial_states(self, n: int, generator: torch.Generator) -> Tensor:
        """The standard state (1, 0, 0) first, then mixtures of A and C: y1 ~ U[0.5, 1), y2 = 0, y3 = 1 − y1.

        Every state sums to 1. B starts at zero, as in the standard problem: its fast transient to the
        quasi-steady level (~1e-5) is part of every trajectory.
        """
        y1 = 0.5 + 0.5 * torch.rand(n, generator=generator, dtype=self.dtype)
        y1[0] = 1.0
        return torch.stack([y1, torch.zeros_like(y1), 1.0 - y1], dim=-1)

    def default_times(self, t_end: float, dt: float) -> Tensor:
        """0, then log-spaced from ``dt`` (the first output time) to ``t_end``, ``points_per_decade`` per
        decade (``facts.json``: 6), because kinetics spans decades. The defaults: 104 times, 1e-6 to 1e11."""
        return log_time_grid(t_end, dt, self.facts["simulate"]["points_per_decade"])

    def integrate(self, x0: Tensor, t: Tensor, progress: bool = False) -> Tensor:
        """Solve from ``x0`` (N, 3) on the times ``t`` (T,) with the stiff solver; returns (N, T, 3).

        Differentiable with respect to ``x0`` and to per-trajectory rates (``with_params``) that require grad.
        """
        from ..solvers import stiff_integrate

        # Always float64: the tolerances below are beyond float32, and y2 spans 1e-13 to 1e-5.
        x = torch.as_tensor(x0).to(torch.float64)
        if x.ndim != 2 or x.shape[1] != 3:
            raise ValueError(f"x0 must have shape (N, 3), got {tuple(x.shape)}")
        if not bool(torch.isfinite(x).all()) or bool((x < 0).any()):
            raise ValueError("x0 must hold finite, non-negative concentrations")
        k = [torch.as_tensor(rate, dtype=torch.float64, device=x.device) for rate in self._rates(x[:, 0])]
        solver = self.facts["solver"]
        states = stiff_integrate(
            lambda _, y: robertson_field(y, *k),
            x, torch.as_tensor(t, dtype=torch.float64, device=x.device),
            jacobian=lambda _, y: robertson_jacobian(y, *k),
            rtol=solver["rtol"], atol=solver["atol"], method=solver["method"], autonomous=True,
            progress=progress,
        )
        return states.to(self.dtype)
