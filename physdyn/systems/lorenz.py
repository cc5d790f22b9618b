"""Lorenz-63: dx/dt = σ(y − x), dy/dt = x(ρ − z) − y, dz/dt = xy − βz.

Deterministic trajectories come from the 8th-order DOP853 tableau at a fixed step (``facts.json``: "solver"),
chosen so the float64 error sits at the round-off floor that chaos amplifies; see docs/systems/lorenz.md.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._base import System, along_batch

#: diffusion scales of the multiplicative form, from torchsde's latent-SDE example (Li et al., AISTATS 2020)
MULTIPLICATIVE_SCALES = (0.1, 0.28, 0.3)


class Lorenz(System):
    name = "lorenz"

    def vector_field(self, t: Tensor | float, x: Tensor) -> Tensor:
        p = self.params
        u, v, w = x.unbind(-1)
        if self.batch_size is not None:  # (σ, ρ, β) per trajectory
            p = {k: along_batch(value, u) for k, value in p.items()}
        # σ(v − u), (ρu − v) − uw, −βw + uv, in as few tensor operations as possible (this is the inner loop)
        du = (v - u) * p["sigma"]
        dv = torch.addcmul(u * p["rho"] - v, u, w, value=-1.0)
        dw = torch.addcmul(w * -p["beta"], u, v)
        return torch.stack([du, dv, dw], dim=-1)

    def jacobian(self, t: Tensor | float, x: Tensor) -> Tensor:
        """[[−σ, σ, 0], [ρ − z, −1, −x], [y, x, −β]] for states (B, 3); returns (B, 3, 3)."""
        p = self.params
        u, v, w = x.unbind(-1)
        zero = torch.zeros_like(u)
        if self.batch_size is None:
            constant = x.new_tensor([-p["sigma"], p["sigma"], 0.0, p["rho"], -1.0, 0.0, 0.0, 0.0, -p["beta"]])
        else:  # (σ, ρ, β) per trajectory: a constant part per state
            sigma, rho, beta = (zero + along_batch(p[k], u) for k in ("sigma", "rho", "beta"))
            constant = torch.stack([-sigma, sigma, zero, rho, zero - 1, zero, zero, zero, -beta], dim=-1)
        # Elementwise only: the Lyapunov routine calls this at every RK stage, and a small matrix product or
        # gather here is handed to threaded BLAS/OpenMP, which costs 10-40x more on a busy machine.
        variable = torch.stack([zero, zero, zero, -w, zero, -u, v, u, zero], dim=-1)
        return (variable + constant).unflatten(-1, (3, 3))

    def random_initial_states(self, n: int, generator: torch.Generator) -> Tensor:
        # Start near the attractor: a random point in a box around it, then the transient is short.
        lo = torch.tensor([-15.0, -20.0, 5.0], dtype=self.dtype)
        hi = torch.tensor([15.0, 20.0, 45.0], dtype=self.dtype)
        return lo + (hi - lo) * torch.rand(n, 3, generator=generator, dtype=self.dtype)

    def sde(self, noise: float, noise_type: str | None = None) -> LorenzSDE:
        """The Itô SDE dX = f(X) dt + g(X) dW with diagonal noise, W a 3-D Brownian motion.

        ``noise_type`` "additive" (the default, ``facts.json``): g = noise·(1, 1, 1);
        "multiplicative": g = noise·(0.1 x, 0.28 y, 0.3 z), torchsde's stochastic Lorenz at noise = 1.
        """
        return LorenzSDE(self, noise, noise_type or self.facts["default_noise_type"])


class LorenzSDE(torch.nn.Module):
    """Stochastic Lorenz-63 in torchsde's contract: ``f`` drift, ``g`` diagonal diffusion, both (B, 3)."""

    sde_type = "ito"
    noise_type = "diagonal"

    def __init__(self, system: Lorenz, noise: float, kind: str) -> None:
        super().__init__()
        if kind not in ("additive", "multiplicative"):
            raise ValueError(f"unknown noise_type {kind!r} for lorenz (known: additive, multiplicative)")
        if not noise >= 0:
            raise ValueError(f"noise must be >= 0, got {noise}")
        self.system, self.noise, self.kind = system, float(noise), kind

    def f(self, t: Tensor, y: Tensor) -> Tensor:
        return self.system.vector_field(t, y)

    def g(self, t: Tensor, y: Tensor) -> Tensor:
        if self.kind == "additive":
            return torch.full_like(y, self.noise)
        return y * y.new_tensor(MULTIPLICATIVE_SCALES) * self.noise
