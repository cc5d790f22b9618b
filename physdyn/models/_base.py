"""The base of every learned model: a vector field on flat states and the rollouts built on it."""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

import torch
from torch import Tensor, nn

#: torchdiffeq methods with adaptive or multistep control; rollouts with these use ``physdyn.solvers.odeint``.
#: Every other method name (e.g. "euler", "rk4") goes to the fixed-step ``physdyn.solvers.rk_integrate``,
#: which has less overhead per step and accepts one time grid per trajectory.
TORCHDIFFEQ_METHODS: tuple[str, ...] = (
    "dopri5", "dopri8", "bosh3", "fehlberg2", "adaptive_heun",
    "explicit_adams", "implicit_adams", "fixed_adams", "scipy_solver",
)


def _check_rollout_args(x0: Tensor, t: Tensor, state_dim: int) -> Tensor:
    """``t`` shifted to start at 0 per trajectory (the models are autonomous); (T,) when all grids agree."""
    if x0.ndim != 2 or x0.shape[1] != state_dim:
        raise ValueError(f"x0 must have shape (N, {state_dim}), got {tuple(x0.shape)}")
    t = torch.as_tensor(t, dtype=x0.dtype, device=x0.device)
    if t.ndim not in (1, 2) or (t.ndim == 2 and t.shape[0] != x0.shape[0]) or t.shape[-1] < 1:
        raise ValueError(f"t must have shape (T,) or (N, T) with N = {x0.shape[0]}, got {tuple(t.shape)}")
    t = t - t[..., :1]
    if t.ndim == 2 and bool((t == t[:1]).all()):
        t = t[0]
    return t


class DynamicsModel(nn.Module):
    """A learned autonomous ODE dx/dt = f_θ(x) on flat states x of shape (B, D), D = ``state_dim``.

    Subclasses implement :meth:`vector_field`. ``forward(t, x)`` is the vector field, so the module can be
    handed to torchdiffeq directly; :meth:`rollout` integrates it. The constructor's keyword arguments are
    the model's hyperparameters, kept in ``self.hparams``; the solver options among them (``method``,
    ``substeps``, ``rtol``, ``atol``, ``adjoint``) are the defaults of :meth:`rollout`.
    """

    def __init__(self, state_dim: int, hparams: dict[str, Any]) -> None:
        super().__init__()
        if isinstance(state_dim, bool) or not isinstance(state_dim, int) or state_dim < 1:
            raise ValueError(f"state_dim must be a positive integer (the flat state size), got {state_dim!r}")
        self.state_dim = state_dim
        self.hparams = dict(hparams)

    @abstractmethod
    def vector_field(self, t: Tensor | float, x: Tensor) -> Tensor:
        """dx/dt for states ``x`` (B, D); returns (B, D). ``t`` is ignored (autonomous)."""

    def forward(self, t: Tensor | float, x: Tensor) -> Tensor:
        return self.vector_field(t, x)

    def rollout(
        self,
        x0: Tensor,
        t: Tensor,
        *,
        method: str | None = None,
        substeps: int | None = None,
        rtol: float | None = None,
        atol: float | None = None,
        adjoint: bool | None = None,
        options: dict | None = None,
        progress: bool = False,
    ) -> Tensor:
        """Integrate from ``x0`` (N, D) and return the states at ``t`` as (N, T, D), starting with ``x0``.

        Args:
            t: output times, (T,) shared or (N, T) one grid per trajectory (only differences matter).
            method: a fixed-step method of ``physdyn.solvers.rk_integrate`` ("euler", "rk4", ...) or one
                of :data:`TORCHDIFFEQ_METHODS` (e.g. "dopri5"). Defaults to the ``method`` hyperparameter.
            substeps: fixed-step methods split each output interval into this many steps.
            rtol, atol, adjoint, options: for torchdiffeq methods (``adjoint=True``: adjoint gradients).
            progress: show a progress bar.
        """
        hp = self.hparams
        method = hp["method"] if method is None else method
        t = _check_rollout_args(x0, t, self.state_dim)
        if method in TORCHDIFFEQ_METHODS:
            from ..solvers import odeint

            kwargs = dict(method=method, rtol=hp["rtol"] if rtol is None else rtol,
                          atol=hp["atol"] if atol is None else atol,
                          adjoint=hp["adjoint"] if adjoint is None else adjoint,
                          options=options, progress=progress)
            if t.ndim == 1:
                return odeint(self, x0, t, **kwargs)
            # torchdiffeq shares one grid across the batch: solve trajectory by trajectory.
            return torch.cat([odeint(self, x0[i : i + 1], t[i], **kwargs) for i in range(len(x0))])
        from ..solvers import rk_integrate

        return rk_integrate(self.vector_field, x0, t, method=method,
                            substeps=hp["substeps"] if substeps is None else substeps, progress=progress)
