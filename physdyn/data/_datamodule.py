"""A LightningDataModule: load, split by trajectory, normalise with training statistics, cut into windows."""

from __future__ import annotations

import os
from collections.abc import Sequence

import lightning as L
import torch
from torch.utils.data import DataLoader, DistributedSampler

from ._hdf5 import load
from ._normalization import Normalizer
from ._trajectories import Trajectories
from ._windows import SPLITS, SequenceDataset, WindowDataset, split_by_trajectory


class TrajectoryDataModule(L.LightningDataModule):
    """Train/val/test datasets, windows or whole sequences, from one trajectory file or :class:`Trajectories`.

    Args:
        data: a :class:`Trajectories`, a physdyn file, or any HDF5 file readable by :func:`physdyn.data.load`
            with ``states``, ``times`` and ``layout``.
        kind: ``"windows"`` (:class:`WindowDataset`, with ``window`` and ``stride``) or ``"sequences"``
            (:class:`SequenceDataset`: whole trajectories), as the model's ``data`` attribute asks.
        window, stride: see :class:`WindowDataset`.
        split: (train, val, test) fractions of the trajectories, see :func:`split_by_trajectory`.
        seed: seeds the split and the shuffling of training windows (a function of seed and epoch only, so a
            resumed run sees the same order as an uninterrupted one).
        normalization: a kind of :class:`Normalizer`, fitted on the training trajectories only.
        batch_size, num_workers: passed to the DataLoaders.
        dtype: floating type of the windows (times included).
        split_indices, normalizer: fixed ones (e.g. restored from a run) instead of computing them.

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
            self.split = split_by_trajectory(traj.n_trajectories, self.split_fractions, self.seed)
        if sorted(i for name in SPLITS for i in self.split.get(name, [])) != list(range(traj.n_trajectories)):
            raise ValueError(f"the split does not partition the {traj.n_trajectories} trajectories")
        if self.normalizer is None:
            self.normalizer = Normalizer.fit(traj.select(self.split["train"]), self.normalization)
        elif self.normalizer.state_shape != traj.state_shape:
            raise ValueError(f"normalizer state shape {self.normalizer.state_shape} does not match the data "
                             f"{traj.state_shape}")
        normalised = self.normalizer.apply(traj)
        self.traj = traj
        self.datasets = {name: self._dataset(normalised.select(self.split[name])) for name in SPLITS}
        if len(self.datasets["train"]) == 0:
            raise ValueError("the training split has no window whose first state is fully observed")

    def _dataset(self, traj: Trajectories) -> WindowDataset | SequenceDataset:
        if self.kind == "sequences":
            return SequenceDataset(traj, dtype=self.dtype)
        return WindowDataset(traj, self.window, self.stride, dtype=self.dtype)

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
