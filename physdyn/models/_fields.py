"""The base of models on fields that step from frame to frame, and the zero-flux convolutions they share.

A field state has shape (C, H, W) (two space dimensions) or (C, W) (one): channels first, then space.
:class:`StepModel` maps the last ``history`` frames of a uniform time grid to the next frame; it is trained
on unrolled multi-step losses (``physdyn.training.UnrolledSteps``) and predicts by stepping on, from the
last frames of the context.

Boundaries follow the data: PDEBench's reaction-diffusion is cell-centred with zero-flux walls, whose ghost
cells mirror the cells across the wall (the wall lies on the cell face). That is a *symmetric* reflection
(numpy's ``pad(mode="symmetric")``), which torch's ``F.pad`` lacks ("reflect" mirrors about the boundary
cell's centre, the vertex-centred rule), so it is written here, with its adjoint, which the symmetric
layers of Ruthotto & Haber need.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._base import Model
from ._mlp import check_positive_int


def pad_zero_flux(x: Tensor, pad: int, dims: int) -> Tensor:
    """``x`` (..., *space) padded by ``pad`` ghost cells on both sides of each of its last ``dims`` axes,
    mirrored across the wall (ghost k outside the wall equals cell k inside): zero flux through the walls
    of a cell-centred grid. ``pad`` may not exceed the axis length."""
    for axis in range(x.ndim - dims, x.ndim):
        n = x.shape[axis]
        if pad > n:
            raise ValueError(f"a zero-flux pad of {pad} cells needs at least {pad} cells per axis, got {n}")
        if pad == 0:
            continue
        low = x.narrow(axis, 0, pad).flip(axis)
        high = x.narrow(axis, n - pad, pad).flip(axis)
        x = torch.cat([low, x, high], dim=axis)
    return x


def pad_zero_flux_adjoint(y: Tensor, pad: int, dims: int) -> Tensor:
    """The adjoint (transpose) of :func:`pad_zero_flux`: each ghost cell's value is added back to the cell
    it copies. With it, ``conv_transpose(pad_adjoint(.))`` is the exact transpose of ``conv(pad(.))``."""
    for axis in range(y.ndim - dims, y.ndim):
        if pad == 0:
            continue
        n = y.shape[axis] - 2 * pad
        inner = y.narrow(axis, pad, n).clone()
        low = y.narrow(axis, 0, pad).flip(axis)
        high = y.narrow(axis, pad + n, pad).flip(axis)
        inner.narrow(axis, 0, pad).add_(low)
        inner.narrow(axis, n - pad, pad).add_(high)
        y = inner
    return y


_CONV = {1: F.conv1d, 2: F.conv2d}
_CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d}


class ZeroFluxConv(nn.Module):
    """A convolution of odd ``kernel_size`` over ``dims`` (1 or 2) space axes with zero-flux padding, so
    the output has the input's grid; ``transpose`` applies its exact adjoint (no bias)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, dims: int = 2,
                 bias: bool = True) -> None:
        super().__init__()
        check_positive_int("kernel_size", kernel_size)
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd (a centred stencil), got {kernel_size}")
        if dims not in _CONV:
            raise ValueError(f"fields have 1 or 2 space dimensions, got {dims}")
        self.dims, self.pad = dims, kernel_size // 2
        # The initialisation of nn.Conv: kaiming-uniform weights, a uniform bias of the fan-in's scale.
        conv = (nn.Conv1d if dims == 1 else nn.Conv2d)(in_channels, out_channels, kernel_size, bias=bias)
        self.weight = conv.weight
        self.bias = conv.bias

    def forward(self, x: Tensor) -> Tensor:
        return _CONV[self.dims](pad_zero_flux(x, self.pad, self.dims), self.weight, self.bias)

    def transpose(self, y: Tensor) -> Tensor:
        """Kᵀ y for the linear part K of this convolution (the bias left out)."""
        return pad_zero_flux_adjoint(_CONV_T[self.dims](y, self.weight), self.pad, self.dims)

    def norm_bound(self) -> Tensor:
        """An upper bound of the operator norm ‖K‖₂ on any grid: Σ over taps of the spectral norm of the
        tap's channel matrix (the norm of a convolution on an unbounded grid), times the norm of the
        padding, √(2^dims) (a corner cell is read through 2^dims copies)."""
        taps = self.weight.flatten(2).permute(2, 0, 1)  # (taps, out, in)
        return torch.linalg.matrix_norm(taps, ord=2).sum() * math.sqrt(2**self.dims)


