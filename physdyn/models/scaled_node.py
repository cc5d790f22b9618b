"""A neural ODE for stiff kinetics, scaled per species and in log time (after Kim et al., Chaos 2021).

Kim, Ji, Deng, Ma & Rackauckas, "Stiff neural ordinary differential equations", Chaos 31, 093122 (2021),
show that a plain neural ODE fails on Robertson's kinetics and that scaling makes it learn: the network's
inputs and outputs scaled per species, the loss scaled per species, deep networks with rectified
activations (GELU), a stiff solver. Here:

- the states are scaled per species by the run's normalisation (``normalization = "species"``:
  z_i = y_i / max|y_i|, no shift), so the network sees and predicts O(1) numbers for every species and the
  trajectory loss on z is scaled per species;
- the field is learned in log time τ = ln(t + t_c), where ``t_c`` (``time_offset``) is about the first
  sampling time: dz/dτ = NN(z, τ). Over twelve decades the rates dz/dt span as many, but dz/dτ = (t + t_c)
  dz/dt is O(1) at every decade, which is what an O(1) network output can represent. The price is an
  explicit time dependence, so the model is non-autonomous: rollouts take absolute times, ``t = 0`` being
  the time origin of the data (where kinetics starts).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from ..solvers import integrate
from ._base import VectorFieldModel, check_times
from ._mlp import mlp


class ScaledNeuralODE(VectorFieldModel):
    """dz/dτ = MLP(z, τ̃) on species-scaled states z in log time τ = ln(t + ``time_offset``).

    τ̃ = (τ − τ_c) / τ_w maps ``log_time_range`` (the data's ln t range, set by fit's recipe) to [−1, 1],
    so the network's time input is O(1) too. The physical field is dz/dt = MLP(z, τ̃) / (t + t_c).

    Hyperparameters: ``width``, ``depth``, ``activation`` of the MLP; ``time_offset`` t_c > 0 (fit: the
    data's first positive time); ``log_time_range`` [ln t_min, ln t_max]; ``method``, ``substeps``,
    ``rtol``, ``atol``: the rollouts' solver over τ (``rodas5p``: the stiff solver, autograd Jacobian).
    """

    normalization = "species"
    objective = "kinetics_matching"
    state_rank = 1
    #: the field depends on absolute time (log time): rollouts are not shifted to start at 0
    autonomous = False

    def __init__(
        self,
        state_shape: int | Sequence[int],
        width: int = 32,
        depth: int = 3,
        activation: str = "gelu",
        time_offset: float = 1.0,
        log_time_range: Sequence[float] = (-5.0, 5.0),
        method: str = "rodas5p",
        substeps: int = 1,
        rtol: float = 1e-6,
        atol: float = 1e-9,
        adjoint: bool = False,
    ) -> None:
        super().__init__(state_shape, width=width, depth=depth, activation=activation,
                         time_offset=time_offset, log_time_range=list(log_time_range), method=method,
                         substeps=substeps, rtol=rtol, atol=atol, adjoint=adjoint)
        if isinstance(time_offset, bool) or not isinstance(time_offset, int | float) or not (
                math.isfinite(time_offset) and time_offset > 0):
            raise ValueError(f"model.time_offset must be a number > 0, got {time_offset!r}")
        low, high = (float(v) for v in log_time_range)
        if not (math.isfinite(low) and math.isfinite(high) and high > low):
            raise ValueError(f"model.log_time_range must be two increasing numbers, got {log_time_range!r}")
        self.time_offset = float(time_offset)
        self.tau_centre, self.tau_width = (low + high) / 2, (high - low) / 2
        d = self.state_shape[0]
        self.net = mlp(d + 1, d, width, depth, activation)

    def _log_time_field(self, tau: Tensor | float, z: Tensor) -> Tensor:
        """dz/dτ at log times ``tau`` (a number or (B,)) for states ``z`` (B, D)."""
        tau = torch.as_tensor(tau, dtype=z.dtype, device=z.device).expand(len(z))
        return self.net(torch.cat([z, ((tau - self.tau_centre) / self.tau_width)[:, None]], -1))

    def vector_field(self, t: Tensor | float, x: Tensor) -> Tensor:
        shifted = torch.as_tensor(t, dtype=x.dtype, device=x.device).expand(len(x)) + self.time_offset
        return self._log_time_field(shifted.log(), x) / shifted[:, None]

    def rollout(self, x0: Tensor, t: Tensor, *, method: str | None = None, substeps: int | None = None,
                rtol: float | None = None, atol: float | None = None, adjoint: bool | None = None,
                options: dict | None = None, progress: bool = False) -> Tensor:
        """Integrate from ``x0`` (N, D) at the absolute times ``t`` ((T,) or (N, T), ``t[..., 0]`` the
        start); returns (N, T, D). The integration runs in τ = ln(t + t_c), where the field is O(1)."""
        if x0.ndim != 2 or tuple(x0.shape[1:]) != self.state_shape:
            raise ValueError(f"x0 must have shape (N, {self.state_shape[0]}), got {tuple(x0.shape)}")
        hp = self.hparams
        tau = (check_times(t, len(x0)) + self.time_offset).log()
        if tau.ndim == 2 and bool((tau == tau[:1]).all()):
            tau = tau[0]
        pick = lambda value, key: hp.get(key) if value is None else value  # noqa: E731
        return integrate(self._log_time_field, x0, tau.to(x0.dtype), method=pick(method, "method"),
                         substeps=pick(substeps, "substeps") or 1, rtol=pick(rtol, "rtol"),
                         atol=pick(atol, "atol"), adjoint=bool(pick(adjoint, "adjoint")), options=options,
                         progress=progress)
