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
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from ..data import Trajectories
from ._base import System

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
    """Robertson's kinetics; rate constants k1, k2, k3 may differ per trajectory (see :meth:`simulate`)."""

    name = "robertson"
    invariants = ("mass", "positivity")

    def vector_field(self, t: Tensor | float, x: Tensor) -> Tensor:
        p = self.params
        return robertson_field(x, p["k1"], p["k2"], p["k3"])

    def jacobian(self, t: Tensor | float, x: Tensor) -> Tensor:
        p = self.params
        return robertson_jacobian(x, p["k1"], p["k2"], p["k3"])

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

    def integrate(self, x0: Tensor, t: Tensor, progress: bool = False,
                  params: Mapping[str, Rate] | None = None) -> Tensor:
        """Solve from ``x0`` (N, 3) on the times ``t`` (T,) with the stiff solver; returns (N, T, 3).

        ``params`` may override k1, k2, k3 with numbers or (N,) tensors (one rate per trajectory).
        """
        from ..solvers import stiff_integrate

        # Always float64: the tolerances below are beyond float32, and y2 spans 1e-13 to 1e-5.
        x = torch.as_tensor(x0).to(torch.float64)
        k = tuple(rate.to(device=x.device, dtype=torch.float64) for rate in self._rates(params, x.shape[0]))
        solver = self.facts["solver"]
        states = stiff_integrate(
            lambda _, y: robertson_field(y, *k),
            x, torch.as_tensor(t, dtype=torch.float64, device=x.device),
            jacobian=lambda _, y: robertson_jacobian(y, *k),
            rtol=solver["rtol"], atol=solver["atol"], method=solver["method"], autonomous=True,
            progress=progress,
        )
        return states.to(self.dtype)

    def simulate(
        self,
        n_trajectories: int | None = None,
        t_end: float | None = None,
        dt: float | None = None,
        seed: int = 0,
        noise: float = 0.0,
        x0: Tensor | None = None,
        t: Tensor | None = None,
        noise_type: str | None = None,
        progress: bool = False,
        params: Mapping[str, Rate] | None = None,
    ) -> Trajectories:
        """Simulate Robertson's kinetics on a log-spaced time grid.

        Args:
            n_trajectories: number of initial states from :meth:`random_initial_states` (the first is the
                standard (1, 0, 0)); ignored when ``x0`` is given. Default: from ``params`` tensors, else 16.
            t_end: last output time (default 1e11, the end of the ROBER test problem).
            dt: the FIRST output time after 0 (default 1e-6); the outputs are 0 and then log-spaced from
                ``dt`` to ``t_end`` with ``points_per_decade`` (6) per decade. Ignored when ``t`` is given.
            seed: seeds the random initial states.
            noise: must be 0 (Robertson has no stochastic form).
            x0: initial concentrations (N, 3), non-negative.
            t: explicit output times (T,), strictly increasing; ``t[0]`` is the initial time.
            noise_type: unused (no stochastic form).
            progress: show a progress bar.
            params: per-trajectory rate constants, e.g. ``{"k1": tensor of shape (N,)}``; numbers are
                allowed too; rates not given are the system's (``get("robertson", k1=...)``). All are stored
                in ``Trajectories.params`` as (N,) tensors.
        """
        if noise != 0:
            raise ValueError(f"system {self.name!r} has no stochastic form (noise must be 0, got {noise})")
        n = self._batch_size(n_trajectories, x0, params)
        if x0 is None:
            x0 = self.random_initial_states(n, torch.Generator().manual_seed(seed))
        x0 = torch.as_tensor(x0, dtype=self.dtype)
        if not bool(torch.isfinite(x0).all()) or bool((x0 < 0).any()):
            raise ValueError("x0 must hold finite, non-negative concentrations")
        defaults = self.facts["simulate"]
        if t is None:
            t_end = defaults["t_end"] if t_end is None else t_end
            t = log_time_grid(t_end, defaults["dt"] if dt is None else dt, defaults["points_per_decade"])
        t = torch.as_tensor(t, dtype=torch.float64)
        if t.ndim != 1 or len(t) < 2 or bool((t.diff() <= 0).any()):
            raise ValueError("t must be a strictly increasing 1-D grid of at least two times")
        rates = self._rates(params, n)
        states = self.integrate(x0, t.to(self.dtype), progress=progress, params=params)
        derivatives = robertson_field(states, *(k[:, None] for k in rates))
        meta: dict[str, Any] = {"seed": seed, "noise": 0.0}
        return Trajectories(
            t=t,
            states=states,
            derivatives=derivatives,
            params={name: k.to(torch.float64) for name, k in zip(("k1", "k2", "k3"), rates, strict=True)},
            system=self.name,
            state_names=self.state_names,
            system_params=dict(self.params),
            meta=meta,
        )

    def _batch_size(self, n_trajectories: int | None, x0: Tensor | None,
                    params: Mapping[str, Rate] | None) -> int:
        if x0 is not None:
            shape = tuple(torch.as_tensor(x0).shape)
            if len(shape) != 2 or shape[1] != 3:
                raise ValueError(f"x0 must have shape (N, 3), got {shape}")
            return shape[0]
        if n_trajectories is not None:
            if n_trajectories < 1:
                raise ValueError(f"n_trajectories must be >= 1, got {n_trajectories}")
            return n_trajectories
        sizes = [torch.as_tensor(v).numel() for v in (params or {}).values() if torch.as_tensor(v).ndim == 1]
        return sizes[0] if sizes else int(self.facts["simulate"]["n_trajectories"])

    def _rates(self, params: Mapping[str, Rate] | None, n: int) -> tuple[Tensor, Tensor, Tensor]:
        """(k1, k2, k3) as (n,) tensors: ``params`` where given, the system's parameters otherwise."""
        params = dict(params or {})
        unknown = set(params) - set(self.params)
        if unknown:
            raise ValueError(f"unknown parameter {sorted(unknown)[0]!r} for system 'robertson' "
                             "(known: k1, k2, k3)")
        rates = []
        for name in ("k1", "k2", "k3"):
            k = torch.as_tensor(params.get(name, self.params[name]), dtype=self.dtype)
            if k.ndim == 0:
                k = k.expand(n)
            if k.shape != (n,):
                raise ValueError(f"params[{name!r}] must be a number or have shape ({n},), "
                                 f"got {tuple(k.shape)}")
            if not bool(torch.isfinite(k).all()) or bool((k <= 0).any()):
                raise ValueError(f"params[{name!r}] must hold positive finite rate constants")
            rates.append(k)
        return rates[0], rates[1], rates[2]
