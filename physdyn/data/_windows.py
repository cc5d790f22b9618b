"""Training samples: windows of consecutive samples, or whole sequences, inside the segments of a split."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.data import Dataset

from ._splits import Segment
from ._trajectories import Trajectories


def per_trajectory_params(traj: Trajectories) -> tuple[tuple[str, ...], Tensor | None]:
    """The names (sorted) and values (N, P) float64 of the trajectories' own parameters, None without any:
    what a parameter-conditioned model reads of each sample (e.g. the rate constants of each run)."""
    names = tuple(sorted(traj.params))
    if not names:
        return names, None
    return names, torch.stack([traj.params[k].to(torch.float64) for k in names], -1)


class WindowDataset(Dataset):
    """Windows of ``window`` consecutive samples, each inside one trajectory, starts ``stride`` apart.

    Items are dicts of tensors (S = the state shape):

    - ``"t"``: (W,) the window's own times, float64 (from the trajectory's grid, shared or per trajectory;
      models shift them to the window's start, and in float64 that shift loses nothing);
    - ``"x"``: (W, *S) states;
    - ``"mask"``: (W, *S) bool, True where observed (all True when the data has no mask);
    - ``"dxdt"``: (W, *S) derivatives, only when the data has them;
    - ``"params"``: (P,) float64, the trajectory's own parameters in physical units (``param_names``
      orders them), only when the data has per-trajectory parameters;
    - ``"index"``: () the window's number k in this dataset (a fitted initial state is looked up by it).

    Windows lie inside ``segments`` (trajectory, start, stop) -- the parts of a split, by default whole
    trajectories -- so none crosses from one part into another. A window whose first state is not fully
    observed is left out, since a rollout must start from a known state, and so is one that crosses a step
    longer than ``max_gap`` (a recording that paused: no window interpolates across it); ``skipped`` counts
    both. The tensors are views into the (already normalised) trajectories, cast to ``dtype`` (times
    excepted).
    """

    def __init__(self, traj: Trajectories, window: int, stride: int = 1, dtype: torch.dtype = torch.float32,
                 segments: list[Segment] | None = None, max_gap: float | None = None) -> None:
        for name, value in (("window", window), ("stride", stride)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        n, n_t = traj.n_trajectories, traj.n_times
        segments = [(i, 0, n_t) for i in range(n)] if segments is None else segments
        longest = max((b - a for _, a, b in segments), default=0)
        if segments and window > longest:
            raise ValueError(f"window={window} is longer than the trajectories ({longest} times"
                             f"{' in the longest part of the split' if longest < n_t else ''})")
        self.window, self.stride = window, stride
        self.state_shape = traj.state_shape
        self.t = traj.times().to(torch.float64)
        self.x = traj.states.to(dtype)
        self.mask = (torch.ones_like(self.x, dtype=torch.bool) if traj.mask is None else traj.mask.bool())
        self.dxdt = None if traj.derivatives is None else traj.derivatives.to(dtype)
        self.param_names, self.params = per_trajectory_params(traj)
        observed = self.mask.flatten(2).all(-1)  # (N, T): the whole state observed
        gap = torch.zeros(n, n_t, dtype=torch.bool)  # gap[i, k]: a step longer than max_gap ends at sample k
        if max_gap is not None and n_t > 1:
            gap[:, 1:] = self.t.diff(dim=1) > max_gap
        crossed = gap.cumsum(1)  # steps over a gap up to each sample
        self.index: list[tuple[int, int]] = []
        self.skipped = {"unobserved start": 0, "gap": 0}
        for i, a, b in segments:
            starts = torch.arange(a, b - window + 1, stride)
            over_gap = crossed[i, starts + window - 1] > crossed[i, starts]
            unobserved = ~observed[i, starts] & ~over_gap
            self.skipped["gap"] += int(over_gap.sum())
            self.skipped["unobserved start"] += int(unobserved.sum())
            self.index += [(i, int(k)) for k in starts[~over_gap & ~unobserved]]

    def first_states(self) -> Tensor:
        """The first state of every window, (len(self), *S): where fitted initial states start from."""
        return torch.stack([self.x[i, s] for i, s in self.index]) if self.index else self.x[:0, 0]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, k: int) -> dict[str, Tensor]:
        i, s = self.index[k]
        w = slice(s, s + self.window)
        item = {"t": self.t[i, w], "x": self.x[i, w], "mask": self.mask[i, w], "index": torch.tensor(k)}
        if self.dxdt is not None:
            item["dxdt"] = self.dxdt[i, w]
        if self.params is not None:
            item["params"] = self.params[i]
        return item


class SequenceDataset(Dataset):
    """Whole sequences as training samples, masked and irregular as they are: nothing is dropped.

    One item per segment (trajectory, start, stop) -- the parts of a split, by default whole trajectories,
    all of one length: ``"t"`` (L,) float64 times, ``"x"`` (L, *S), ``"mask"`` (L, *S) bool, ``"index"`` ()
    the item's number in this dataset, ``"dxdt"`` where the data has derivatives and ``"params"`` (P,) where
    it has per-trajectory parameters (as for :class:`WindowDataset`). For models that read a
    sequence of observations (latent models), where a missing first state is no obstacle.
    """

    def __init__(self, traj: Trajectories, dtype: torch.dtype = torch.float32,
                 segments: list[Segment] | None = None) -> None:
        n_t = traj.n_times
        self.segments = [(i, 0, n_t) for i in range(traj.n_trajectories)] if segments is None else segments
        if len({b - a for _, a, b in self.segments}) > 1:
            raise ValueError("the sequences of a SequenceDataset must all have one length")
        self.state_shape = traj.state_shape
        self.t = traj.times().to(torch.float64)
        self.x = traj.states.to(dtype)
        self.mask = torch.ones_like(self.x, dtype=torch.bool) if traj.mask is None else traj.mask.bool()
        self.dxdt = None if traj.derivatives is None else traj.derivatives.to(dtype)
        self.param_names, self.params = per_trajectory_params(traj)
        self.skipped: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self.segments)

    def __getitem__(self, k: int) -> dict[str, Tensor]:
        i, a, b = self.segments[k]
        item = {"t": self.t[i, a:b], "x": self.x[i, a:b], "mask": self.mask[i, a:b], "index": torch.tensor(k)}
        if self.dxdt is not None:
            item["dxdt"] = self.dxdt[i, a:b]
        if self.params is not None:
            item["params"] = self.params[i]
        return item
