"""HDF5 trajectory format, version 1 (specified in docs/data-format.md).

Validation happens here, once, at load: every problem with a file raises :class:`DataFormatError` with one
line that names the file, the key and what is wrong.
"""

from __future__ import annotations

import fnmatch
import json
import math
import os
import re
import secrets
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from ._trajectories import Trajectories

FORMAT_VERSION = 1
#: What a NaN in the states may mean on load: an error, or an unobserved entry.
MISSING = ("error", "nan")
LAYOUTS = ("NTD", "TND", "TD")
#: Letters of a field layout (e.g. PDEBench's "THWC"): trajectory N, time T, channel C, space axes.
SPACE_LETTERS = "ZYXHW"


class DataFormatError(ValueError):
    """A trajectory file that cannot be read as asked: the message names the file, the key and the problem."""


def save(traj: Trajectories, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write ``traj`` to ``path`` in format v1.

    The file is written under a temporary name in the same folder and renamed into place, so an interrupted
    write never leaves a file that looks whole. An existing file is replaced only with ``overwrite=True``.

    Raises:
        DataFormatError: ``traj`` breaks a rule of the format (the message :func:`load` would give for such
            a file); nothing is written.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path}: file exists (pass overwrite=True to replace it)")
    _validate(path, *_arrays(traj), traj.state_names, traj.system_params, traj.meta)
    try:
        attrs = {"params": json.dumps(traj.system_params), "meta": json.dumps(traj.meta)}
    except (TypeError, ValueError) as err:
        raise DataFormatError(f"{path}: attribute 'params' or 'meta' is not JSON ({err})") from None
    # Not tempfile.mkstemp: its files are private (mode 0600) and the rename would keep that mode;
    # h5py's exclusive create ("x") makes the file with the user's umask, as any other program would.
    tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
    try:
        with h5py.File(tmp, "x") as f:
            f.attrs["physdyn_format"] = FORMAT_VERSION
            f.attrs["system"] = traj.system
            f.attrs["state_names"] = list(traj.state_names)
            f.attrs.update(attrs)
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
    missing: str = "error",
) -> Trajectories:
    """Read and validate trajectories from an HDF5 file.

    Args:
        path: the file; physdyn's own format needs no other argument.
        states: dataset path of the states, e.g. ``"grp/x"``.
        times: dataset path of the times: shape (T,), or a grid per trajectory in the order of ``layout``.
        layout: axis order of ``states``: ``"NTD"`` (trajectory, time, state...), ``"TND"`` (time-major)
            or ``"TD"`` (a single trajectory); D stands for all trailing state axes. Or a field layout: one
            letter per axis, N (trajectory, optional), T (time), C (channel, optional: one channel if
            absent) and space axes from H, W (or Z, Y, X), e.g. PDEBench's ``"THWC"``; the states become
            (C, *space), space axes in the order given.
        states, times with a wildcard (``"*/data"``, ``"*/grid/t"``): one trajectory per matching dataset,
            in sorted order, each in ``layout`` (without N); a times pattern pairs with the states by the
            parts its wildcards match (``0003/data`` with ``0003/grid/t``); a times key without wildcard
            is one grid for all. Mask, derivatives and params are not read for such files.
        mask, derivatives: dataset paths read when present (same layout as ``states``); None skips them.
        missing: what a NaN in the states means: ``"error"`` (a DataFormatError, unless a mask marks the
            entry unobserved) or ``"nan"`` (the entry is unobserved: the mask, or a new one, says so).

    Returns:
        Trajectories with float64 times and states in their stored floating type.

    Raises:
        DataFormatError: one line naming the file, the key and the problem.
    """
    path = Path(path)
    _check_layout(layout, path)
    if missing not in MISSING:
        raise DataFormatError(f"{path}: missing={missing!r} is not one of {', '.join(MISSING)}")
    if not path.is_file():
        raise DataFormatError(f"{path}: no such file")
    if not h5py.is_hdf5(path):
        raise DataFormatError(f"{path}: not an HDF5 file")
    try:
        with h5py.File(path, "r") as f:
            _check_version(f.attrs, path)
            if _is_pattern(states):
                return _read_groups(f, path, states, times, layout, missing)
            return _read(f, path, states, times, layout, mask, derivatives, missing)
    except DataFormatError:
        raise
    except (OSError, KeyError, RuntimeError) as err:
        raise DataFormatError(f"{path}: unreadable, truncated or corrupt HDF5 file ({err})") from None


