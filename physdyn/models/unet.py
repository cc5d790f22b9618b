"""A small U-Net next-frame model: the convolutional baseline of PDEBench and PDEArena, with zero-flux
padding (Ronneberger, Fischer, Brox, MICCAI 2015)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._fields import StepModel, ZeroFluxConv
from ._mlp import ACTIVATIONS, check_positive_int


class _Block(nn.Module):
    """Two zero-flux 3-point (or 3 × 3) convolutions with the activation after each."""

    def __init__(self, c_in: int, c_out: int, dims: int, activation: str) -> None:
        super().__init__()
        self.a, self.b = ZeroFluxConv(c_in, c_out, 3, dims), ZeroFluxConv(c_out, c_out, 3, dims)
        self.act = ACTIVATIONS[activation]()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.b(self.act(self.a(x))))


class UNet(StepModel):
    """Next frame = last frame + U-Net(last ``history`` frames).

    ``levels`` resolutions, halved by average pooling on the way down (channels ``width``·2^level), and
    brought back up by interpolation to the skip connection's grid (any grid size works), each followed by
    a block of two convolutions on the concatenated features.
    """

    def __init__(self, state_shape: int | Sequence[int], width: int = 8, levels: int = 2,
                 activation: str = "gelu", history: int = 1) -> None:
        super().__init__(state_shape, history=history, width=width, levels=levels, activation=activation)
        check_positive_int("width", width)
        check_positive_int("levels", levels, minimum=0)
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r} (available: {', '.join(ACTIVATIONS)})")
        d = self.dims
        sizes = [width * 2**i for i in range(levels + 1)]
        self.inp = _Block(history * self.channels, width, d, activation)
        self.down = nn.ModuleList(_Block(sizes[i], sizes[i + 1], d, activation) for i in range(levels))
        self.up = nn.ModuleList(_Block(sizes[i + 1] + sizes[i], sizes[i], d, activation)
                                for i in reversed(range(levels)))
        self.out = ZeroFluxConv(width, self.channels, 1, d)
        nn.init.zeros_(self.out.weight)  # start as persistence
        nn.init.zeros_(self.out.bias)
        self.pool = F.avg_pool1d if d == 1 else F.avg_pool2d

    def step(self, frames: Tensor) -> Tensor:
        x = self.inp(frames.flatten(1, 2))
        skips = []
        for block in self.down:
            skips.append(x)
            # ceil_mode keeps odd grids (one cell left over is pooled alone)
            x = block(self.pool(x, 2, ceil_mode=True) if min(x.shape[2:]) > 1 else x)
        for block in self.up:
            skip = skips.pop()
            x = F.interpolate(x, size=skip.shape[2:], mode="nearest")
            x = block(torch.cat([x, skip], 1))
        return frames[:, -1] + self.out(x)
