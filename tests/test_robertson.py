"""Robertson kinetics against the published ROBER reference, scipy, finite differences and its invariants."""

from __future__ import annotations

import math

import h5py
import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp

from physdyn.data import Trajectories
from physdyn.systems import get
from physdyn.systems.robertson import robertson_field, robertson_jacobian

F64 = torch.float64
# Test Set for IVP Solvers (Mazzia, Magherini et al., Univ. of Bari), problem ROBER, reference at t = 1e11.
REFERENCE_1E11 = np.array([0.2083340149701255e-07, 0.8333360770334713e-13, 0.9999999791665050])


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Each step solves batched 3×3 systems; each such call opens an OpenMP region, which costs milliseconds
    on a shared, oversubscribed CPU (as in CI). One thread keeps these tests fast there."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def rhs(k1: float, k2: float, k3: float):
    """The equations written out again in numpy, independent of the code under test."""

    def f(_, y):
        return [-k1 * y[0] + k3 * y[1] * y[2], k1 * y[0] - k3 * y[1] * y[2] - k2 * y[1] ** 2, k2 * y[1] ** 2]

    def jac(_, y):
        return [[-k1, k3 * y[2], k3 * y[1]],
                [k1, -k3 * y[2] - 2 * k2 * y[1], -k3 * y[1]],
                [0.0, 2 * k2 * y[1], 0.0]]

    return f, jac


def max_relative_error(got: np.ndarray, ref: np.ndarray, floor: float = 1e-12) -> float:
    """Largest |got − ref| / |ref| over the entries with |ref| above ``floor``."""
    keep = np.abs(ref) > floor
    return float((np.abs(got - ref)[keep] / np.abs(ref)[keep]).max())


@pytest.fixture(scope="module")
def standard() -> Trajectories:
    """ROBER: y(0) = (1, 0, 0), the default rates, the default log-spaced grid up to 1e11."""
    return get("robertson").simulate(x0=torch.tensor([[1.0, 0.0, 0.0]]))


def test_default_grid_is_log_spaced_to_1e11(standard: Trajectories) -> None:
    t = standard.t
    assert t[0] == 0.0 and t[1] == 1e-6 and t[-1] == 1e11
    assert 90 <= len(t) <= 120
    np.testing.assert_allclose((t[2:] / t[1:-1]).numpy(), 10 ** (1 / 6), rtol=1e-10)


def test_matches_published_reference_at_1e11(standard: Trajectories) -> None:
    # Every species, y2 = 8.3e-14 included.
    final = standard.states[0, -1].numpy()
    assert max_relative_error(final, REFERENCE_1E11, floor=0.0) < 1e-6


def check_mass_and_positivity(traj: Trajectories) -> None:
    mass = traj.states.sum(-1)
    assert (mass - mass[:, :1]).abs().max().item() <= 1e-10
    assert traj.states.min().item() >= -1e-14


def test_mass_is_conserved_and_concentrations_stay_non_negative(standard: Trajectories) -> None:
    check_mass_and_positivity(standard)


def test_matches_scipy_radau_along_the_trajectory(standard: Trajectories) -> None:
    f, jac = rhs(0.04, 3e7, 1e4)
    t = standard.t.numpy()
    ref = solve_ivp(f, (0.0, t[-1]), [1.0, 0.0, 0.0], method="Radau", t_eval=t, rtol=1e-10, atol=1e-20,
                    jac=jac).y.T
    assert max_relative_error(standard.states[0].numpy(), ref) < 1e-6


def test_batch_of_rate_constants_matches_each_set_solved_alone() -> None:
    k = {"k1": torch.tensor([0.04, 0.02, 0.08, 0.05], dtype=F64),
         "k2": torch.tensor([3e7, 6e7, 1.5e7, 4e7], dtype=F64),
         "k3": torch.tensor([1e4, 2e4, 5e3, 0.7e4], dtype=F64)}
    x0 = torch.tensor([[1.0, 0.0, 0.0], [0.7, 0.0, 0.3], [1.0, 0.0, 0.0], [0.9, 1e-5, 0.1 - 1e-5]], dtype=F64)
    t = torch.cat([torch.zeros(1, dtype=F64), torch.logspace(-5, 9, 29, dtype=F64)])
    traj = get("robertson").simulate(x0=x0, t=t, params=k)
    check_mass_and_positivity(traj)
    for i in range(len(x0)):
        f, jac = rhs(*(float(k[name][i]) for name in ("k1", "k2", "k3")))
        ref = solve_ivp(f, (0.0, float(t[-1])), x0[i].tolist(), method="LSODA", t_eval=t.numpy(), rtol=1e-11,
                        atol=1e-22, jac=jac).y.T
        assert max_relative_error(traj.states[i].numpy(), ref) < 1e-6
        # the stored derivatives use each trajectory's own rates
        expected = np.array([f(0, y) for y in traj.states[i].numpy()])
        np.testing.assert_allclose(traj.derivatives[i].numpy(), expected, rtol=1e-9, atol=1e-16)
    for name, values in k.items():
        assert torch.equal(traj.params[name], values)


