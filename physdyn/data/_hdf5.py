"""HDF5 trajectory format, version 1 (specified in docs/data-format.md).

Validation happens here, once, at load: every problem with a file raises :class:`DataFormatError` with one
line that names the file, the key and what is wrong.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

import h5py
import numpy as np
import torch

from ._trajectories import Trajectories

FORMAT_VERSION = 1
LAYOUTS = ("NTD", "TND", "TD")


class DataFormatError(ValueError):
    """A trajectory file that cannot be read as asked: the message names the file, the key and the problem."""


def save(traj: Trajectories, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write ``traj`` to ``path`` in format v1.

    The file is written under a temporary name in the same folder and renamed into place, so an interrupted
    write never leaves a file that looks whole. An existing file is replaced only with ``overwrite=True``.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path}: file exists (pass overwrite=True to replace it)")
    # Not tempfile.mkstemp: its files are private (mode 0600) and the rename would keep that mode;
    # h5py's exclusive create ("x") makes the file with the user's umask, as any other program would.
    tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
    try:
        with h5py.File(tmp, "x") as f:
            f.attrs["physdyn_format"] = FORMAT_VERSION
            f.attrs["system"] = traj.system
            f.attrs["state_names"] = list(traj.state_names)
            f.attrs["params"] = json.dumps(traj.system_params)
            f.attrs["meta"] = json.dumps(traj.meta)
            f.create_dataset("t", data=traj.t.detach().cpu().numpy().astype(np.float64))
            f.create_dataset("states", data=traj.states.detach().cpu().numpy(), compression="gzip")
            if traj.mask is not None:
                f.create_dataset("mask", data=traj.mask.cpu().numpy().astype(bool), compression="gzip")
            if traj.derivatives is not None:
                dx = traj.derivatives.detach().cpu().numpy()
                f.create_dataset("derivatives", data=dx, compression="gzip")
            for name, value in traj.params.items():
                f.create_dataset(f"params/{name}", data=value.detach().cpu().numpy())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load(
    path: str | os.PathLike,
    states: str = "states",
    times: str = "t",
    layout: str = "NTD",
    mask: str | None = "mask",
    derivatives: str | None = "derivatives",
) -> Trajectories:
    """Read and validate trajectories from an HDF5 file.

    Args:
        path: the file; physdyn's own format needs no other argument.
        states: dataset path of the states, e.g. ``"grp/x"``.
        times: dataset path of the times: shape (T,), or a grid per trajectory in the order of ``layout``.
        layout: axis order of ``states``: ``"NTD"`` (trajectory, time, state...), ``"TND"`` (time-major)
            or ``"TD"`` (a single trajectory). D stands for all trailing state axes.
        mask, derivatives: dataset paths read when present (same layout as ``states``); None skips them.

    Returns:
        Trajectories with float64 times and states in their stored floating type.

    Raises:
        DataFormatError: one line naming the file, the key and the problem.
    """
    path = Path(path)
    if layout not in LAYOUTS:
        raise DataFormatError(f"{path}: layout {layout!r} is not one of {', '.join(LAYOUTS)}")
    if not path.is_file():
        raise DataFormatError(f"{path}: no such file")
    if not h5py.is_hdf5(path):
        raise DataFormatError(f"{path}: not an HDF5 file")
    try:
        with h5py.File(path, "r") as f:
            version = f.attrs.get("physdyn_format", FORMAT_VERSION)  # files from other tools have none
            if version != FORMAT_VERSION:
                raise DataFormatError(
                    f"{path}: attribute 'physdyn_format' is {version}, expected {FORMAT_VERSION}"
                )
            return _read(f, path, states, times, layout, mask, derivatives)
    except DataFormatError:
        raise
    except (OSError, KeyError, RuntimeError) as err:
        raise DataFormatError(f"{path}: unreadable, truncated or corrupt HDF5 file ({err})") from None


def _read(f, path, states_key, times_key, layout, mask_key, deriv_key) -> Trajectories:
    def dataset(key: str) -> np.ndarray:
        if key not in f:
            found = ", ".join(_datasets(f)) or "none"
            raise DataFormatError(f"{path}: key '{key}' not found (datasets: {found})")
        if not isinstance(f[key], h5py.Dataset):
            raise DataFormatError(f"{path}: key '{key}' is a group, not a dataset")
        try:
            value = np.asarray(f[key][()])
        except (OSError, RuntimeError) as err:
            raise DataFormatError(f"{path}: key '{key}' cannot be read, corrupt data ({err})") from None
        if value.dtype.kind not in "biuf":
            raise DataFormatError(f"{path}: key '{key}' must hold real numbers, got dtype {value.dtype}")
        return value

    x = _to_ntd(dataset(states_key), layout, path, states_key)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    if x.size == 0:
        raise DataFormatError(f"{path}: key '{states_key}' is empty, shape {x.shape}")
    n, n_t = x.shape[:2]

    t = np.asarray(dataset(times_key), dtype=np.float64)
    if t.ndim == 2 and layout == "TND":
        t = t.T
    if t.ndim == 2 and layout == "TD":
        raise DataFormatError(f"{path}: key '{times_key}' must have rank 1 for layout TD, shape is {t.shape}")
    if t.ndim not in (1, 2):
        raise DataFormatError(f"{path}: key '{times_key}' must have rank 1 or 2, got shape {t.shape}")
    expected = (n_t,) if t.ndim == 1 else (n, n_t)
    if t.shape != expected:
        raise DataFormatError(
            f"{path}: key '{times_key}' has shape {t.shape} but '{states_key}' holds "
            f"{n} trajectories of {n_t} times (expected {expected})"
        )
    if not np.all(np.isfinite(t)):
        raise DataFormatError(f"{path}: key '{times_key}' contains NaN or Inf")
    steps = np.diff(t, axis=-1)
    if np.any(steps <= 0):
        *row, col = (int(i) for i in np.argwhere(steps <= 0)[0])
        now, before = t[(*row, col + 1)], t[(*row, col)]
        where = (*row, col + 1) if layout != "TND" else (col + 1, *row)  # as stored in the file
        raise DataFormatError(
            f"{path}: key '{times_key}' is not strictly increasing "
            f"(at index {where}: {now:g} after {before:g})"
        )

    m = None
    if mask_key is not None and mask_key in f:
        m = _to_ntd(dataset(mask_key), layout, path, mask_key).astype(bool)
        if m.shape != x.shape:
            raise DataFormatError(f"{path}: key '{mask_key}' has shape {m.shape}, states have {x.shape}")
    bad = ~np.isfinite(x) if m is None else ~np.isfinite(x) & m
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        hint = "" if m is not None else " (add a boolean mask to mark unobserved entries)"
        raise DataFormatError(f"{path}: key '{states_key}' has NaN or Inf at index {where}{hint}")
    if m is not None:
        x = np.where(m, x, 0.0).astype(x.dtype)  # unobserved entries carry no information; keep them finite

    dx = None
    if deriv_key is not None and deriv_key in f:
        dx = _to_ntd(dataset(deriv_key), layout, path, deriv_key)
        if dx.shape != x.shape:
            raise DataFormatError(f"{path}: key '{deriv_key}' has shape {dx.shape}, states have {x.shape}")

    params = {}
    if "params" in f and isinstance(f["params"], h5py.Group):
        for name in f["params"]:
            value = dataset(f"params/{name}").astype(np.float64)
            if value.shape != (n,):
                raise DataFormatError(f"{path}: key 'params/{name}' must have shape ({n},), is {value.shape}")
            params[name] = torch.from_numpy(value)

    attrs = f.attrs
    try:
        system_params = json.loads(attrs.get("params", "{}"))
        meta = json.loads(attrs.get("meta", "{}"))
    except json.JSONDecodeError as err:
        raise DataFormatError(f"{path}: attribute 'params' or 'meta' is not valid JSON ({err})") from None
    names = tuple(str(s) for s in attrs.get("state_names", ()))
    return Trajectories(
        t=torch.from_numpy(t),
        states=torch.from_numpy(np.ascontiguousarray(x)),
        mask=None if m is None else torch.from_numpy(m),
        derivatives=None if dx is None else torch.from_numpy(np.ascontiguousarray(dx)),
        params=params,
        system=str(attrs.get("system", "custom")),
        state_names=names,
        system_params=system_params,
        meta={**meta, "source": str(path)},
    )


def _to_ntd(a: np.ndarray, layout: str, path: Path, key: str) -> np.ndarray:
    """Move the axes of ``a`` from ``layout`` into (N, T, *state_shape)."""
    min_rank = len(layout)
    if a.ndim < min_rank:
        raise DataFormatError(
            f"{path}: key '{key}' has rank {a.ndim} (shape {a.shape}); "
            f"layout {layout} needs rank >= {min_rank}"
        )
    if layout == "TND":
        a = np.swapaxes(a, 0, 1)
    elif layout == "TD":
        a = a[None]
    return a


def _datasets(f: h5py.File) -> list[str]:
    names: list[str] = []
    f.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
    return names
