"""The pendulum reference system: energy conservation, the elliptic-integral period, the analytic Jacobian,
and the Langevin form's stationary law (fluctuation–dissipation)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.integrate import quad

from physdyn.systems import get

F64 = torch.float64
AMPLITUDES = [0.1, 1.0, 2.0, 3.0]


def start_at_bottom(system, amplitudes) -> torch.Tensor:
    """States at θ = 0 moving up with the energy of libration amplitude θ0: H = m g L (1 − cos θ0)."""
    m, length, g = (system.params[k] for k in ("m", "L", "g"))
    a = torch.tensor(amplitudes, dtype=F64)
    p = torch.sqrt(2 * m * length**2 * m * g * length * (1 - torch.cos(a)))
    return torch.stack([torch.zeros_like(a), p], -1)


def measured_periods(t: torch.Tensor, x: torch.Tensor, inertia: float) -> np.ndarray:
    """Period of each trajectory from its upward zero crossings of θ, by a straight-line fit of crossing
    time against crossing number; each crossing is located on the cubic Hermite interpolant through the
    two neighbouring samples (values θ, slopes dθ/dt = p / (m L²)), refined by Newton's method."""
    t, theta, omega = t.numpy(), x[..., 0].numpy(), x[..., 1].numpy() / inertia
    periods = []
    for th, om in zip(theta, omega, strict=True):
        i = np.nonzero((th[:-1] < 0) & (th[1:] >= 0))[0]
        h = t[i + 1] - t[i]
        y0, y1, m0, m1 = th[i], th[i + 1], om[i] * h, om[i + 1] * h
        s = -y0 / (y1 - y0)  # linear guess, then Newton on the Hermite cubic in s ∈ [0, 1]
        for _ in range(8):
            value = (2 * s**3 - 3 * s**2 + 1) * y0 + (s**3 - 2 * s**2 + s) * m0 + (3 - 2 * s) * s**2 * y1 \
                + (s**3 - s**2) * m1
            slope = (6 * s**2 - 6 * s) * (y0 - y1) + (3 * s**2 - 4 * s + 1) * m0 + (3 * s**2 - 2 * s) * m1
            s = s - value / slope
        crossings = t[i] + s * h
        periods.append(np.polyfit(np.arange(len(crossings)), crossings, 1)[0])
    return np.array(periods)


@pytest.fixture(scope="module")
def hundred_periods():
    """The default pendulum at amplitudes 0.1, 1, 2, 3 rad, 100 periods of the slowest, sampled every 0.05."""
    system = get("pendulum")
    x0 = start_at_bottom(system, AMPLITUDES)
    t_end = 100 * system.exact_period(max(AMPLITUDES))
    t = torch.arange(0.0, t_end + 0.05, 0.05, dtype=F64)
    return system, t, system.integrate(x0, t)


def test_energy_conserved_over_100_periods(hundred_periods):
    system, _, x = hundred_periods
    energy = system.energy(x)
    relative = ((energy - energy[:, :1]).abs().amax(1) / energy[:, 0]).numpy()
    assert (relative <= 1e-6).all(), relative


def test_period_matches_elliptic_integral(hundred_periods):
    system, t, x = hundred_periods
    measured = measured_periods(t, x, system.inertia)
    exact = np.array([system.exact_period(a) for a in AMPLITUDES])
    assert measured.shape == (4,)
    assert (np.abs(measured / exact - 1) <= 1e-6).all(), measured / exact - 1


def test_period_with_other_parameters():
    # m, L, g away from their defaults: the step size and the formula both scale with sqrt(L/g)
    system = get("pendulum", m=2.0, L=0.5, g=3.0)
    x0 = start_at_bottom(system, [0.5, 2.5])
    t = torch.arange(0.0, 10 * system.exact_period(2.5), 0.1, dtype=F64)
    measured = measured_periods(t, system.integrate(x0, t), system.inertia)
    exact = np.array([system.exact_period(0.5), system.exact_period(2.5)])
    assert (np.abs(measured / exact - 1) <= 1e-6).all(), measured / exact - 1


