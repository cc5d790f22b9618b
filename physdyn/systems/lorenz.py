"""Lorenz-63: dx/dt = σ(y − x), dy/dt = x(ρ − z) − y, dz/dt = xy − βz."""

from __future__ import annotations

import torch
from torch import Tensor

from ._base import System


class Lorenz(System):
    name = "lorenz"

    def vector_field(self, t: Tensor | float, x: Tensor) -> Tensor:
        p = self.params
        u, v, w = x.unbind(-1)
        return torch.stack([p["sigma"] * (v - u), u * (p["rho"] - w) - v, u * v - p["beta"] * w], dim=-1)

    def jacobian(self, t: Tensor | float, x: Tensor) -> Tensor:
        p = self.params
        u, v, w = x.unbind(-1)
        one, zero = torch.ones_like(u), torch.zeros_like(u)
        rows = [
            torch.stack([-p["sigma"] * one, p["sigma"] * one, zero], -1),
            torch.stack([p["rho"] - w, -one, -u], -1),
            torch.stack([v, u, -p["beta"] * one], -1),
        ]
        return torch.stack(rows, dim=-2)

    def random_initial_states(self, n: int, generator: torch.Generator) -> Tensor:
        # Start near the attractor: a random point in a box around it, then the transient is short.
        lo = torch.tensor([-15.0, -20.0, 5.0], dtype=self.dtype)
        hi = torch.tensor([15.0, 20.0, 45.0], dtype=self.dtype)
        return lo + (hi - lo) * torch.rand(n, 3, generator=generator, dtype=self.dtype)
