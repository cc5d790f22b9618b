"""The in-memory container every part of physdyn passes around."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from numbers import Integral
from typing import Any

import torch
from torch import Tensor


@dataclass
class Trajectories:
    """A batch of trajectories of one system.

    Attributes:
        t: times, shape (T,) shared by all trajectories or (N, T) one grid per trajectory.
        states: shape (N, T, *state_shape).
        mask: optional bool, same shape as ``states``: True where observed.
        derivatives: optional dx/dt, same shape as ``states`` (simulators know it).
        params: per-trajectory parameters, name -> tensor of shape (N,).
        system: registry name of the system that produced the data, or "custom".
        state_names: one name per state component for vector states (D,), one per channel (the first
            state axis) for field states (C, ...); may be empty.
        system_params: the system's scalar parameters (written as JSON in the file).
        meta: free-form JSON-serialisable metadata.
    """

    t: Tensor
    states: Tensor
    mask: Tensor | None = None
    derivatives: Tensor | None = None
    params: dict[str, Tensor] = field(default_factory=dict)
    system: str = "custom"
    state_names: tuple[str, ...] = ()
    system_params: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.state_names = tuple(self.state_names)
        if self.states.ndim < 3:
            raise ValueError(f"states must have shape (N, T, *state_shape), got {tuple(self.states.shape)}")
        n, n_t = self.states.shape[:2]
        if self.t.shape not in {(n_t,), (n, n_t)}:
            raise ValueError(f"t must have shape ({n_t},) or ({n}, {n_t}), got {tuple(self.t.shape)}")
        for name in ("mask", "derivatives"):
            value = getattr(self, name)
            if value is not None and value.shape != self.states.shape:
                raise ValueError(f"{name} must have the shape of states {tuple(self.states.shape)}")
        for key, value in self.params.items():
            if value.shape != (n,):
                raise ValueError(f"params[{key!r}] must have shape ({n},), got {tuple(value.shape)}")

    @property
    def n_trajectories(self) -> int:
        return self.states.shape[0]

    @property
    def n_times(self) -> int:
        return self.states.shape[1]

    @property
    def state_shape(self) -> tuple[int, ...]:
        return tuple(self.states.shape[2:])

    @property
    def shared_times(self) -> bool:
        """True when all trajectories share one time grid."""
        return self.t.ndim == 1

    def __len__(self) -> int:
        return self.n_trajectories

    def times(self) -> Tensor:
        """Times broadcast to one grid per trajectory, shape (N, T)."""
        return self.t.expand(self.n_trajectories, self.n_times) if self.shared_times else self.t

    def select(self, index: Sequence[int] | Tensor | slice) -> Trajectories:
        """The trajectories at ``index`` (along N), with everything that belongs to them."""
        if not isinstance(index, slice):
            index = torch.as_tensor(index, dtype=torch.long)

        def pick(x: Tensor | None) -> Tensor | None:
            return None if x is None else x[index]

        return replace(
            self,
            t=self.t if self.shared_times else self.t[index],
            states=self.states[index],
            mask=pick(self.mask),
            derivatives=pick(self.derivatives),
            params={k: v[index] for k, v in self.params.items()},
            meta=dict(self.meta),
        )

    def window(self, start: int, stop: int) -> Trajectories:
        """Samples ``start`` to ``stop`` (exclusive) of every trajectory, with all that belongs to them."""
        if not 0 <= start < stop <= self.n_times:
            raise ValueError(f"window [{start}, {stop}) is not inside the {self.n_times} samples")
        cut = slice(start, stop)

        def part(x: Tensor | None) -> Tensor | None:
            return None if x is None else x[:, cut]

        return replace(self, t=self.t[..., cut], states=self.states[:, cut], mask=part(self.mask),
                       derivatives=part(self.derivatives), meta=dict(self.meta))

    def __getitem__(self, index: Sequence[int] | Tensor | slice | int) -> Trajectories:
        """The trajectories at ``index``; an integer keeps the trajectory axis (one trajectory, N = 1)."""
        if isinstance(index, Integral):
            n = self.n_trajectories
            if not -n <= index < n:
                raise IndexError(f"trajectory index {index} is out of range for {n} trajectories")
            index = slice(index % n, index % n + 1)
        return self.select(index)

    def to(self, dtype: torch.dtype) -> Trajectories:
        """The same data with floating-point tensors cast to ``dtype`` (times stay float64)."""

        def cast(x: Tensor | None) -> Tensor | None:
            return None if x is None else x.to(dtype)

        return replace(self, states=self.states.to(dtype), derivatives=cast(self.derivatives))
