"""`physdyn simulate` and `physdyn systems`: what they write, and how they refuse bad input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from physdyn import systems
from physdyn.commands.simulate import parse_assignments
from physdyn.data import load

SMALL = ("--n-traj", "2", "--t-end", "1")


def lorenz_rhs(x: np.ndarray, sigma: float = 10.0, rho: float = 28.0, beta: float = 8 / 3) -> np.ndarray:
    """Lorenz (1963), written out again here so the test does not trust the code it checks."""
    u, v, w = np.moveaxis(x, -1, 0)
    return np.stack([sigma * (v - u), u * (rho - w) - v, u * v - beta * w], axis=-1)


def test_simulate_writes_a_conforming_file(cli, tmp_path):
    out = tmp_path / "lorenz.h5"
    status, stdout, stderr = cli("simulate", "lorenz", "--out", out, *SMALL, "--dt", "0.01")
    assert status == 0, stderr
    traj = load(out)
    assert traj.states.shape == (2, 101, 3)
    np.testing.assert_allclose(traj.t.numpy(), np.arange(101) * 0.01, rtol=0, atol=1e-12)
    assert traj.system == "lorenz" and traj.state_names == ("x", "y", "z")
    assert traj.system_params == pytest.approx({"sigma": 10.0, "rho": 28.0, "beta": 8 / 3})
    np.testing.assert_allclose(traj.derivatives.numpy(), lorenz_rhs(traj.states.numpy()), rtol=1e-12)
    with h5py.File(out) as f:  # the raw file, as another tool would read it
        assert f.attrs["physdyn_format"] == 1
        assert f["t"].dtype == np.float64 and f["states"].shape == (2, 101, 3)
    assert stdout.count("\n") == 1
    assert str(out) in stdout and "2×101×3" in stdout and "t from 0 to 1" in stdout


def test_set_changes_the_dynamics(cli, tmp_path):
    """--set reaches the equations, not only the metadata: the states obey Lorenz with ρ = 35."""
    out = tmp_path / "rho35.h5"
    status, _, stderr = cli("simulate", "lorenz", "--out", out, "--n-traj", "2", "--t-end", "0.2",
                            "--dt", "0.001", "--set", "rho=35", "--set", "sigma=12")
    assert status == 0, stderr
    traj = load(out)
    x, dt = traj.states.numpy(), 0.001
    assert traj.system_params["rho"] == 35 and traj.system_params["sigma"] == 12
    central = (x[:, 2:] - x[:, :-2]) / (2 * dt)  # error ~ dt² x''' / 6, well below 1e-2 here
    np.testing.assert_allclose(central, lorenz_rhs(x[:, 1:-1], sigma=12, rho=35), atol=2e-2)
    assert np.abs(central - lorenz_rhs(x[:, 1:-1])).max() > 1  # the default ρ would not fit


def test_same_arguments_give_the_same_bytes(cli, tmp_path):
    args = ("simulate", "lorenz", *SMALL, "--seed", "7")
    assert cli(*args, "--out", tmp_path / "a.h5")[0] == 0
    assert cli(*args, "--out", tmp_path / "b.h5")[0] == 0
    assert (tmp_path / "a.h5").read_bytes() == (tmp_path / "b.h5").read_bytes()
    assert cli("simulate", "lorenz", *SMALL, "--seed", "8", "--out", tmp_path / "c.h5")[0] == 0
    a, c = load(tmp_path / "a.h5"), load(tmp_path / "c.h5")
    # the seed picks the initial states
    assert not np.allclose(a.states.numpy()[:, 0], c.states.numpy()[:, 0])


def test_noise_reaches_the_sde(cli, tmp_path):
    """With additive noise σ, the increments less the drift have variance σ² dt (Itô), and reruns agree."""
    args = ("simulate", "lorenz", "--n-traj", "10", "--t-end", "0.05", "--dt", "0.001", "--noise", "2")
    status, stdout, stderr = cli(*args, "--out", tmp_path / "a.h5")
    assert status == 0, stderr
    assert "noise 2 (additive)" in stdout
    traj = load(tmp_path / "a.h5")
    assert traj.meta["noise"] == 2 and traj.meta["noise_type"] == "additive" and traj.derivatives is None
    x, dt = traj.states.numpy(), 0.001
    residual = x[:, 1:] - x[:, :-1] - 0.5 * (lorenz_rhs(x[:, 1:]) + lorenz_rhs(x[:, :-1])) * dt
    # 1500 samples: the variance ratio has a standard error of about 0.04
    assert residual.var() / (2.0**2 * dt) == pytest.approx(1.0, abs=0.15)
    assert cli(*args, "--out", tmp_path / "b.h5")[0] == 0
    assert (tmp_path / "a.h5").read_bytes() == (tmp_path / "b.h5").read_bytes()  # seeded Brownian paths


def test_existing_file_needs_force(cli, tmp_path):
    out = tmp_path / "x.h5"
    out.write_bytes(b"precious")
    status, stdout, stderr = cli("simulate", "lorenz", "--out", out, *SMALL)
    assert status == 2 and stdout == ""
    assert stderr == f"physdyn simulate: error: --out {out}: file exists (add --force to overwrite it)\n"
    assert out.read_bytes() == b"precious"
    assert cli("simulate", "lorenz", "--out", out, *SMALL, "--force")[0] == 0
    assert load(out).states.shape == (2, 101, 3)


def test_quiet_prints_nothing(cli, tmp_path):
    assert cli("simulate", "lorenz", "--out", tmp_path / "q.h5", *SMALL, "--quiet") == (0, "", "")


BAD_INPUT = [
    (["nosuch"], "unknown system 'nosuch'"),
    (["--set", "gamma=1"], "unknown parameter 'gamma'"),
    (["--set", "rho=abc"], "'abc' is not a number"),
    (["--set", "rho=nan"], "rho=nan: must be a finite number"),
    (["--set", "rho"], "expected KEY=VALUE"),
    (["--set", "rho=1", "--set", "rho=2"], "given more than once"),
    (["--dt", "0"], "--dt 0.0: must be a positive number"),
    (["--dt", "-0.1"], "--dt -0.1: must be a positive number"),
    (["--dt", "nan"], "--dt nan: must be a positive number"),
    (["--t-end", "0"], "--t-end 0.0: must be a positive number"),
    (["--t-end", "-1"], "--t-end -1.0: must be a positive number"),
    (["--t-end", "1", "--dt", "3"], "dt=3.0 is longer than t_end=1.0"),
    (["--n-traj", "0"], "--n-traj 0: must be at least 1"),
    (["--noise", "-0.5"], "--noise -0.5: must be a number >= 0"),
    (["--noise-type", "additive"], "--noise-type additive: applies only with --noise > 0"),
    (["--noise", "1", "--noise-type", "pink"], "unknown noise_type 'pink' for lorenz"),
]


@pytest.mark.parametrize(("extra", "problem"), BAD_INPUT, ids=[" ".join(e) for e, _ in BAD_INPUT])
def test_bad_input_exits_2_with_one_line(cli, tmp_path, extra, problem):
    system = [] if extra[0] == "nosuch" else ["lorenz"]
    args = ["simulate", *(extra if system == [] else system + extra), "--out", tmp_path / "x.h5"]
    if "--n-traj" not in extra:
        args += ["--n-traj", "2"]
    status, stdout, stderr = cli(*args)
    assert status == 2 and stdout == ""
    assert stderr.count("\n") == 1 and stderr.startswith("physdyn simulate: error: ")
    assert problem in stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("where", ["missing folder", "folder as file"])
def test_unusable_output_path(cli, tmp_path, where):
    out = tmp_path / "nowhere" / "x.h5" if where == "missing folder" else tmp_path
    before = sorted(tmp_path.iterdir())
    status, _, stderr = cli("simulate", "lorenz", "--out", out, *SMALL)
    assert status == 2 and stderr.count("\n") == 1
    assert ("does not exist" if where == "missing folder" else "is a folder") in stderr and str(out) in stderr
    assert sorted(tmp_path.iterdir()) == before


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs POSIX permissions, not as root")
def test_read_only_folder(cli, tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir(mode=0o555)
    status, _, stderr = cli("simulate", "lorenz", "--out", folder / "x.h5", *SMALL)
    assert status == 2 and "not writable" in stderr and stderr.count("\n") == 1
    assert list(folder.iterdir()) == []


def test_write_failure_midway_leaves_nothing(cli, tmp_path, monkeypatch):
    """A disk that fills up while the file is written: exit 2, and neither the file nor its temporary copy."""
    create = h5py.Group.create_dataset

    def full_disk(self, name, *args, **kwargs):
        if name == "states":
            raise OSError(28, "No space left on device")
        return create(self, name, *args, **kwargs)

    monkeypatch.setattr(h5py.Group, "create_dataset", full_disk)
    status, _, stderr = cli("simulate", "lorenz", "--out", tmp_path / "x.h5", *SMALL)
    assert status == 2 and stderr.count("\n") == 1
    assert "cannot write (No space left on device)" in stderr
    assert list(tmp_path.iterdir()) == []


def test_diverged_simulation_is_not_written(cli, tmp_path, monkeypatch):
    integrate = systems.Lorenz.integrate

    def blows_up(self, x0, t, progress=False):
        x = integrate(self, x0, t)
        x[1, 40:] = float("inf")
        return x

    monkeypatch.setattr(systems.Lorenz, "integrate", blows_up)
    status, _, stderr = cli("simulate", "lorenz", "--out", tmp_path / "x.h5", *SMALL)
    assert status == 2 and stderr.count("\n") == 1
    assert "diverged: trajectory 1 is NaN or Inf from t = 0.4 on" in stderr
    assert list(tmp_path.iterdir()) == []


def test_interrupt_leaves_nothing(cli, tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(systems.Lorenz, "integrate", interrupted)
    status, _, stderr = cli("simulate", "lorenz", "--out", tmp_path / "x.h5", *SMALL)
    assert status == 130 and "interrupted" in stderr
    assert list(tmp_path.iterdir()) == []


def test_parse_assignments_keeps_integers():
    values = parse_assignments(["n=64", "k=5e-3", " rho = 35.5 "])
    assert values == {"n": 64, "k": 0.005, "rho": 35.5} and isinstance(values["n"], int)


@pytest.mark.parametrize("command", ["simulate", "systems"])
def test_help_has_examples(capsys, command):
    from physdyn.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert f"physdyn {command}" in capsys.readouterr().out.split("examples:")[1]


def test_systems_table_lists_every_system(cli):
    status, stdout, _ = cli("systems")
    assert status == 0
    lines = stdout.splitlines()
    assert lines[0].split()[:2] == ["NAME", "STATE"]
    names = [line.split()[0] for line in lines[1:]]
    assert names == systems.names()
    lorenz = lines[1 + names.index("lorenz")]
    # Lorenz (1963): three states, σ = 10, ρ = 28, β = 8/3.
    for text in ("(3,)", "sigma=10", "rho=28", "beta=2.66667", "Lorenz-63"):
        assert text in lorenz


def test_systems_json(cli):
    status, stdout, _ = cli("systems", "--json")
    assert status == 0
    records = {r["name"]: r for r in json.loads(stdout)}
    assert set(records) == set(systems.names())
    assert records["lorenz"]["state_shape"] == [3]
    assert records["lorenz"]["params"] == pytest.approx({"sigma": 10.0, "rho": 28.0, "beta": 8 / 3})
    for record in records.values():
        assert record["description"], f"{record['name']} has no description"


def test_console_script_exit_status_and_stderr(tmp_path):
    """The installed `physdyn` script: exit 2, one line on stderr, no traceback, no file."""
    script = shutil.which("physdyn", path=str(Path(sys.executable).parent)) or shutil.which("physdyn")
    assert script, "the physdyn console script is not installed"
    out = tmp_path / "x.h5"
    result = subprocess.run([script, "simulate", "lorenz", "--out", str(out), "--dt", "0"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr == "physdyn simulate: error: --dt 0.0: must be a positive number\n"
    assert result.stdout == "" and not out.exists()


def test_a_bad_data_file_is_bad_input(cli, monkeypatch):
    """Any command that meets a DataFormatError exits 2 with its one line; other errors are not hidden."""
    from physdyn.commands import systems as command
    from physdyn.data import DataFormatError

    def bad_file(args):
        raise DataFormatError("x.h5: key 't' not found (datasets: states)")

    monkeypatch.setattr(command, "run", bad_file)
    assert cli("systems") == (2, "", "physdyn systems: error: x.h5: key 't' not found (datasets: states)\n")

    def bug(args):
        raise ValueError("a bug, not bad input")

    monkeypatch.setattr(command, "run", bug)
    with pytest.raises(ValueError, match="a bug"):
        cli("systems")
