"""The Ornstein–Uhlenbeck process dX = θ (μ − X) dt + σ dW: a linear SDE with closed-form moments."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ._base import ParamValue, System, along_batch


class OrnsteinUhlenbeck(System):
    """One coordinate x relaxing to ``mu`` at rate ``theta``; ``noise > 0`` adds σ dW, σ = noise·``sigma``.

    Deterministic form dx/dt = θ (μ − x). The stochastic form has, from x(0) = x0, the Gaussian marginal
    of mean μ + (x0 − μ) e^(−θt) and variance σ² (1 − e^(−2θt)) / (2θ) (:meth:`mean`, :meth:`variance`):
    a closed form to test learned SDEs against.
    """

    name = "ornstein_uhlenbeck"

    def _rate_and_level(self, like: Tensor) -> tuple[ParamValue, ParamValue]:
        return along_batch(self.params["theta"], like), along_batch(self.params["mu"], like)

    def vector_field(self, t: Tensor | float, x: Tensor) -> Tensor:
        theta, mu = self._rate_and_level(x)
        return theta * (mu - x)

    def jacobian(self, t: Tensor | float, x: Tensor) -> Tensor:
        """[[−θ]] for states (B, 1); returns (B, 1, 1)."""
        theta, _ = self._rate_and_level(x)
        return (-theta * torch.ones_like(x))[..., None]

    def random_initial_states(self, n: int, generator: torch.Generator) -> Tensor:
        """x0 ~ μ + U(−3, 3) σ / sqrt(2θ): up to three stationary standard deviations from the level."""
        u = torch.rand(n, 1, generator=generator, dtype=self.dtype)
        theta, mu = self._rate_and_level(u)
        spread = self.params["sigma"] / (2 * theta) ** 0.5 if self.params["sigma"] > 0 else 1.0
        return mu + (6 * u - 3) * spread

    def mean(self, x0: Tensor, t: Tensor) -> Tensor:
        """E X(t) from x0 (N, 1) at times t (T,): (N, T, 1)."""
        theta, mu = (torch.as_tensor(v, dtype=x0.dtype).reshape(-1, 1, 1) for v in self._rate_and_level(x0))
        return mu + (x0[:, None] - mu) * torch.exp(-theta * t.to(x0.dtype)[None, :, None])

    def variance(self, t: Tensor, noise: float = 1.0) -> Tensor:
        """Var X(t) given X(0) at times t (T,) for the stochastic form with ``noise``:
        σ² (1 − e^(−2θt)) / (2θ), σ = noise · sigma (shared parameters only)."""
        theta, sigma = self.params["theta"], noise * self.params["sigma"]
        if isinstance(theta, Tensor) or isinstance(sigma, Tensor):
            raise ValueError("variance: per-trajectory parameters are not supported")
        return sigma**2 * (1 - torch.exp(-2 * theta * t)) / (2 * theta)

    def sde(self, noise: float, noise_type: str | None = None) -> OrnsteinUhlenbeckSDE:
        """The Itô SDE dX = θ (μ − X) dt + noise · σ dW (diagonal noise, one Brownian motion)."""
        if noise_type not in (None, "additive"):
            raise ValueError(f"unknown noise_type {noise_type!r} for system 'ornstein_uhlenbeck' "
                             "(known: additive)")
        if not noise >= 0:
            raise ValueError(f"noise must be >= 0, got {noise}")
        return OrnsteinUhlenbeckSDE(self, noise)


class OrnsteinUhlenbeckSDE(nn.Module):
    """The Ornstein–Uhlenbeck process in torchsde's contract: ``f`` drift, ``g`` diagonal noise, (B, 1)."""

    sde_type = "ito"
    noise_type = "diagonal"

    def __init__(self, system: OrnsteinUhlenbeck, noise: float) -> None:
        super().__init__()
        self.system, self.noise = system, float(noise)

    def f(self, t: Tensor, y: Tensor) -> Tensor:
        return self.system.vector_field(t, y)

    def g(self, t: Tensor, y: Tensor) -> Tensor:
        return torch.ones_like(y) * along_batch(self.system.params["sigma"], y) * self.noise
