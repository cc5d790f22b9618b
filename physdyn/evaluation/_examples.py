"""The bundled examples: data -> ``physdyn.training.fit`` -> :func:`evaluate` -> report, end to end.

The logic lives here, inside the package, so that ``physdyn example NAME`` works from any installation;
``examples/<name>.py`` are thin scripts that call :func:`run_example`.
"""

from __future__ import annotations

import json
import logging
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py

from ._evaluate import evaluate, reference_system
from ._report import foreign_in_report
from ._results import Report

#: Where the bundled data sets live in a source checkout (or an editable install).
DATASETS = Path(__file__).resolve().parents[2] / "datasets"
#: What an example writes inside its output folder; with ``force`` exactly these are replaced.
OUTPUTS = ("data.h5", "run", "report")


@dataclass(frozen=True)
class Example:
    """One end-to-end example.

    Attributes:
        description: one line for ``physdyn example --list``.
        system: the reference system of the data.
        dataset: file name of the bundled data under ``datasets/``.
        simulate: keyword arguments of ``System.simulate`` to make the data when the file is absent.
        config: the training config (sections data, model, objective, training; data.path is filled in).
        horizon: rollout steps evaluated (at most the length of the test trajectories).
        evaluate: keyword arguments of :func:`evaluate` (``context``, ``samples``, ...).
        observe: keyword arguments of ``physdyn.data.observe`` applied to simulated data: what a partial,
            irregular, noisy sensor records of it (None: the full states).
        params: parameters of the reference system that simulates the data (e.g. the grid size ``n``).
    """

    description: str
    system: str
    dataset: str
    simulate: dict[str, Any]
    config: dict[str, Any]
    horizon: int
    evaluate: dict[str, Any] = field(default_factory=dict)
    observe: dict[str, Any] | None = None
    params: dict[str, Any] = field(default_factory=dict)  # parameters of the system that simulates the data


EXAMPLES: dict[str, Example] = {
    "pendulum-hnn": Example(
        description="Hamiltonian neural network on the ideal pendulum: energy conserved over long rollouts",
        system="pendulum",
        dataset="pendulum.h5",
        simulate={"n_trajectories": 64, "t_end": 20.0, "dt": 0.05, "seed": 0},  # as datasets/pendulum.md
        config={
            # the bundled data carries exact dx/dt, so derivative matching alone suffices (pairs of samples);
            # a rollout loss here cost 5x the time for an 8x larger error at the horizon
            "data": {"window": 2, "stride": 1, "batch_size": 512},
            "model": {"name": "hnn", "width": 64, "depth": 2},
            "objective": {"rollout_weight": 0.0},
            "training": {"max_epochs": 40, "lr": 3e-3, "seed": 0, "progress_bar": False},
        },
        horizon=400,
    ),
    "lorenz-node": Example(
        description="neural ODE on Lorenz-63: valid prediction time, Lyapunov exponent and attractor",
        system="lorenz",
        dataset="lorenz.h5",
        simulate={"n_trajectories": 32, "t_end": 15.0, "dt": 0.02, "seed": 0},  # as datasets/lorenz.md
        config={
            # derivative matching on the bundled exact dx/dt in float64 (benchmarks/learning.py's recipe): a
            # chaotic forecast amplifies every error of the field, so the field must be fitted tightly
            "data": {"window": 1, "batch_size": 512},
            "model": {"name": "node", "width": 128, "depth": 3, "activation": "silu"},
            "objective": {"rollout_weight": 0.0},
            "training": {"max_epochs": 150, "lr": 3e-3, "schedule": "cosine", "precision": "64-true",
                         "seed": 0, "progress_bar": False},
        },
        horizon=500,
        evaluate={"attractor_steps": 2500},
    ),
    "pendulum-latent": Example(
        description="latent ODE on the pendulum seen through θ alone at 30 % of the samples: interpolation, "
                    "extrapolation and its uncertainty",
        system="pendulum",
        dataset="pendulum_theta_30.h5",  # not bundled: simulated, then observed
        simulate={"n_trajectories": 128, "t_end": 5.0, "dt": 0.1, "seed": 0},
        observe={"components": [0], "keep": 0.3, "noise": 0.01, "seed": 0},
        config={
            # fit's recipe for sequences (lr 0.01 annealed, KL annealing) with a smaller step budget: the
            # first half of each test trajectory is the context, the second half is extrapolated
            "data": {"batch_size": 128},
            "model": {"name": "latent_ode"},
            "training": {"max_epochs": 300, "seed": 0, "progress_bar": False},
        },
        horizon=50,
        evaluate={"context": 26, "samples": 32},
    ),
    "robertson-kinetics": Example(
        description="mass-action kinetics on Robertson: learned rate constants, exact mass, no negatives",
        system="robertson",
        dataset="robertson.h5",
        simulate={"n_trajectories": 16, "seed": 0},  # as datasets/robertson.md
        config={
            # the reactions as a chemist writes them; everything else is fit's kinetics recipe (the rate
            # constants estimated from the data, then refined through the stiff solver)
            "data": {},
            "model": {"name": "kinetics", "reactions": ["A -> B", "2 B -> B + C", "B + C -> A + C"]},
            "training": {"max_epochs": 60, "seed": 0, "progress_bar": False},
        },
        horizon=103,
    ),
    "langevin-sde": Example(
        description="neural SDE on the Langevin pendulum: learned noise, calibrated sample forecasts",
        system="pendulum",
        dataset="pendulum_langevin.h5",  # not bundled: simulated (noise 1: friction 0.5, a bath at kT = 1)
        simulate={"n_trajectories": 64, "t_end": 20.0, "dt": 0.05, "seed": 0, "noise": 1.0},
        config={
            # fit's recipe for the transition likelihood, written out (windows of 12 sharing their ends,
            # batches of 256), with fewer steps: the diffusion is within a few per cent by then
            "data": {"window": 12, "stride": 11, "batch_size": 256},
            "model": {"name": "neural_sde"},
            "training": {"max_epochs": 200, "lr": 3e-3, "schedule": "cosine", "seed": 0,
                         "progress_bar": False},
        },
        horizon=100,
        evaluate={"samples": 100},
    ),
    "reaction-diffusion-cnn": Example(
        description="parabolic CNN on 2-D FitzHugh-Nagumo: forecasts from 10 frames, PDEBench field metrics",
        system="reaction_diffusion",
        dataset="reaction_diffusion_32.h5",  # not bundled (too large): simulated on the spot, about 10 s
        simulate={"n_trajectories": 12, "t_end": 5.0, "dt": 0.05, "seed": 0},
        config={
            # next-frame steps unrolled over 4 frames; 3 epochs of ~120 batches train in about 2 minutes on
            # one CPU thread at 32 x 32
            "data": {"window": 5, "stride": 1, "batch_size": 8},
            "model": {"name": "parabolic_cnn", "width": 16, "depth": 3},
            "training": {"max_epochs": 3, "lr": 3e-3, "schedule": "cosine", "seed": 0, "progress_bar": False},
        },
        horizon=100,
        evaluate={"context": 10},
        params={"n": 32},
    ),
}


