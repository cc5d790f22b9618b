"""Neural SDE: dX = f_θ(X) dt + G_φ(X) dW, drift and diffusion networks on the observed states.

Trained on dense trajectories by the Gaussian transition likelihood of one sampling step (Euler–Maruyama,
``physdyn.training.TransitionLikelihood``), so the noise intensity is learned from the data, not assumed;
predictions are K sample paths solved with torchsde (``physdyn.solvers.sdeint``).

References: X. Li, T.-K. L. Wong, R. T. Q. Chen, D. Duvenaud, "Scalable Gradients for Stochastic
Differential Equations", AISTATS 2020 (torchsde); P. E. Kloeden, E. Platen, "Numerical Solution of
Stochastic Differential Equations", Springer 1992 (Euler–Maruyama).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..solvers import sdeint
from ._base import Model
from ._mlp import check_positive_int, mlp

NOISE_TYPES = ("diagonal", "general")
#: torchsde's Itô methods for each noise type (srk needs the diagonal or additive form).
METHODS = {"diagonal": ("euler", "milstein", "srk"), "general": ("euler",)}


class NeuralSDE(Model):
    """dX = f_θ(X) dt + G_φ(X) dW (Itô) on the flattened state X of size D.

    - ``f_θ``: an MLP of ``depth`` hidden layers of ``width`` units, linear output (the drift);
    - ``G_φ``: an MLP of ``diffusion_depth`` layers of ``diffusion_width`` units. ``noise="diagonal"``: one
      Brownian motion per coordinate, G = diag(g) with g = softplus(·) + ``min_diffusion`` > 0;
      ``noise="general"``: a D × m matrix (m = ``brownian_size``, default D), unconstrained, so noise may
      be correlated across coordinates or drive them through fewer Brownian motions (the Langevin form).

    Predictions integrate K independent paths from the context's last state with torchsde's ``method``
    at steps of at most (training step) / ``substeps``, the training step being the data's sampling step,
    recorded by the objective (buffer ``step``). With ``method="euler"`` and ``substeps=1`` a prediction
    repeats exactly the transition the model was trained on.
    """

    capabilities = frozenset({"samples", "sde"})
    objective = "transition_likelihood"

    def __init__(
        self,
        state_shape: int | Sequence[int],
        width: int = 128,
        depth: int = 3,
        activation: str = "tanh",
        noise: str = "diagonal",
        brownian_size: int | None = None,
        diffusion_width: int = 64,
        diffusion_depth: int = 2,
        min_diffusion: float = 1e-4,
        method: str = "euler",
        substeps: int = 1,
    ) -> None:
        super().__init__(state_shape, width=width, depth=depth, activation=activation, noise=noise,
                         brownian_size=brownian_size, diffusion_width=diffusion_width,
                         diffusion_depth=diffusion_depth, min_diffusion=min_diffusion, method=method,
                         substeps=substeps)
        if noise not in NOISE_TYPES:
            raise ValueError(f"noise must be one of {', '.join(NOISE_TYPES)}, got {noise!r}")
        if method not in METHODS[noise]:
            raise ValueError(f"method {method!r} does not solve {noise} noise (available: "
                             f"{', '.join(METHODS[noise])})")
        if brownian_size is not None and noise == "diagonal":
            raise ValueError("brownian_size applies to noise='general' only (diagonal noise has one "
                             "Brownian motion per coordinate)")
        check_positive_int("substeps", substeps)
        if isinstance(min_diffusion, bool) or not isinstance(min_diffusion, int | float) or min_diffusion < 0:
            raise ValueError(f"min_diffusion must be a number >= 0, got {min_diffusion!r}")
        d = self.state_size
        self.noise_type = noise
        self.brownian_size = d if brownian_size is None else check_positive_int("brownian_size",
                                                                                 brownian_size)
        self.drift_net = mlp(d, d, width, depth, activation)
        out = d if noise == "diagonal" else d * self.brownian_size
        self.diffusion_net = mlp(d, out, diffusion_width, diffusion_depth, activation)
        self.min_diffusion = float(min_diffusion)
        # The time step of the transitions it was trained on (physical time; NaN until trained).
        self.register_buffer("step", torch.tensor(float("nan"), dtype=torch.float64))

    def drift(self, z: Tensor) -> Tensor:
        """f_θ for flattened states z (B, D); (B, D)."""
        return self.drift_net(z)

    def diffusion(self, z: Tensor) -> Tensor:
        """G_φ for flattened states z (B, D): (B, D) for diagonal noise, (B, D, m) for general noise."""
        out = self.diffusion_net(z)
        if self.noise_type == "diagonal":
            return F.softplus(out) + self.min_diffusion
        return out.view(len(z), self.state_size, self.brownian_size)

    def covariance(self, z: Tensor) -> Tensor:
        """G Gᵀ (B, D, D): the diffusion's covariance rate, the same for any G that differs by a rotation of
        the Brownian motions (what the data determines)."""
        g = self.diffusion(z)
        if self.noise_type == "diagonal":
            return torch.diag_embed(g**2)
        return g @ g.transpose(1, 2)

    def initialize_diffusion(self, scale: Tensor) -> None:
        """Start G near diag(``scale``) (D,) everywhere: output weights shrunk, the offset at ``scale``."""
        last = self.diffusion_net[-1]
        scale = scale.to(last.bias).clamp(min=2 * self.min_diffusion + 1e-6)
        with torch.no_grad():
            last.weight.mul_(0.1)
            if self.noise_type == "diagonal":
                y = scale - self.min_diffusion
                last.bias.copy_(y + torch.log(-torch.expm1(-y)))  # softplus⁻¹
            else:
                bias = torch.zeros(self.state_size, self.brownian_size, dtype=last.bias.dtype)
                k = min(self.state_size, self.brownian_size)
                bias[range(k), range(k)] = scale[:k]
                last.bias.copy_(bias.flatten())

    def sde(self) -> _TorchSDE:
        """The model as a torchsde SDE on flattened states (attributes f, g, noise_type, sde_type)."""
        return _TorchSDE(self)

    def forward(self, t: Tensor | float, z: Tensor) -> Tensor:
        return self.drift(z.flatten(1)).view_as(z)

    def predict(self, t_context: Tensor, x_context: Tensor, mask_context: Tensor | None, t: Tensor, *,
                samples: int = 1, generator: torch.Generator | None = None) -> Tensor:
        """K sample paths per trajectory from the context's last state (fully observed) at the times ``t``.

        The Brownian paths come from ``generator`` (one draw seeds them): the same generator state, the
        same samples.
        """
        check_positive_int("samples", samples)
        t_context, mask, t = self._check_context(t_context, x_context, mask_context, t)
        unobserved = ~mask[:, -1].flatten(1).all(1)
        if bool(unobserved.any()):
            raise ValueError(f"trajectory {int(unobserved.nonzero()[0])}: the last context state is not "
                             "fully observed, and this model starts its sample paths there")
        start = t_context[:, -1]
        if bool((t < start[:, None]).any()):
            raise ValueError("query times before the last context time: this model predicts forward only")
        n, q = t.shape
        seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        x0 = x_context[:, -1].flatten(1)
        elapsed = torch.cat([start[:, None], t], 1) - start[:, None]  # autonomous: time since the start
        out = torch.empty(n, samples, q, self.state_size, dtype=x0.dtype, device=x0.device)
        # One solve per distinct grid (all trajectories at once when they share one).
        groups: dict[tuple[float, ...], list[int]] = {}
        for i, row in enumerate(elapsed.tolist()):
            groups.setdefault(tuple(row), []).append(i)
        for number, (grid, rows) in enumerate(groups.items()):
            grid_t = torch.tensor(grid, dtype=torch.float64)
            keep = torch.ones(len(grid), dtype=torch.bool)
            keep[1:] = grid_t.diff() > 0  # repeated times (a query at the start) share one state
            unique = grid_t[keep]
            y0 = x0[rows].repeat_interleave(samples, 0)
            if len(unique) == 1:
                paths = y0[:, None]
            else:
                paths = sdeint(self.sde(), y0, unique.to(x0.dtype), seed=seed + number,
                               dt=self._solver_step(unique), method=self.hparams["method"])
            where = keep.cumsum(0) - 1  # each grid time's index among the unique ones
            paths = paths[:, where[1:]]  # drop the prepended start
            out[rows] = paths.reshape(len(rows), samples, q, self.state_size)
        return out.view(n, samples, q, *self.state_shape)

    def _solver_step(self, grid: Tensor) -> float:
        """The SDE step: the training step (or, untrained, the shortest output interval) / ``substeps``."""
        step = float(self.step)
        if not step > 0:
            step = float(grid.diff().min())
        # A float32 model holds the step rounded (0.02 as 0.0199999996): a hair longer keeps one step per
        # training interval instead of two.
        return step * (1 + 1e-6) / self.hparams["substeps"]


class _TorchSDE(nn.Module):
    """A :class:`NeuralSDE` in torchsde's contract (Itô; f (B, D), g (B, D) or (B, D, m))."""

    sde_type = "ito"

    def __init__(self, model: NeuralSDE) -> None:
        super().__init__()
        self.model = model
        self.noise_type = model.noise_type
        self.brownian_size = model.brownian_size

    def f(self, t: Tensor, y: Tensor) -> Tensor:
        return self.model.drift(y)

    def g(self, t: Tensor, y: Tensor) -> Tensor:
        return self.model.diffusion(y)
