"""Field models on 2-D FitzHugh-Nagumo reaction-diffusion at PDEBench's setting, one wall-clock budget each.

Every model trains on the same simulated data (``n`` x ``n`` cells, t in [0, 5] at 101 frames, Du = 1e-3,
Dv = 5e-3, k = 5e-3, u0, v0 ~ N(0, 1) per cell) through ``physdyn.training.fit`` for the same budget of
wall-clock seconds (``training.max_time``), then forecasts held-out trajectories from their first 10 frames
(PDEBench's ``initial_step``) to t = 5 through ``physdyn.evaluation.evaluate``. Columns, on the forecast
frames only (never the 10 context frames): PDEBench's nRMSE (‖e‖/‖y‖) at t = 5 and averaged over frames,
cRMSE, bRMSE and fRMSE in the low / mid / high bands (averaged over frames and channels), parameters,
training time, optimiser steps done, and the peak resident memory of the process that trained and evaluated
the model (each model runs in its own process). PDE-Net's learned diffusion coefficients are compared with
the true Du, Dv. ``persistence`` (every forecast frame = the last context frame) is the floor any model
must beat.

    flock /work/bench.lock env OMP_NUM_THREADS=1 .venv/bin/python benchmarks/pde.py [--quick]

Full: 64 x 64, 16 training trajectories (2 of them validation), 4 test, 90 s per model (about 12 minutes
on one CPU thread). ``--quick``: 32 x 32, 6 + 2 trajectories, 12 s per model (about 2 minutes).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch

#: (row name, model name, hyperparameters, extra config) -- the same data, budget and optimiser for all.
ROWS = [
    ("parabolic_cnn", "parabolic_cnn", {}, {}),
    ("parabolic_cnn stable", "parabolic_cnn", {"stable": True}, {}),
    ("hyperbolic_cnn", "hyperbolic_cnn", {}, {}),
    ("hamiltonian_cnn", "hamiltonian_cnn", {}, {}),
    ("pde_net", "pde_net", {"dx": None}, {"training": {"lr": 1e-2}}),  # dx: the grid's, filled in below
    ("unet", "unet", {}, {}),
    ("fno (PDEBench settings)", "fno", {"history": 10}, {}),
]
CONTEXT = 10


def simulate(n: int, n_train: int, n_test: int, folder: Path) -> tuple[Path, Path, dict]:
    from physdyn import systems
    from physdyn.data import save

    system = systems.get("reaction_diffusion", n=n)
    train = system.simulate(n_train, t_end=5.0, dt=0.05, seed=0)
    test = system.simulate(n_test, t_end=5.0, dt=0.05, seed=1)
    return save(train, folder / "train.h5"), save(test, folder / "test.h5"), dict(system.params)


def run_one(args: tuple) -> dict:
    """Train and evaluate one row in this (fresh) process; returns its numbers."""
    name, model, hparams, extra, train_path, test_path, budget, folder = args
    torch.set_num_threads(1)
    import logging
    import warnings

    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)  # the summaries of every fit
    warnings.filterwarnings("ignore")
    from physdyn.data import load
    from physdyn.evaluation import evaluate
    from physdyn.training import fit, load_run
    from physdyn.training._config import merge

    config = merge({"data": {"path": str(train_path), "split": [0.875, 0.125, 0.0]},
                    "model": {"name": model, **hparams},
                    "training": {"max_epochs": 10_000, "max_time": _hms(budget), "schedule": "none",
                                 "progress_bar": False, "log_every_n_steps": 1_000_000}}, extra)
    run_dir = Path(folder) / name.replace(" ", "_")
    start = time.perf_counter()
    fit(config, run_dir)
    train_s = time.perf_counter() - start
    learned = load_run(run_dir, "last")
    test = load(test_path)
    report = evaluate(learned, test, test.n_times - 1, context=CONTEXT, system=_system(test), plots=False,
                      lyapunov=False, attractor_steps=0)
    row = _numbers(report.metrics)
    row.update(name=name, params=sum(p.numel() for p in learned.model.parameters()), train_s=train_s,
               steps=_steps(run_dir), peak_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    if model == "pde_net":
        row["diffusion"] = learned.model.diffusion_coefficients().tolist()
    return row


def _hms(seconds: float) -> str:
    """Seconds as training.max_time's "HH:MM:SS" (whole seconds)."""
    s = max(1, round(seconds))
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _system(data):
    from physdyn.evaluation import reference_system

    return reference_system(data)


def _steps(run_dir: Path) -> int | None:
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    return ckpt.get("global_step")


