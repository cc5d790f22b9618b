"""HDF5 format v1: round trips, other people's layouts, and every way a file can be refused."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from physdyn.data import DataFormatError, Trajectories, example_trajectories, load, save, write_example_file

DOCS = Path(__file__).resolve().parents[1] / "docs" / "data-format.md"


def closed_form(t: np.ndarray, x0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The example data: x_i(t) = x0_i exp(-0.1 t) cos(ω_i t), ω_i = i + 1, and its derivative.

    t: (N, T), x0: (N, D) -> states and dx/dt, (N, T, D).
    """
    omega = np.arange(1, x0.shape[-1] + 1)
    decay = np.exp(-0.1 * t)[..., None]
    phase = t[..., None] * omega
    x = x0[:, None, :] * decay * np.cos(phase)
    dx = x0[:, None, :] * decay * (-0.1 * np.cos(phase) - omega * np.sin(phase))
    return x, dx


def check_closed_form(traj: Trajectories, with_derivatives: bool = True) -> None:
    t = traj.times().numpy()
    assert np.all(t[:, 0] == 0)  # so x0 is the first state: cos(0) = exp(0) = 1
    x, dx = closed_form(t, traj.states[:, 0].double().numpy())
    tol = 1e-6 if traj.states.dtype == torch.float32 else 1e-13
    np.testing.assert_allclose(traj.states.numpy(), x, rtol=tol, atol=tol)
    if with_derivatives:
        np.testing.assert_allclose(traj.derivatives.double().numpy(), dx, rtol=1e-6, atol=1e-6)


# ----------------------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("per_trajectory_times", [False, True], ids=["shared-grid", "per-trajectory-grid"])
def test_round_trip(tmp_path, dtype, per_trajectory_times):
    traj = example_trajectories(n_trajectories=3, n_times=20, state_dim=2, seed=1,
                                per_trajectory_times=per_trajectory_times).to(dtype)
    traj.meta = {"origin": "test", "seed": 1}
    path = save(traj, tmp_path / "x.h5")
    back = load(path)

    assert back.states.dtype == dtype and back.t.dtype == torch.float64
    assert back.t.shape == ((20,) if not per_trajectory_times else (3, 20))
    if not per_trajectory_times:
        np.testing.assert_allclose(back.t.numpy(), np.linspace(0, 2, 20), rtol=0, atol=1e-15)
    check_closed_form(back)
    assert torch.equal(back.states, traj.states) and torch.equal(back.derivatives, traj.derivatives)
    assert torch.equal(back.t, traj.t) and back.mask is None
    assert back.params.keys() == {"rate"}
    assert torch.equal(back.params["rate"], torch.full((3,), 0.1, dtype=torch.float64))
    assert back.system == "custom" and back.state_names == ("x0", "x1")
    assert back.system_params == {"rate": 0.1}
    assert back.meta == {"origin": "test", "seed": 1, "source": str(path)}


def test_file_layout_matches_the_specification(tmp_path):
    """Read what save wrote with plain h5py, key by key, as docs/data-format.md lists them."""
    traj = example_trajectories(n_trajectories=2, n_times=5, state_dim=3)
    traj.mask = torch.ones_like(traj.states, dtype=torch.bool)
    path = save(traj, tmp_path / "x.h5")
    with h5py.File(path) as f:
        assert f.attrs["physdyn_format"] == 1 and f.attrs["system"] == "custom"
        assert list(f.attrs["state_names"]) == ["x0", "x1", "x2"]
        assert json.loads(f.attrs["params"]) == {"rate": 0.1}
        assert f["t"].dtype == np.float64 and f["t"].shape == (5,)
        assert f["states"].dtype == np.float64 and f["states"].shape == (2, 5, 3)
        assert f["mask"].dtype == bool and f["derivatives"].shape == (2, 5, 3)
        assert f["params/rate"].shape == (2,)