@contextmanager
def _quiet(logger: str) -> Iterator[None]:
    """Only warnings from ``logger`` inside (an example's training need not print Lightning's banner)."""
    log = logging.getLogger(logger)
    level = log.level
    log.setLevel(logging.WARNING)
    try:
        yield
    finally:
        log.setLevel(level)


def names() -> list[str]:
    """Names of the bundled examples."""
    return list(EXAMPLES)


def check_output(out: Path, force: bool, data: str | Path | None = None) -> None:
    """FileExistsError (one line) unless the example may write its outputs into ``out``.

    Earlier outputs are replaced only with ``force``, and only where physdyn wrote them: ``run`` must be a
    run folder, ``report`` a report and ``data.h5`` the data an example simulated. ``data``, the file to
    train on, must not be one of them.
    """
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out}: exists and is not a folder")
    found = [name for name in OUTPUTS if (out / name).exists() or (out / name).is_symlink()]
    if found and not force:
        raise FileExistsError(f"{out}: already holds {', '.join(found)} (--force / force=True replaces them)")
    for name in found:
        if _within(Path.cwd(), out / name):
            raise FileExistsError(f"{out / name}: is the current folder or contains it; run from elsewhere")
        foreign = _FOREIGN[name](out / name)
        if foreign is not None:
            raise FileExistsError(f"{out / name}: not what physdyn example wrote ({foreign}); "
                                  "--force replaces only an example's own outputs: choose another OUT")
    if data is not None and any(_within(Path(data), out / name) for name in found):
        raise FileExistsError(f"--data {data}: is one of the outputs in {out} that --force replaces")


def _foreign_in_run(run: Path) -> str | None:
    """What in ``run`` is not part of a run folder written by ``fit`` (and evaluated), or None."""
    if run.is_symlink() or not run.is_dir() or not (run / "config.yaml").is_file():
        return "no config.yaml of a run"
    for entry in sorted(run.iterdir()):
        if entry.name == "report" and not entry.is_symlink() and entry.is_dir():  # evaluate's default
            inner = foreign_in_report(entry)
            if inner is not None:
                return f"report/{inner}"
            continue
        if entry.is_symlink() or entry.name not in _RUN_LAYOUT:
            return entry.name
        inside = _RUN_LAYOUT[entry.name]
        if not (entry.is_file() if inside is None else entry.is_dir()):
            return entry.name
        for item in sorted(entry.iterdir()) if inside is not None else ():
            if item.name not in inside or item.is_symlink() or not item.is_file():
                return f"{entry.name}/{item.name}"
    return None


def _foreign_in_data(path: Path) -> str | None:
    """None if ``path`` is a trajectory file that an example simulated (see :func:`run_example`)."""
    if path.is_symlink():
        return "a link"
    try:
        with h5py.File(path, "r") as f:
            meta = json.loads(f.attrs.get("meta", "{}"))
    except (OSError, TypeError, ValueError):
        return "not a physdyn file"
    if not isinstance(meta, dict) or meta.get("example") not in EXAMPLES:
        return "not data simulated by an example"
    return None


