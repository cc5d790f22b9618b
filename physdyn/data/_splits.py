"""Train / validation / test splits: by whole trajectories, or by contiguous blocks of time.

A split is a plain dict, as ``split.json`` stores it:

- by trajectory: ``{"by": "trajectory", "train": [i, ...], "val": [...], "test": [...]}``, trajectory
  indices (a dict without ``"by"`` is one of these);
- by time: ``{"by": "time", "train": {"start": 0, "stop": a, ...}, "val": {...}, "test": {...}}``, sample
  ranges [start, stop) shared by every trajectory, train first, then validation, then test, with their time
  ranges (``t_start``, ``t_end``) recorded for the reader.

Splitting by time is what one long recording needs (or any file with fewer trajectories than splits):
validation and test then measure extrapolation in time. Datasets see a split as *segments*, (trajectory,
start, stop) triples, so no window ever crosses from one part into another.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from ._trajectories import Trajectories

SPLITS = ("train", "val", "test")
SPLIT_BY = ("auto", "trajectory", "time")
#: The fewest samples a non-empty block of a split by time holds: one step, so that it has a forecast.
MIN_BLOCK = 2

Segment = tuple[int, int, int]


def _fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    try:
        values = tuple(float(f) for f in fractions)
    except (TypeError, ValueError):
        raise ValueError(f"split fractions must be three numbers (train, val, test): {fractions!r}") from None
    if len(values) != 3 or any(not math.isfinite(f) or f < 0 for f in values):
        raise ValueError(f"split fractions must be three numbers >= 0 (train, val, test): {list(values)}")
    if abs(sum(values) - 1.0) > 1e-6:
        raise ValueError(f"split fractions must sum to 1, got {list(values)} (sum {sum(values):g})")
    if values[0] == 0:
        raise ValueError("the train fraction of the split must be > 0")
    return values  # type: ignore[return-value]


def _sizes(n: int, fractions: tuple[float, float, float], least: int) -> list[int]:
    """Sizes of the three parts of n items: each positive share at least ``least``, train the rest."""
    sizes = [0, 0, 0]
    for k in (1, 2):  # val and test first, so that rounding never empties them; train takes the rest
        if fractions[k] > 0:
            sizes[k] = max(least, round(fractions[k] * n))
    while n - sizes[1] - sizes[2] < least:  # small n: shrink the larger held-out part, keeping each >= least
        k = 1 if sizes[1] >= sizes[2] else 2
        sizes[k] -= 1
    sizes[0] = n - sizes[1] - sizes[2]
    return sizes


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
    fractions = _fractions(fractions)
    wanted = sum(f > 0 for f in fractions)
    if n < wanted:
        raise ValueError(
            f"cannot split {n} trajectories by trajectory into {wanted} non-empty splits {list(fractions)}: "
            f"need at least {wanted} trajectories (split by time instead: data.split_by=time, or set the "
            "val/test fractions to 0)"
        )
    sizes = _sizes(n, fractions, 1)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    out, start = {}, 0
    for name, size in zip(SPLITS, sizes, strict=True):
        out[name] = sorted(order[start : start + size])
        start += size
    return out


def split_by_time(t: torch.Tensor, fractions: Sequence[float] = (0.8, 0.1, 0.1)) -> dict[str, Any]:
    """Contiguous blocks of samples, train first, then validation, then test, the same for every trajectory.

    Args:
        t: the times, (T,) or (N, T); the blocks are sample ranges, their time ranges are recorded.
        fractions: (train, val, test) shares of the T samples; a positive share gets at least
            :data:`MIN_BLOCK` samples.

    Returns:
        ``{"by": "time", name: {"start", "stop", "t_start", "t_end"}}`` for each split name; an empty part
        has start = stop and no times.
    """
    fractions = _fractions(fractions)
    n_t = t.shape[-1]
    wanted = sum(f > 0 for f in fractions)
    if n_t < MIN_BLOCK * wanted:
        raise ValueError(f"cannot split {n_t} samples by time into {wanted} blocks of at least {MIN_BLOCK} "
                         f"samples (set the val/test fractions to 0)")
    sizes = _sizes(n_t, fractions, MIN_BLOCK)
    out: dict[str, Any] = {"by": "time"}
    start = 0
    grid = t.reshape(-1, n_t).double()
    for name, size in zip(SPLITS, sizes, strict=True):
        block: dict[str, Any] = {"start": start, "stop": start + size}
        if size:
            first, last = grid[:, start], grid[:, start + size - 1]
            shared = bool((first == first[0]).all() and (last == last[0]).all())
            block["t_start"] = float(first[0]) if shared else first.tolist()
            block["t_end"] = float(last[0]) if shared else last.tolist()
        out[name] = block
        start += size
    return out


def make_split(traj: Trajectories, fractions: Sequence[float], by: str = "auto",
               seed: int = 0) -> dict[str, Any]:
    """The split of ``traj`` that ``by`` asks for: "trajectory", "time", or "auto" (by trajectory where there
    are at least as many trajectories as non-empty splits, else by time)."""
    if by not in SPLIT_BY:
        raise ValueError(f"data.split_by must be one of {', '.join(SPLIT_BY)}, got {by!r}")
    if by == "auto":
        by = "trajectory" if traj.n_trajectories >= sum(float(f) > 0 for f in _fractions(fractions)) \
            else "time"
    if by == "time":
        return split_by_time(traj.t, fractions)
    return {"by": "trajectory", **split_by_trajectory(traj.n_trajectories, fractions, seed)}


def split_segments(split: dict[str, Any], n: int, n_t: int) -> dict[str, list[Segment]]:
    """Each part of ``split`` as segments (trajectory, start, stop); ValueError if it does not fit the data.

    The parts must partition the data: every trajectory once (by trajectory), or every sample once (by time).
    """
    by = split.get("by", "trajectory")
    if by == "time":
        blocks = [split.get(name) or {"start": 0, "stop": 0} for name in SPLITS]
        bounds = [(int(b["start"]), int(b["stop"])) for b in blocks]
        if [a for a, _ in bounds] != [0, bounds[0][1], bounds[1][1]] or bounds[2][1] != n_t:
            raise ValueError(f"the split by time {bounds} does not cover the {n_t} samples in order")
        return {name: [(i, a, b) for i in range(n)] if b > a else []
                for name, (a, b) in zip(SPLITS, bounds, strict=True)}
    if by != "trajectory":
        raise ValueError(f"unknown kind of split {by!r} (trajectory or time)")
    indices = sorted(i for name in SPLITS for i in split.get(name, []))
    outside = [i for i in indices if not 0 <= i < n]
    if outside:
        raise ValueError(f"trajectory {outside[0]} of the split is not among the {n} trajectories")
    if indices != list(range(n)):
        raise ValueError(f"the split does not partition the {n} trajectories")
    return {name: [(int(i), 0, n_t) for i in split.get(name, [])] for name in SPLITS}


def segment_mask(segments: list[Segment], n: int, n_t: int) -> torch.Tensor:
    """(N, T) bool: True at the samples the segments cover."""
    mask = torch.zeros(n, n_t, dtype=torch.bool)
    for i, a, b in segments:
        mask[i, a:b] = True
    return mask


def select_split(traj: Trajectories, split: dict[str, Any], name: str = "test") -> Trajectories:
    """The part ``name`` of ``split`` as Trajectories; ``meta["indices"]`` holds the trajectories it came
    from (and, by time, ``meta["samples"]`` the sample range). ValueError if the split does not fit."""
    segments = split_segments(split, traj.n_trajectories, traj.n_times)[name]
    if not segments:
        raise ValueError(f"the {name} split is empty")
    indices = [i for i, _, _ in segments]
    part = traj.select(indices)
    if split.get("by") == "time":
        _, a, b = segments[0]
        part = part.window(a, b)
        part.meta["samples"] = [a, b]
    part.meta["indices"] = indices
    return part
