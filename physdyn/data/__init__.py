"""Trajectory data: the container, the HDF5 format v1, and helpers that write small conforming files."""

from ._example_files import example_trajectories, write_example_file
from ._hdf5 import FORMAT_VERSION, LAYOUTS, DataFormatError, load, save
from ._trajectories import Trajectories

__all__ = [
    "FORMAT_VERSION",
    "LAYOUTS",
    "DataFormatError",
    "Trajectories",
    "example_trajectories",
    "load",
    "save",
    "write_example_file",
]
