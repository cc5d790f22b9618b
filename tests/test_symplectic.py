"""Symplectic integrators (physdyn.solvers.symplectic_integrate): orders from closed forms, bounded energy
error, exact symplecticity of the step map, gradients through rollouts."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from physdyn.solvers import symplectic_integrate
from physdyn.solvers._symplectic import ORDERS

F64 = torch.float64
OMEGA = 1.7


def oscillator(x: torch.Tensor) -> torch.Tensor:
    """H = p²/2 + ω² q²/2 for x (B, 2)."""
    return 0.5 * x[:, 1] ** 2 + 0.5 * OMEGA**2 * x[:, 0] ** 2


def oscillator_gradient(x: torch.Tensor) -> torch.Tensor:
    return torch.stack([OMEGA**2 * x[:, 0], x[:, 1]], -1)


def oscillator_exact(x0: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The closed-form flow at times t (T,) from x0 (N, 2); (N, T, 2)."""
    c, s = torch.cos(OMEGA * t), torch.sin(OMEGA * t)
    q0, p0 = x0[:, :1], x0[:, 1:]
    return torch.stack([q0 * c + p0 * s / OMEGA, p0 * c - OMEGA * q0 * s], -1)


def quartic(x: torch.Tensor) -> torch.Tensor:
    """Non-separable H = (q² + p²)²/4: the flow rotates each circle r² = q² + p² at angular speed r²."""
    return 0.25 * (x[:, 0] ** 2 + x[:, 1] ** 2) ** 2


def quartic_gradient(x: torch.Tensor) -> torch.Tensor:
    return (x[:, :1] ** 2 + x[:, 1:] ** 2) * x


