"""Neural ODE: dx/dt = f_θ(x) with f_θ a multilayer perceptron (Chen et al., NeurIPS 2018)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from ._base import VectorFieldModel
from ._mlp import mlp


class NeuralODE(VectorFieldModel):
    """dx/dt = MLP(x): ``depth`` hidden layers of ``width`` units with ``activation``, linear output.

    States of any shape are flattened for the MLP and the field is given back in their shape. ``depth = 0``
    makes the field a single affine map x ↦ A x + b. The remaining hyperparameters are the defaults of
    :meth:`rollout`.

    Reference: R. T. Q. Chen, Y. Rubanova, J. Bettencourt, D. Duvenaud, "Neural Ordinary Differential
    Equations", NeurIPS 2018.
    """

    def __init__(
        self,
        state_shape: int | Sequence[int],
        width: int = 128,
        depth: int = 3,
        activation: str = "tanh",
        method: str = "rk4",
        substeps: int = 1,
        rtol: float = 1e-7,
        atol: float = 1e-9,
        adjoint: bool = False,
    ) -> None:
        super().__init__(state_shape, width=width, depth=depth, activation=activation, method=method,
                         substeps=substeps, rtol=rtol, atol=atol, adjoint=adjoint)
        self.net = mlp(self.state_size, self.state_size, width, depth, activation)

    def vector_field(self, t: Tensor | float, x: Tensor) -> Tensor:
        return self.net(x.flatten(1)).view_as(x)
