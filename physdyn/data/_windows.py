"""Training samples: trajectories split by trajectory, then cut into short windows of consecutive samples."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor
from torch.utils.data import Dataset

from ._trajectories import Trajectories

SPLITS = ("train", "val", "test")


def split_by_trajectory(
    n: int, fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0
) -> dict[str, list[int]]:
    """Assign whole trajectories (never pieces of one) to the train, val and test splits.

    Args:
        n: number of trajectories.
        fractions: (train, val, test) shares, each >= 0, summing to 1. A split with a positive share gets at
            least one trajectory; a share of 0 leaves that split empty.
        seed: the same seed gives the same split.

    Returns:
        ``{"train": [...], "val": [...], "test": [...]}``: sorted disjoint indices covering 0..n-1.

    Raises:
        ValueError: bad fractions, or fewer trajectories than splits with a positive share.
    """
    try:
        fractions = tuple(float(f) for f in fractions)
    except (TypeError, ValueError):
        raise ValueError(f"split fractions must be three numbers (train, val, test): {fractions!r}") from None
    if len(fractions) != 3 or any(not math.isfinite(f) or f < 0 for f in fractions):
        raise ValueError(f"split fractions must be three numbers >= 0 (train, val, test): {list(fractions)}")
    if abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(f"split fractions must sum to 1, got {list(fractions)} (sum {sum(fractions):g})")
    if fractions[0] == 0:
        raise ValueError("the train fraction of the split must be > 0")
    wanted = sum(f > 0 for f in fractions)
    if n < wanted:
        raise ValueError(
            f"cannot split {n} trajectories by trajectory into {wanted} non-empty splits {list(fractions)}: "
            f"need at least {wanted} trajectories (or set the val/test fractions to 0)"
        )
    sizes = [0, 0, 0]
    for k in (1, 2):  # val and test first, so that rounding never empties them; train takes the rest
        if fractions[k] > 0:
            sizes[k] = max(1, round(fractions[k] * n))
    while n - sizes[1] - sizes[2] < 1:  # small n: shrink the larger held-out split, keeping each >= 1
        k = 1 if sizes[1] >= sizes[2] else 2
        sizes[k] -= 1
    sizes[0] = n - sizes[1] - sizes[2]
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    out, start = {}, 0
    for name, size in zip(SPLITS, sizes, strict=True):
        out[name] = sorted(order[start : start + size])
        start += size
    return out


class WindowDataset(Dataset):
    """Windows of ``window`` consecutive samples, each inside one trajectory, starts ``stride`` apart.

    Items are dicts of tensors (S = the state shape):

    - ``"t"``: (W,) the window's own times, float64 (from the trajectory's grid, shared or per trajectory;
      models shift them to the window's start, and in float64 that shift loses nothing);
    - ``"x"``: (W, *S) states;
    - ``"mask"``: (W, *S) bool, True where observed (all True when the data has no mask);
    - ``"dxdt"``: (W, *S) derivatives, only when the data has them;
    - ``"index"``: () the window's number k in this dataset (a fitted initial state is looked up by it).

    A window whose first state is not fully observed is skipped, since a rollout must start from a known
    state (``skipped`` counts them). The tensors are views into the (already normalised) trajectories, cast
    to ``dtype`` (times excepted).
    """

    def __init__(self, traj: Trajectories, window: int, stride: int = 1, dtype: torch.dtype = torch.float32):
        for name, value in (("window", window), ("stride", stride)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if window > traj.n_times:
            raise ValueError(f"window={window} is longer than the trajectories ({traj.n_times} times)")
        n_t = traj.n_times
        self.window, self.stride = window, stride
        self.state_shape = traj.state_shape
        self.t = traj.times().to(torch.float64)
        self.x = traj.states.to(dtype)
        self.mask = (torch.ones_like(self.x, dtype=torch.bool) if traj.mask is None else traj.mask.bool())
        self.dxdt = None if traj.derivatives is None else traj.derivatives.to(dtype)
        starts = torch.arange(0, n_t - window + 1, stride)
        first_observed = self.mask[:, starts].flatten(2).all(-1)  # (N, starts)
        self.index = [(i, int(starts[j])) for i, j in first_observed.nonzero().tolist()]
        self.skipped = first_observed.numel() - len(self.index)

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
        return item


class SequenceDataset(Dataset):
    """Whole trajectories as training samples, masked and irregular as they are: nothing is dropped.

    Items: ``"t"`` (T,) float64 times, ``"x"`` (T, *S), ``"mask"`` (T, *S) bool, ``"index"`` () the
    trajectory's number in this dataset, and ``"dxdt"`` where the data has derivatives. For models that
    read a sequence of observations (latent models), where a missing first state is no obstacle.
    """

    def __init__(self, traj: Trajectories, dtype: torch.dtype = torch.float32) -> None:
        self.state_shape = traj.state_shape
        self.t = traj.times().to(torch.float64)
        self.x = traj.states.to(dtype)
        self.mask = torch.ones_like(self.x, dtype=torch.bool) if traj.mask is None else traj.mask.bool()
        self.dxdt = None if traj.derivatives is None else traj.derivatives.to(dtype)
        self.skipped = 0

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        item = {"t": self.t[i], "x": self.x[i], "mask": self.mask[i], "index": torch.tensor(i)}
        if self.dxdt is not None:
            item["dxdt"] = self.dxdt[i]
        return item
