"""Affine normalisation of states, z = (x − mean) / std, fitted on the training split only."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import Tensor

from ._trajectories import Trajectories

NORMALIZATIONS = ("standard", "channel", "scale", "species", "none")


@dataclass(frozen=True)
class Normalizer:
    """z = (x − mean) / std, per component of the flattened state (D components).

    Kinds:

    - ``"standard"``: mean and standard deviation of each component;
    - ``"channel"``: for fields (C, *space), one mean and standard deviation per channel, over every grid
      cell, time and trajectory (stored per component, equal across a channel's cells). A per-cell
      normalisation would give every cell its own affine map and break the translation equivariance that
      convolutions rely on; per channel it is the same map everywhere;
    - ``"scale"``: no shift and one scale for all components, the root mean square of the states. A map that
      scales every coordinate by the same factor keeps Hamilton's equations Hamiltonian (H becomes H/s²);
      one with different scales on q and p does not, so this is the kind for Hamiltonian models;
    - ``"species"``: no shift and one scale per component, its largest magnitude: concentrations spanning
      decades (1e-5 beside 1) all become O(1), and zero stays zero (a shift would move it, and with it
      the sign a concentration must keep);
    - ``"none"``: the identity.

    Because the map is affine, a time derivative transforms with the scale alone: dz/dt = (dx/dt) / std.

    Attributes:
        kind: one of ``NORMALIZATIONS``.
        mean, std: float64 tensors of shape (D,).
        state_shape: the unflattened state shape, prod(state_shape) = D.
    """

    kind: str
    mean: Tensor
    std: Tensor
    state_shape: tuple[int, ...]

    def __post_init__(self) -> None:
        if self.kind not in NORMALIZATIONS:
            raise ValueError(f"unknown normalization {self.kind!r} (available: {', '.join(NORMALIZATIONS)})")
        d = math.prod(self.state_shape)
        if self.mean.shape != (d,) or self.std.shape != (d,):
            raise ValueError(f"mean and std must have shape ({d},) for state shape {self.state_shape}")
        if not bool((self.std > 0).all() and self.std.isfinite().all() and self.mean.isfinite().all()):
            raise ValueError("std must be positive and finite, and mean finite")

    @classmethod
    def fit(cls, traj: Trajectories, kind: str = "standard") -> Normalizer:
        """Statistics of the observed entries of ``traj`` (pass the training split only), in float64.

        They hold at any scale float64 represents (states of 1e-300 or 1e300): the sums are taken over the
        states divided by their largest magnitude, where squares of the states themselves would underflow
        to 0 or overflow to Inf. A component with no spread relative to its magnitude (a constant) is
        shifted to 0 and divided by that magnitude (by 1 if it is 0 throughout), so it is not blown up.
        """
        n, n_t = traj.n_trajectories, traj.n_times
        x = traj.states.reshape(n * n_t, -1).to(torch.float64)
        d = x.shape[1]
        m = torch.ones_like(x, dtype=torch.bool) if traj.mask is None else traj.mask.reshape(x.shape).bool()
        x = torch.where(m, x, 0.0)  # unobserved entries count for nothing (and may hold anything)
        count = m.sum(0).to(torch.float64)
        if kind not in NORMALIZATIONS:
            raise ValueError(f"unknown normalization {kind!r} (available: {', '.join(NORMALIZATIONS)})")
        mean, std = torch.zeros(d, dtype=torch.float64), torch.ones(d, dtype=torch.float64)
        if kind == "standard":
            if bool((count == 0).any()):
                raise ValueError(f"state component {int((count == 0).nonzero()[0])} is never observed")
            size = _magnitude(x.abs().amax(0))
            y = x / size
            mean_y = y.sum(0) / count
            std_y = (torch.where(m, y - mean_y, 0.0) ** 2).sum(0).div(count).sqrt()
            mean = mean_y * size
            std = torch.where(std_y > 1e-12, std_y * size, size)
        elif kind == "channel":
            channels = traj.state_shape[0]
            xc, mc = x.reshape(-1, channels, d // channels), m.reshape(-1, channels, d // channels)
            per_channel = mc.sum((0, 2)).to(torch.float64)
            if bool((per_channel == 0).any()):
                raise ValueError(f"channel {int((per_channel == 0).nonzero()[0])} is never observed")
            size = _magnitude(xc.abs().amax((0, 2)))[None, :, None]
            y = xc / size
            mean_y = y.sum((0, 2)) / per_channel
            std_y = (torch.where(mc, y - mean_y[None, :, None], 0.0) ** 2).sum((0, 2)).div(per_channel).sqrt()
            mean_c = mean_y * size.flatten()
            std_c = torch.where(std_y > 1e-12, std_y * size.flatten(), size.flatten())
            mean = mean_c.repeat_interleave(d // channels)
            std = std_c.repeat_interleave(d // channels)
        elif kind == "species":
            largest = x.abs().amax(0)
            std = torch.where(largest > 0, largest, torch.ones_like(largest))
        elif kind == "scale":
            size = _magnitude(x.abs().amax())
            rms = ((x / size) ** 2).sum().div(count.sum()).sqrt() * size
            std = torch.full((d,), float(rms) if rms > 0 else 1.0, dtype=torch.float64)
        return cls(kind, mean, std, traj.state_shape)

    @classmethod
    def identity(cls, state_shape: tuple[int, ...]) -> Normalizer:
        d = math.prod(state_shape)
        return cls("none", torch.zeros(d, dtype=torch.float64), torch.ones(d, dtype=torch.float64),
                   tuple(state_shape))

    def _stats(self, like: Tensor) -> tuple[Tensor, Tensor]:
        """mean and std shaped like the trailing state axes of ``like``, in its dtype and device."""
        if tuple(like.shape[like.ndim - len(self.state_shape):]) == self.state_shape:
            shape = self.state_shape
        elif like.ndim >= 1 and like.shape[-1] == self.mean.numel():
            shape = (self.mean.numel(),)
        else:
            raise ValueError(f"states of shape {tuple(like.shape)} end neither in the state shape "
                             f"{self.state_shape} nor in its flattened size {self.mean.numel()}")
        cast = {"dtype": like.dtype, "device": like.device}
        return self.mean.reshape(shape).to(**cast), self.std.reshape(shape).to(**cast)

    def transform(self, x: Tensor) -> Tensor:
        """States (..., *state_shape) or flat (..., D) in physical units -> normalised."""
        mean, std = self._stats(x)
        return (x - mean) / std

    def inverse(self, z: Tensor) -> Tensor:
        """Normalised states -> physical units (the inverse of :meth:`transform`)."""
        mean, std = self._stats(z)
        return z * std + mean

    def transform_derivative(self, dxdt: Tensor) -> Tensor:
        """dx/dt or a vector field in physical units -> dz/dt (the scale only: the shift has no rate)."""
        return dxdt / self._stats(dxdt)[1]

    def inverse_derivative(self, dzdt: Tensor) -> Tensor:
        """dz/dt -> dx/dt in physical units."""
        return dzdt * self._stats(dzdt)[1]

    def apply(self, traj: Trajectories) -> Trajectories:
        """``traj`` with normalised states and derivatives (times untouched)."""
        dx = None if traj.derivatives is None else self.transform_derivative(traj.derivatives)
        return replace(traj, states=self.transform(traj.states), derivatives=dx)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "mean": self.mean.tolist(), "std": self.std.tolist(),
                "state_shape": list(self.state_shape)}

    @classmethod
    def from_dict(cls, d: dict) -> Normalizer:
        return cls(d["kind"], torch.tensor(d["mean"], dtype=torch.float64),
                   torch.tensor(d["std"], dtype=torch.float64), tuple(d["state_shape"]))

    def save(self, path: str | os.PathLike) -> Path:
        """Write the JSON form ``{"kind", "mean", "std", "state_shape"}`` to ``path`` (atomically)."""
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n")
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> Normalizer:
        """Read a file written by :meth:`save`; ValueError (one line, naming the file) if missing or bad."""
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"{path}: normalisation file not found")
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except (UnicodeDecodeError, ValueError, KeyError, TypeError) as err:
            raise ValueError(f"{path}: not a valid normalisation file ({type(err).__name__}: "
                             f"{' '.join(str(err).split())[:120]})") from None


def _magnitude(largest: Tensor) -> Tensor:
    """The largest magnitude of the states, as a divisor: 1 where they are all 0."""
    return torch.where(largest > 0, largest, torch.ones_like(largest))
