"""A LightningDataModule: load, split (by trajectory or by time), normalise with training statistics, cut
into windows or sequences."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace

import lightning as L
import torch
from torch.utils.data import DataLoader, DistributedSampler

from ._hdf5 import load
from ._normalization import Normalizer
from ._splits import SPLITS, make_split, segment_mask, split_segments
from ._trajectories import Trajectories
from ._windows import SequenceDataset, WindowDataset


class TrajectoryDataModule(L.LightningDataModule):
    """Train/val/test datasets, windows or whole sequences, from one trajectory file or :class:`Trajectories`.

    Args:
        data: a :class:`Trajectories`, a physdyn file, or any HDF5 file readable by :func:`physdyn.data.load`
            with ``states``, ``times`` and ``layout``.
        kind: ``"windows"`` (:class:`WindowDataset`, with ``window`` and ``stride``) or ``"sequences"``
            (:class:`SequenceDataset`: whole trajectories), as the model's ``data`` attribute asks.
        window, stride: see :class:`WindowDataset`.
        split: (train, val, test) fractions, of the trajectories or of the time samples (``split_by``).
        split_by: "trajectory", "time" or "auto" (see :func:`physdyn.data.make_split`).
        max_gap: windows never span a step longer than this (time units); "auto": 5 × the median step;
            None: no limit.
        seed: seeds the split and the shuffling of training windows (a function of seed and epoch only, so a
            resumed run sees the same order as an uninterrupted one).
        normalization: a kind of :class:`Normalizer`, fitted on the training trajectories only.
        batch_size, num_workers: passed to the DataLoaders.
        dtype: floating type of the windows (times included).
        split_indices, normalizer: a fixed split (a dict as split.json holds it) and normaliser (e.g.
            restored from a run) instead of computing them.

    After :meth:`setup`: ``traj`` (as loaded, physical units), ``split``, ``normalizer``, ``datasets``
    (split name -> dataset over normalised data), ``state_shape``, ``has_derivatives``.
    """

    def __init__(
        self,
        data: Trajectories | str | os.PathLike,
        *,
        states: str = "states",
        times: str = "t",
        layout: str = "NTD",
        kind: str = "windows",
        window: int = 10,
        stride: int = 1,
        split: Sequence[float] = (0.8, 0.1, 0.1),
        split_by: str = "auto",
        max_gap: float | str | None = "auto",
        seed: int = 0,
        normalization: str = "standard",
        batch_size: int = 64,
        num_workers: int = 0,
        dtype: torch.dtype = torch.float32,
        split_indices: dict[str, list[int]] | None = None,
        normalizer: Normalizer | None = None,
    ) -> None:
        super().__init__()
        for name, value, low in (("batch_size", batch_size, 1), ("num_workers", num_workers, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        if kind not in ("windows", "sequences"):
            raise ValueError(f"kind must be windows or sequences, got {kind!r}")
        self.data, self.states_key, self.times_key, self.layout, self.kind = data, states, times, layout, kind
        self.window, self.stride, self.split_fractions, self.seed = window, stride, split, seed
        self.split_by, self.max_gap = split_by, max_gap
        self.normalization, self.batch_size, self.num_workers, self.dtype = (
            normalization, batch_size, num_workers, dtype)
        self.split, self.normalizer = split_indices, normalizer
        self.traj: Trajectories | None = None
        self.datasets: dict[str, WindowDataset | SequenceDataset] = {}

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:  # Lightning calls setup once per stage; the work is the same for all of them
            return
        traj = self.data if isinstance(self.data, Trajectories) else load(
            self.data, states=self.states_key, times=self.times_key, layout=self.layout)
        if self.split is None:
            self.split = make_split(traj, self.split_fractions, self.split_by, self.seed)
        n, n_t = traj.n_trajectories, traj.n_times
        segments = split_segments(self.split, n, n_t)
        if self.normalizer is None:
            in_train = segment_mask(segments["train"], n, n_t).reshape(n, n_t, *[1] * len(traj.state_shape))
            observed = in_train if traj.mask is None else traj.mask & in_train
            self.normalizer = Normalizer.fit(replace(traj, mask=observed.expand_as(traj.states)),
                                             self.normalization)
        elif self.normalizer.state_shape != traj.state_shape:
            raise ValueError(f"normalizer state shape {self.normalizer.state_shape} does not match the data "
                             f"{traj.state_shape}")
        normalised = self.normalizer.apply(traj)
        self.traj = traj
        self.max_gap_used = self._max_gap(traj)
        self.datasets = {name: self._dataset(normalised, segments[name]) for name in SPLITS}
        if len(self.datasets["train"]) == 0:
            skipped = ", ".join(f"{k} {v}" for k, v in self.datasets["train"].skipped.items() if v)
            raise ValueError(f"the training split has no window (left out: {skipped or 'none formed'})")

    def _max_gap(self, traj: Trajectories) -> float | None:
        number = isinstance(self.max_gap, int | float) and not isinstance(self.max_gap, bool)
        if self.max_gap is None or (number and self.max_gap > 0):
            return self.max_gap
        if self.max_gap != "auto":
            raise ValueError(f"data.max_gap must be auto, null or a time > 0, got {self.max_gap!r}")
        steps = traj.times().diff(dim=1)
        return 5 * float(steps.median()) if steps.numel() else None

    def _dataset(self, traj: Trajectories, segments) -> WindowDataset | SequenceDataset:
        if self.kind == "sequences":
            return SequenceDataset(traj, dtype=self.dtype, segments=segments)
        return WindowDataset(traj, self.window, self.stride, dtype=self.dtype, segments=segments,
                             max_gap=self.max_gap_used)

    def describe(self) -> list[str]:
        """One line per split: what was formed and what was left out, and why (for fit's first lines)."""
        what = ("sequences" if self.kind == "sequences" else "samples (windows of 1)" if self.window == 1
                else f"windows of {self.window} samples")
        lines = []
        for name in SPLITS:
            dataset = self.datasets[name]
            left = ", ".join(f"{v} {reason}" for reason, v in dataset.skipped.items() if v)
            lines.append(f"{name}: {len(dataset)} {what}" + (f" (left out: {left})" if left else ""))
        if self.max_gap_used is not None and self.kind == "windows" and self.window > 1:
            lines[-1] += f"; no window spans a step longer than {self.max_gap_used:.3g} (data.max_gap)"
        return lines

    @property
    def state_shape(self) -> tuple[int, ...]:
        return self.datasets["train"].state_shape

    @property
    def has_derivatives(self) -> bool:
        return self.datasets["train"].dxdt is not None

    def train_dataloader(self) -> DataLoader:
        # The sampler's order depends on (seed, epoch) only, so a resumed run repeats an uninterrupted one;
        # under DDP each process takes its own share.
        trainer = self.trainer
        world, rank = (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)
        sampler = DistributedSampler(self.datasets["train"], num_replicas=world, rank=rank, shuffle=True,
                                     seed=self.seed)
        return DataLoader(self.datasets["train"], batch_size=self.batch_size, sampler=sampler,
                          num_workers=self.num_workers)

    def val_dataloader(self) -> DataLoader | list:
        return self._eval_loader("val")

    def test_dataloader(self) -> DataLoader | list:
        return self._eval_loader("test")

    def _eval_loader(self, name: str) -> DataLoader | list:
        dataset = self.datasets[name]
        if len(dataset) == 0:
            return []
        return DataLoader(dataset, batch_size=self.batch_size, shuffle=False, num_workers=self.num_workers)
