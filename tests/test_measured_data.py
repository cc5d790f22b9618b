"""A user's own recording: one long series split by time, gaps, missing values, masks, and the recipe that
``fit`` chooses from the data."""

from __future__ import annotations

import json
import math

import h5py
import numpy as np
import pytest
import torch

from physdyn.data import (
    Trajectories,
    WindowDataset,
    load,
    make_split,
    select_split,
    split_by_time,
    split_segments,
)
from physdyn.evaluation import evaluate
from physdyn.training import fit
from physdyn.training._recipe import choose, noise_level

FAST = {"progress_bar": False, "log_every_n_steps": 1}


def oscillator(t: np.ndarray, gamma: float = 0.1, omega: float = 2.0) -> np.ndarray:
    """A damped oscillator x = e^{−γt}(cos ωt, −sin ωt), shape (T, 2): the closed form of dx/dt = A x."""
    decay = np.exp(-gamma * t)
    return np.stack([decay * np.cos(omega * t), -decay * np.sin(omega * t)], -1)


def recording(path, t: np.ndarray, states: np.ndarray, **extra) -> None:
    """One trajectory as a lab would store it: time-major, no physdyn attributes."""
    with h5py.File(path, "w") as f:
        f["x"], f["time"] = states, t
        for key, value in extra.items():
            f[key] = value


# ------------------------------------------------------------------------------------- splits by time


def test_one_long_recording_splits_by_time_in_order():
    t = torch.linspace(0, 9.9, 100, dtype=torch.float64)
    split = split_by_time(t, (0.8, 0.1, 0.1))
    assert [(split[k]["start"], split[k]["stop"]) for k in ("train", "val", "test")] == [(0, 80), (80, 90),
                                                                                          (90, 100)]
    assert split["test"]["t_start"] == pytest.approx(9.0) and split["test"]["t_end"] == pytest.approx(9.9)
    one = Trajectories(t=t, states=torch.zeros(1, 100, 2))
    assert make_split(one, (0.8, 0.1, 0.1))["by"] == "time"  # too few trajectories for three splits
    assert make_split(one, (1.0, 0.0, 0.0))["by"] == "trajectory"  # one split needs one trajectory
    five = Trajectories(t=t, states=torch.zeros(5, 100, 2))
    assert make_split(five, (0.8, 0.1, 0.1))["by"] == "trajectory"
    assert make_split(five, (0.8, 0.1, 0.1), by="time")["by"] == "time"
    segments = split_segments(split, 5, 100)
    assert segments["val"] == [(i, 80, 90) for i in range(5)]
    part = select_split(five, split, "test")
    assert part.states.shape == (5, 10, 2) and part.meta["samples"] == [90, 100]
    with pytest.raises(ValueError, match="blocks"):
        split_by_time(t[:3], (0.8, 0.1, 0.1))


def test_windows_stay_inside_their_block_and_never_cross_a_gap():
    t = np.concatenate([np.arange(0, 50) * 0.1, 20 + np.arange(0, 50) * 0.1])  # a pause from 4.9 to 20
    traj = Trajectories(t=torch.from_numpy(t), states=torch.from_numpy(oscillator(t))[None])
    split = split_by_time(traj.t, (0.6, 0.2, 0.2))  # blocks [0, 60), [60, 80), [80, 100)
    segments = split_segments(split, 1, 100)
    ds = WindowDataset(traj, 5, 1, segments=segments["train"], max_gap=0.5)
    starts = [s for _, s in ds.index]
    # windows inside [0, 60) that do not span the step 49 -> 50: starts 0..45 and 50..55
    assert starts == list(range(0, 46)) + list(range(50, 56))
    assert ds.skipped == {"unobserved start": 0, "gap": 4}
    every = WindowDataset(traj, 5, 1, max_gap=None)
    assert len(every) == 96 and every.skipped["gap"] == 0


def test_fit_on_one_long_recording_with_the_defaults(tmp_path, cli):
    t = np.arange(0, 400) * 0.05
    path = tmp_path / "recording.h5"
    recording(path, t, oscillator(t))
    run = tmp_path / "run"
    status, out, err = cli("fit", path, "--states", "x", "--times", "time", "--layout", "TD", "--model",
                           "node", "--out", run, "--max-epochs", "2", "--set", "model.width=16",
                           "--set", "training.progress_bar=false")
    assert status == 0, err
    assert "recipe: states only: rollouts over windows of 12 samples" in err
    assert "data: train: " in err and "data: test: " in err
    split = json.loads((run / "split.json").read_text())
    assert split["by"] == "time" and split["test"]["stop"] == 400
    assert split["test"]["t_end"] == pytest.approx(t[-1])
    # the run's own file: its test block is evaluated, from that block's own first state
    status, out, err = cli("evaluate", run, "--data", path, "--horizon", 20, "--out", tmp_path / "report")
    assert status == 0, err
    assert f"evaluating samples {split['test']['start']} to 399 of its 1 trajectories" in err
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert metrics["coverage"]["t_start"] == [pytest.approx(t[split["test"]["start"]])]
    # a continuation of the recording, in another file, evaluates as it is
    later = np.arange(400, 450) * 0.05
    recording(tmp_path / "later.h5", later, oscillator(later))
    status, out, err = cli("evaluate", run, "--data", tmp_path / "later.h5", "--horizon", 30,
                           "--out", tmp_path / "report2")
    assert status == 0, err


