"""Latent ODEs against ODE-RNN, GRU-Δt and a constant on partial, irregular, noisy observations.

Data (each a training file of whole sequences and a separate test set, 51 samples per sequence unless said):

- pendulum, θ only (t ∈ [0, 5], dt 0.1, amplitudes up to 3 rad: strongly nonlinear, periods 2–5);
- Lorenz-63, x only (t ∈ [0, 2] on the attractor after a transient of 2, dt 0.04: about 1.8 Lyapunov times);
- each at 10 %, 30 % and 50 % of the samples kept at random per trajectory, Gaussian noise 0.01 × the
  coordinate's standard deviation;
- Rubanova's periodic toy set (Rubanova et al. 2019, lib/generate_timeseries.py): x = sin(2π f t) + z0,
  f ~ U[0.4, 0.8], z0 = 1 + N(0, 0.1²), 100 times on [0, 5], 50 % kept, noise 0.01.

Tasks on the test set: interpolation (every observation is the context, the unobserved samples are scored)
and extrapolation (the observations of the first half are the context, the whole second half is scored).
MSE is on the unobserved samples against the noise-free truth, in units of the coordinate's variance (the
constant-mean predictor scores about 1). Coverage: the fraction of those truths inside mean ± 2 std of
K = 32 samples (latent_ode only; the baselines are deterministic). Every model is trained once per data set,
through ``physdyn.training.fit`` with the same number of optimiser steps, and used for both tasks.

    flock /work/bench.lock env OMP_NUM_THREADS=1 python benchmarks/latent.py [--quick] [--steps N]

A final row gives what ``physdyn fit DATA --model latent_ode`` with nothing else (fit's recipe) reaches on
the pendulum at 30 %, through the command line. Timings are wall clock on this machine.
"""

from __future__ import annotations

import argparse
import logging
import math
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from physdyn import systems
from physdyn.data import Trajectories, observe, save
from physdyn.training import fit, load_run

MODELS = ("latent_ode", "ode_rnn", "gru_dt")
SAMPLES = 32
NOISE = 0.01


@dataclass
class Task:
    name: str
    truth: Trajectories  # the observed coordinate, noise-free, (N, T, 1)
    train: Trajectories  # what a sensor recorded (NaN where unobserved)
    test_truth: Trajectories
    test: Trajectories


def _pendulum(n: int, seed: int) -> Trajectories:
    full = systems.get("pendulum").simulate(n_trajectories=n, t_end=5.0, dt=0.1, seed=seed)
    return Trajectories(t=full.t, states=full.states[..., :1].float(), state_names=("theta",))


def _lorenz(n: int, seed: int) -> Trajectories:
    full = systems.get("lorenz").simulate(n_trajectories=n, t_end=4.0, dt=0.04, seed=seed)
    part = full.window(50, 101)  # after a transient of 2 time units: on the attractor
    return Trajectories(t=part.t - part.t[0], states=part.states[..., :1].float(), state_names=("x",))


def _periodic(n: int, seed: int) -> Trajectories:
    g = torch.Generator().manual_seed(seed)
    t = torch.linspace(0.0, 5.0, 100, dtype=torch.float64)
    freq = 0.4 + 0.4 * torch.rand(n, 1, generator=g, dtype=torch.float64)
    offset = 1.0 + 0.1 * torch.randn(n, 1, generator=g, dtype=torch.float64)
    x = torch.sin(2 * math.pi * freq * t) + offset
    return Trajectories(t=t, states=x[..., None].float(), state_names=("x",))


def make_tasks(quick: bool, n_train: int, n_test: int) -> list[Task]:
    sources = {"pendulum θ": _pendulum, "lorenz x": _lorenz}
    rates = (0.3,) if quick else (0.1, 0.3, 0.5)
    tasks = []
    for k, (name, make) in enumerate(sources.items()):
        truth, test_truth = make(n_train, 10 * k), make(n_test, 10 * k + 1)
        for rate in rates:
            seed = int(100 * rate) + 1000 * k
            train = observe(truth, keep=rate, noise=NOISE, seed=seed)
            test = observe(test_truth, keep=rate, noise=NOISE, seed=seed + 1)
            tasks.append(Task(f"{name} {int(100 * rate)} %", truth, train, test_truth, test))
    truth, test_truth = _periodic(n_train, 7), _periodic(n_test, 8)
    tasks.append(Task("periodic 50 %", truth, observe(truth, keep=0.5, noise=NOISE, seed=70), test_truth,
                      observe(test_truth, keep=0.5, noise=NOISE, seed=71)))
    return tasks


