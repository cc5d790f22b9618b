"""Lyapunov exponents: Lorenz-63 against Sprott's published value, linear systems against their eigenvalues,
autograd Jacobian-vector products against the analytic Jacobian, the spectrum's sum against the divergence."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from physdyn.metrics import largest_lyapunov_exponent, lyapunov_spectrum
from physdyn.systems import get

F64 = torch.float64
SPROTT = (0.9056, 0.0, -14.5723)  # J. C. Sprott, Lyapunov exponent and dimension of the Lorenz attractor


class LorenzModule(nn.Module):
    """Lorenz-63 as a plain module with parameters and no ``jacobian``: the JVP comes from autograd."""

    def __init__(self, dtype: torch.dtype) -> None:
        super().__init__()
        self.coef = nn.Parameter(torch.tensor([10.0, 28.0, 8 / 3], dtype=dtype))

    def vector_field(self, t, x):
        sigma, rho, beta = self.coef
        u, v, w = x.unbind(-1)
        return torch.stack([sigma * (v - u), u * (rho - w) - v, u * v - beta * w], dim=-1)


class Linear:
    """dx/dt = A x, optionally with its (constant) Jacobian."""

    def __init__(self, a: np.ndarray, with_jacobian: bool) -> None:
        self.a = torch.tensor(a)
        if with_jacobian:
            self.jacobian = lambda t, x: self.a.expand(x.shape[0], -1, -1)

    def vector_field(self, t, x):
        return x @ self.a.T


class InvertedOscillator(nn.Module):
    """H = (p² − q²) / 2, vector field J ∇H by autograd (as a Hamiltonian network does): dq/dt = p,
    dp/dt = q, eigenvalues ±1, so λ_max = 1."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(1.0, dtype=F64))

    def vector_field(self, t, x):
        with torch.enable_grad():
            x = x if x.requires_grad else x.detach().requires_grad_(True)
            h = 0.5 * self.scale * (x[:, 1] ** 2 - x[:, 0] ** 2)
            dh = torch.autograd.grad(h.sum(), x, create_graph=True)[0]
        return torch.stack([dh[:, 1], -dh[:, 0]], dim=-1)


def with_eigenvalues(real: float, pair: tuple[float, float]) -> np.ndarray:
    """A = S diag(real, [[a, −b], [b, a]]) S⁻¹ with a fixed, non-orthogonal S: eigenvalues real, a ± ib."""
    a, b = pair
    block = np.array([[real, 0, 0], [0, a, -b], [0, b, a]])
    s = np.array([[1.0, 0.4, -0.2], [0.1, 1.0, 0.3], [-0.3, 0.2, 1.0]])
    return s @ block @ np.linalg.inv(s)


def lorenz_states(n: int, seed: int = 0) -> torch.Tensor:
    return get("lorenz").random_initial_states(n, torch.Generator().manual_seed(seed))


def test_lorenz_largest_exponent_matches_sprott():
    # The mean of B finite-time exponents over time T has standard error ≈ 0.4 / sqrt(B T) ≈ 0.004 here.
    # The starts lie in a box around the attractor: a transient shorter than ~10 biases the value low.
    value = largest_lyapunov_exponent(get("lorenz"), lorenz_states(2048), t_transient=15.0, t_total=10.0)
    assert value == pytest.approx(SPROTT[0], rel=0.02)


@pytest.mark.parametrize(
    ("real", "pair", "expected"),
    [(0.3, (-0.5, 2.0), (0.3, -0.5, -0.5)), (-1.0, (-0.1, 3.0), (-0.1, -0.1, -1.0))],
    ids=["real_top", "complex_top"],
)
@pytest.mark.parametrize("with_jacobian", [True, False], ids=["jacobian", "autograd"])
def test_linear_system_gives_the_largest_real_part(real, pair, expected, with_jacobian):
    system = Linear(with_eigenvalues(real, pair), with_jacobian)
    x0 = torch.tensor([[1.0, 2.0, -1.0], [0.0, 0.5, 3.0]], dtype=F64)
    opts = {"t_transient": 10.0, "t_total": 20.0, "dt": 0.1, "renorm_every": 1.0}
    # a rotating vector's oscillating norm biases the average by O(log cond S / T): 5e-3 here
    assert largest_lyapunov_exponent(system, x0, **opts) == pytest.approx(expected[0], abs=5e-3)
    spectrum = lyapunov_spectrum(system, x0, **opts)
    # The exponent apart from the complex pair is sharp once the transient (10, after which what is left
    # outside the leading directions is ≤ e^(−0.8·10)) is over: the pair's plane is invariant and areas in
    # it grow exactly like e^(2a t). Within the pair Gram–Schmidt splits 2a unevenly, by ~log cond S / T.
    alone = 0 if real > pair[0] else 2
    assert float(spectrum[alone]) == pytest.approx(real, abs=2e-3)
    np.testing.assert_allclose(spectrum.numpy(), expected, atol=0.04)
    # the sum is tr A, up to RK4's error in det e^(hA): ~ (h |λ|)^5 / 120 per step
    assert float(spectrum.sum()) == pytest.approx(real + 2 * pair[0], abs=1e-4)


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_module_without_jacobian_agrees_with_the_system_state_by_state(dtype):
    # Same starts, same tangent seed, a horizon short enough that float32 round-off has not yet been
    # amplified into a different trajectory: the autograd JVP must reproduce the analytic Jacobian's result.
    x0 = get("lorenz").integrate(lorenz_states(16), torch.tensor([0.0, 5.0], dtype=F64))[:, -1]
    opts = {"t_transient": 0.0, "t_total": 2.0, "per_state": True}
    reference = largest_lyapunov_exponent(get("lorenz"), x0, **opts)
    model = largest_lyapunov_exponent(LorenzModule(dtype), x0, **opts)
    assert model.dtype == F64 and model.shape == (16,)
    torch.testing.assert_close(model, reference, rtol=0, atol=1e-9 if dtype == F64 else 1e-3)


