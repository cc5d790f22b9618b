"""Simulation benchmark: speed at matched accuracy, every baseline measured in the same run.

    python benchmarks/simulate.py [--quick] [--n-traj 1024] [--scipy-subset 64] [--threads 1]

Lorenz-63 (σ, ρ, β = 10, 28, 8/3), ``--n-traj`` random starts from ``random_initial_states`` (seed 0),
t ∈ [0, 10] with an output every 0.01, float64:

- physdyn ``Lorenz.simulate`` (its default solver: the DOP853 tableau at a fixed step of 0.005, one batch)
  and ``rk_integrate`` with the same tableau at a step of 0.01;
- ``scipy.integrate.solve_ivp`` DOP853 looped over trajectories (the first ``--scipy-subset`` of them are
  timed and the time scaled linearly to all; their error is over that subset);
- ``torchdiffeq.odeint`` dopri5 (and dopri8) on the whole batch (one shared adaptive step).

Each method runs at two accuracy levels, the tolerances chosen (by a calibration on 64 starts) so that the
errors are comparable: "tight" (~1e-7, the floor float64 reaches) and "loose" (~1e-5). The error is the
largest absolute deviation over all starts, outputs and coordinates from a reference computed by a
Taylor-series method of order 30 in extended precision (numpy longdouble, 64-bit mantissa), whose own error
the table states (its distance from a second reference at order 24 and twice the step).

On Lorenz-63 an error made at time s grows like e^(λ (10 − s)) with λ ≈ 0.9, and more for the least stable
starts: the largest error at t = 10 is ~1e7 times the round-off of one step. No float64 solver goes much below
~1e-8 there, so errors at that level mean "at the floor", and a tolerance tighter than the floor only costs
time. The Robertson rows come from ``benchmarks/_robertson_rows.py`` when it is present.
"""

from __future__ import annotations

import argparse
import inspect
import time
from collections.abc import Callable

import numpy as np
import torch
import torchdiffeq
from scipy.integrate import solve_ivp

from physdyn.solvers import rk_integrate
from physdyn.systems import get


def taylor_reference(x0: np.ndarray, n_out: int, dt_out: float, params: dict[str, float], order: int = 30,
                     h: float = 0.005) -> np.ndarray:
    """Lorenz-63 by Taylor series in numpy longdouble: x0 (N, 3) → (N, n_out, 3) at t = 0, dt_out, ...

    The series coefficients follow from the equations by the recurrences (k + 1) x_{k+1} = σ (y_k − x_k),
    (k + 1) y_{k+1} = ρ x_k − y_k − (xz)_k, (k + 1) z_{k+1} = (xy)_k − β z_k, with (xz)_k = Σ_j x_j z_{k−j}.
    Exact coefficients and 18-digit arithmetic make it independent of every float64 solver compared here.
    """
    ld = np.longdouble
    sigma, rho, beta = (ld(params[k]) for k in ("sigma", "rho", "beta"))
    inverse = 1 / np.arange(1, order + 1, dtype=ld)
    substeps = round(dt_out / h)
    step = ld(dt_out) / substeps
    state = np.asarray(x0, dtype=ld).T.copy()  # (3, N)
    out = [state.copy()]
    coef = np.zeros((order + 1, 3, state.shape[1]), dtype=ld)
    for _ in range(n_out - 1):
        for _ in range(substeps):
            coef[0] = state
            for k in range(order):
                x, y, z = coef[: k + 1, 0], coef[: k + 1, 1], coef[: k + 1, 2]
                xz = np.einsum("kn,kn->n", x, z[::-1])
                xy = np.einsum("kn,kn->n", x, y[::-1])
                coef[k + 1, 0] = sigma * (coef[k, 1] - coef[k, 0]) * inverse[k]
                coef[k + 1, 1] = (rho * coef[k, 0] - coef[k, 1] - xz) * inverse[k]
                coef[k + 1, 2] = (xy - beta * coef[k, 2]) * inverse[k]
            state = coef[order]
            for k in range(order - 1, -1, -1):  # Horner
                state = state * step + coef[k]
        out.append(state.copy())
    return np.stack(out, axis=1).transpose(2, 1, 0)


def timed(fn: Callable[[], np.ndarray]) -> tuple[np.ndarray, float, float]:
    """fn's result, wall-clock seconds and CPU seconds of this process (robust to a busy machine)."""
    start, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - start, time.process_time() - cpu


