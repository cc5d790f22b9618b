"""`physdyn fit`: the run folder it writes, foreign files, resume, reruns, and how it refuses bad input."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest
import torch
import yaml

from physdyn import systems
from physdyn.data import save, write_example_file
from physdyn.training import load_run

TINY = ("--set", "model.width=8", "--set", "model.depth=1", "--set", "data.window=4",
        "--set", "data.stride=2", "--set", "training.progress_bar=false",
        "--set", "training.log_every_n_steps=1")


@pytest.fixture(scope="module")
def lorenz_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "lorenz.h5"
    save(systems.get("lorenz").simulate(6, t_end=0.5, dt=0.02, seed=0), path)
    return path


@pytest.fixture(scope="module")
def pendulum_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "pendulum.h5"
    save(systems.get("pendulum").simulate(6, t_end=0.5, dt=0.02, seed=0), path)
    return path


def weights(run_dir):
    return torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]


def epochs_logged(run_dir):
    with open(run_dir / "logs" / "metrics.csv", newline="") as f:
        return [int(row["epoch"]) for row in csv.DictReader(f) if row.get("train_loss")]


def test_fit_writes_a_run_that_reruns_from_its_config(cli, tmp_path, lorenz_file):
    run = tmp_path / "run"
    status, out, err = cli("fit", lorenz_file, "--model", "node", "--out", run, "--max-epochs", "2", *TINY)
    assert status == 0, err
    assert out.startswith(f"wrote {run}: node, 2 epochs, best val_loss ")
    files = {p.relative_to(run).as_posix() for p in run.rglob("*") if p.is_file()}
    assert {"config.yaml", "normalization.json", "split.json", "checkpoints/last.ckpt",
            "checkpoints/best.ckpt", "logs/metrics.csv"} <= files
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["model"]["name"] == "node" and config["model"]["width"] == 8
    assert config["source"]["state_shape"] == [3] and config["training"]["max_epochs"] == 2
    assert config["objective"]["name"] == "trajectory_matching"
    assert config["data"]["path"] == str(lorenz_file.absolute())
    assert epochs_logged(run) == [0, 1]
    split = json.loads((run / "split.json").read_text())
    assert sorted(split["train"] + split["val"] + split["test"]) == list(range(6))

    learned = load_run(run)
    x0 = systems.get("lorenz").simulate(2, t_end=0.1, dt=0.02, seed=5).states[:, 0]
    assert torch.isfinite(learned.rollout(x0, torch.linspace(0, 0.2, 5))).all()

    # the resolved config alone reproduces the run
    status, _, err = cli("fit", "--config", run / "config.yaml", "--out", tmp_path / "again")
    assert status == 0, err
    first, again = weights(run), weights(tmp_path / "again")
    assert all(torch.equal(first[k], again[k]) for k in first)


def test_fit_reads_a_foreign_file_with_its_own_time_grids(cli, tmp_path):
    path = tmp_path / "theirs.h5"
    write_example_file(path, layout="TND", n_trajectories=8, n_times=12, state_dim=2,
                       per_trajectory_times=True)
    run = tmp_path / "run"
    status, _, err = cli("fit", path, "--states", "grp/x", "--times", "grp/time", "--layout", "TND",
                         "--model", "node", "--out", run, "--max-epochs", "1", "--seed", "3", *TINY)
    assert status == 0, err
    with h5py.File(path) as f:  # read the raw file the way its own tools would: time-major
        x = np.swapaxes(f["grp/x"][()], 0, 1)
    split = json.loads((run / "split.json").read_text())
    norm = json.loads((run / "normalization.json").read_text())
    train = x[split["train"]].reshape(-1, 2)
    assert norm["kind"] == "standard" and norm["state_shape"] == [2]
    np.testing.assert_allclose(norm["mean"], train.mean(0), rtol=1e-10)
    np.testing.assert_allclose(norm["std"], train.std(0), rtol=1e-10)
    config = yaml.safe_load((run / "config.yaml").read_text())
    data = config["data"]
    assert (data["states"], data["times"], data["layout"]) == ("grp/x", "grp/time", "TND")
    assert config["training"]["seed"] == 3


def test_fit_resumes_where_it_stopped(cli, tmp_path, lorenz_file):
    run = tmp_path / "run"
    assert cli("fit", lorenz_file, "--model", "node", "--out", run, "--max-epochs", "1", *TINY)[0] == 0
    status, _, err = cli("fit", "--out", run, "--resume", "--max-epochs", "2")
    assert status == 0, err
    assert epochs_logged(run) == [0, 1]
    assert yaml.safe_load((run / "config.yaml").read_text())["training"]["max_epochs"] == 2


def tree(folder):
    return sorted((p.relative_to(folder).as_posix(), p.read_bytes() if p.is_file() else None)
                  for p in folder.rglob("*"))


def _other_model(run):
    return ("--model", "hnn"), "last.ckpt: does not fit the model asked for (Unexpected key(s)"


def _other_width(run):
    return ("--set", "model.width=16"), "last.ckpt: does not fit the model asked for (size mismatch"


def _truncated_checkpoint(run):
    last = run / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[:1000])
    return (), "last.ckpt: not a readable checkpoint"


def _no_normalization(run):
    (run / "normalization.json").unlink()
    return (), "normalization.json: normalisation file not found"


def _bad_normalization(run):
    (run / "normalization.json").write_text('{"kind": "standard", "mean": [0, 0]}')
    return (), "normalization.json: not a valid normalisation file"


def _no_split(run):
    (run / "split.json").unlink()
    return (), "split.json: cannot resume, the run's split is missing"


@pytest.mark.parametrize("damage", [_other_model, _other_width, _truncated_checkpoint, _no_normalization,
                                    _bad_normalization, _no_split])
def test_a_refused_resume_leaves_the_run_as_it_was(cli, tmp_path, pendulum_file, damage):
    run = tmp_path / "run"
    assert cli("fit", pendulum_file, "--model", "node", "--out", run, "--max-epochs", "1", *TINY)[0] == 0
    args, message = damage(run)
    before = tree(run)
    status, _, err = cli("fit", "--out", run, "--resume", "--max-epochs", "2", *args)
    assert status == 2 and err.startswith("physdyn fit: error: ") and err.count("\n") == 1, err
    assert message in err, err
    assert tree(run) == before  # config.yaml included: the run can still be evaluated and resumed


def test_ctrl_c_exits_130_and_says_where_to_resume(cli, tmp_path, lorenz_file, monkeypatch):
    import signal

    from physdyn.training._module import DynamicsModule

    step = DynamicsModule.training_step

    def interrupted_in_epoch_2(self, *args, **kwargs):
        if self.current_epoch == 1:
            raise KeyboardInterrupt  # as Ctrl-C raises it, inside Lightning's loop
        return step(self, *args, **kwargs)

    monkeypatch.setattr(DynamicsModule, "training_step", interrupted_in_epoch_2)
    run = tmp_path / "run"
    status, _, err = cli("fit", lorenz_file, "--model", "node", "--out", run, "--max-epochs", "3", *TINY)
    last = run / "checkpoints" / "last.ckpt"
    assert status == 130, err
    assert err.splitlines()[-1] == (f"physdyn fit: interrupted; the run can continue from {last} "
                                    f"(physdyn fit --out {run} --resume)")
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # Lightning had switched it off
    monkeypatch.undo()
    assert cli("fit", "--out", run, "--resume")[0] == 0
    assert epochs_logged(run) == [0, 1, 2]


def test_ctrl_c_in_python_is_a_keyboard_interrupt(tmp_path, lorenz_file, monkeypatch):
    from physdyn.training import fit
    from physdyn.training._module import DynamicsModule

    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(DynamicsModule, "training_step", interrupted)
    config = {"data": {"path": str(lorenz_file), "window": 4}, "model": {"name": "node", "width": 8},
              "training": {"max_epochs": 1, "progress_bar": False}}
    with pytest.raises(KeyboardInterrupt):  # not Lightning's SystemExit
        fit(config, tmp_path / "run")


def test_settings_merge_in_order_and_read_numbers_as_numbers(tmp_path):
    from physdyn.cli import build_parser
    from physdyn.commands.fit import build_config

    (tmp_path / "sub").mkdir()
    cfg = tmp_path / "sub" / "cfg.yaml"
    cfg.write_text("data:\n  path: ../data.h5\n  window: 5\ntraining:\n  lr: 1e-3\n  max_epochs: 7\n")
    sets = ["training.weight_decay=1E-4", "data.split=[0.5,0.5,0]", "training.grad_clip=null",
            "data.window=6"]
    args = build_parser().parse_args(["fit", "--config", str(cfg), "--out", "x", "--max-epochs", "3",
                                      *[f"--set={item}" for item in sets]])
    config = build_config(args)
    path = str(tmp_path / "sub" / ".." / "data.h5")  # relative to the config file
    assert config["data"] == {"path": path, "window": 6, "split": [0.5, 0.5, 0]}
    assert config["training"] == {"lr": 1e-3, "max_epochs": 3, "weight_decay": 1e-4, "grad_clip": None}


@pytest.mark.parametrize(("args", "message"), [
    (("{data}", "--model", "nope"), "unknown model 'nope'"),
    (("{bad}", "--model", "node"), "not an HDF5 file"),
    (("{data}", "--model", "node", "--states", "missing"), "key 'missing' not found"),
    (("{data}", "--model", "node", "--config", "{tmp}/none.yaml"), "config file not found"),
    (("{data}", "--model", "node", "--set", "training.lrr=1"), "unknown config key 'training.lrr'"),
    (("{data}", "--model", "node", "--set", "model.widht=3"), "unknown config key 'model.widht'"),
    (("{data}", "--model", "node", "--set", "data.window=500"), "window=500 is longer"),
    (("{data}", "--model", "node", "--resume"), "nothing to resume"),
    (("{data}",), "model.name is required"),
    (("--model", "node"), "data.path is required"),
    (("{data}", "--model", "node", "--set", "training.accelerator=tpu"),
     "training.accelerator=tpu, training.strategy=auto: not available here"),
    (("{data}", "--model", "node", "--seed", "-1"),
     "training.seed (--seed) must be an integer from 0 to 4294967295, got -1"),
])
def test_fit_refuses_bad_input_without_writing(cli, tmp_path, lorenz_file, args, message):
    bad = tmp_path / "bad.h5"
    bad.write_text("not hdf5")
    args = [a.format(data=lorenz_file, bad=bad, tmp=tmp_path) for a in args]
    status, _, err = cli("fit", *args, "--out", tmp_path / "run")
    assert status == 2
    assert err.startswith("physdyn fit: error:") and err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "run").exists()


def test_fit_refuses_a_file_whose_states_do_not_fit_the_system_it_names(cli, tmp_path):
    from physdyn.data import Trajectories

    path = tmp_path / "three.h5"  # says pendulum (states (2,)), holds three components
    save(Trajectories(t=torch.linspace(0, 1, 8), states=torch.randn(4, 8, 3), system="pendulum"), path)
    status, _, err = cli("fit", path, "--model", "node", "--out", tmp_path / "run", *TINY)
    assert status == 2 and err.count("\n") == 1, err
    assert (f"{path}: attribute 'system' is 'pendulum', whose states have shape (2,), "
            "but key 'states' holds states of shape (3,)") in err
    assert not (tmp_path / "run").exists()


def test_fit_refuses_a_non_empty_run_folder(cli, tmp_path, lorenz_file):
    run = tmp_path / "run"
    run.mkdir()
    (run / "keep.txt").write_text("mine")
    status, _, err = cli("fit", lorenz_file, "--model", "node", "--out", run)
    assert status == 2 and "not empty" in err and "resume" in err
    assert [p.name for p in run.iterdir()] == ["keep.txt"]


@pytest.mark.slow
def test_fit_two_processes_with_ddp_from_the_command_line(tmp_path, lorenz_file):
    # "ddp" re-launches the command itself for the second process, so run it as a real command.
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "physdyn.cli", "fit", str(lorenz_file), "--model", "node",
                           "--out", str(run), "--max-epochs", "2", "--devices", "2", "--strategy", "ddp",
                           "--set", "training.accelerator=cpu", *TINY],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert epochs_logged(run) == [0, 1]
    x0 = systems.get("lorenz").simulate(2, t_end=0.1, dt=0.02, seed=5).states[:, 0]
    assert torch.isfinite(load_run(run).rollout(x0, torch.linspace(0, 0.2, 5))).all()