def test_two_trajectory_method_agrees_with_the_tangent_method():
    x0 = get("lorenz").integrate(lorenz_states(16), torch.tensor([0.0, 5.0], dtype=F64))[:, -1]
    opts = {"t_transient": 1.0, "t_total": 3.0, "per_state": True}
    tangent = largest_lyapunov_exponent(get("lorenz"), x0, **opts)
    neighbour = largest_lyapunov_exponent(get("lorenz"), x0, method="two_trajectory", **opts)
    # a separation of ~3e-7 stays in the linear regime; the start directions differ, so allow 1e-3
    torch.testing.assert_close(neighbour, tangent, rtol=0, atol=1e-3)


def test_vector_field_computed_with_autograd():
    value = largest_lyapunov_exponent(InvertedOscillator(), torch.tensor([[1.0, 0.0], [0.2, -0.3]]),
                                      t_transient=2.0, t_total=20.0, dt=0.1, renorm_every=1.0)
    assert value == pytest.approx(1.0, abs=1e-3)


def test_lorenz_spectrum_sums_to_the_divergence():
    system = get("lorenz")
    p = system.params
    # The sum is log |det| of the tangent propagator over time: exact whatever the horizon, up to RK4's error
    # on the fast contracting direction, (h λ_3)^5 / 120 ≈ 4e-6 per step at h = 0.01. The exponents
    # themselves need long averages (see the slow test), so here they are checked loosely.
    spectrum = lyapunov_spectrum(system, lorenz_states(16), t_transient=1.0, t_total=5.0)
    assert float(spectrum.sum()) == pytest.approx(-(p["sigma"] + 1 + p["beta"]), abs=5e-4)
    np.testing.assert_allclose(spectrum.numpy(), SPROTT, atol=0.3)


@pytest.mark.slow
def test_lorenz_spectrum_matches_sprott_closely():
    spectrum = lyapunov_spectrum(get("lorenz"), lorenz_states(1024, seed=1), t_transient=10.0, t_total=200.0)
    assert float(spectrum[0]) == pytest.approx(SPROTT[0], rel=0.005)
    assert abs(float(spectrum[1])) < 0.005
    assert float(spectrum[2]) == pytest.approx(SPROTT[2], rel=0.001)
    dimension = 2 + (spectrum[0] + spectrum[1]) / abs(spectrum[2])  # Kaplan–Yorke
    assert float(dimension) == pytest.approx(2.062, abs=0.002)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"method": "wolf"}, "unknown method"),
        ({"dt": 0.03}, "multiple of dt"),
        ({"t_total": -1.0}, "t_total"),
        ({"t_total": 0.01}, "at least renorm_every"),
    ],
)
def test_bad_input_raises_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        largest_lyapunov_exponent(get("lorenz"), lorenz_states(2), **kwargs)


def test_objects_without_vector_field_are_refused():
    with pytest.raises(ValueError, match="vector_field"):
        largest_lyapunov_exponent(object(), torch.zeros(2, 3))


@pytest.mark.parametrize("method", ["tangent", "two_trajectory"])
def test_a_diverging_trajectory_gives_nan(method):
    class BlowUp:  # dx/dt = x², x(t) = x0 / (1 − x0 t): infinite at t = 1 from x0 = 1, bounded from x0 = −1
        def vector_field(self, t, x):
            return x * x

    x0 = torch.tensor([[1.0], [-1.0]], dtype=F64)
    values = largest_lyapunov_exponent(BlowUp(), x0, t_transient=0.0, t_total=2.0, method=method,
                                       per_state=True)
    assert math.isnan(float(values[0])) and math.isfinite(float(values[1]))