def _check_version(attrs: h5py.AttributeManager, path: Path) -> None:
    version = attrs.get("physdyn_format", FORMAT_VERSION)  # files from other tools have none
    if isinstance(version, bool | np.bool_) or not isinstance(version, int | np.integer):
        raise DataFormatError(f"{path}: attribute 'physdyn_format' must be the integer {FORMAT_VERSION}, "
                              f"got {_describe(version)}")
    if version != FORMAT_VERSION:
        raise DataFormatError(f"{path}: attribute 'physdyn_format' is {version}, expected {FORMAT_VERSION}")


def _describe(value: Any) -> str:
    """An attribute's value as a message names it: its kind as well, so that '1' never reads as 1."""
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape} ({value.tolist()!r})"
    if isinstance(value, str | bytes):
        return f"the string {value!r}"
    return f"{value!r} ({type(value).__name__})"


def _check_layout(layout: str, path: Path) -> None:
    if layout in LAYOUTS:
        return
    letters = set(layout) if isinstance(layout, str) else set()
    space = [a for a in layout if a in SPACE_LETTERS] if isinstance(layout, str) else []
    if (not isinstance(layout, str) or len(letters) != len(layout) or "T" not in letters
            or not letters <= set("NTC" + SPACE_LETTERS) or not 1 <= len(space) <= 3):
        raise DataFormatError(f"{path}: layout {layout!r} is not one of {', '.join(LAYOUTS)}, nor a field "
                              "layout of distinct letters N (optional), T, C (optional) and 1 to 3 space "
                              f"axes from {SPACE_LETTERS} (e.g. THWC)")


def _is_pattern(key: str) -> bool:
    return isinstance(key, str) and any(ch in key for ch in "*?[")


def _dataset(f, path: Path, key: str) -> np.ndarray:
    if key not in f:
        found = ", ".join(_datasets(f)[:20]) or "none"
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


def _read_groups(f, path: Path, states_pattern: str, times_key: str, layout: str,
                 missing: str) -> Trajectories:
    """One trajectory per dataset matching ``states_pattern`` (PDEBench: one group per sample)."""
    if "N" in layout or layout in ("NTD", "TND"):
        raise DataFormatError(f"{path}: with a wildcard in the states key ('{states_pattern}') each match is "
                              f"one trajectory: the layout must have no N axis, got {layout!r}")
    names = sorted(name for name in _datasets(f) if fnmatch.fnmatchcase(name, states_pattern))
    if not names:
        raise DataFormatError(f"{path}: no dataset matches the states key '{states_pattern}'")
    # Each wildcard of the states pattern becomes a group, so the times key can be filled in with its match.
    regex = re.compile("".join(f"({'.*' if ch == '*' else '.'})" if ch in "*?" else re.escape(ch)
                               for ch in states_pattern) + r"\Z")
    xs, ts = [], []
    for name in names:
        x = _to_ntd(_dataset(f, path, name), layout, path, name)[0]
        if xs and x.shape != xs[0].shape:
            raise DataFormatError(f"{path}: key '{name}' has shape {x.shape} (as T, *state) but "
                                  f"'{names[0]}' has {xs[0].shape}: trajectories must agree")
        xs.append(x)
        key = times_key
        match = regex.match(name)
        if _is_pattern(times_key) and match is not None:
            parts = iter(match.groups())
            key = re.sub(r"[*?]", lambda _, parts=parts: next(parts, ""), times_key)
        if key != times_key or not ts:
            t = _dataset(f, path, key)
            if t.shape != (x.shape[0],):
                raise DataFormatError(f"{path}: key '{key}' has shape {t.shape} but '{name}' holds "
                                      f"{x.shape[0]} times (expected ({x.shape[0]},))")
            ts.append(t)
    x = np.stack(xs)
    t = ts[0] if len(ts) == 1 else np.stack(ts)
    m = None
    if missing == "nan" and np.issubdtype(x.dtype, np.floating):
        m = ~np.isnan(x)
    keys = {"states": states_pattern, "t": times_key, "mask": None, "derivatives": None}
    _validate(path, t, x, m, None, {}, (), {}, {}, keys=keys, layout="NTD")
    x = np.asarray(x, dtype=np.float64) if not np.issubdtype(x.dtype, np.floating) else x
    if m is not None:
        x = np.where(m, x, 0.0).astype(x.dtype)
    return Trajectories(t=torch.from_numpy(np.asarray(t, dtype=np.float64)),
                        states=torch.from_numpy(np.ascontiguousarray(x)),
                        mask=None if m is None else torch.from_numpy(m), system="custom",
                        meta={"source": str(path), "groups": [name.rsplit("/", 1)[0] for name in names]})