def _numbers(m: dict) -> dict:
    f = m["field"]
    return {"nrmse_final": f["nrmse"]["final"], "nrmse_mean": f["nrmse"]["mean"], "crmse": f["crmse"]["mean"],
            "brmse": f["brmse"]["mean"], "f_low": f["frmse_low"]["mean"], "f_mid": f["frmse_mid"]["mean"],
            "f_high": f["frmse_high"]["mean"], "balance": f.get("mean_balance", {}).get("model")}


def persistence(test_path: Path) -> dict:
    """Every forecast frame is the last context frame."""
    from physdyn.data import load
    from physdyn.metrics import field_metrics

    test = load(test_path)
    true = test.states[:, CONTEXT:].double()
    pred = test.states[:, CONTEXT - 1 : CONTEXT].double().expand_as(true)
    f = field_metrics(pred, true)
    return {"name": "persistence", "nrmse_final": float(f["nrmse"][-1].mean()),
            "nrmse_mean": float(f["nrmse"].mean()), "crmse": float(f["crmse"].mean()),
            "brmse": float(f["brmse"].mean()), "f_low": float(f["frmse_low"].mean()),
            "f_mid": float(f["frmse_mid"].mean()), "f_high": float(f["frmse_high"].mean()), "params": 0,
            "train_s": 0.0, "steps": 0, "peak_mib": float("nan")}


def _fmt(x, spec=".3g") -> str:
    return "n/a" if x is None else format(x, spec)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="32 x 32, fewer trajectories, 12 s per model")
    parser.add_argument("--budget", type=float, help="seconds of training per model (default 90, quick 12)")
    parser.add_argument("--json", type=Path, help="also write the rows to this file")
    args = parser.parse_args(argv)
    n, n_train, n_test, budget = (32, 8, 2, 12.0) if args.quick else (64, 16, 4, 90.0)
    budget = args.budget or budget
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        start = time.perf_counter()
        train_path, test_path, params = simulate(n, n_train, n_test, folder)
        print(f"data: {n} x {n} cells, {n_train} training / {n_test} test trajectories of 101 frames "
              f"(simulated in {time.perf_counter() - start:.0f} s); {budget:g} s of training per model; "
              f"forecasts from {CONTEXT} context frames to t = 5", flush=True)
        rows = [persistence(test_path)]
        spawn = mp.get_context("spawn")  # a fresh process per model: its own peak memory, no shared state
        for name, model, hparams, extra in ROWS:
            hparams = {k: (2.0 / n if k == "dx" else v) for k, v in hparams.items()}
            try:
                import importlib.util

                if model == "fno" and importlib.util.find_spec("neuralop") is None:
                    print(f"{name}: skipped, neuraloperator not installed (pip install -e \".[operators]\")")
                    continue
                with spawn.Pool(1) as pool:
                    rows.append(pool.apply(run_one, ((name, model, hparams, extra, train_path, test_path,
                                                      budget, str(folder)),)))
            except Exception as err:  # a row that fails is reported, the table goes on
                print(f"{name}: failed ({type(err).__name__}: {err})", flush=True)
                continue
            print(f"  done: {name} ({rows[-1]['train_s']:.0f} s, {rows[-1]['steps']} steps)", flush=True)
    columns = [("model", 26), ("nRMSE t=5", 9), ("nRMSE avg", 9), ("cRMSE", 8), ("bRMSE", 8),
               ("fRMSE lo", 8), ("fRMSE mid", 9), ("fRMSE hi", 8), ("params", 7), ("train s", 7),
               ("steps", 6), ("peak MiB", 8)]
    header = " ".join(f"{title:{'<' if i == 0 else '>'}{width}s}" for i, (title, width) in enumerate(columns))
    print("\n" + header + "\n" + "-" * len(header))
    for r in rows:
        cells = [r["name"], *(_fmt(r[k]) for k in ("nrmse_final", "nrmse_mean", "crmse", "brmse", "f_low",
                                                   "f_mid", "f_high")),
                 str(r["params"]), f"{r['train_s']:.0f}", _fmt(r["steps"], "d"), _fmt(r["peak_mib"], ".0f")]
        pairs = enumerate(zip(cells, columns, strict=True))
        print(" ".join(f"{c:{'<' if i == 0 else '>'}{w}s}" for i, (c, (_, w)) in pairs))
    for r in rows:
        if "diffusion" in r:
            du, dv = r["diffusion"]
            print(f"\n{r['name']}: learned Du = {du:.4g} (true {params['Du']:g}, "
                  f"{100 * (du / params['Du'] - 1):+.1f} %), Dv = {dv:.4g} (true {params['Dv']:g}, "
                  f"{100 * (dv / params['Dv'] - 1):+.1f} %)")
        if r.get("balance"):
            print(f"{r['name']}: mean-balance residual (RMS of d<x>/dt - <R(x)>) u {r['balance'][0]:.3g}, "
                  f"v {r['balance'][1]:.3g}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
