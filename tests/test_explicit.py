"""Fixed-step explicit Runge–Kutta (physdyn.solvers.rk_integrate): orders from closed forms, grids,
gradients."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.linalg import expm

from physdyn.solvers import rk_integrate
from physdyn.solvers._explicit import TABLEAUS

F64 = torch.float64


def slope(ns, errors) -> float:
    """Order p in error ∝ n^(−p), by least squares on the logs."""
    return -float(np.polyfit(np.log(ns), np.log(errors), 1)[0])


# steps per unit interval for each method, in the range where truncation error dominates round-off
STEPS = {
    "euler": [32, 64, 128, 256],
    "midpoint": [32, 64, 128, 256],
    "heun3": [16, 32, 64, 128],
    "rk4": [8, 16, 32, 64],
    "dop853": [3, 4, 6, 8],
}


@pytest.mark.parametrize("grad", [False, True], ids=["no_grad", "grad"])
@pytest.mark.parametrize("method", list(STEPS))
def test_order_on_linear_time_dependent_ode(method, grad):
    # x' = t x has x(t) = x0 exp(t²/2): linear, but time-dependent, so the nodes c_i are exercised too
    x0 = torch.tensor([[1.0], [-2.0]], dtype=F64)
    exact = x0 * math.exp(0.5)
    errors = []
    with torch.set_grad_enabled(grad):
        for n in STEPS[method]:
            y = rk_integrate(lambda t, x: t * x, x0, torch.tensor([0.0, 1.0]), method=method, substeps=n)
            errors.append(float((y[:, -1] - exact).abs().max()))
    assert slope(STEPS[method], errors) == pytest.approx(TABLEAUS[method].order, abs=0.3)


@pytest.mark.parametrize("method", list(STEPS))
def test_order_on_nonlinear_ode(method):
    # x' = x² has x(t) = x0 / (1 − x0 t); nonlinear, so order conditions beyond the linear ones count
    x0 = torch.tensor([[1.0], [0.5]], dtype=F64)
    ns = [2 * n for n in STEPS[method]]
    t = torch.linspace(0.0, 0.5, 3, dtype=F64)  # two output intervals, each split into n // 2 steps
    errors = []
    with torch.no_grad():
        for n in ns:
            y = rk_integrate(lambda t, x: x * x, x0, t, method=method, substeps=n // 2)
            errors.append(float((y[:, -1] - x0 / (1 - 0.5 * x0)).abs().max()))
    assert slope(ns, errors) == pytest.approx(TABLEAUS[method].order, abs=0.4)


def test_linear_system_matches_matrix_exponential_on_a_nonuniform_grid():
    a = np.array([[-0.3, 2.0, 0.0], [-2.0, -0.3, 0.5], [0.0, -0.5, -1.0]])
    x0 = torch.tensor([[1.0, 0.0, 2.0], [0.5, -1.0, 0.0]], dtype=F64)
    t = torch.tensor([0.0, 0.1, 0.25, 0.7, 1.5], dtype=F64)
    at = torch.tensor(a.T)
    with torch.no_grad():
        y = rk_integrate(lambda t, x: x @ at, x0, t, method="dop853", max_step=0.05)
    exact = np.stack([x0.numpy() @ expm(a * float(s)).T for s in t], axis=1)
    assert y.shape == (2, 5, 3)
    np.testing.assert_allclose(y.numpy(), exact, atol=1e-12)


@pytest.mark.parametrize("method", ["rk4", "dop853"])
def test_per_trajectory_grids_match_separate_shared_grid_runs(method):
    # time-dependent forcing, so each trajectory must see its own times in f
    def f(t, x):
        return -x + torch.sin(3 * t)[..., None]

    x0 = torch.tensor([[1.0, 2.0], [0.0, -1.0], [3.0, 0.5]], dtype=F64)
    grids = torch.stack([
        torch.linspace(0.0, 1.0, 6, dtype=F64),
        torch.linspace(0.5, 3.0, 6, dtype=F64),
        torch.tensor([0.0, 0.1, 0.3, 0.35, 1.0, 2.0], dtype=F64),
    ])
    with torch.no_grad():
        together = rk_integrate(f, x0, grids, method=method, substeps=4)
        for i in range(3):
            alone = rk_integrate(f, x0[i : i + 1], grids[i], method=method, substeps=4)
            torch.testing.assert_close(together[i], alone[0], rtol=0, atol=1e-13)


def test_per_trajectory_grids_solve_the_closed_form():
    # x' = −k x with x(t) = x0 exp(−k (t − t0)), each trajectory on its own (shifted, scaled) grid
    x0 = torch.tensor([[1.0], [2.0], [-1.0]], dtype=F64)
    spans = [(0.0, 1.0), (2.0, 5.0), (-1.0, 0.1)]
    grids = torch.stack([torch.linspace(s, s + d, 11, dtype=F64) for s, d in spans])
    with torch.no_grad():
        y = rk_integrate(lambda t, x: -0.7 * x, x0, grids, method="dop853", substeps=3)
    exact = x0 * torch.exp(-0.7 * (grids - grids[:, :1]))
    torch.testing.assert_close(y[..., 0], exact, rtol=1e-11, atol=0)


def test_gradients_match_closed_form():
    # x(1) = x0 exp(−k): ∂x/∂x0 = exp(−k), ∂x/∂k = −x0 exp(−k)
    k = torch.tensor(0.8, dtype=F64, requires_grad=True)
    x0 = torch.tensor([[1.5], [-0.5]], dtype=F64, requires_grad=True)
    y = rk_integrate(lambda t, x: -k * x, x0, torch.tensor([0.0, 1.0]), method="dop853", substeps=8)
    y[:, -1].sum().backward()
    e = math.exp(-0.8)
    torch.testing.assert_close(x0.grad, torch.full_like(x0, e), rtol=1e-10, atol=0)
    torch.testing.assert_close(k.grad, torch.tensor(-(1.5 - 0.5) * e, dtype=F64), rtol=1e-10, atol=0)


def test_state_shape_and_dtype_are_kept():
    x0 = torch.ones(4, 2, 3, 3, dtype=torch.float32)
    with torch.no_grad():
        y = rk_integrate(lambda t, x: -x, x0, torch.linspace(0, 1, 5), method="rk4", substeps=10)
    assert y.shape == (4, 5, 2, 3, 3) and y.dtype == torch.float32
    torch.testing.assert_close(y[:, -1], torch.full_like(x0, math.exp(-1)), rtol=1e-6, atol=0)


def test_max_step_sets_the_number_of_steps():
    calls = []

    def f(t, x):
        calls.append(float(t))
        return torch.zeros_like(x)

    x0 = torch.zeros(2, 1, dtype=F64)
    with torch.no_grad():
        rk_integrate(f, x0, torch.tensor([0.0, 0.1, 0.35]), method="rk4", max_step=0.1)
    assert len(calls) == 4 * (1 + 3)  # rk4: 4 stages; the intervals need 1 and ceil(0.25 / 0.1) = 3 steps
    assert max(calls) == pytest.approx(0.35) and min(calls) == 0.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"method": "rk45"}, "unknown method"),
        ({"substeps": 0}, "substeps"),
        ({"max_step": -1.0}, "max_step"),
        ({"t": torch.tensor([0.0, 1.0, 0.5])}, "increasing"),
        ({"t": torch.zeros(3, 4)}, "shape"),
    ],
)
def test_bad_input_raises_value_error(kwargs, match):
    args = {"t": torch.tensor([0.0, 1.0])} | kwargs
    with pytest.raises(ValueError, match=match):
        rk_integrate(lambda t, x: x, torch.ones(2, 1), **args)
