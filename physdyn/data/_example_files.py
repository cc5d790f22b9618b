"""Small files that follow (or, on request, break) the format, for tests and documentation."""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import torch

from ._hdf5 import save
from ._trajectories import Trajectories


def example_trajectories(
    n_trajectories: int = 3,
    n_times: int = 20,
    state_dim: int = 2,
    seed: int = 0,
    per_trajectory_times: bool = False,
) -> Trajectories:
    """Damped rotations x(t) = exp(-0.1 t) R(t) x0: smooth, known in closed form, dx/dt included."""
    g = torch.Generator().manual_seed(seed)
    if per_trajectory_times:
        steps = 0.05 + 0.1 * torch.rand(n_trajectories, n_times - 1, generator=g, dtype=torch.float64)
        t = torch.cat([torch.zeros(n_trajectories, 1, dtype=torch.float64), steps.cumsum(-1)], dim=-1)
    else:
        t = torch.linspace(0.0, 2.0, n_times, dtype=torch.float64)
    tt = t.expand(n_trajectories, n_times)[..., None]
    x0 = torch.randn(n_trajectories, 1, state_dim, generator=g, dtype=torch.float64)
    omega = torch.arange(1, state_dim + 1, dtype=torch.float64)
    phase = tt * omega
    states = x0 * torch.exp(-0.1 * tt) * torch.cos(phase)
    derivatives = x0 * torch.exp(-0.1 * tt) * (-0.1 * torch.cos(phase) - omega * torch.sin(phase))
    return Trajectories(
        t=t,
        states=states,
        derivatives=derivatives,
        params={"rate": torch.full((n_trajectories,), 0.1, dtype=torch.float64)},
        system="custom",
        state_names=tuple(f"x{i}" for i in range(state_dim)),
        system_params={"rate": 0.1},
    )


def write_example_file(path: str | os.PathLike, layout: str = "NTD", **kwargs) -> Trajectories:
    """Write a small conforming file and return what it holds.

    ``layout="NTD"`` writes physdyn's own format; ``"TND"`` and ``"TD"`` write a foreign file with the
    states under ``grp/x`` and times under ``grp/time`` in that axis order, as other tools do.
    """
    traj = example_trajectories(**kwargs)
    path = Path(path)
    if layout == "NTD":
        save(traj, path, overwrite=True)
        return traj
    x = traj.states.numpy()
    t = traj.t.numpy()
    if layout == "TND":
        x, t = np.swapaxes(x, 0, 1), t.T
    elif layout == "TD":
        x, t = x[0], (t if t.ndim == 1 else t[0])
        traj = traj.select([0])
    else:
        raise ValueError(f"unknown layout {layout!r}")
    with h5py.File(path, "w") as f:
        f.create_dataset("grp/x", data=x)
        f.create_dataset("grp/time", data=t)
    return traj