def lorenz_rows(n_traj: int, n_scipy: int, t_end: float, dt: float) -> list[dict]:
    system = get("lorenz")
    p = system.params
    x0 = system.random_initial_states(n_traj, torch.Generator().manual_seed(0))
    n_out = round(t_end / dt) + 1
    t = torch.arange(n_out, dtype=torch.float64) * dt
    task = f"lorenz, {n_traj} trajectories, t in [0, {t_end:g}], output every {dt:g}"

    start = x0.numpy()
    reference, ref_time, ref_cpu = timed(lambda: taylor_reference(start, n_out, dt, p).astype(np.float64))
    check = taylor_reference(start, n_out, dt, p, order=24, h=0.01).astype(np.float64)

    def error(states: np.ndarray) -> float:
        return float(np.abs(states - reference[: len(states)]).max())

    def scipy_loop(rtol: float) -> np.ndarray:
        def rhs(_, s):
            u, v, w = s
            return [p["sigma"] * (v - u), u * (p["rho"] - w) - v, u * v - p["beta"] * w]

        return np.stack([
            solve_ivp(rhs, (0.0, t_end), x0[i].numpy(), method="DOP853", t_eval=t.numpy(), rtol=rtol,
                      atol=rtol).y.T
            for i in range(n_scipy)
        ])

    def torchdiffeq_batch(method: str, rtol: float) -> np.ndarray:
        with torch.no_grad():
            states = torchdiffeq.odeint(system.vector_field, x0, t, method=method, rtol=rtol, atol=rtol)
        return states.movedim(0, 1).numpy()

    def physdyn_simulate() -> np.ndarray:
        return system.simulate(x0=x0, t_end=t_end, dt=dt).states.numpy()

    def physdyn_rk(step: float) -> np.ndarray:
        with torch.no_grad():
            return rk_integrate(system.vector_field, x0, t, method="dop853", max_step=step).numpy()

    physdyn_simulate()  # warm-up of first-call overheads (imports, allocator); timed runs follow
    scipy_name, dopri5, dopri8 = "scipy solve_ivp DOP853, looped", "torchdiffeq dopri5, one batch", \
        "torchdiffeq dopri8, one batch"
    levels = {
        "tight": [
            ("physdyn Lorenz.simulate (DOP853 tableau, fixed step 0.005)", physdyn_simulate, "defaults"),
            (scipy_name, lambda: scipy_loop(1e-13), "rtol=atol=1e-13"),
            (dopri5, lambda: torchdiffeq_batch("dopri5", 1e-14), "rtol=atol=1e-14"),
            (dopri8, lambda: torchdiffeq_batch("dopri8", 1e-14), "rtol=atol=1e-14"),
        ],
        "loose": [
            ("physdyn rk_integrate (DOP853 tableau, fixed step 0.01)", lambda: physdyn_rk(0.01), ""),
            (scipy_name, lambda: scipy_loop(1e-11), "rtol=atol=1e-11"),
            (dopri5, lambda: torchdiffeq_batch("dopri5", 1e-12), "rtol=atol=1e-12"),
            (dopri8, lambda: torchdiffeq_batch("dopri8", 1e-12), "rtol=atol=1e-12"),
        ],
    }
    rows = []
    for level, ((name, run, note), *baselines) in levels.items():
        ours, wall, cpu = timed(run)
        rows.append({"task": f"{task} [{level}]", "method": name, "time_s": wall, "cpu_s": cpu,
                     "error": error(ours), "note": note})
        for name, run, note in baselines:
            states, seconds, seconds_cpu = timed(run)
            if name.startswith("scipy"):
                seconds, seconds_cpu = seconds * n_traj / n_scipy, seconds_cpu * n_traj / n_scipy
                note += (f"; timed on {n_scipy} trajectories, x{n_traj / n_scipy:g}; error over those "
                         f"(physdyn's there: {error(ours[:n_scipy]):.1e})")
            note += f"; physdyn {seconds / wall:.0f}x faster (CPU time: {seconds_cpu / cpu:.0f}x)"
            rows.append({"task": f"{task} [{level}]", "method": name, "time_s": seconds, "cpu_s": seconds_cpu,
                         "error": error(states), "note": note})
    rows.append({"task": f"{task} [reference]", "method": "Taylor order 30, step 0.005, longdouble",
                 "time_s": ref_time, "cpu_s": ref_cpu, "error": float(np.abs(reference - check).max()),
                 "note": "error: distance from Taylor order 24, step 0.01 (an upper estimate of its error)"})
    return rows


def print_table(rows: list[dict]) -> None:
    width = max(len(r["method"]) for r in rows)
    last_task = None
    for row in rows:
        if row["task"] != last_task:
            print(f"\n{row['task']}")
            print(f"  {'method':<{width}}  {'time_s':>8}  {'cpu_s':>8}  {'max error':>9}  note")
            last_task = row["task"]
        cpu = f"{row['cpu_s']:8.2f}" if "cpu_s" in row else f"{'-':>8}"
        print(f"  {row['method']:<{width}}  {row['time_s']:8.2f}  {cpu}  {row['error']:9.1e}  {row['note']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: 32 trajectories, t in [0, 2]")
    parser.add_argument("--n-traj", type=int, default=1024)
    parser.add_argument("--scipy-subset", type=int, default=64, help="trajectories timed for the scipy loop")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (scipy uses one)")
    args = parser.parse_args(argv)
    n_traj, n_scipy, t_end = (32, 8, 2.0) if args.quick else (args.n_traj, args.scipy_subset, 10.0)
    if not 1 <= n_scipy <= n_traj:
        parser.error(f"--scipy-subset must be between 1 and --n-traj, got {n_scipy}")
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), float64; "
          "time_s: wall-clock seconds, cpu_s: CPU seconds of this process")
    rows = lorenz_rows(n_traj, n_scipy, t_end, 0.01)
    try:
        from _robertson_rows import robertson_rows  # benchmarks/ is on sys.path when run as a script
    except ModuleNotFoundError:
        print("(benchmarks/_robertson_rows.py not found: no Robertson rows)")
    else:
        quick = {"quick": args.quick} if "quick" in inspect.signature(robertson_rows).parameters else {}
        rows += robertson_rows(**quick)
    print_table(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