def test_mask_round_trip_and_masked_nan_accepted(tmp_path):
    traj = example_trajectories(n_trajectories=2, n_times=6, state_dim=2)
    mask = torch.ones_like(traj.states, dtype=torch.bool)
    mask[0, 3, 1] = mask[1, 0, 0] = False
    states = traj.states.clone()
    states[0, 3, 1], states[1, 0, 0] = float("nan"), float("inf")  # unobserved: allowed
    save(Trajectories(t=traj.t, states=states, mask=mask), tmp_path / "m.h5")
    back = load(tmp_path / "m.h5")
    assert torch.equal(back.mask, mask)
    assert torch.equal(back.states[mask], traj.states[mask])
    assert torch.isfinite(back.states).all()  # what nobody observed comes back as a finite filler


def test_saved_file_follows_umask(tmp_path):
    """The file is as readable as any other the user creates (a private temp file must not leak its mode)."""
    path = save(example_trajectories(), tmp_path / "x.h5")
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


# -------------------------------------------------------------------------------- other people's files


@pytest.mark.parametrize("per_trajectory_times", [False, True])
def test_time_major_file(tmp_path, per_trajectory_times):
    written = write_example_file(tmp_path / "f.h5", layout="TND", n_trajectories=3, n_times=7, state_dim=2,
                                 per_trajectory_times=per_trajectory_times)
    with h5py.File(tmp_path / "f.h5") as f:  # really time-major on disk
        assert f["grp/x"].shape == (7, 3, 2)
        assert f["grp/time"].shape == ((7,) if not per_trajectory_times else (7, 3))
    traj = load(tmp_path / "f.h5", states="grp/x", times="grp/time", layout="TND")
    assert traj.states.shape == (3, 7, 2) and traj.t.shape == written.t.shape
    check_closed_form(traj, with_derivatives=False)
    assert torch.allclose(traj.states, written.states)


def test_single_trajectory_file(tmp_path):
    write_example_file(tmp_path / "f.h5", layout="TD", n_trajectories=2, n_times=9, state_dim=3)
    with h5py.File(tmp_path / "f.h5") as f:
        assert f["grp/x"].shape == (9, 3) and f["grp/time"].shape == (9,)
    traj = load(tmp_path / "f.h5", states="grp/x", times="grp/time", layout="TD")
    assert traj.states.shape == (1, 9, 3)
    np.testing.assert_allclose(traj.t.numpy(), np.linspace(0, 2, 9))
    check_closed_form(traj, with_derivatives=False)


def test_integer_states_are_read_as_float(tmp_path):
    with h5py.File(tmp_path / "i.h5", "w") as f:
        f["x"] = np.arange(6).reshape(3, 2)
        f["t"] = [0.0, 1.0, 2.0]
    traj = load(tmp_path / "i.h5", states="x", times="t", layout="TD")
    assert traj.states.dtype == torch.float64 and traj.states[0, 2, 1] == 5


def test_integer_derivatives_and_0_1_masks_are_read_as_float_and_bool(tmp_path):
    path = write_raw(tmp_path / "i.h5", {"states": X, "t": TS, "derivatives": np.zeros((N, T, D), np.int32),
                                         "mask": changed(OBSERVED.astype(np.int8), (0, 1, 2), 0)})
    traj = load(path)
    assert traj.derivatives.dtype == torch.float64  # as docs/data-format.md promises
    assert traj.mask.dtype == torch.bool and not traj.mask[0, 1, 2] and traj.mask.sum() == N * T * D - 1


def test_derivatives_may_be_nan_where_unobserved(tmp_path):
    mask = changed(OBSERVED, (1, 4, 0), False)
    path = write_raw(tmp_path / "m.h5", {"states": X, "t": TS, "mask": mask,
                                         "derivatives": changed(X, (1, 4, 0), np.nan)})
    assert load(path).mask[1, 4, 0].item() is False


@pytest.mark.parametrize(("shape", "names"), [((3,), ["q", "p", "r"]), ((2, 4, 4), ["u", "v"]),
                                              ((1,), "position")])
def test_state_names_one_per_component_or_channel(tmp_path, shape, names):
    traj = Trajectories(t=torch.linspace(0, 1, 3), states=torch.zeros(2, 3, *shape))
    path = save(traj, tmp_path / "x.h5")
    with h5py.File(path, "a") as f:
        f.attrs["state_names"] = names
    assert load(path).state_names == ((names,) if isinstance(names, str) else tuple(names))