def test_no_validation_split_monitors_the_training_loss(tmp_path):
    t = np.arange(0, 100) * 0.05
    recording(tmp_path / "r.h5", t, oscillator(t))
    run = fit({"data": {"path": str(tmp_path / "r.h5"), "states": "x", "times": "time", "layout": "TD",
                        "split": [1.0, 0.0, 0.0]},
               "model": {"name": "node", "width": 8}, "training": {"max_epochs": 1, **FAST}},
              tmp_path / "run")
    assert (run / "checkpoints" / "best.ckpt").is_file()
    assert json.loads((run / "split.json").read_text())["val"] == []


# ------------------------------------------------------------------------------- missing values, masks


def test_missing_values_from_a_mask_key_or_nan(tmp_path, cli):
    t = np.arange(0, 200) * 0.05
    x = oscillator(t)
    g = np.random.default_rng(0)
    observed = g.random(x.shape) > 0.3
    observed[::7] = True  # some fully observed starts (not at every window's: windows start 11 apart)
    with_nan = np.where(observed, x, np.nan)
    recording(tmp_path / "nan.h5", t, with_nan)
    recording(tmp_path / "masked.h5", t, np.where(observed, x, -999.0), observed=observed)
    a = load(tmp_path / "nan.h5", states="x", times="time", layout="TD", missing="nan")
    b = load(tmp_path / "masked.h5", states="x", times="time", layout="TD", mask="observed")
    assert torch.equal(a.mask, b.mask) and torch.equal(a.states, b.states)  # unobserved read as 0
    status, _, err = cli("fit", tmp_path / "nan.h5", "--states", "x", "--times", "time", "--layout", "TD",
                         "--model", "node", "--out", tmp_path / "bad")
    assert status == 2 and "--missing nan" in err and not (tmp_path / "bad").exists()
    run = tmp_path / "run"
    status, _, err = cli("fit", tmp_path / "masked.h5", "--states", "x", "--times", "time", "--layout",
                         "TD", "--mask", "observed", "--model", "node", "--out", run, "--max-epochs", "1",
                         "--set", "model.width=8", "--set", "training.progress_bar=false")
    assert status == 0, err
    assert "unobserved start" in err  # windows left out are counted, and why
    status, _, err = cli("evaluate", run, "--data", tmp_path / "masked.h5", "--horizon", 10, "--out",
                         tmp_path / "report")
    # the test block's first state may be partly unobserved: refused in one line, or evaluated
    assert status in (0, 2) and err.count("\n") <= 2


def test_a_step_nothing_observes_has_null_errors_and_a_note():
    t = torch.linspace(0, 2, 21, dtype=torch.float64)
    states = torch.from_numpy(oscillator(t.numpy()))[None].expand(3, -1, -1).clone()
    mask = torch.ones_like(states, dtype=torch.bool)
    mask[:, 7] = False
    data = Trajectories(t=t, states=torch.where(mask, states, 0.0), mask=mask)

    class Exact:
        def rollout(self, x0, t):
            return states[:, : t.shape[-1]]

    m = evaluate(Exact(), data, 20).metrics
    assert math.isnan(m["rmse"][7]) and m["rmse"][8] == 0
    assert any("1 of 21 steps have no observed truth" in note for note in m["notes"])


# ------------------------------------------------------------------------------------------- the recipe


def test_noise_level_recovers_the_noise_of_a_smooth_signal():
    # Fourth differences of a cubic vanish, so on x = a t³ + noise the estimate is the noise itself.
    g = torch.Generator().manual_seed(0)
    t = torch.linspace(0, 1, 400, dtype=torch.float64)
    clean = torch.stack([t**3, 2 - t**2], -1)[None].expand(8, -1, -1)
    for sigma in (0.003, 0.03):
        noisy = clean + sigma * torch.randn(clean.shape, generator=g, dtype=torch.float64)
        spread = noisy.flatten(0, 1).std(0)
        expected = float((sigma / spread).median())
        assert noise_level(Trajectories(t=t, states=noisy)) == pytest.approx(expected, rel=0.08)
    assert noise_level(Trajectories(t=t, states=clean.clone())) < 1e-6


def test_the_recipe_follows_the_data_and_never_overrides_the_user():
    t = torch.linspace(0, 3, 45, dtype=torch.float64)
    x = torch.from_numpy(oscillator(t.numpy()))[None].expand(25, -1, -1).clone()
    with_dxdt = Trajectories(t=t, states=x, derivatives=torch.zeros_like(x))
    chosen, reasons = choose(with_dxdt, "trajectory_matching", {})
    assert chosen["data"]["window"] == 1 and chosen["objective"] == {"rollout_weight": 0.0}
    assert chosen["training"]["precision"] == "64-true" and "dx/dt" in reasons[0]
    g = torch.Generator().manual_seed(1)
    noisy = Trajectories(t=t, states=x + 0.1 * torch.randn(x.shape, generator=g, dtype=torch.float64))
    chosen, reasons = choose(noisy, "trajectory_matching", {})
    assert chosen["data"] == {"window": 12, "stride": 11, "batch_size": 100}
    assert chosen["objective"] == {"initial_state": "fitted"} and any("noisy" in r for r in reasons)
    clean, _ = choose(Trajectories(t=t, states=x), "trajectory_matching", {})
    assert "objective" not in clean
    mine, _ = choose(noisy, "trajectory_matching", {"data": {"window": 5}, "training": {"max_epochs": 3}})
    assert mine["data"]["stride"] == 4 and "window" not in mine["data"]
    assert "max_epochs" not in mine["training"]
    assert choose(noisy, "some_other_objective", {}) == ({}, [])
