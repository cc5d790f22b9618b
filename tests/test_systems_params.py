"""Parameters of the reference systems: valid ranges, checked arguments of ``simulate``, and parameters that
differ per trajectory, checked against closed forms (harmonic pendulum, Gibbs law, linear reaction–diffusion
modes), finite differences and the same trajectories simulated one by one."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from scipy.linalg import expm

from physdyn.data import Trajectories, load
from physdyn.evaluation import evaluate, reference_system
from physdyn.systems import get, names

F64 = torch.float64

# The valid ranges, from the physics (written out here, not read from facts.json): a mass, a length, a
# gravity, a Prandtl number, a geometric factor, a rate constant are positive; a friction, a temperature, a
# diffusion coefficient non-negative; the grid has at least two cells per side; everything finite.
OUTSIDE = [
    ("pendulum", "m", 0.0, "a finite number > 0"), ("pendulum", "L", -1.0, "a finite number > 0"),
    ("pendulum", "L", math.nan, "a finite number > 0"), ("pendulum", "g", 0.0, "a finite number > 0"),
    ("pendulum", "g", math.inf, "a finite number > 0"), ("pendulum", "gamma", -0.1, "a finite number >= 0"),
    ("pendulum", "kT", -1.0, "a finite number >= 0"),
    ("lorenz", "sigma", 0.0, "a finite number > 0"), ("lorenz", "beta", -1.0, "a finite number > 0"),
    ("lorenz", "rho", math.nan, "a finite number"), ("lorenz", "rho", -math.inf, "a finite number"),
    ("reaction_diffusion", "Du", -1e-3, "a finite number >= 0"),
    ("reaction_diffusion", "Dv", math.nan, "a finite number >= 0"),
    ("reaction_diffusion", "k", math.inf, "a finite number"),
    ("reaction_diffusion", "n", 1, "an integer >= 2"), ("reaction_diffusion", "n", 2.5, "an integer >= 2"),
    ("reaction_diffusion", "n", -4, "an integer >= 2"),
    ("robertson", "k1", 0.0, "a finite number > 0"), ("robertson", "k2", -3e7, "a finite number > 0"),
    ("robertson", "k3", math.nan, "a finite number > 0"),
]
INSIDE = [("pendulum", {"gamma": 0.0, "kT": 0.0, "m": 1e-3}), ("lorenz", {"rho": -5.0, "sigma": 1e-3}),
          ("lorenz", {"rho": 0.0, "beta": 4.0}),
          ("reaction_diffusion", {"Du": 0.0, "Dv": 0.0, "k": -1.0, "n": 2}),
          ("robertson", {"k1": 1e-30, "k2": 1e30})]


@pytest.mark.parametrize(("system", "name", "value", "range_"), OUTSIDE,
                         ids=[f"{s}-{n}={v}" for s, n, v, _ in OUTSIDE])
def test_parameters_outside_their_valid_range_are_refused(system, name, value, range_):
    message = f"parameter '{name}' of system '{system}' must be {range_}, got {value!r}"
    with pytest.raises(ValueError) as refused:
        get(system, **{name: value})
    assert str(refused.value) == message
    # the same check, entry by entry, for values given per trajectory
    if name != "n":
        values = torch.tensor([get(system).params[name], value], dtype=F64)
        with pytest.raises(ValueError, match=rf"parameter '{name}'.* {range_}, got .* for trajectory 1$"):
            get(system).with_params({name: values})


@pytest.mark.parametrize(("system", "params"), INSIDE, ids=[s for s, _ in INSIDE])
def test_parameters_on_and_inside_their_ranges_are_accepted(system, params):
    assert get(system, **params).params == get(system).params | params


def test_bad_parameters_from_the_command_line_exit_2_with_one_line(cli, tmp_path):
    out = tmp_path / "x.h5"
    status, stdout, stderr = cli("simulate", "pendulum", "--out", out, "--set", "L=-1")
    assert (status, stdout) == (2, "")
    expected = "parameter 'L' of system 'pendulum' must be a finite number > 0, got -1"
    assert stderr == f"physdyn simulate: error: {expected}\n"
    assert not out.exists()


def test_systems_json_shows_the_ranges(cli):
    status, stdout, _ = cli("systems", "--json")
    assert status == 0
    ranges = {r["name"]: r["param_ranges"] for r in json.loads(stdout)}
    assert ranges["pendulum"]["L"] == {"exclusive_minimum": 0}
    assert ranges["pendulum"]["gamma"] == {"minimum": 0}
    assert ranges["lorenz"]["rho"] == {}
    assert ranges["reaction_diffusion"]["n"] == {"minimum": 2, "integer": True}
    assert set(ranges["robertson"]) == {"k1", "k2", "k3"}


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"n_trajectories": 2.5}, "n_trajectories must be an integer >= 1, got 2.5"),
    ({"n_trajectories": True}, "n_trajectories must be an integer >= 1, got True"),
    ({"n_trajectories": 0}, "n_trajectories must be an integer >= 1, got 0"),
    ({"n_trajectories": -3}, "n_trajectories must be an integer >= 1, got -3"),
    ({"seed": None}, "seed must be an integer >= 0, got None"),
    ({"seed": False}, "seed must be an integer >= 0, got False"),
    ({"seed": -1}, "seed must be an integer >= 0, got -1"),
    ({"seed": 1.5}, "seed must be an integer >= 0, got 1.5"),
    ({"seed": 2**64}, r"seed must be an integer below 2\*\*64"),
    ({"noise": math.nan}, "noise must be a finite number >= 0, got nan"),
    ({"x0": torch.ones(2, 2)}, r"x0 must have shape \(N, 3\)"),
    ({"x0": torch.full((1, 3), math.nan)}, "x0 must be finite"),
])
def test_bad_simulate_arguments_raise_one_line_value_errors(kwargs, message):
    with pytest.raises(ValueError, match=rf"^{message}"):
        get("lorenz").simulate(**({"n_trajectories": 2, "t_end": 0.1} | kwargs))


def test_per_trajectory_parameters_are_checked():
    lorenz = get("lorenz")
    with pytest.raises(ValueError, match=r"must all have the same length, got lengths 2, 3"):
        lorenz.with_params({"rho": torch.ones(2), "sigma": torch.ones(3)})
    with pytest.raises(ValueError, match=r"shape \(3,\) for 3 trajectories, got \(2,\)"):
        lorenz.simulate(x0=torch.ones(3, 3), t_end=0.1, params={"rho": torch.ones(2)})
    with pytest.raises(ValueError, match=r"'rho' of system 'lorenz' must be a number or an \(N,\) tensor"):
        lorenz.with_params({"rho": torch.ones(2, 2)})
    with pytest.raises(ValueError, match="unknown parameter 'r'"):
        lorenz.simulate(2, t_end=0.1, params={"r": 1.0})
    with pytest.raises(ValueError, match="'n' of system 'reaction_diffusion' sets the state shape"):
        get("reaction_diffusion").with_params({"n": torch.tensor([8.0, 8.0])})
    with pytest.raises(ValueError, match=r"'rho' of system 'lorenz' must be a number or an \(N,\) tensor"):
        lorenz.with_params({"rho": "x"})
    # lists, arrays and numpy numbers are values too
    assert lorenz.with_params({"rho": [20.0, 30.0]}).batch_size == 2
    assert lorenz.simulate(np.int64(2), t_end=0.1, seed=np.int64(3)).states.shape == (2, 11, 3)
    # numbers are per-run parameters; the system itself is left as it was
    assert lorenz.with_params({"rho": 35}).params["rho"] == 35.0 and lorenz.params["rho"] == 28.0


# -- per-trajectory parameters ---------------------------------------------------------------------------


def test_lorenz_batch_with_per_trajectory_rho_equals_the_trajectories_one_by_one():
    rho = torch.tensor([28.0, 35.0, 10.0, 99.65], dtype=F64)
    x0 = get("lorenz").random_initial_states(4, torch.Generator().manual_seed(1))
    batch = get("lorenz", sigma=12.0).simulate(x0=x0, t_end=1.0, dt=0.01, params={"rho": rho})
    for i, r in enumerate(rho.tolist()):
        alone = get("lorenz", sigma=12.0, rho=r)
        one = alone.simulate(x0=x0[i : i + 1], t_end=1.0, dt=0.01)
        torch.testing.assert_close(batch.states[i], one.states[0], rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(batch.derivatives[i], alone.vector_field(0.0, batch.states[i]))
    assert torch.equal(batch.params["rho"], rho) and batch.params["sigma"].tolist() == [12.0] * 4
    # rho varies, so it is no scalar of the file; sigma and beta are shared
    assert batch.system_params == {"sigma": 12.0, "beta": 8 / 3}


def test_pendulum_with_per_trajectory_parameters_swings_at_its_own_harmonic_frequency():
    # θ0 = 1e-3: θ(t) = θ0 cos(ω t), p = −m L² θ0 ω sin(ω t), ω = sqrt(g/L) (1 − θ0²/16), up to O(θ0³)
    m, length, g = (torch.tensor(v, dtype=F64) for v in ([1.0, 2.0, 0.5], [1.0, 0.5, 2.0], [9.81, 3.0, 20.0]))
    amplitude = 1e-3
    x0 = torch.stack([torch.full((3,), amplitude, dtype=F64), torch.zeros(3, dtype=F64)], dim=-1)
    traj = get("pendulum").simulate(x0=x0, t_end=10.0, dt=0.05, params={"m": m, "L": length, "g": g})
    omega = torch.sqrt(g / length) * (1 - amplitude**2 / 16)
    phase = omega[:, None] * traj.t
    torch.testing.assert_close(traj.states[..., 0] / amplitude, torch.cos(phase), rtol=0, atol=1e-6)
    momentum = -(m * length**2 * omega)[:, None] * amplitude * torch.sin(phase)
    torch.testing.assert_close(traj.states[..., 1] / amplitude, momentum / amplitude, rtol=0, atol=1e-5)
    # the energy of each trajectory, with its own parameters, over all its (T,) states at once
    batched = get("pendulum").with_params({"m": m, "L": length, "g": g})
    energy = batched.energy(traj.states)
    assert float(((energy - energy[:, :1]) / energy[:, :1]).abs().max()) < 1e-8
    torch.testing.assert_close(energy[:, 0], m * g * length * (1 - math.cos(amplitude)), rtol=1e-12, atol=0)


def test_langevin_pendulum_with_per_trajectory_parameters_reaches_each_gibbs_law():
    # fluctuation–dissipation: each group's stationary Var p is its own m L² kT, whatever its friction
    groups = [{"m": 1.0, "L": 1.0, "kT": 1.0, "gamma": 0.5}, {"m": 2.0, "L": 0.5, "kT": 0.25, "gamma": 1.0}]
    size = 1000
    params = {k: torch.tensor([group[k] for group in groups], dtype=F64).repeat_interleave(size)
              for k in groups[0]}
    inertia, torque = params["m"] * params["L"] ** 2, params["m"] * 9.81 * params["L"]
    generator = torch.Generator().manual_seed(11)
    x0 = torch.randn(2 * size, 2, generator=generator, dtype=F64) * torch.stack(
        [(params["kT"] / torque).sqrt(), (inertia * params["kT"]).sqrt()], dim=-1)  # harmonic equilibrium
    t = torch.arange(0.0, 16.0 + 1e-9, 0.5, dtype=F64)
    traj = get("pendulum").simulate(x0=x0, t=t, seed=11, noise=1.0, params=params)
    after = traj.states[:, t >= 8.0, 1]  # burn-in 8 ≥ 4/γ
    for i, group in enumerate(groups):
        ratio = float(after[i * size : (i + 1) * size].var() / (group["m"] * group["L"] ** 2 * group["kT"]))
        assert ratio == pytest.approx(1.0, abs=0.07), (group, ratio)


@pytest.mark.parametrize("system", ["pendulum", "lorenz"])
def test_stochastic_forms_take_each_trajectorys_parameters(system):
    # drift and diffusion of a batch, row by row, are those of each trajectory's system alone
    base = get(system)
    varied = {k: torch.tensor([v, 1.5 * v + 0.1], dtype=F64) for k, v in base.params.items()}
    x = base.random_initial_states(2, torch.Generator().manual_seed(0))
    for noise_type in base.facts["noise_types"]:
        sde = base.with_params(varied).sde(0.7, noise_type)
        for i in range(2):
            alone = get(system, **{k: float(v[i]) for k, v in varied.items()}).sde(0.7, noise_type)
            t = torch.tensor(0.0, dtype=F64)
            torch.testing.assert_close(sde.f(t, x)[i], alone.f(t, x[i : i + 1])[0], rtol=1e-15, atol=0)
            torch.testing.assert_close(sde.g(t, x)[i], alone.g(t, x[i : i + 1])[0], rtol=1e-15, atol=0)


def test_reaction_diffusion_modes_follow_each_trajectorys_dispersion_relation():
    # About the uniform state u* = v* = −k^(1/3), the cosine mode cos(a(x + 1)) cos(b(y + 1)) (a, b multiples
    # of π/2: an exact eigenvector of the discrete Neumann Laplacian, eigenvalue −κ with
    # κ = (4/dx²)(sin²(a dx/2) + sin²(b dx/2))) evolves in (u, v) by exp(M t), M = [[1 − 3u*² − Du κ, −1],
    # [1, −1 − Dv κ]]; each trajectory with its own Du, Dv, k.
    n, a, b, eps, t_end = 16, math.pi, 0.5 * math.pi, 1e-4, 1.0
    params = {"Du": torch.tensor([0.05, 0.01], dtype=F64), "Dv": torch.tensor([0.1, 0.2], dtype=F64),
              "k": torch.tensor([5e-3, 0.5], dtype=F64)}
    system = get("reaction_diffusion", n=n)
    centres = system.cell_centres() + 1
    mode = torch.cos(b * centres)[:, None] * torch.cos(a * centres)[None, :]
    ustar = -params["k"] ** (1 / 3)
    x0 = ustar[:, None, None, None].expand(2, 2, n, n).clone()
    x0[:, 0] += eps * mode
    traj = system.simulate(x0=x0, t=torch.tensor([0.0, t_end], dtype=F64), params=params)
    deviation = traj.states[:, -1] - ustar[:, None, None, None]
    amplitudes = (deviation * mode).sum((-2, -1)) / (mode * mode).sum()
    kappa = 4 / system.dx**2 * (math.sin(a * system.dx / 2) ** 2 + math.sin(b * system.dx / 2) ** 2)
    for i in range(2):
        du, dv, u = float(params["Du"][i]), float(params["Dv"][i]), float(ustar[i])
        matrix = np.array([[1 - 3 * u**2 - du * kappa, -1.0], [1.0, -1 - dv * kappa]])
        expected = expm(matrix * t_end) @ np.array([eps, 0.0])
        np.testing.assert_allclose(amplitudes[i].numpy(), expected, rtol=0, atol=2e-3 * eps)
    assert abs(float(amplitudes[0, 0] - amplitudes[1, 0])) > 0.1 * eps  # the two parameter sets differ


def jacobian_by_central_differences(system, x: torch.Tensor, step: float = 1e-6) -> torch.Tensor:
    flat = x.reshape(len(x), -1)
    columns = []
    for j in range(flat.shape[1]):
        e = torch.zeros_like(flat)
        e[:, j] = step * flat[:, j].abs().clamp(min=1e-3)
        plus = system.vector_field(0.0, (flat + e).reshape(x.shape)).reshape(len(x), -1)
        minus = system.vector_field(0.0, (flat - e).reshape(x.shape)).reshape(len(x), -1)
        columns.append((plus - minus) / (2 * e[:, j : j + 1]))
    return torch.stack(columns, dim=-1)


@pytest.mark.parametrize("name", names())
def test_jacobian_with_per_trajectory_parameters_matches_finite_differences(name):
    base = get(name, n=4) if name == "reaction_diffusion" else get(name)
    varied = {k: torch.tensor([v, 2 * v, 0.5 * v], dtype=F64) for k, v in base.params.items() if k != "n"}
    system = base.with_params(varied)
    x = base.random_initial_states(3, torch.Generator().manual_seed(2))
    if name == "robertson":
        x = torch.tensor([[0.9, 3.6e-5, 0.1], [0.5, 1e-3, 0.499], [0.2, 1e-5, 0.8]], dtype=F64)
    jacobian = system.jacobian(0.0, x)
    expected = jacobian_by_central_differences(system, x)
    scale = expected.abs().amax(dim=(-2, -1), keepdim=True)
    assert float(((jacobian - expected).abs() / scale).max()) < 1e-7
    for i in range(3):  # and row i is trajectory i's own Jacobian
        alone = get(name, **({"n": 4} if name == "reaction_diffusion" else {}),
                    **{k: float(v[i]) for k, v in varied.items()})
        torch.testing.assert_close(jacobian[i], alone.jacobian(0.0, x[i : i + 1])[0])


def test_robertson_with_per_trajectory_rates_conserves_mass_on_its_log_grid():
    rates = {"k1": torch.tensor([0.04, 0.4], dtype=F64), "k3": torch.tensor([1e4, 3e3], dtype=F64)}
    traj = get("robertson").simulate(params=rates, t_end=1e5)
    assert traj.states.shape[0] == 2 and traj.t[1] == 1e-6 and traj.t[-1] == 1e5  # its own log-spaced grid
    mass = traj.states.sum(-1)
    assert float((mass - mass[:, :1]).abs().max()) < 1e-12 and float(traj.states.min()) >= -1e-14
    assert traj.system_params == {"k2": 3e7}


def test_varying_parameters_are_no_scalars_of_the_file_and_no_reference_system_is_rebuilt(tmp_path):
    from physdyn.data import save

    rober = get("robertson")
    x0 = torch.tensor([[1.0, 0.0, 0.0]] * 2, dtype=F64)
    t = torch.tensor([0.0, 1e-3, 1.0, 10.0], dtype=F64)
    varied = rober.simulate(x0=x0, t=t, params={"k1": torch.tensor([0.04, 0.08], dtype=F64)})
    save(varied, tmp_path / "varied.h5")
    data = load(tmp_path / "varied.h5")
    assert data.system_params == {"k2": 3e7, "k3": 1e4} and data.params["k1"].tolist() == [0.04, 0.08]
    assert reference_system(data) is None
    report = evaluate(rober, data, horizon=3, system=reference_system(data), plots=False)
    assert any("no reference system" in note for note in report.metrics["notes"])
    # an older file that wrote the default rates as scalars beside varying ones: still no wrong system
    stale = Trajectories(t=t, states=varied.states, params=varied.params, system="robertson",
                         system_params=dict(rober.params))
    assert reference_system(stale) is None
    # per-trajectory values that are all equal are shared: the scalars are written and the system rebuilt
    same = rober.simulate(x0=x0, t=t, params={"k1": torch.tensor([0.08, 0.08], dtype=F64)})
    assert same.system_params == {"k1": 0.08, "k2": 3e7, "k3": 1e4}
    assert reference_system(same).params == same.system_params


@pytest.mark.parametrize(("name", "kwargs"), [
    ("reaction_diffusion", {"t_end": 1.0}),  # one adaptive solve; a progress bar must not cut it into pieces
    ("lorenz", {"t_end": 1.5, "noise": 0.5}),  # Brownian windows that do not depend on the bar
    ("pendulum", {"t_end": 2.0, "noise": 1.0}),
])
def test_the_progress_bar_does_not_change_the_result(name, kwargs):
    system = get(name, n=16) if name == "reaction_diffusion" else get(name)
    quiet = system.simulate(2, seed=3, **kwargs).states
    assert torch.equal(system.simulate(2, seed=3, progress=True, **kwargs).states, quiet)