def test_an_integer_index_picks_one_trajectory_or_raises():
    traj = example_trajectories(n_trajectories=2)
    assert torch.equal(traj[-1].states, traj.states[1:]) and torch.equal(traj[0].states, traj.states[:1])
    for index in (2, 5, -3):
        with pytest.raises(IndexError, match=f"trajectory index {index} is out of range for 2 trajectories"):
            traj[index]


def test_docs_snippet_writes_a_loadable_file(tmp_path, monkeypatch):
    """The plain-h5py example in docs/data-format.md writes a file that load accepts."""
    blocks = re.findall(r"```python\n(.*?)```", DOCS.read_text(), flags=re.S)
    snippet = next(b for b in blocks if "import h5py" in b and "physdyn_format" in b)
    monkeypatch.chdir(tmp_path)
    exec(snippet, {})
    written = [p for p in tmp_path.iterdir() if p.suffix == ".h5"]
    assert len(written) == 1
    traj = load(written[0])
    assert traj.n_trajectories >= 1 and traj.n_times >= 2


# -------------------------------------------------------------------------------------------- refusals

N, T, D = 2, 10, 3
X = np.ones((N, T, D))  # good states
TS = np.linspace(0.0, 1.0, T)  # good times
OBSERVED = np.ones((N, T, D), bool)


def changed(a: np.ndarray, index, value) -> np.ndarray:
    a = a.copy()
    a[index] = value
    return a


# name: (datasets in the file, load arguments, key named in the message, words naming the problem)
BAD_FILES = {
    "missing states": ({"t": TS}, {}, "states", "not found"),
    "missing times": ({"states": X}, {}, "t", "not found"),
    "missing custom key": ({"states": X, "t": TS}, {"states": "grp/x"}, "grp/x", "not found"),
    "key is a group": ({"states/a": X, "t": TS}, {}, "states", "is a group"),
    "states rank too low": ({"states": X[0], "t": TS}, {}, "states", "rank 2"),
    "states rank too low for TND": ({"states": X[0], "t": TS}, {"layout": "TND"}, "states", "rank 2"),
    "states rank too low for TD": ({"states": TS, "t": TS}, {"layout": "TD"}, "states", "rank 1"),
    "times rank 3": ({"states": X, "t": TS[None, None]}, {}, "t", "rank 1 or 2"),
    "times rank 2 for TD": ({"states": X[0], "t": TS[None]}, {"layout": "TD"}, "t", "rank 1"),
    "times too short": ({"states": X, "t": TS[:-1]}, {}, "t", f"has shape ({T - 1},)"),
    "times grid wrong N": ({"states": X, "t": np.tile(TS, (N + 1, 1))}, {}, "t", f"({N + 1}, {T})"),
    "times repeated": (
        {"states": X, "t": changed(TS, 4, TS[3])}, {}, "t", "not strictly increasing (at index (4,): 0.333333"
    ),
    "times decreasing": ({"states": X, "t": TS[::-1].copy()}, {}, "t", "not strictly increasing"),
    "times per trajectory": (
        {"states": X, "t": np.stack([TS, changed(TS, 7, 0.5)])}, {},
        "t", "(at index (1, 7): 0.5 after 0.666667)",
    ),
    "times per trajectory TND": (
        {"states": X.swapaxes(0, 1), "t": np.stack([TS, changed(TS, 7, 0.5)], axis=1)}, {"layout": "TND"},
        "t", "(at index (7, 1): 0.5 after 0.666667)",
    ),
    "times NaN": ({"states": X, "t": changed(TS, 2, np.nan)}, {}, "t", "NaN or Inf"),
    "times not numbers": ({"states": X, "t": np.array([b"a"] * T)}, {}, "t", "must hold real numbers"),
    "states NaN": ({"states": changed(X, (1, 2, 0), np.nan), "t": TS}, {}, "states", ("NaN", "(1, 2, 0)")),
    "states Inf": ({"states": changed(X, (0, 9, 2), np.inf), "t": TS}, {}, "states", ("Inf", "(0, 9, 2)")),
    "states NaN where observed": (
        {"states": changed(X, (0, 1, 1), np.nan), "t": TS, "mask": OBSERVED}, {}, "states", "NaN or Inf"
    ),
    "states empty": ({"states": np.ones((0, T, D)), "t": TS}, {}, "states", "is empty"),
    "states no times": ({"states": np.ones((N, 0, D)), "t": TS[:0]}, {}, "states", "is empty"),
    "mask wrong shape": ({"states": X, "t": TS, "mask": OBSERVED[..., :-1]}, {}, "mask", "shape"),
    "derivatives wrong shape": ({"states": X, "t": TS, "derivatives": X[:1]}, {}, "derivatives", "shape"),
    "params wrong shape": ({"states": X, "t": TS, "params/k": np.ones(N + 1)}, {}, "params/k", "shape"),
    "params NaN": ({"states": X, "t": TS, "params/k": np.array([1.0, np.nan])}, {}, "params/k",
                   ("NaN or Inf", "(1,)")),
    "derivatives NaN": (
        {"states": X, "t": TS, "derivatives": changed(X, (1, 3, 2), np.nan)}, {}, "derivatives",
        ("NaN or Inf", "(1, 3, 2)"),
    ),
    "derivatives Inf where observed": (
        {"states": X, "t": TS, "mask": changed(OBSERVED, (0, 0, 0), False),
         "derivatives": changed(X, (0, 5, 1), np.inf)}, {}, "derivatives", ("NaN or Inf", "(0, 5, 1)"),
    ),
    "mask of 0.5": ({"states": X, "t": TS, "mask": changed(np.ones((N, T, D)), (1, 2, 0), 0.5)}, {}, "mask",
                    ("must be boolean", "0.5", "(1, 2, 0)")),
    "mask of int8 2": ({"states": X, "t": TS, "mask": changed(OBSERVED.astype(np.int8), (0, 7, 1), 2)}, {},
                       "mask", ("must be boolean", "2", "(0, 7, 1)")),
    "states NaN TND": ({"states": changed(X, (1, 2, 0), np.nan).swapaxes(0, 1), "t": TS}, {"layout": "TND"},
                       "states", "at index (2, 1, 0)"),  # as stored in the time-major file
}