def _read(f, path, states_key, times_key, layout, mask_key, deriv_key, missing) -> Trajectories:
    def dataset(key: str) -> np.ndarray:
        return _dataset(f, path, key)

    x = _to_ntd(dataset(states_key), layout, path, states_key)
    if x.size == 0:
        raise DataFormatError(f"{path}: key '{states_key}' is empty, shape {x.shape}")
    n, n_t = x.shape[:2]

    t = dataset(times_key)
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

    m = dx = None
    if mask_key is not None and mask_key in f:
        m = _to_ntd(dataset(mask_key), layout, path, mask_key)
    if deriv_key is not None and deriv_key in f:
        dx = _to_ntd(dataset(deriv_key), layout, path, deriv_key)
    for key, value in ((mask_key, m), (deriv_key, dx)):
        if value is not None and value.shape != x.shape:
            raise DataFormatError(f"{path}: key '{key}' has shape {value.shape}, states have {x.shape}")
    if missing == "nan" and np.issubdtype(x.dtype, np.floating):
        observed = ~np.isnan(x)
        m = observed if m is None else (m.astype(bool) & observed)
        if not m.any():
            raise DataFormatError(f"{path}: key '{states_key}' holds only NaN: nothing is observed")
    params = {}
    if "params" in f and isinstance(f["params"], h5py.Group):
        for name in f["params"]:
            value = dataset(f"params/{name}")
            if value.shape != (n,):
                raise DataFormatError(f"{path}: key 'params/{name}' must have shape ({n},), is {value.shape}")
            params[name] = value

    attrs = f.attrs
    try:
        system_params = json.loads(attrs.get("params", "{}"))
        meta = json.loads(attrs.get("meta", "{}"))
    except json.JSONDecodeError as err:
        raise DataFormatError(f"{path}: attribute 'params' or 'meta' is not valid JSON ({err})") from None
    names = attrs.get("state_names", ())
    names = (names,) if isinstance(names, str | bytes) else names  # one name, stored as a scalar string
    names = tuple(s.decode() if isinstance(s, bytes) else str(s) for s in np.ravel(names))

    keys = {"states": states_key, "t": times_key, "mask": mask_key, "derivatives": deriv_key}
    _validate(path, t, x, m, dx, params, names, system_params, meta, keys=keys, layout=layout)
    as_float = {"dtype": np.float64} if not np.issubdtype(x.dtype, np.floating) else {}
    x = np.asarray(x, **as_float)
    if m is not None:
        m = m.astype(bool)
        x = np.where(m, x, 0.0).astype(x.dtype)  # unobserved entries carry no information; keep them finite
    if dx is not None and not np.issubdtype(dx.dtype, np.floating):
        dx = dx.astype(np.float64)
    return Trajectories(
        t=torch.from_numpy(np.asarray(t, dtype=np.float64)),
        states=torch.from_numpy(np.ascontiguousarray(x)),
        mask=None if m is None else torch.from_numpy(m),
        derivatives=None if dx is None else torch.from_numpy(np.ascontiguousarray(dx)),
        params={name: torch.from_numpy(value.astype(np.float64)) for name, value in params.items()},
        system=str(attrs.get("system", "custom")),
        state_names=names,
        system_params=system_params,
        meta={**meta, "source": str(path)},
    )


def _arrays(traj: Trajectories) -> tuple:
    """The arrays of ``traj`` as :func:`_validate` takes them: t, states, mask, derivatives, params."""

    def array(x: torch.Tensor | None) -> np.ndarray | None:
        return None if x is None else x.detach().cpu().numpy()

    return (array(traj.t), array(traj.states), array(traj.mask), array(traj.derivatives),
            {name: array(value) for name, value in traj.params.items()})


