"""The bundled examples: data -> ``physdyn.training.fit`` -> :func:`evaluate` -> report, end to end.

The logic lives here, inside the package, so that ``physdyn example NAME`` works from any installation;
``examples/<name>.py`` are thin scripts that call :func:`run_example`.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._evaluate import evaluate, reference_system
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
    """

    description: str
    system: str
    dataset: str
    simulate: dict[str, Any]
    config: dict[str, Any]
    horizon: int
    evaluate: dict[str, Any] = field(default_factory=dict)


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


def check_output(out: Path, force: bool) -> None:
    """FileExistsError if ``out`` holds an earlier example's outputs (or is a file) and not ``force``."""
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out}: exists and is not a folder")
    found = [name for name in OUTPUTS if (out / name).exists()]
    if found and not force:
        raise FileExistsError(f"{out}: already holds {', '.join(found)} (--force / force=True replaces them)")


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
            is simulated, ``data.h5``. Existing outputs are replaced only with ``force``; other files in the
            folder are left alone.
        data: the trajectory file to train and test on (default: the bundled ``datasets/<file>``, or, where
            that is absent, data simulated from the reference system).
        max_epochs: override the example's training budget.
        log: where progress lines go.

    Raises:
        ValueError: unknown example; FileExistsError: outputs exist and not ``force``.
    """
    from .. import systems
    from ..data import load, save
    from ..training import fit, load_run

    if name not in EXAMPLES:
        raise ValueError(f"unknown example {name!r} (available: {', '.join(EXAMPLES)})")
    example = EXAMPLES[name]
    out = Path(f"runs/{name}" if out is None else out)
    check_output(out, force)
    for item in OUTPUTS:
        path = out / item
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    out.mkdir(parents=True, exist_ok=True)

    if data is None and (DATASETS / example.dataset).is_file():
        data = DATASETS / example.dataset
    if data is None:
        log(f"simulating {example.system} ({example.dataset} is not bundled here) ...")
        data = save(systems.get(example.system).simulate(**example.simulate), out / "data.h5")
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
    test = json.loads((run_dir / "split.json").read_text())["test"]
    cfg = model.config["data"]
    trajectories = load(data, states=cfg["states"], times=cfg["times"], layout=cfg["layout"]).select(test)
    trajectories.meta["indices"] = list(test)
    horizon = min(example.horizon, trajectories.n_times - 1)
    log(f"evaluating on {len(test)} test trajectories over {horizon} steps ...")
    return evaluate(model, trajectories, horizon, system=reference_system(trajectories),
                    out_dir=out / "report", force=force, **example.evaluate)
