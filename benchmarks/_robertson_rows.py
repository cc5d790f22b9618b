"""Robertson over many rate-constant sets: physdyn's batched stiff solver against scipy, looped.

``robertson_rows(quick)`` returns table rows (task, method, time_s, error, note). Every method solves the same
parameter sets (k1, k2, k3 each scaled by a log-uniform factor in [0.5, 2], y0 = (1, 0, 0)) on t ∈ [0, 1e11]
with outputs at 0 and log-spaced from 1e-6 to 1e11. ``error`` is the largest relative error over all sets,
times and species above 1e-12, against a reference from scipy's LSODA at rtol 1e-12 / atol 1e-24; the
last row checks that reference against scipy's Radau at rtol 1e-12 / atol 1e-22 (Radau at that tolerance is
too slow to serve as the reference for every set). Tolerances are chosen so the methods land at comparable
errors; all run on one CPU thread.
"""

from __future__ import annotations

import math
import time
import warnings

import numpy as np
import torch
from scipy.integrate import solve_ivp

from physdyn.solvers import stiff_integrate
from physdyn.systems import facts
from physdyn.systems.robertson import log_time_grid, robertson_field, robertson_jacobian

DEFAULTS = (0.04, 3e7, 1e4)


def _rates(n: int, seed: int = 0) -> np.ndarray:
    """(n, 3) rate constants: the defaults times log-uniform factors in [0.5, 2]."""
    rng = np.random.default_rng(seed)
    return np.array(DEFAULTS) * np.exp(rng.uniform(-math.log(2.0), math.log(2.0), size=(n, 3)))


def _scipy_solve(k: np.ndarray, t: np.ndarray, method: str, rtol: float, atol: float) -> np.ndarray:
    k1, k2, k3 = k

    def f(_, y):
        return [-k1 * y[0] + k3 * y[1] * y[2], k1 * y[0] - k3 * y[1] * y[2] - k2 * y[1] ** 2, k2 * y[1] ** 2]

    def jac(_, y):
        return [[-k1, k3 * y[2], k3 * y[1]],
                [k1, -k3 * y[2] - 2 * k2 * y[1], -k3 * y[1]],
                [0.0, 2 * k2 * y[1], 0.0]]

    with warnings.catch_warnings():  # LSODA warns about excess work at tight tolerances, then carries on
        warnings.simplefilter("ignore")
        sol = solve_ivp(f, (t[0], t[-1]), [1.0, 0.0, 0.0], method=method, t_eval=t, rtol=rtol, atol=atol,
                        jac=jac)
    if sol.status != 0:
        raise RuntimeError(f"scipy {method} failed for k={k}: {sol.message}")
    return sol.y.T


def _physdyn_solve(k: np.ndarray, t: np.ndarray, rtol: float, atol: float) -> np.ndarray:
    rates = [torch.tensor(k[:, i], dtype=torch.float64) for i in range(3)]
    x0 = torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64).expand(len(k), 3)
    return stiff_integrate(
        lambda _, y: robertson_field(y, *rates), x0, torch.tensor(t),
        jacobian=lambda _, y: robertson_jacobian(y, *rates), rtol=rtol, atol=atol, autonomous=True,
    ).numpy()


def _error(states: np.ndarray, reference: np.ndarray) -> float:
    keep = np.abs(reference) > 1e-12
    return float((np.abs(states - reference)[keep] / np.abs(reference)[keep]).max())


def robertson_rows(quick: bool = False, n: int | None = None) -> list[dict]:
    """Rows: physdyn batched (two tolerances, the second the system's default), scipy BDF / Radau / LSODA
    looped, and the reference check. ``quick`` uses 8 rate sets instead of 64; ``n`` sets the number."""
    n = (8 if quick else 64) if n is None else n
    k = _rates(n)
    t = log_time_grid(1e11, 1e-6, 6).numpy()
    task = f"robertson, {n} rate sets, t in [0, 1e11], {len(t)} log-spaced outputs"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # scipy runs on one thread; so does physdyn here
    try:
        reference = np.stack([_scipy_solve(ki, t, "LSODA", 1e-12, 1e-24) for ki in k])
        _physdyn_solve(k[:2], t[:3], 1e-6, 1e-12)  # warm-up: first-call overheads are not the solver's
        rows = []
        solver = facts("robertson")["solver"]
        for rtol, atol in ((1e-8, 1e-20), (solver["rtol"], solver["atol"])):
            start = time.perf_counter()
            states = _physdyn_solve(k, t, rtol, atol)
            rows.append({"task": task, "method": "physdyn stiff_integrate (Rodas5P), one batch",
                         "time_s": time.perf_counter() - start, "error": _error(states, reference),
                         "note": f"rtol={rtol:g}, atol={atol:g}"
                         + ("" if rtol != solver["rtol"] else " (the system's default)")})
        for method, rtol, atol in (("BDF", 1e-10, 1e-20), ("Radau", 1e-8, 1e-18), ("LSODA", 1e-10, 1e-20)):
            start = time.perf_counter()
            states = np.stack([_scipy_solve(ki, t, method, rtol, atol) for ki in k])
            rows.append({"task": task, "method": f"scipy solve_ivp {method}, looped",
                         "time_s": time.perf_counter() - start, "error": _error(states, reference),
                         "note": f"rtol={rtol:g}, atol={atol:g}; analytic Jacobian"})
        n_check = 1 if quick else 2
        start = time.perf_counter()
        radau = np.stack([_scipy_solve(ki, t, "Radau", 1e-12, 1e-22) for ki in k[:n_check]])
        rows.append({"task": task, "method": "reference check: scipy Radau vs the LSODA reference",
                     "time_s": time.perf_counter() - start, "error": _error(reference[:n_check], radau),
                     "note": f"Radau rtol=1e-12, atol=1e-22 on {n_check} set(s): the reference's own error"})
    finally:
        torch.set_num_threads(threads)
    return rows


if __name__ == "__main__":
    import sys

    for row in robertson_rows(quick="--quick" in sys.argv):
        print(f"{row['method']:<55} {row['time_s']:9.2f} s  error {row['error']:.2e}  {row['note']}")