def _foreign_in_report_folder(path: Path) -> str | None:
    if path.is_symlink() or not path.is_dir():
        return "not a folder"
    return foreign_in_report(path)


def _within(path: Path, folder: Path) -> bool:
    path, folder = path.resolve(), folder.resolve()
    return path == folder or folder in path.parents


#: What a run folder holds (docs/training.md): files (None) and folders with the files they may hold.
_RUN_LAYOUT: dict[str, tuple[str, ...] | None] = {
    "config.yaml": None, "normalization.json": None, "split.json": None,
    "checkpoints": ("best.ckpt", "last.ckpt"), "logs": ("metrics.csv", "hparams.yaml"),
}
_FOREIGN: dict[str, Callable[[Path], str | None]] = {
    "data.h5": _foreign_in_data, "run": _foreign_in_run, "report": _foreign_in_report_folder,
}


@contextmanager
def _replacing(out: Path) -> Iterator[None]:
    """Outputs of the block replace those in ``out``, or, if it fails, the earlier ones stay as they were.

    The earlier outputs are moved aside to hidden names first; on failure what the block wrote is removed
    and they are moved back, on success they are deleted.
    """
    made = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    aside = {}
    for name in OUTPUTS:
        if (out / name).exists() or (out / name).is_symlink():
            aside[name] = out / f".{name}.{uuid.uuid4().hex[:12]}.old"
            (out / name).rename(aside[name])
    try:
        yield
    except BaseException:
        for name in OUTPUTS:
            _remove(out / name)
            if name in aside:
                aside[name].rename(out / name)
        if made and not any(out.iterdir()):
            out.rmdir()
        raise
    for old in aside.values():
        _remove(old)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def run_example(
    name: str,
    out: str | Path | None = None,
    *,
    data: str | Path | None = None,
    force: bool = False,
    max_epochs: int | None = None,
    log: Callable[[str], None] = print,
) -> Report:
    """Run example ``name`` end to end: data, training, evaluation; returns the evaluation report.

    Args:
        name: one of :func:`names`.
        out: output folder (default ``runs/<name>``): ``run/`` (the RUN_DIR), ``report/`` and, when the data
            is simulated, ``data.h5``. Existing outputs are replaced only with ``force`` and only if physdyn
            wrote them (see :func:`check_output`); other files in the folder are left alone. A run that
            fails leaves the earlier outputs as they were.
        data: the trajectory file to train and test on (default: the bundled ``datasets/<file>``, or, where
            that is absent, data simulated from the reference system).
        max_epochs: override the example's training budget.
        log: where progress lines go.

    Raises:
        ValueError: unknown example; FileExistsError: outputs exist and may not be replaced.
    """
    if name not in EXAMPLES:
        raise ValueError(f"unknown example {name!r} (available: {', '.join(EXAMPLES)})")
    example = EXAMPLES[name]
    out = Path(f"runs/{name}" if out is None else out)
    check_output(out, force, data)
    with _replacing(out):
        return _run(name, example, out, data, max_epochs, log)


def _run(name: str, example: Example, out: Path, data: str | Path | None, max_epochs: int | None,
         log: Callable[[str], None]) -> Report:
    from .. import systems
    from ..data import load, save, select_split
    from ..training import fit, load_run

    if data is None and (DATASETS / example.dataset).is_file():
        data = DATASETS / example.dataset
    if data is None:
        log(f"simulating {example.system} ({example.dataset} is not bundled here) ...")
        traj = systems.get(example.system, **example.params).simulate(**example.simulate)
        if example.observe is not None:
            from ..data import observe

            traj = observe(traj, **example.observe)
        traj.meta["example"] = name  # how a later --force knows this file as its own
        data = save(traj, out / "data.h5")
    data = Path(data)
    log(f"data: {data}")

    config = {section: dict(values) for section, values in example.config.items()}
    config["data"]["path"] = str(data)
    if max_epochs is not None:
        config["training"]["max_epochs"] = max_epochs
    log(f"training {config['model']['name']} for {config['training']['max_epochs']} epochs ...")
    with _quiet("lightning.pytorch"):
        run_dir = fit(config, out / "run")

    model = load_run(run_dir)
    cfg = model.config["data"]
    trajectories = select_split(load(data, states=cfg["states"], times=cfg["times"], layout=cfg["layout"],
                                     mask=cfg["mask"], missing=cfg["missing"]),
                                json.loads((run_dir / "split.json").read_text()), "test")
    horizon = min(example.horizon, trajectories.n_times - 1)
    log(f"evaluating on {trajectories.n_trajectories} test trajectories over {horizon} steps ...")
    return evaluate(model, trajectories, horizon, system=reference_system(trajectories),
                    out_dir=out / "report", **example.evaluate)