def test_exact_period_against_quadrature_and_small_amplitude_series():
    system = get("pendulum", L=2.0, g=3.0)
    t0 = 2 * math.pi * math.sqrt(2.0 / 3.0)
    # the small-amplitude limit and its series T0 (1 + θ0²/16 + 11 θ0⁴/3072 + ...)
    assert system.exact_period(0.0) == pytest.approx(t0, rel=1e-15)
    for a in (1e-3, 0.05, 0.1):
        assert system.exact_period(a) == pytest.approx(t0 * (1 + a**2 / 16 + 11 * a**4 / 3072), rel=1e-9)
    # the elliptic integral itself, by quadrature: K(k²) = ∫₀^{π/2} dφ / sqrt(1 − k² sin²φ), k = sin(θ0/2)
    for a in AMPLITUDES:
        k2 = math.sin(a / 2) ** 2
        integral = quad(lambda phi, k2=k2: 1 / math.sqrt(1 - k2 * math.sin(phi) ** 2), 0, math.pi / 2,
                        epsabs=0, epsrel=1e-13)[0]
        assert system.exact_period(a) == pytest.approx(4 * math.sqrt(2.0 / 3.0) * integral, rel=1e-12)
    # tensors in, tensors out; a librating amplitude is below π
    periods = system.exact_period(torch.tensor(AMPLITUDES, dtype=F64))
    assert isinstance(periods, torch.Tensor) and periods.shape == (4,)
    for bad in (math.pi, -0.1, float("nan")):
        with pytest.raises(ValueError, match="amplitude"):
            system.exact_period(bad)


def test_small_amplitude_period_is_harmonic():
    system = get("pendulum")
    x0 = start_at_bottom(system, [1e-3])
    t = torch.arange(0.0, 20.0, 0.05, dtype=F64)
    measured = measured_periods(t, system.integrate(x0, t), system.inertia)[0]
    # at θ0 = 1e-3 the anharmonic correction θ0²/16 is 6e-8
    assert measured == pytest.approx(2 * math.pi / math.sqrt(9.81), rel=2e-7)


def test_jacobian_matches_central_differences():
    system = get("pendulum", m=1.5, L=0.7, g=9.0)
    x = torch.randn(16, 2, generator=torch.Generator().manual_seed(1), dtype=F64) * torch.tensor([2.0, 3.0])
    eps = 1e-6
    columns = []
    for j in range(2):
        dx = torch.zeros(2, dtype=F64)
        dx[j] = eps
        columns.append((system.vector_field(0.0, x + dx) - system.vector_field(0.0, x - dx)) / (2 * eps))
    torch.testing.assert_close(system.jacobian(0.0, x), torch.stack(columns, -1), rtol=1e-8, atol=1e-8)


def test_vector_field_is_hamiltonian():
    # (dθ/dt, dp/dt) = (∂H/∂p, −∂H/∂θ) with H = energy, by autograd
    system = get("pendulum", m=1.5, L=0.7, g=9.0)
    x = torch.randn(16, 2, generator=torch.Generator().manual_seed(2), dtype=F64).requires_grad_(True)
    (grad,) = torch.autograd.grad(system.energy(x).sum(), x)
    torch.testing.assert_close(system.vector_field(0.0, x), torch.stack([grad[:, 1], -grad[:, 0]], -1))
    # energy zero at rest at the bottom, 2 m g L at rest at the top
    rest = torch.tensor([[0.0, 0.0], [math.pi, 0.0]], dtype=F64)
    torch.testing.assert_close(system.energy(rest), torch.tensor([0.0, 2 * 1.5 * 9.0 * 0.7], dtype=F64))


def test_random_initial_states_librate_with_varied_amplitude():
    system = get("pendulum")
    x = system.random_initial_states(4000, torch.Generator().manual_seed(3))
    assert x.shape == (4000, 2) and x.dtype == F64
    amplitude = torch.arccos(1 - system.energy(x) / 9.81)  # H = m g L (1 − cos θ0)
    assert float(amplitude.min()) >= 0.1 - 1e-9 and float(amplitude.max()) <= 3.0 + 1e-9
    assert float(amplitude.min()) < 0.2 and float(amplitude.max()) > 2.9  # the whole range is used
    assert 0.4 < float((x[:, 1] > 0).double().mean()) < 0.6  # both directions of motion
    again = system.random_initial_states(4000, torch.Generator().manual_seed(3))
    assert torch.equal(x, again)