def quartic_exact(x0: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    w = (x0**2).sum(-1, keepdim=True) * t  # (N, T) angle turned
    q0, p0 = x0[:, :1], x0[:, 1:]
    return torch.stack([q0 * torch.cos(w) + p0 * torch.sin(w), p0 * torch.cos(w) - q0 * torch.sin(w)], -1)


def slope(hs, errors) -> float:
    """Order p in error ∝ h^p, by least squares on the logs."""
    return float(np.polyfit(np.log(hs), np.log(errors), 1)[0])


# step sizes (times 1/ω) in the range where truncation error dominates round-off
STEPS = {2: [0.2, 0.1, 0.05, 0.025], 4: [0.2, 0.1, 0.05, 0.025], 6: [0.4, 0.2, 0.1, 0.05],
         8: [0.2, 0.15, 0.1, 0.075]}
# (compositions of implicit midpoint are checked on the nonlinear closed form below)
CASES = [("leapfrog", True), ("yoshida4", True), ("yoshida6", True), ("yoshida8", True),
         ("implicit_midpoint", False)]


@pytest.mark.parametrize(("method", "separable"), CASES)
def test_order_on_harmonic_oscillator(method, separable):
    x0 = torch.tensor([[1.0, 0.0], [-0.3, 2.0]], dtype=F64)
    t_end = 10.0 / OMEGA
    hs = [h / OMEGA for h in STEPS[ORDERS[method]]]
    errors = []
    for h in hs:
        steps = round(t_end / h)
        t = torch.tensor([0.0, t_end / 2, t_end], dtype=F64)
        x = symplectic_integrate(oscillator, x0, t, method=method, separable=separable,
                                 substeps=steps // 2, gradient=oscillator_gradient)
        errors.append(float((x - oscillator_exact(x0, t)).abs().max()))
    assert slope(hs, errors) == pytest.approx(ORDERS[method], abs=0.3)


@pytest.mark.parametrize("method", ["implicit_midpoint", "yoshida4", "yoshida6",
                                    pytest.param("yoshida8", marks=pytest.mark.slow)])
def test_order_on_nonlinear_nonseparable_closed_form(method):
    x0 = torch.tensor([[1.0, 0.2], [0.3, -0.5]], dtype=F64)  # angular speeds 1.04 and 0.34
    t = torch.tensor([0.0, 4.0], dtype=F64)
    # yoshida8 reaches its asymptotic order only below h ≈ 0.1 on this problem
    hs = [0.1, 0.075, 0.05, 0.0375] if method == "yoshida8" else STEPS[ORDERS[method]]
    errors = []
    for h in hs:
        x = symplectic_integrate(quartic, x0, t, method=method, separable=False, substeps=round(4.0 / h),
                                 gradient=quartic_gradient)
        errors.append(float((x - quartic_exact(x0, t)).abs().max()))
    assert slope(hs, errors) == pytest.approx(ORDERS[method], abs=0.3)


@pytest.mark.parametrize(("method", "separable"), [("yoshida4", True), ("yoshida4", False)])
def test_autograd_gradient_matches_closed_form_gradient(method, separable):
    x0 = torch.tensor([[1.0, 0.2], [0.3, -0.5]], dtype=F64)
    t = torch.linspace(0.0, 1.0, 6, dtype=F64)
    h, g = (oscillator, oscillator_gradient) if separable else (quartic, quartic_gradient)
    by_autograd = symplectic_integrate(h, x0, t, method=method, separable=separable, substeps=2)
    closed = symplectic_integrate(h, x0, t, method=method, separable=separable, substeps=2, gradient=g)
    torch.testing.assert_close(by_autograd, closed, rtol=0, atol=1e-14)


def test_separable_gradient_pair_matches_full_gradient():
    x0 = torch.tensor([[1.0, 0.2], [0.3, -0.5]], dtype=F64)
    t = torch.linspace(0.0, 2.0, 5, dtype=F64)
    pair = (lambda q: OMEGA**2 * q, lambda p: p)
    full = symplectic_integrate(oscillator, x0, t, method="yoshida6", gradient=oscillator_gradient)
    by_pair = symplectic_integrate(oscillator, x0, t, method="yoshida6", gradient=pair)
    torch.testing.assert_close(by_pair, full, rtol=0, atol=1e-15)


def test_nonuniform_and_per_trajectory_grids():
    x0 = torch.tensor([[1.0, 0.0], [-0.3, 2.0]], dtype=F64)
    t = torch.tensor([0.0, 0.1, 0.15, 0.6, 1.0, 2.5], dtype=F64)
    x = symplectic_integrate(oscillator, x0, t, method="yoshida6", substeps=50, gradient=oscillator_gradient)
    torch.testing.assert_close(x, oscillator_exact(x0, t), rtol=0, atol=1e-9)
    # (N, T): one grid per trajectory gives what each grid gives alone
    grids = torch.stack([t, 2 * t])
    both = symplectic_integrate(oscillator, x0, grids, method="yoshida4", substeps=3)
    for i in range(2):
        alone = symplectic_integrate(oscillator, x0[i : i + 1], grids[i], method="yoshida4", substeps=3)
        torch.testing.assert_close(both[i : i + 1], alone, rtol=0, atol=1e-14)


def test_backwards_in_time_retraces():
    x0 = torch.tensor([[0.8, 1.1]], dtype=F64)
    t = torch.linspace(0.0, 3.0, 31, dtype=F64)
    kw = {"method": "yoshida4", "separable": False, "gradient": quartic_gradient}
    forward = symplectic_integrate(quartic, x0, t, **kw)
    back = symplectic_integrate(quartic, forward[:, -1], t.flip(0), **kw)
    # symmetric methods are time-reversible: stepping back retraces the forward steps
    torch.testing.assert_close(back.flip(1), forward, rtol=0, atol=1e-12)


def pendulum(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * x[:, 1] ** 2 + 9.81 * (1 - torch.cos(x[:, 0]))


def pendulum_gradient(x: torch.Tensor) -> torch.Tensor:
    return torch.stack([9.81 * torch.sin(x[:, 0]), x[:, 1]], -1)


@pytest.mark.parametrize(("method", "separable", "steps"), [
    ("leapfrog", True, 10_000), ("implicit_midpoint", False, 2_000),
    pytest.param("yoshida4", True, 10_000, marks=pytest.mark.slow),
    pytest.param("implicit_midpoint", False, 10_000, marks=pytest.mark.slow)])
def test_energy_error_bounded_over_many_steps(method, separable, steps):
    # nonlinear pendulum, amplitudes 1 and 2.5 rad, steps of 0.05 (10^4 steps: 150 and 230 periods)
    x0 = torch.tensor([[1.0, 0.0], [2.5, 0.0]], dtype=F64)
    h = 0.05
    t = torch.arange(steps + 1, dtype=F64) * h
    kw = {"tol": 1e-13} if not separable else {}
    x = symplectic_integrate(pendulum, x0, t, method=method, separable=separable,
                             gradient=pendulum_gradient, **kw)
    error = (pendulum(x.reshape(-1, 2)).reshape(2, -1) - pendulum(x0)[:, None]).abs()
    first, last = error[:, : steps // 10].amax(1), error[:, -steps // 10 :].amax(1)
    # no drift: the error's envelope at the end is the one at the start (for non-symplectic methods it is
    # not: over 10^4 steps it grows twelvefold with explicit midpoint (RK2) and tenfold with RK4)
    assert bool((last <= 1.1 * first).all()), (first, last)
    # and it is of the size the method's order implies: below (ω h)^order relative
    assert bool((error.amax(1) < (math.sqrt(9.81) * h) ** ORDERS[method] * pendulum(x0)).all())


def coupled(x: torch.Tensor) -> torch.Tensor:
    """A non-separable H(q, p) with two degrees of freedom."""
    q1, q2, p1, p2 = x.unbind(-1)
    return (0.5 * (p1**2 + p2**2) + 0.5 * (q1**2 + 2 * q2**2) + 0.3 * q1**2 * p2**2 + 0.2 * torch.sin(q2) * p1
            + 0.1 * q1 * q2 * p1 * p2)


def chain(x: torch.Tensor) -> torch.Tensor:
    """A separable H = |p|²/2 − cos q1 − cos(q1 − q2) with two degrees of freedom."""
    return 0.5 * (x[:, 2:] ** 2).sum(-1) - torch.cos(x[:, 0]) - torch.cos(x[:, 0] - x[:, 1])


J4 = torch.tensor([[0, 0, 1, 0], [0, 0, 0, 1], [-1, 0, 0, 0], [0, -1, 0, 0]], dtype=F64)


@pytest.mark.parametrize(("method", "separable", "hamiltonian"), [("implicit_midpoint", False, coupled),
                                                                  ("yoshida4", False, coupled),
                                                                  ("yoshida6", True, chain)])
def test_step_map_is_symplectic(method, separable, hamiltonian):
    x0 = torch.tensor([0.7, -0.4, 0.5, 1.1], dtype=F64)
    t = torch.tensor([0.0, 0.3], dtype=F64)

    def step(x: torch.Tensor) -> torch.Tensor:
        return symplectic_integrate(hamiltonian, x[None], t, method=method, separable=separable,
                                    create_graph=True)[0, -1]

    m = torch.autograd.functional.jacobian(step, x0)
    assert float((m - torch.eye(4, dtype=F64)).abs().max()) > 0.05  # a real map, not the identity
    assert float((m.T @ J4 @ m - J4).abs().max()) < 1e-10


class LearnedLikeHamiltonian(torch.nn.Module):
    """H = p²/2 + k (1 − cos q) + c q p: a parametrised, non-separable H, as a learned one would be."""

    def __init__(self, k: float, c: float) -> None:
        super().__init__()
        self.k = torch.nn.Parameter(torch.tensor(k, dtype=F64))
        self.c = torch.nn.Parameter(torch.tensor(c, dtype=F64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, p = x.unbind(-1)
        return 0.5 * p**2 + self.k * (1 - torch.cos(q)) + self.c * q * p


@pytest.mark.parametrize(("method", "separable"), [("yoshida4", True), ("implicit_midpoint", False)])
def test_gradient_through_rollout_matches_finite_differences(method, separable):
    x0 = torch.tensor([[1.0, 0.3], [-0.5, 1.2]], dtype=F64)
    t = torch.linspace(0.0, 2.0, 11, dtype=F64)
    target = torch.tensor([0.2, -0.1], dtype=F64)
    c = 0.0 if separable else 0.15

    def loss(k: float, c: float, create_graph: bool) -> tuple[torch.Tensor, LearnedLikeHamiltonian]:
        model = LearnedLikeHamiltonian(k, c)
        x = symplectic_integrate(model, x0, t, method=method, separable=separable, substeps=2,
                                 create_graph=create_graph)
        return ((x - target) ** 2).mean(), model

    value, model = loss(4.0, c, True)
    value.backward()
    eps = 1e-6
    fd_k = (loss(4.0 + eps, c, False)[0] - loss(4.0 - eps, c, False)[0]) / (2 * eps)
    assert float(model.k.grad) == pytest.approx(float(fd_k), rel=1e-6)
    if not separable:
        fd_c = (loss(4.0, c + eps, False)[0] - loss(4.0, c - eps, False)[0]) / (2 * eps)
        assert float(model.c.grad) == pytest.approx(float(fd_c), rel=1e-6)


def test_inference_under_no_grad_and_detached_output():
    model = LearnedLikeHamiltonian(4.0, 0.1)
    x0 = torch.tensor([[1.0, 0.3]], dtype=F64, requires_grad=True)
    t = torch.linspace(0.0, 1.0, 5, dtype=F64)
    with torch.no_grad():
        a = symplectic_integrate(model, x0, t, method="yoshida4", separable=False)
        b = symplectic_integrate(model, x0, t, method="yoshida4", separable=False, create_graph=True)
    assert not a.requires_grad and b.requires_grad
    torch.testing.assert_close(a, b.detach(), rtol=0, atol=0)
    assert not symplectic_integrate(model, x0, t, method="yoshida4", separable=False).requires_grad


def test_float32_implicit_converges():
    x0 = torch.tensor([[1.0, 0.3], [0.2, -1.0]], dtype=torch.float32)
    t = torch.linspace(0.0, 2.0, 21)
    x = symplectic_integrate(quartic, x0, t, method="yoshida4", separable=False, substeps=4)
    assert x.dtype == torch.float32
    torch.testing.assert_close(x, quartic_exact(x0.double(), t.double()).float(), rtol=0, atol=1e-4)


def test_bad_input():
    x0 = torch.zeros(2, 2, dtype=F64)
    t = torch.linspace(0.0, 1.0, 3, dtype=F64)
    with pytest.raises(ValueError, match="unknown symplectic method"):
        symplectic_integrate(oscillator, x0, t, method="rk4")
    with pytest.raises(ValueError, match="separable"):
        symplectic_integrate(oscillator, x0, t, method="leapfrog", separable=False)
    with pytest.raises(ValueError, match="x0 must have shape"):
        symplectic_integrate(oscillator, torch.zeros(2, 3, dtype=F64), t)
    with pytest.raises(ValueError, match="substeps"):
        symplectic_integrate(oscillator, x0, t, substeps=0)
    with pytest.raises(ValueError, match="monotone"):
        symplectic_integrate(oscillator, x0, torch.tensor([0.0, 1.0, 0.5], dtype=F64))
    with pytest.raises(ValueError, match="t must have shape"):
        symplectic_integrate(oscillator, x0, torch.zeros(3, 4, dtype=F64))
    with pytest.raises(ValueError, match="hamiltonian must return shape"):
        symplectic_integrate(lambda x: x.sum(), x0, t)
    with pytest.raises(RuntimeError, match="did not converge"):
        # one step of 3 at frequency 1.7: the fixed-point map does not contract
        symplectic_integrate(oscillator, x0 + 1, t * 3, method="implicit_midpoint")


def test_single_time_returns_initial_state():
    x0 = torch.tensor([[1.0, 0.0]], dtype=F64)
    x = symplectic_integrate(oscillator, x0, torch.tensor([0.0], dtype=F64))
    assert x.shape == (1, 1, 2) and bool((x[:, 0] == x0).all())
