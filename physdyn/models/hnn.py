"""Hamiltonian neural network: a learned energy H_θ(q, p) whose symplectic gradient is the vector field.

Reference: S. Greydanus, M. Dzamba, J. Yosinski, "Hamiltonian Neural Networks", NeurIPS 2019.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from ._base import VectorFieldModel
from ._mlp import SMOOTH_ACTIVATIONS, mlp


class HamiltonianNN(VectorFieldModel):
    """dx/dt = J ∇H_θ(x), x = (q_1..q_d, p_1..p_d), J = [[0, I], [−I, 0]], H_θ a scalar MLP.

    So dq/dt = ∂H_θ/∂p and dp/dt = −∂H_θ/∂q: the learned flow is Hamiltonian and conserves H_θ exactly.
    With ``separable=True``, H_θ(q, p) = T_θ(p) + V_θ(q) (two MLPs), for which the explicit leapfrog
    splitting is exact and fast. The activation must be smooth because its derivative enters the field.
    States are vectors of even size: positions first, then momenta.

    Rollouts default to the symplectic ``method`` ("yoshida4": order 4; a composition of leapfrog when
    separable, of implicit midpoint otherwise) on the output grid with ``substeps``; any method of
    ``physdyn.solvers.integrate`` also works. Through a symplectic rollout the result stays differentiable
    whenever grad mode is on, so it can be trained on.
    """

    capabilities = frozenset({"vector_field", "energy"})
    # One scale for q and p keeps the flow Hamiltonian in normalised coordinates (physdyn.data.Normalizer).
    normalization = "scale"
    state_rank = 1

    def __init__(
        self,
        state_shape: int | Sequence[int],
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
        super().__init__(state_shape, width=width, depth=depth, activation=activation, separable=separable,
                         method=method, substeps=substeps, rtol=rtol, atol=atol, adjoint=adjoint)
        if self.state_size % 2:
            raise ValueError(f"an HNN needs vector states of even size (positions q, then momenta p), "
                             f"got state shape {self.state_shape}")
        if not isinstance(separable, bool):
            raise ValueError(f"separable must be True or False, got {separable!r}")
        self.separable = separable
        self.d = self.state_size // 2
        # H's additive constant does not affect the dynamics: no output bias.
        options = dict(width=width, depth=depth, activation=activation, allowed=SMOOTH_ACTIVATIONS,
                       output_bias=False)
        if separable:
            self.kinetic = mlp(self.d, 1, **options)
            self.potential = mlp(self.d, 1, **options)
        else:
            self.net = mlp(self.state_size, 1, **options)

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

    def solver_options(self) -> dict[str, Any]:
        return {"energy": self.energy, "separable": self.separable}
