"""Hamiltonian neural network: a learned energy H_θ(q, p) whose symplectic gradient is the vector field.

Reference: S. Greydanus, M. Dzamba, J. Yosinski, "Hamiltonian Neural Networks", NeurIPS 2019.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..solvers import symplectic_integrate
from ..solvers._symplectic import ORDERS as _SYMPLECTIC_METHODS
from ._base import DynamicsModel, _check_rollout_args
from ._mlp import SMOOTH_ACTIVATIONS, mlp


class HamiltonianNN(DynamicsModel):
    """dx/dt = J ∇H_θ(x), x = (q_1..q_d, p_1..p_d), J = [[0, I], [−I, 0]], H_θ a scalar MLP.

    So dq/dt = ∂H_θ/∂p and dp/dt = −∂H_θ/∂q: the learned flow is Hamiltonian and conserves H_θ exactly.
    With ``separable=True``, H_θ(q, p) = T_θ(p) + V_θ(q) (two MLPs), for which the explicit leapfrog
    splitting is exact and fast. The activation must be smooth because its derivative enters the field.

    Rollouts default to the symplectic ``method`` ("yoshida4": order 4; a composition of leapfrog when
    separable, of implicit midpoint otherwise) on the output grid with ``substeps``; any method of
    :meth:`DynamicsModel.rollout` also works.
    """

    def __init__(
        self,
        state_dim: int | None = None,
        width: int = 200,
        depth: int = 2,
        activation: str = "tanh",
        separable: bool = False,
        method: str = "yoshida4",
        substeps: int = 1,
        rtol: float = 1e-7,
        atol: float = 1e-9,
        adjoint: bool = False,
    ) -> None:
        super().__init__(state_dim, dict(state_dim=state_dim, width=width, depth=depth, activation=activation,
                                         separable=separable, method=method, substeps=substeps, rtol=rtol,
                                         atol=atol, adjoint=adjoint))
        if state_dim % 2:
            raise ValueError(f"state_dim of an HNN must be even (positions q, momenta p), got {state_dim}")
        if not isinstance(separable, bool):
            raise ValueError(f"separable must be True or False, got {separable!r}")
        self.separable = separable
        self.d = state_dim // 2
        # H's additive constant does not affect the dynamics: no output bias.
        options = dict(width=width, depth=depth, activation=activation, allowed=SMOOTH_ACTIVATIONS,
                       output_bias=False)
        if separable:
            self.kinetic = mlp(self.d, 1, **options)
            self.potential = mlp(self.d, 1, **options)
        else:
            self.net = mlp(state_dim, 1, **options)

    def energy(self, x: Tensor) -> Tensor:
        """The learned Hamiltonian H_θ(x) for states x (B, 2d); returns (B,)."""
        if self.separable:
            return (self.kinetic(x[:, self.d :]) + self.potential(x[:, : self.d])).squeeze(-1)
        return self.net(x).squeeze(-1)

    def vector_field(self, t: Tensor | float, x: Tensor) -> Tensor:
        # torch.func.grad rather than autograd.grad: it works under no_grad, stays differentiable with respect
        # to the parameters and to x (training, adjoints), and composes with vmap/jacrev/jvp (Lyapunov).
        grad = torch.func.grad(lambda y: self.energy(y).sum())(x)
        return torch.cat([grad[:, self.d :], -grad[:, : self.d]], dim=-1)

    def rollout(self, x0: Tensor, t: Tensor, *, method: str | None = None, substeps: int | None = None,
                progress: bool = False, **options) -> Tensor:
        """States at ``t`` from ``x0`` (N, 2d) as (N, T, 2d).

        ``method`` is a symplectic method of ``physdyn.solvers.symplectic_integrate`` ("leapfrog" needs
        ``separable``, "implicit_midpoint", "yoshida4", "yoshida6", "yoshida8") or any method of
        :meth:`DynamicsModel.rollout` (``options`` are passed on to it). Through a symplectic rollout the
        result stays differentiable whenever grad mode is on, so it can be trained on.
        """
        method = self.hparams["method"] if method is None else method
        if method not in _SYMPLECTIC_METHODS:
            return super().rollout(x0, t, method=method, substeps=substeps, progress=progress, **options)
        if options:
            raise ValueError(f"options {sorted(options)} do not apply to the symplectic method {method!r}")
        t = _check_rollout_args(x0, t, self.state_dim)
        return symplectic_integrate(self.energy, x0, t, method=method,
                                    substeps=self.hparams["substeps"] if substeps is None else substeps,
                                    separable=self.separable, create_graph=torch.is_grad_enabled(),
                                    progress=progress)