def test_simulate_deterministic():
    system = get("pendulum")
    traj = system.simulate(3, t_end=2.0, dt=0.1, seed=4)
    assert traj.states.shape == (3, 21, 2) and traj.t.shape == (21,)
    assert traj.state_names == ("theta", "p") and traj.system == "pendulum"
    torch.testing.assert_close(traj.derivatives, system.vector_field(0.0, traj.states))
    energy = system.energy(traj.states)
    assert float(((energy - energy[:, :1]).abs() / energy[:, :1]).max()) < 1e-8


def langevin_ensemble(seed: int, n: int, t: torch.Tensor) -> tuple[object, torch.Tensor]:
    """The Langevin form at noise 1 through ``simulate`` (``sde_method`` and ``sde_dt`` from facts.json),
    from states near equilibrium: p ~ N(0, m L² kT), θ ~ N(0, kT / (m g L)) (the harmonic approximation)."""
    system = get("pendulum")
    generator = torch.Generator().manual_seed(seed)
    scale = torch.tensor([math.sqrt(1.0 / 9.81), 1.0], dtype=F64)
    x0 = torch.randn(n, 2, generator=generator, dtype=F64) * scale
    states = system.simulate(x0=x0, t=t, seed=seed, noise=1.0).states
    return system, states


def test_langevin_stationary_law_is_gibbs():
    # fluctuation–dissipation: the stationary density is ∝ exp(−H/kT), so Var p = m L² kT exactly and
    # <θ²> is a ratio of one-dimensional integrals; burn-in 8 = 4/γ, then 25 snapshots per trajectory
    t = torch.arange(0.0, 20.0 + 1e-9, 0.5, dtype=F64)
    system, states = langevin_ensemble(5, 2000, t)
    after = states[:, t >= 8.0]
    ratio = float(after[..., 1].var() / (system.inertia * system.params["kT"]))
    assert ratio == pytest.approx(1.0, abs=0.05)
    beta_v = lambda th: 9.81 * (1 - math.cos(th))  # noqa: E731  (m g L (1 − cos θ) / kT)
    theta2 = quad(lambda th: th**2 * math.exp(-beta_v(th)), -math.pi, math.pi)[0] / quad(
        lambda th: math.exp(-beta_v(th)), -math.pi, math.pi)[0]
    assert float(after[..., 0].pow(2).mean()) == pytest.approx(theta2, rel=0.05)


def test_noise_sets_the_temperature():
    # noise scales the thermal amplitude: the heat bath is at noise² kT
    system = get("pendulum", kT=0.5)
    sde = system.sde(3.0)
    y = torch.zeros(4, 2, dtype=F64)
    diffusion = sde.g(torch.tensor(0.0), y)
    assert diffusion.shape == (4, 2, 1) and bool((diffusion[:, 0] == 0).all())
    # fluctuation–dissipation: σ² = 2 γ m L² (noise² kT)
    assert float(diffusion[0, 1, 0]) ** 2 == pytest.approx(2 * 0.5 * 1.0 * 9 * 0.5, rel=1e-14)
    torch.testing.assert_close(sde.f(torch.tensor(0.0), torch.tensor([[0.3, 2.0]], dtype=F64)),
                               torch.tensor([[2.0, -9.81 * math.sin(0.3) - 0.5 * 2.0]], dtype=F64))


def test_simulate_with_noise_is_seeded():
    system = get("pendulum")
    a = system.simulate(8, t_end=2.0, dt=0.1, seed=6, noise=1.0)
    b = system.simulate(8, t_end=2.0, dt=0.1, seed=6, noise=1.0)
    c = system.simulate(8, t_end=2.0, dt=0.1, seed=7, noise=1.0)
    assert torch.equal(a.states, b.states)
    assert not torch.allclose(a.states[:, 1:], c.states[:, 1:])
    assert a.meta["noise_type"] == "langevin"
    # the initial states come from the same seed as the noise: with x0 fixed, only the noise differs
    x0 = a.states[:, 0]
    d = system.simulate(x0=x0, t_end=2.0, dt=0.1, seed=7, noise=1.0)
    assert torch.equal(d.states[:, 0], x0) and not torch.allclose(d.states[:, 1:], a.states[:, 1:])


def test_bad_input():
    system = get("pendulum")
    with pytest.raises(ValueError, match="noise_type"):
        system.sde(1.0, "multiplicative")
    with pytest.raises(ValueError, match="noise"):
        system.sde(-1.0)
    with pytest.raises(ValueError, match="unknown parameter"):
        get("pendulum", length=2.0)