def train(task: Task, model: str, steps: int, workdir: Path) -> tuple[object, float]:
    """Fit ``model`` on the task's training file for ``steps`` full-batch steps; (model, seconds)."""
    slug = "".join(ch if ch.isalnum() else "-" for ch in task.name)
    path = save(task.train, workdir / f"{slug}.h5", overwrite=True)
    run_dir = workdir / f"run-{model}-{slug}"
    shutil.rmtree(run_dir, ignore_errors=True)
    n = task.train.n_trajectories
    config = {"data": {"path": str(path), "split": [0.9, 0.1, 0.0], "batch_size": n},
              "model": {"name": model},
              "training": {"max_epochs": steps, "seed": 0, "progress_bar": False}}
    start = time.perf_counter()
    fit(config, run_dir)
    return load_run(run_dir, "last"), time.perf_counter() - start


def score(model, task: Task, extrapolate: bool) -> tuple[float, float | None]:
    """(MSE / variance on the scored samples, coverage of mean ± 2 std or None)."""
    obs, truth = task.test, task.test_truth.states
    t, n_t = obs.t, obs.n_times
    c = n_t // 2 if extrapolate else n_t
    k = SAMPLES if model.stochastic else 1
    with torch.no_grad():
        pred = model.predict(t[:c], obs.states[:, :c], obs.mask[:, :c], t, samples=k,
                             generator=torch.Generator().manual_seed(0))
    scored = torch.zeros_like(obs.mask)
    if extrapolate:
        scored[:, c:] = True
    else:
        scored = ~obs.mask
    var = float(task.truth.states.var())
    mean = pred.mean(1)
    mse = float(((mean - truth) ** 2)[scored].mean()) / var
    cover = None
    if k > 1:
        inside = (truth - mean).abs() <= 2 * pred.std(1)
        cover = float(inside[scored].float().mean())
    return mse, cover


def constant(task: Task, extrapolate: bool) -> float:
    """The constant-mean predictor: the mean of every observed training value, everywhere."""
    obs, truth = task.test, task.test_truth.states
    scored = torch.zeros_like(obs.mask)
    if extrapolate:
        scored[:, obs.n_times // 2 :] = True
    else:
        scored = ~obs.mask
    level = task.train.states[task.train.mask].mean()
    return float(((level - truth) ** 2)[scored].mean()) / float(task.truth.states.var())


def defaults_row(task: Task, workdir: Path) -> list[str]:
    """``physdyn fit DATA --model latent_ode`` with nothing else, through the command line."""
    path = save(task.train, workdir / "defaults.h5", overwrite=True)
    run_dir = workdir / "run-defaults"
    shutil.rmtree(run_dir, ignore_errors=True)
    command = [sys.executable, "-m", "physdyn.cli", "fit", str(path), "--model", "latent_ode", "--out",
               str(run_dir)]
    print("$ physdyn fit DATA --model latent_ode --out RUN", flush=True)
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"physdyn fit failed:\n{done.stderr}")
    for line in done.stderr.splitlines():
        if line.startswith("recipe:"):
            print("    " + line)
    model = load_run(run_dir)
    (mi, ci), (me, ce) = score(model, task, False), score(model, task, True)
    return [task.name, "latent_ode (defaults)", f"{mi:.4f}", f"{me:.4f}", _pct(ci), _pct(ce),
            f"{seconds:.0f}"]


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.0f} %"


def print_table(rows: list[list[str]], header: list[str]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  ".join(str(v).ljust(w) for v, w in zip(r, widths, strict=True))  # noqa: E731
    print(line(header))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print(line(r))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="pendulum and Lorenz at 30 %% and the periodic "
                        "set, fewer steps and sequences, no defaults row")
    parser.add_argument("--steps", type=int, help="optimiser steps per model (default 120, quick 60)")
    parser.add_argument("--no-defaults", action="store_true", help="skip the defaults-only row")
    args = parser.parse_args()
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)  # no banner and summary per fit
    steps = args.steps or (60 if args.quick else 120)
    n_train, n_test = (64, 16) if args.quick else (128, 32)
    torch.manual_seed(0)
    tasks = make_tasks(args.quick, n_train, n_test)
    rows = []
    header = ["data", "model", "interp MSE", "extrap MSE", "interp cover", "extrap cover", "train s"]
    workdir = Path(tempfile.mkdtemp(prefix="physdyn-latent-"))
    try:
        for task in tasks:
            for name in MODELS:
                model, seconds = train(task, name, steps, workdir)
                (mi, ci), (me, ce) = score(model, task, False), score(model, task, True)
                rows.append([task.name, name, f"{mi:.4f}", f"{me:.4f}", _pct(ci), _pct(ce),
                             f"{seconds:.0f}"])
                print("  ".join(rows[-1]), flush=True)
            level = [f"{constant(task, False):.4f}", f"{constant(task, True):.4f}"]
            rows.append([task.name, "constant mean", *level, "–", "–", "0"])
        if not (args.quick or args.no_defaults):
            rows.append(defaults_row(next(t for t in tasks if t.name == "pendulum θ 30 %"), workdir))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"\n{steps} full-batch steps per model, {n_train} training and {n_test} test sequences per data "
          "set; MSE in units of the coordinate's variance on the unobserved samples; cover: truth inside "
          f"mean ± 2 std of {SAMPLES} samples")
    print_table(rows, header)


if __name__ == "__main__":
    main()