def write_raw(path: Path, datasets: dict, attrs: dict | None = None) -> Path:
    with h5py.File(path, "w") as f:
        for key, value in datasets.items():
            f.create_dataset(key, data=value)
        f.attrs.update(attrs or {})
    return path


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_refused_with_file_key_and_problem(tmp_path, case):
    datasets, kwargs, key, problem = BAD_FILES[case]
    path = write_raw(tmp_path / "bad.h5", datasets)
    with pytest.raises(DataFormatError) as err:
        load(path, **kwargs)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    assert f"'{key}'" in message
    for words in [problem] if isinstance(problem, str) else problem:
        assert words in message


@pytest.mark.parametrize(("attrs", "problem"), [
    ({"physdyn_format": 2}, "attribute 'physdyn_format' is 2"),
    ({"physdyn_format": "1"}, "attribute 'physdyn_format' must be the integer 1, got the string '1'"),
    ({"physdyn_format": [1]}, "attribute 'physdyn_format' must be the integer 1, got an array of shape (1,)"),
    ({"params": "{not json"}, "attribute 'params' or 'meta' is not valid JSON"),
    ({"params": "[1, 2]"}, "attribute 'params' must be a JSON object ({...}), got list [1, 2]"),
    ({"meta": "3"}, "attribute 'meta' must be a JSON object ({...}), got int 3"),
    ({"state_names": "position"}, "attribute 'state_names' has 1 names ['position'] but states of shape (3,) "
                                  "need one per state component, 3 (or none)"),
    ({"state_names": ["a", "b"]}, "attribute 'state_names' has 2 names"),
])
def test_refused_attributes(tmp_path, attrs, problem):
    path = write_raw(tmp_path / "bad.h5", {"states": X, "t": TS}, attrs)
    with pytest.raises(DataFormatError, match=re.escape(f"{path}: {problem}")):
        load(path)


def test_unknown_layout(tmp_path):
    path = write_example_file(tmp_path / "x.h5") and tmp_path / "x.h5"
    with pytest.raises(DataFormatError, match=re.escape(f"{path}: layout 'NDT' is not one of NTD, TND, TD")):
        load(path, layout="NDT")