def _validate(path: Path, t: np.ndarray, x: np.ndarray, m: np.ndarray | None, dx: np.ndarray | None,
              params: dict[str, np.ndarray], names: tuple[str, ...], system_params: Any, meta: Any, *,
              keys: dict[str, str | None] | None = None, layout: str = "NTD") -> None:
    """DataFormatError unless these make a valid file; the one set of rules of :func:`load` and :func:`save`.

    Arrays are in (N, T, *state_shape) order with shapes already consistent; ``keys`` are the dataset names
    the messages use and ``layout`` the axis order of the file, so that indices in messages are positions
    as stored there.
    """
    keys = {"states": "states", "t": "t", "mask": "mask", "derivatives": "derivatives"} | (keys or {})

    def stored(index: np.ndarray) -> tuple[int, ...]:
        index = tuple(int(i) for i in index)
        if layout == "TND" and len(index) >= 2:
            return (index[1], index[0], *index[2:])
        return index[1:] if layout == "TD" and len(index) >= 2 else index

    t = np.asarray(t, dtype=np.float64)
    if not np.all(np.isfinite(t)):
        raise DataFormatError(f"{path}: key '{keys['t']}' contains NaN or Inf")
    steps = np.diff(t, axis=-1)
    if np.any(steps <= 0):
        *row, col = (int(i) for i in np.argwhere(steps <= 0)[0])
        now, before = t[(*row, col + 1)], t[(*row, col)]
        raise DataFormatError(f"{path}: key '{keys['t']}' is not strictly increasing "
                              f"(at index {stored((*row, col + 1))}: {now:g} after {before:g})")
    if m is not None and m.dtype != bool:
        not_boolean = ~((m == 0) | (m == 1))
        if not_boolean.any():
            where = np.argwhere(not_boolean)[0]
            raise DataFormatError(f"{path}: key '{keys['mask']}' must be boolean (True where observed), "
                                  f"holds {m[tuple(where)]!r} at index {stored(where)}")
    observed = None if m is None else m.astype(bool)
    for key, value in ((keys["states"], x), (keys["derivatives"], dx)):
        if value is None:
            continue
        bad = ~np.isfinite(value) if observed is None else ~np.isfinite(value) & observed
        if bad.any():
            hint = "" if m is not None else (" (add a boolean mask to mark unobserved entries, or read NaN "
                                             "as unobserved: missing='nan', --missing nan)")
            raise DataFormatError(f"{path}: key '{key}' has NaN or Inf at index "
                                  f"{stored(np.argwhere(bad)[0])}{hint}")
    for name, value in params.items():
        bad = ~np.isfinite(value)
        if bad.any():
            raise DataFormatError(f"{path}: key 'params/{name}' has NaN or Inf at index "
                                  f"{tuple(int(i) for i in np.argwhere(bad)[0])}")
    for attr, value in (("params", system_params), ("meta", meta)):
        if not isinstance(value, dict):
            raise DataFormatError(f"{path}: attribute '{attr}' must be a JSON object ({{...}}), "
                                  f"got {type(value).__name__} {value!r:.40}")
    state_shape = x.shape[2:]
    expected, per = (state_shape[0], "channel (first state axis)") if len(state_shape) > 1 else (
        math.prod(state_shape), "state component")
    if names and len(names) != expected:
        raise DataFormatError(f"{path}: attribute 'state_names' has {len(names)} names "
                              f"{list(names)[:8]} but states of shape {tuple(state_shape)} need one per "
                              f"{per}, {expected} (or none)")


def _to_ntd(a: np.ndarray, layout: str, path: Path, key: str) -> np.ndarray:
    """Move the axes of ``a`` from ``layout`` into (N, T, *state_shape)."""
    min_rank = len(layout)
    if layout not in LAYOUTS:  # a field layout: every axis named
        if a.ndim != len(layout):
            raise DataFormatError(f"{path}: key '{key}' has rank {a.ndim} (shape {a.shape}); layout {layout} "
                                  f"names {len(layout)} axes")
        lead = [layout.index(ch) for ch in "NT" if ch in layout]
        channel = [layout.index("C")] if "C" in layout else []
        space = [i for i, ch in enumerate(layout) if ch in SPACE_LETTERS]
        a = np.transpose(a, lead + channel + space)
        if "N" not in layout:
            a = a[None]
        if "C" not in layout:
            a = a[:, :, None]
        return a
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