def test_default_rates_are_recorded_per_trajectory() -> None:
    traj = get("robertson", k1=0.05).simulate(2, t=torch.tensor([0.0, 1e-3, 1.0]))
    assert traj.params["k1"].tolist() == [0.05, 0.05] and traj.params["k2"].tolist() == [3e7, 3e7]
    assert traj.system_params == {"k1": 0.05, "k2": 3e7, "k3": 1e4}


def test_random_initial_states_are_compositions_starting_with_the_standard_state() -> None:
    x0 = get("robertson").random_initial_states(50, torch.Generator().manual_seed(0))
    assert x0[0].tolist() == [1.0, 0.0, 0.0]
    np.testing.assert_allclose(x0.sum(-1).numpy(), 1.0, rtol=0.0, atol=1e-15)
    assert (x0 >= 0).all() and (x0[:, 0] >= 0.5).all()


def test_jacobian_matches_finite_differences() -> None:
    system = get("robertson", k1=0.03, k2=2e7, k3=2e4)
    x = torch.tensor([[1.0, 0.0, 0.0], [0.9, 3.6e-5, 0.1], [2e-8, 8e-14, 1.0], [0.5, 1e-3, 0.499]], dtype=F64)
    jac = system.jacobian(0.0, x)
    cols = []
    for j in range(3):
        step = 1e-6 * x[:, j].abs().clamp(min=1e-8)
        e = torch.zeros_like(x)
        e[:, j] = step
        cols.append((system.vector_field(0.0, x + e) - system.vector_field(0.0, x - e)) / (2 * step[:, None]))
    fd = torch.stack(cols, dim=-1)
    scale = jac.abs().amax(dim=(-2, -1), keepdim=True)
    assert ((jac - fd).abs() / scale).max().item() < 1e-8


def test_vector_field_matches_the_written_out_equations() -> None:
    f, _ = rhs(0.04, 3e7, 1e4)
    x = torch.tensor([[0.9, 3.6e-5, 0.1], [0.2, 1e-6, 0.8]], dtype=F64)
    np.testing.assert_allclose(get("robertson").vector_field(0.0, x).numpy(), [f(0, y) for y in x.numpy()],
                               rtol=1e-14, atol=0.0)
    assert torch.equal(robertson_jacobian(x, 0.04, 3e7, 1e4), get("robertson").jacobian(0.0, x))
    assert robertson_field(x, 0.04, 3e7, 1e4).sum(-1).abs().max().item() < 1e-18


def test_gradient_with_respect_to_a_rate_constant_matches_finite_differences() -> None:
    system = get("robertson")
    t = torch.tensor([0.0, 0.1, 10.0], dtype=F64)
    x0 = torch.tensor([[1.0, 0.0, 0.0]], dtype=F64)

    def y1_at_10(k1: torch.Tensor) -> torch.Tensor:
        return system.with_params({"k1": k1}).integrate(x0, t)[0, -1, 0]

    k1 = torch.tensor([0.04], dtype=F64, requires_grad=True)
    (grad,) = torch.autograd.grad(y1_at_10(k1), k1)
    with torch.no_grad():
        eps = 1e-6
        fd = (y1_at_10(k1 + eps) - y1_at_10(k1 - eps)) / (2 * eps)
    assert math.isclose(grad.item(), fd.item(), rel_tol=1e-5)


def test_cli_simulate_writes_log_spaced_robertson_file(cli, tmp_path) -> None:
    out = tmp_path / "rober.h5"
    status, _, err = cli("simulate", "robertson", "--out", out, "--t-end", "1e11", "--n-traj", "1", "--quiet")
    assert status == 0, err
    with h5py.File(out) as fh:
        t, states = fh["t"][()], fh["states"][()]
    assert t[0] == 0.0 and t[-1] == 1e11 and states.shape == (1, len(t), 3)
    assert max_relative_error(states[0, -1], REFERENCE_1E11, floor=0.0) < 1e-6


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"params": {"k4": 1.0}}, "unknown parameter"),
        ({"params": {"k1": torch.ones(3)}}, r"shape \(2,\)"),
        ({"params": {"k2": -1.0}}, r"'k2' of system 'robertson' must be a finite number > 0, got -1.0"),
        ({"params": {"k3": torch.tensor([1e4, 0.0])}}, r"> 0, got 0.0 for trajectory 1"),
        ({"noise": 0.1}, "no stochastic form"),
        ({"x0": torch.tensor([[1.0, -0.1, 0.1]])}, "non-negative"),
        ({"x0": torch.ones(2, 2)}, "shape"),
        ({"t_end": 1e-7}, "first output time"),
        ({"t": torch.tensor([0.0, 2.0, 1.0])}, "strictly increasing"),
    ],
)
def test_bad_input_raises_value_error(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        get("robertson").simulate(**({"n_trajectories": 2} | kwargs))
