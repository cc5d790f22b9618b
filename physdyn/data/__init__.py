"""Trajectory data: the container, the HDF5 format v1, and helpers that write small conforming files."""

from ._example_files import example_trajectories, write_example_file
from ._hdf5 import FORMAT_VERSION, LAYOUTS, MISSING, DataFormatError, load, save
from ._normalization import NORMALIZATIONS, Normalizer
from ._observe import observe
from ._splits import SPLIT_BY, make_split, select_split, split_by_time, split_by_trajectory, split_segments
from ._trajectories import Trajectories
from ._windows import SequenceDataset, WindowDataset


def __getattr__(name: str):
    # The data module needs Lightning, whose import takes seconds; only training pays for it.
    if name == "TrajectoryDataModule":
        from ._datamodule import TrajectoryDataModule

        return TrajectoryDataModule
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "FORMAT_VERSION",
    "LAYOUTS",
    "MISSING",
    "NORMALIZATIONS",
    "DataFormatError",
    "Normalizer",
    "SPLIT_BY",
    "SequenceDataset",
    "Trajectories",
    "TrajectoryDataModule",
    "WindowDataset",
    "example_trajectories",
    "load",
    "make_split",
    "observe",
    "save",
    "select_split",
    "split_by_time",
    "split_by_trajectory",
    "split_segments",
    "write_example_file",
]