class StepModel(Model):
    """A map from the last ``history`` frames of a uniform grid to the next frame, on fields (C, *space).

    Subclasses implement :meth:`step`. The time step ``dt`` of the training data is kept in a buffer
    (set by the objective from the training windows, saved with the weights), so :meth:`predict` can
    check that the queries lie on the grid of the context. Models take their hyperparameters
    ``history`` (frames read per step) and their own; states have one or two space axes.
    """

    normalization = "channel"
    objective = "unrolled_steps"
    context = "frames"
    state_rank = 3
    state_ranks = (2, 3)

    def __init__(self, state_shape: int | Sequence[int], history: int = 1, **hparams) -> None:
        check_positive_int("history", history)
        super().__init__(state_shape, history=history, **hparams)
        self.history = history
        self.channels = self.state_shape[0]
        self.dims = len(self.state_shape) - 1
        self.register_buffer("dt", torch.tensor(float("nan"), dtype=torch.float64))

    @abstractmethod
    def step(self, frames: Tensor) -> Tensor:
        """The next frame (B, C, *space) from the last ``history`` frames (B, history, C, *space)."""

    def unroll(self, frames: Tensor, steps: int) -> Tensor:
        """``steps`` frames (B, steps, C, *space) after ``frames`` (B, history, C, *space), each step fed
        with the frames before it (its own predictions once past the given ones)."""
        window = list(frames.unbind(1))
        out = []
        for _ in range(steps):
            nxt = self.step(torch.stack(window[-self.history:], 1))
            out.append(nxt)
            window.append(nxt)
        return torch.stack(out, 1) if out else frames[:, :0]

    def set_time_step(self, dt: float) -> None:
        """Record the time step of the training grid."""
        self.dt.fill_(float(dt))

    def predict(self, t_context: Tensor, x_context: Tensor, mask_context: Tensor | None, t: Tensor, *,
                samples: int = 1, generator: torch.Generator | None = None) -> Tensor:
        """Steps on from the last ``history`` context frames (fully observed, a uniform grid) to the query
        times, which must lie on that grid at or after the last context time."""
        t_context, mask, t = self._check_context(t_context, x_context, mask_context, t)
        h = self.history
        if x_context.shape[1] < h:
            raise ValueError(f"the context has {x_context.shape[1]} frames, and this model steps from the "
                             f"last {h} (give a context of at least {h}: --context {h})")
        unobserved = ~mask[:, -h:].flatten(1).all(1)
        if bool(unobserved.any()):
            raise ValueError(f"trajectory {int(unobserved.nonzero()[0])}: the last {h} context frames are "
                             "not fully observed, and this model steps from them")
        dt = float(self.dt)
        if not math.isfinite(dt):  # an untrained model takes the context's spacing as its step
            if t_context.shape[1] < 2:
                raise ValueError("the model's time step is unknown (untrained) and a context of one frame "
                                 "does not give it")
            dt = float(t_context[0, 1] - t_context[0, 0])
            self.set_time_step(dt)
        tolerance = 1e-3 * dt
        if h > 1 and bool(((t_context[:, -h:].diff(dim=1) - dt).abs() > tolerance).any()):
            raise ValueError(f"the last {h} context frames are not {dt:g} apart, the model's time step")
        k = (t - t_context[:, -1:]) / dt
        steps = k.round()
        if bool((steps < 0).any()) or bool(((k - steps).abs() * dt > tolerance).any()):
            raise ValueError(f"query times must lie on the model's grid (steps of {dt:g}) at or after the "
                             "last context time")
        steps = steps.long()
        frames = x_context[:, -h:]
        ahead = self.unroll(frames, int(steps.max()))
        path = torch.cat([frames[:, -1:], ahead], 1)  # step 0 is the last context frame
        index = steps.reshape(*steps.shape, *[1] * len(self.state_shape)).expand(-1, -1, *self.state_shape)
        out = path.gather(1, index)
        return out[:, None].expand(-1, samples, *out.shape[1:])