@pytest.mark.parametrize("keep", [0.05, 0.5, 0.95, -1])
def test_truncated_file(tmp_path, keep):
    path = tmp_path / "x.h5"
    write_example_file(path, n_trajectories=4, n_times=50)
    raw = path.read_bytes()
    path.write_bytes(raw[: int(len(raw) * keep)] if keep > 0 else raw[:keep])
    with pytest.raises(DataFormatError, match=re.escape(f"{path}: unreadable, truncated or corrupt HDF5")):
        load(path)


@pytest.mark.parametrize(("content", "problem"), [
    (b"time,x\n0,1\n1,2\n", "not an HDF5 file"),
    (b"", "not an HDF5 file"),
    (None, "no such file"),
])
def test_not_an_hdf5_file(tmp_path, content, problem):
    path = tmp_path / "data.h5"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DataFormatError, match=re.escape(f"{path}: {problem}")):
        load(path)


# ---------------------------------------------------------------------------------------------- writes


SAVE_REFUSES = {
    "NaN without a mask": {"t": TS, "states": changed(X, (1, 2, 0), np.nan)},
    "decreasing times": {"t": TS[::-1].copy(), "states": X},
    "derivatives Inf": {"t": TS, "states": X, "derivatives": changed(X, (0, 0, 1), np.inf)},
    "mask of 0.5": {"t": TS, "states": X, "mask": changed(np.ones((N, T, D)), (1, 2, 0), 0.5)},
}


@pytest.mark.parametrize("case", list(SAVE_REFUSES))
def test_save_refuses_what_load_refuses_with_the_same_message(tmp_path, case):
    arrays = SAVE_REFUSES[case]
    path = tmp_path / "x.h5"
    traj = Trajectories(**{key: torch.from_numpy(value) for key, value in arrays.items()})
    with pytest.raises(DataFormatError) as on_save:
        save(traj, path)
    assert list(tmp_path.iterdir()) == []  # nothing written, not even a temporary file
    with pytest.raises(DataFormatError) as on_load:
        load(write_raw(path, arrays))
    assert str(on_save.value) == str(on_load.value)


def test_save_refuses_names_and_attributes_load_would_refuse(tmp_path):
    traj = example_trajectories(state_dim=2)
    for change, problem in [({"state_names": ("position",)}, "'state_names' has 1 names"),
                            ({"system_params": [1.0]}, "attribute 'params' must be a JSON object"),
                            ({"params": {"k": torch.tensor([1.0, np.nan, 2.0])}}, "'params/k' has NaN")]:
        with pytest.raises(DataFormatError, match=re.escape(problem)):
            save(Trajectories(**{**vars(traj), **change}), tmp_path / "x.h5")
    assert list(tmp_path.iterdir()) == []


def test_save_refuses_to_overwrite(tmp_path):
    path = tmp_path / "x.h5"
    path.write_bytes(b"precious")
    with pytest.raises(FileExistsError, match=re.escape(str(path))):
        save(example_trajectories(), path)
    assert path.read_bytes() == b"precious"
    save(example_trajectories(), path, overwrite=True)
    check_closed_form(load(path))


@pytest.mark.parametrize("error", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_interrupted_write_leaves_no_file(tmp_path, monkeypatch, error):
    create = h5py.Group.create_dataset

    def fail_at_derivatives(self, name, *args, **kwargs):
        if name == "derivatives":  # after t and states are in the file
            raise error
        return create(self, name, *args, **kwargs)

    monkeypatch.setattr(h5py.Group, "create_dataset", fail_at_derivatives)
    with pytest.raises(type(error)):
        save(example_trajectories(), tmp_path / "x.h5")
    assert list(tmp_path.iterdir()) == []  # neither the file nor its temporary copy


def test_interrupted_overwrite_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "x.h5"
    save(example_trajectories(n_trajectories=2, seed=3), path)

    def fail(self, name, *args, **kwargs):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(h5py.Group, "create_dataset", fail)
    with pytest.raises(OSError):
        save(example_trajectories(n_trajectories=5), path, overwrite=True)
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == ["x.h5"]
    old = load(path)
    assert old.n_trajectories == 2
    check_closed_form(old)
