"""PDE-Net: learned finite-difference stencils constrained by their moments, plus a pointwise reaction
network, so the learned PDE can be read off (Long, Lu, Ma, Dong, ICML 2018).

The model is the equation

    ∂ₜz_c = D_c Δ_θ z_c + a_c · ∇_θ z_c + R_c(z),

stepped by forward Euler, ``substeps`` steps per frame, where Δ_θ = ∂²_x + ∂²_y and ∇_θ = (∂_x, ∂_y) are
convolutions whose kernels are constrained by their moments to approximate those derivatives (see
:func:`moment_matrix`), D_c (diffusion) and a_c (advection) are learned per channel and R (reaction) is a
pointwise MLP over the channels. With per-channel normalisation (z_c = (x_c − m_c)/s_c) the linear terms
keep their coefficients, so D_c is the physical diffusion coefficient when ``dx`` is the grid spacing in
the data's length unit (:meth:`PDENet.diffusion_coefficients`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._fields import StepModel, pad_zero_flux
from ._mlp import ACTIVATIONS, check_positive_int


def moment_matrix(size: int, dtype: torch.dtype = torch.float64) -> Tensor:
    """M[i, a] = o_a^i / i!, o_a = a − (size − 1)/2 the offset of tap a: (size, size).

    A 1-D kernel q applied as a cross-correlation, Σ_a q[a] u(x + o_a dx), equals Σ_i m[i] dx^i ∂^i u(x)
    (Taylor) with moments m = M q; in 2-D, m = M q Mᵀ with m[i, j] the moment of ∂_y^i ∂_x^j.
    """
    offsets = torch.arange(size, dtype=dtype) - (size - 1) // 2
    orders = torch.arange(size, dtype=dtype)
    factorial = torch.exp(torch.lgamma(orders + 1))
    return offsets[None, :] ** orders[:, None] / factorial[:, None]


class MomentKernel(nn.Module):
    """A ``size``-point (1-D) or ``size`` × ``size`` (2-D) kernel approximating ∂^α, α = ``order``.

    The moments of total order below |α| + ``accuracy`` are fixed (1 at α, 0 elsewhere), so the stencil
    is exact on polynomials of that degree and its error is O(dx^accuracy); the other moments are learned
    (initialised at 0, which gives the standard central difference where the stencil allows one). The
    kernel is q = M⁻¹ m M⁻ᵀ, divided by dx^|α|.
    """

    def __init__(self, order: tuple[int, ...], size: int = 5, accuracy: int = 2, dx: float = 1.0) -> None:
        super().__init__()
        check_positive_int("kernel_size", size)
        check_positive_int("accuracy", accuracy)
        if size % 2 == 0:
            raise ValueError(f"kernel_size must be odd (a centred stencil), got {size}")
        r = sum(order)
        if r + accuracy > size:
            raise ValueError(f"a {size}-point stencil cannot give derivative order {r} with accuracy "
                             f"{accuracy} (it has {size} moments per axis; needs {r + accuracy})")
        self.order, self.size, self.dx = tuple(order), size, float(dx)
        grids = torch.meshgrid(*[torch.arange(size)] * len(order), indexing="ij")
        total = sum(g for g in grids)
        fixed = total < r + accuracy
        target = torch.zeros(fixed.shape, dtype=torch.float64)
        target[self.order] = 1.0
        self.register_buffer("fixed", fixed, persistent=False)
        self.register_buffer("target", target, persistent=False)
        self.register_buffer("inverse", torch.linalg.inv(moment_matrix(size)), persistent=False)
        self.free = nn.Parameter(torch.zeros(int((~fixed).sum())))

    def moments(self) -> Tensor:
        m = self.target.to(self.free.dtype).clone()
        m[~self.fixed] = self.free
        return m

    def kernel(self) -> Tensor:
        """The stencil (size,) or (size, size), in the parameters' dtype, scaled by 1/dx^|α|."""
        inv = self.inverse.to(self.free.dtype)
        m = self.moments()
        q = inv @ m if m.ndim == 1 else inv @ m @ inv.T
        return q / self.dx ** sum(self.order)

    def forward(self, x: Tensor) -> Tensor:
        """∂^α x for fields (B, C, *space) (each channel alike), zero-flux walls; same shape."""
        dims = len(self.order)
        c = x.shape[1]
        weight = self.kernel().expand(c, 1, *[self.size] * dims)
        conv = F.conv1d if dims == 1 else F.conv2d
        return conv(pad_zero_flux(x, self.size // 2, dims), weight, groups=c)


class PDENet(StepModel):
    """∂ₜz_c = D_c Δ_θ z_c + a_c · ∇_θ z_c + R_c(z) by forward Euler; moment-constrained stencils.

    The diffusion coefficients are parametrised in grid units, D_c = θ_c dx² / dt (θ_c = D_c dt/dx², the
    explicit scheme's diffusion number, initialised at 0.1), so they learn at one rate whatever the units.
    """

    def __init__(self, state_shape: int | Sequence[int], kernel_size: int = 5, accuracy: int = 2,
                 width: int = 32, depth: int = 2, activation: str = "tanh", substeps: int = 2,
                 dx: float = 1.0, advection: bool = True, method: str = "euler") -> None:
        super().__init__(state_shape, history=1, kernel_size=kernel_size, accuracy=accuracy, width=width,
                         depth=depth, activation=activation, substeps=substeps, dx=dx, advection=advection,
                         method=method)
        check_positive_int("substeps", substeps)
        if method not in ("euler", "rk4"):
            raise ValueError(f"method must be euler or rk4, got {method!r}")
        self.method = method
        check_positive_int("width", width)
        check_positive_int("depth", depth, minimum=0)
        if isinstance(dx, bool) or not isinstance(dx, int | float) or not dx > 0:
            raise ValueError(f"dx (the grid spacing) must be a number > 0, got {dx!r}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r} (available: {', '.join(ACTIVATIONS)})")
        d, c = self.dims, self.channels
        unit = [tuple(2 if i == a else 0 for i in range(d)) for a in range(d)]  # ∂² along each axis
        grad = [tuple(1 if i == a else 0 for i in range(d)) for a in range(d)]
        self.second = nn.ModuleList(MomentKernel(o, kernel_size, accuracy, dx) for o in unit)
        self.first = nn.ModuleList(MomentKernel(o, kernel_size, accuracy, dx) for o in grad) if advection \
            else nn.ModuleList()
        self.diffusion_number = nn.Parameter(torch.full((c,), 0.1))
        self.advection = nn.Parameter(torch.zeros(len(self.first), c))
        conv = nn.Conv1d if d == 1 else nn.Conv2d  # 1 × 1 convolutions: a pointwise MLP over channels
        layers: list[nn.Module] = []
        size = c
        for _ in range(depth):
            layers += [conv(size, width, 1), ACTIVATIONS[activation]()]
            size = width
        layers.append(conv(size, c, 1))
        self.reaction = nn.Sequential(*layers)
        self.substeps, self.dx = substeps, float(dx)

    def _shape(self, coefficient: Tensor) -> Tensor:
        return coefficient.reshape(1, -1, *[1] * self.dims)

    def diffusion_coefficients(self) -> Tensor:
        """D_c, (C,): per unit time of the data and per ``dx`` of space (physical when ``dx`` is)."""
        return self.diffusion_number.detach() * self.dx**2 / self.dt.to(self.diffusion_number.dtype)

    def rate(self, z: Tensor) -> Tensor:
        """∂ₜz for fields (B, C, *space)."""
        dt = self.dt.to(z.dtype)
        laplacian = sum(k(z) for k in self.second)
        out = self._shape(self.diffusion_number * self.dx**2 / dt) * laplacian + self.reaction(z)
        for a, k in zip(self.advection, self.first, strict=True):
            out = out + self._shape(a * self.dx / dt) * k(z)
        return out

    def step(self, frames: Tensor) -> Tensor:
        if not math.isfinite(float(self.dt)):
            raise ValueError("pde_net needs its time step: train it first (the objective sets it)")
        z, h = frames[:, -1], self.dt.to(frames.dtype) / self.substeps
        for _ in range(self.substeps):
            if self.method == "euler":
                z = z + h * self.rate(z)
                continue
            # Classical RK4: the one-frame map matches exp(dt F) to fourth order, so the coefficients are
            # not bent to absorb the first-order scheme's error (Euler's map 1 + dt D Δ lacks the (dt D Δ)²/2
            # of the true flow, and the fit makes D larger to make up for it on rough fields).
            k1 = self.rate(z)
            k2 = self.rate(z + h / 2 * k1)
            k3 = self.rate(z + h / 2 * k2)
            k4 = self.rate(z + h * k3)
            z = z + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        return z
