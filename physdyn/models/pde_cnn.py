"""Residual CNNs whose layers are time steps of a PDE (Ruthotto & Haber, JMIV 2020), as next-frame models.

Each model lifts the last ``history`` frames to ``width`` feature channels (a zero-flux convolution and the
activation), propagates the features through ``depth`` layers that are steps of size ``h`` of a
continuous dynamics built on the *symmetric layer*

    F(Y) = −Kᵀ σ(K Y + b),

and maps them back to the C field channels with a closing convolution: next frame = last frame + that
increment. Kᵀ is the exact transpose of K with its zero-flux padding, so ∂F/∂Y = −Kᵀ diag(σ') K is
symmetric and negative semi-definite for a monotone σ:

- ``parabolic_cnn``: ∂ₜY = F(Y), forward Euler Y ← Y + h F(Y) (a learned nonlinear diffusion). Its
  Jacobian I − h Kᵀ diag(σ') K has eigenvalues in [1 − h ‖K‖² max σ', 1], so a layer is non-expansive
  when h ‖K‖² max σ' ≤ 2 (Theorem 1's stability condition).
- ``hyperbolic_cnn``: ∂ₜ²Y = F(Y), leapfrog Y_{j+1} = 2Y_j − Y_{j−1} + h² F(Y_j) with Y_{−1} = Y_0 (a
  learned wave equation; the second-order CNN). Time-reversible; stable when h ‖K‖ √(max σ') ≤ 2.
- ``hamiltonian_cnn``: ∂ₜY = −K₁ᵀσ(K₁Z + b₁), ∂ₜZ = K₂ᵀσ(K₂Y + b₂), Z₀ = 0, by Verlet (Z then Y, each
  with the other's newest value): symplectic and reversible; stable when h ‖K₁‖ ‖K₂‖ max σ' ≤ 2.

``stable=True`` enforces the condition in every layer, with an upper bound of ‖K‖ (see
:meth:`ZeroFluxConv.norm_bound`): the step used is min(h, the largest the bound allows). The activation
must be monotone with σ' ≤ 1 (``tanh``, ``relu``, ...) for the conditions to hold.

Reference: L. Ruthotto, E. Haber, "Deep Neural Networks Motivated by Partial Differential Equations",
J. Math. Imaging Vis. 62, 352-364 (2020), arXiv:1804.04272.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ._fields import StepModel, ZeroFluxConv
from ._mlp import ACTIVATIONS, check_positive_int

#: Activations that are monotone with slope at most 1, for which the stability conditions hold.
MONOTONE_ACTIVATIONS = ("tanh", "relu", "softplus", "elu", "sigmoid")


class _ResidualPDECNN(StepModel):
    """Opening convolution, ``depth`` PDE layers (:meth:`propagate`), closing convolution."""

    kinds: int = 1  # weight sets (K, b) per layer

    def __init__(self, state_shape: int | Sequence[int], width: int = 16, depth: int = 3, h: float = 0.5,
                 kernel_size: int = 3, activation: str = "tanh", stable: bool = False,
                 history: int = 1) -> None:
        super().__init__(state_shape, history=history, width=width, depth=depth, h=h,
                         kernel_size=kernel_size, activation=activation, stable=stable)
        check_positive_int("width", width)
        check_positive_int("depth", depth)
        if isinstance(h, bool) or not isinstance(h, int | float) or not h > 0:
            raise ValueError(f"h (the layer step) must be a number > 0, got {h!r}")
        if activation not in MONOTONE_ACTIVATIONS:
            raise ValueError(f"activation must be monotone with slope <= 1 "
                             f"({', '.join(MONOTONE_ACTIVATIONS)}), got {activation!r}")
        self.h, self.stable = float(h), bool(stable)
        self.act = ACTIVATIONS[activation]()
        self.open = ZeroFluxConv(history * self.channels, width, kernel_size, self.dims)
        self.layers = nn.ModuleList(ZeroFluxConv(width, width, kernel_size, self.dims)
                                    for _ in range(depth * self.kinds))
        self.close = ZeroFluxConv(width, self.channels, kernel_size, self.dims)
        # Start as persistence (next frame = last frame): training begins from a stable forecast.
        nn.init.zeros_(self.close.weight)
        nn.init.zeros_(self.close.bias)

    def symmetric_layer(self, k: ZeroFluxConv, y: Tensor) -> Tensor:
        """F(Y) = −Kᵀ σ(K Y + b)."""
        return -k.transpose(self.act(k(y)))

    def step(self, frames: Tensor) -> Tensor:
        y = self.act(self.open(frames.flatten(1, 2)))
        return frames[:, -1] + self.close(self.propagate(y))

    def propagate(self, y: Tensor) -> Tensor:
        """The features after the ``depth`` layers."""
        raise NotImplementedError


class ParabolicCNN(_ResidualPDECNN):
    """Forward Euler on ∂ₜY = −Kᵀσ(KY + b): Y ← Y + h F(Y), one (K, b) per layer."""

    def layer_step(self, k: ZeroFluxConv) -> Tensor | float:
        if not self.stable:
            return self.h
        return torch.clamp(2.0 / k.norm_bound() ** 2, max=self.h)

    def propagate(self, y: Tensor) -> Tensor:
        for k in self.layers:
            y = y + self.layer_step(k) * self.symmetric_layer(k, y)
        return y


class HyperbolicCNN(_ResidualPDECNN):
    """Leapfrog on ∂ₜ²Y = −Kᵀσ(KY + b): Y_{j+1} = 2Y_j − Y_{j−1} + h² F(Y_j), Y_{−1} = Y_0."""

    def layer_step(self, k: ZeroFluxConv) -> Tensor | float:
        if not self.stable:
            return self.h
        return torch.clamp(2.0 / k.norm_bound(), max=self.h)

    def leapfrog(self, y_prev: Tensor, y: Tensor, reverse: bool = False) -> tuple[Tensor, Tensor]:
        """(Y_{L−1}, Y_L) from (Y_{−1}, Y_0); with ``reverse``, (Y_{L−1}, Y_L) given as (Y_L, Y_{L−1})
        returns (Y_0, Y_{−1}): the recursion solved for its oldest term is itself, layers taken backwards."""
        layers = list(self.layers)[::-1] if reverse else self.layers
        for k in layers:
            y_prev, y = y, 2 * y - y_prev + self.layer_step(k) ** 2 * self.symmetric_layer(k, y)
        return y_prev, y

    def propagate(self, y: Tensor) -> Tensor:
        return self.leapfrog(y, y)[1]


class HamiltonianCNN(_ResidualPDECNN):
    """Verlet on ∂ₜY = −K₁ᵀσ(K₁Z + b₁), ∂ₜZ = K₂ᵀσ(K₂Y + b₂), Z₀ = 0: two (K, b) per layer."""

    kinds = 2

    def layer_step(self, k1: ZeroFluxConv, k2: ZeroFluxConv) -> Tensor | float:
        if not self.stable:
            return self.h
        return torch.clamp(2.0 / (k1.norm_bound() * k2.norm_bound()), max=self.h)

    def verlet(self, y: Tensor, z: Tensor, reverse: bool = False) -> tuple[Tensor, Tensor]:
        """(Y_L, Z_L) from (Y_0, Z_0); with ``reverse``, (Y_0, Z_0) from (Y_L, Z_L) (each update undone
        in the opposite order)."""
        pairs = list(zip(self.layers[0::2], self.layers[1::2], strict=True))
        if not reverse:
            for k1, k2 in pairs:
                h = self.layer_step(k1, k2)
                z = z - h * self.symmetric_layer(k2, y)  # Z += h K₂ᵀσ(K₂Y + b₂)
                y = y + h * self.symmetric_layer(k1, z)  # Y −= h K₁ᵀσ(K₁Z + b₁)
            return y, z
        for k1, k2 in reversed(pairs):
            h = self.layer_step(k1, k2)
            y = y - h * self.symmetric_layer(k1, z)
            z = z + h * self.symmetric_layer(k2, y)
        return y, z

    def propagate(self, y: Tensor) -> Tensor:
        return self.verlet(y, torch.zeros_like(y))[0]
