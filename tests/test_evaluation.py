"""physdyn.evaluation on stand-in models whose rollouts are known in closed form or are the true system's."""

from __future__ import annotations

import json
import math
import re
from dataclasses import replace

import numpy as np
import pytest
import torch

from physdyn import systems
from physdyn.data import Trajectories, load
from physdyn.evaluation import evaluate, json_safe
from physdyn.solvers import rk_integrate

PNG = b"\x89PNG\r\n\x1a\n"


class Rotation:
    """dq/dt = ω p, dp/dt = −ω q: the flow is a rotation by ω t, H = ω (q² + p²) / 2 is conserved.

    With ``damping`` γ the rollout also shrinks as e^{−γ t}, so H decays as e^{−2γ t}.
    """

    invariants = ("energy",)
    lyapunov_max = None
    facts: dict = {}

    def __init__(self, omega: float = 1.0, damping: float = 0.0) -> None:
        self.omega, self.damping = omega, damping
        self.calls: list[torch.Tensor] = []

    def rollout(self, x0: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.calls.append(t)
        t = t - t[..., :1]
        t = t.expand(len(x0), t.shape[-1])[..., None]  # (N, T, 1)
        c, s = torch.cos(self.omega * t), torch.sin(self.omega * t)
        q, p = x0[:, None, :1], x0[:, None, 1:]
        return torch.cat([c * q + s * p, -s * q + c * p], -1) * torch.exp(-self.damping * t)

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        return self.omega * (x[:, 0] ** 2 + x[:, 1] ** 2) / 2


def rotation_data(n: int = 6, n_t: int = 201, t_end: float = 20.0, seed: int = 0) -> Trajectories:
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(n, 2, generator=g, dtype=torch.float64)
    t = torch.linspace(0.0, t_end, n_t, dtype=torch.float64)
    return Trajectories(t=t, states=Rotation().rollout(x0, t), system="custom", state_names=("q", "p"))


def test_the_true_model_has_no_error_and_keeps_the_whole_horizon(tmp_path):
    data = rotation_data()
    report = evaluate(Rotation(), data, 150, system=Rotation(), out_dir=tmp_path / "report", plots=False)
    m = report.metrics
    assert len(m["times"]) == len(m["rmse"]) == len(m["nrmse"]) == 151
    np.testing.assert_allclose(m["times"], data.t[:151].numpy(), rtol=0, atol=1e-12)
    assert max(m["rmse"]) < 1e-12 and max(m["nrmse"]) < 1e-12
    assert m["vpt"] == pytest.approx(15.0)  # t_150 - t_0: the whole horizon
    assert m["energy_drift"]["max"] < 1e-12 and m["energy_error"] < 1e-24
    assert m["n_trajectories"] == 6 and m["horizon"] == 150 and m["energy_source"] == "true"


def test_a_wrong_frequency_gives_the_closed_form_error_and_vpt():
    """|R(ωt)x0 − R(ω't)x0| = |x0| · 2|sin((ω − ω')t/2)|; the rotation still conserves |x|, hence H."""
    data, omega = rotation_data(), 1.1
    report = evaluate(Rotation(omega), data, 200, system=Rotation())
    m = report.metrics
    t = data.t.numpy()
    x = data.states.numpy()
    amp2 = (x[:, 0] ** 2).sum(-1)  # |x0|² per trajectory
    chord = 2 * np.abs(np.sin((omega - 1.0) * t / 2))
    np.testing.assert_allclose(m["rmse"], np.sqrt(amp2.mean() / 2) * chord, rtol=1e-9, atol=1e-12)
    sigma = x.reshape(-1, 2).std(0)
    np.testing.assert_allclose(m["scale"], sigma, rtol=1e-12)
    # normalised error of trajectory n: e = chord · |R(ω't)x0 − R(ωt)x0| direction over σ; computed directly
    pred = Rotation(omega).rollout(data.states[:, 0], data.t).numpy()
    e = np.sqrt((((pred - x) / sigma) ** 2).mean(-1))
    first = np.argmax(e > 0.4, axis=1)
    expected = np.where((e > 0.4).any(1), t[first], t[-1])
    assert m["vpt"] == pytest.approx(np.median(expected))
    np.testing.assert_allclose(m["vpt_per_trajectory"], expected)
    assert 0 < m["vpt"] < t[-1]
    assert m["energy_drift"]["max"] < 1e-12  # wrong phase, right energy


def test_a_context_is_given_and_the_forecast_starts_at_its_last_state():
    # From x(t_c) the wrong rotation is off by the chord of the elapsed time since t_c, not since t_0.
    data, omega, c = rotation_data(), 1.1, 30
    report = evaluate(Rotation(omega), data, 200, context=c)
    m, t, x = report.metrics, data.t.numpy(), data.states.numpy()
    amp2 = (x[:, 0] ** 2).sum(-1)
    chord = 2 * np.abs(np.sin((omega - 1.0) * np.clip(t[:201] - t[c - 1], 0, None) / 2))
    np.testing.assert_allclose(m["rmse"], np.sqrt(amp2.mean() / 2) * chord, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(report.predictions.states[:, :c], data.states[:, :c])  # given, not predicted
    pred = Rotation(omega).rollout(data.states[:, c - 1], data.t[c - 1 : 201]).numpy()
    e = np.sqrt((((pred - x[:, c - 1 : 201]) / m["scale"]) ** 2).mean(-1))
    expected = np.where((e > 0.4).any(1), t[np.argmax(e > 0.4, axis=1)], t[200] - t[c - 1])
    np.testing.assert_allclose(m["vpt_per_trajectory"], expected)
    assert m["context"] == c and "context_error" not in m and any("context" in n for n in m["notes"])
    forecast = np.sqrt(amp2.mean() / 2 * (chord[c:] ** 2).mean())
    assert m["forecast"]["rmse"] == pytest.approx(forecast, rel=1e-9)
    with pytest.raises(ValueError, match="context"):
        evaluate(Rotation(), data, 10, context=11)


def test_energy_drift_of_a_damped_model_is_one_minus_exp():
    data, gamma = rotation_data(n_t=101, t_end=5.0), 0.05
    m = evaluate(Rotation(damping=gamma), data, 100, system=Rotation()).metrics
    assert m["energy_drift"]["final"] == pytest.approx(1 - math.exp(-2 * gamma * 5.0), rel=1e-9)
    assert m["energy_drift"]["max"] == pytest.approx(1 - math.exp(-2 * gamma * 5.0), rel=1e-9)
    # without a reference system, the model's own energy is used
    assert evaluate(Rotation(damping=gamma), data, 100).metrics["energy_source"] == "learned"


def test_report_files(tmp_path):
    data = rotation_data(n=4)
    out = tmp_path / "report"
    report = evaluate(Rotation(1.05), data, 120, system=Rotation(), out_dir=out)
    assert report.path == out
    text = (out / "metrics.json").read_text()
    metrics = json.loads(text, parse_constant=lambda c: pytest.fail(f"metrics.json holds {c}"))
    keys = {"times", "rmse", "nrmse", "vpt", "energy_drift", "energy_error", "n_trajectories", "horizon"}
    assert keys <= set(metrics)
    for name in ("error_vs_horizon.png", "trajectories.png", "phase_portrait.png", "energy.png"):
        assert (out / name).read_bytes()[:8] == PNG, name
    pred = load(out / "predictions.h5")
    assert pred.states.shape == (4, 121, 2)
    np.testing.assert_array_equal(pred.t.numpy(), data.t[:121].numpy())
    np.testing.assert_array_equal(pred.states[:, 0].numpy(), data.states[:, 0].numpy())
    expected = Rotation(1.05).rollout(data.states[:, 0], data.t[:121])
    np.testing.assert_allclose(pred.states.numpy(), expected.numpy(), rtol=0, atol=1e-12)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left


def test_an_existing_report_is_replaced_only_with_force(tmp_path, monkeypatch):
    data = rotation_data(n=2, n_t=21)
    out = tmp_path / "report"
    evaluate(Rotation(), data, 5, out_dir=out, plots=False)
    with pytest.raises(FileExistsError, match="not empty: it holds an earlier report"):
        evaluate(Rotation(), data, 10, out_dir=out)

    import physdyn.evaluation._plots as plots

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(plots, "write_plots", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        evaluate(Rotation(), data, 10, out_dir=out, force=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]  # nothing half-written
    assert json.loads((out / "metrics.json").read_text())["horizon"] == 5  # the earlier report, intact
    monkeypatch.undo()

    evaluate(Rotation(), data, 10, out_dir=out, force=True, plots=False)
    assert json.loads((out / "metrics.json").read_text())["horizon"] == 10


def tree(folder):
    return sorted((p.relative_to(folder).as_posix(), p.read_bytes() if p.is_file() else None)
                  for p in folder.rglob("*"))


def _foreign_file(out, data, monkeypatch):
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    return out, data, "is not a physdyn report (notes.txt"


def _foreign_file_in_a_report(out, data, monkeypatch):
    evaluate(Rotation(), data, 5, out_dir=out, plots=False)
    (out / "notes.txt").write_text("mine")
    return out, data, "is not a physdyn report (notes.txt"


def _subfolder(out, data, monkeypatch):
    (out / "sub").mkdir(parents=True)
    return out, data, "is not a physdyn report (sub"


def _data_file_in_a_report(out, data, monkeypatch):  # evaluating a report's predictions, into that report
    evaluate(Rotation(), data, 5, out_dir=out, plots=False)
    return out, load(out / "predictions.h5"), "an input of this evaluation"


def _current_folder(out, data, monkeypatch):
    out.mkdir()
    monkeypatch.chdir(out)
    return ".", data, "is the current folder"


def _parent_of_the_current_folder(out, data, monkeypatch):
    (out / "deeper").mkdir(parents=True)
    monkeypatch.chdir(out / "deeper")
    return out, data, "is the current folder or contains it"


@pytest.mark.parametrize("setup", [_foreign_file, _foreign_file_in_a_report, _subfolder,
                                   _data_file_in_a_report, _current_folder, _parent_of_the_current_folder])
def test_force_never_replaces_anything_but_a_report(tmp_path, monkeypatch, setup):
    target, data, problem = setup(tmp_path / "out", rotation_data(n=2, n_t=21), monkeypatch)
    before = tree(tmp_path)
    with pytest.raises(FileExistsError, match=re.escape(problem)):
        evaluate(Rotation(), data, 5, out_dir=target, force=True, plots=False)
    assert tree(tmp_path) == before


def test_each_trajectory_is_rolled_out_on_its_own_times(tmp_path):
    n, n_t = 3, 30
    g = torch.Generator().manual_seed(1)
    steps = 0.05 + 0.2 * torch.rand(n, n_t - 1, generator=g, dtype=torch.float64)
    t = torch.cat([torch.full((n, 1), 2.0, dtype=torch.float64), 2.0 + steps.cumsum(-1)], -1)
    x0 = torch.randn(n, 2, generator=g, dtype=torch.float64)
    states = torch.stack([Rotation().rollout(x0[i : i + 1], t[i])[0] for i in range(n)])
    data = Trajectories(t=t, states=states)
    model = Rotation()
    report = evaluate(model, data, n_t - 1, out_dir=tmp_path / "r", plots=False)
    assert model.calls[0].shape == (n, n_t)
    assert max(report.metrics["rmse"]) < 1e-12
    np.testing.assert_allclose(report.metrics["times"], (t - t[:, :1]).mean(0).numpy())
    assert load(tmp_path / "r" / "predictions.h5").t.shape == (n, n_t)


def test_a_diverging_model_is_caught():
    class Blowup(Rotation):
        def rollout(self, x0, t):
            x = super().rollout(x0, t)
            x[0, 50:] = torch.nan
            return x

    data = rotation_data(n=3)
    m = evaluate(Blowup(), data, 100).metrics
    assert m["diverged"] == 1
    assert m["vpt_per_trajectory"][0] == pytest.approx(data.t[50].item())
    assert m["rmse"][49] < 1e-12 and math.isinf(m["rmse"][50])
    assert json_safe(m)["rmse"][50] is None
    json.dumps(json_safe(m), allow_nan=False)


def test_samples_of_a_stochastic_model():
    class Noisy(Rotation):
        """The true rotation plus independent noise of std 0.1 on every rollout after the first state."""

        stochastic = True

        def rollout(self, x0, t):
            x = super().rollout(x0, t)
            noise = 0.1 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0), dtype=x.dtype)
            noise[:, 0] = 0
            return x + noise

    data = rotation_data(n=3, n_t=51)
    report = evaluate(Noisy(), data, 50, samples=400)
    m = report.metrics
    assert report.predictions.states.shape == (1200, 51, 2) and m["samples"] == 400
    # point metrics on the mean of 400 samples: noise std 0.1 / sqrt(400) = 0.005
    assert 0.003 < m["rmse"][-1] < 0.008
    np.testing.assert_allclose(m["ensemble_spread"][1:], 0.1, rtol=0.1)
    assert report.predictions.params["source_index"].tolist() == [i for i in range(3) for _ in range(400)]


def test_masked_data_is_compared_on_observed_entries_only():
    data, omega = rotation_data(n=4, n_t=41, t_end=4.0), 1.2
    mask = torch.ones_like(data.states, dtype=torch.bool)
    mask[:, 1::2, 1] = False  # p unobserved at odd steps
    mask[0, 1::3, 0] = False
    observed = replace(data, states=torch.where(mask, data.states, 0.0), mask=mask)
    m = evaluate(Rotation(omega), observed, 40).metrics
    err2 = (Rotation(omega).rollout(data.states[:, 0], data.t) - data.states).numpy() ** 2
    w = mask.numpy()
    expected = np.sqrt((err2 * w).sum((0, 2)) / w.sum((0, 2)))
    np.testing.assert_allclose(m["rmse"], expected, rtol=1e-9, atol=1e-14)
    x, wf = data.states.numpy(), w.astype(float)
    mean = (x * wf).sum((0, 1)) / wf.sum((0, 1))
    sigma = np.sqrt((((x - mean) ** 2) * wf).sum((0, 1)) / wf.sum((0, 1)))
    np.testing.assert_allclose(m["scale"], sigma, rtol=1e-12)
    with pytest.raises(ValueError, match="first state"):
        mask[2, 0, 0] = False
        evaluate(Rotation(), replace(observed, mask=mask), 10)


def test_mass_and_positivity_for_systems_that_have_them():
    class Kinetics:
        invariants = ("mass", "positivity")

    class Decay:
        """x(t) = x0 e^{−t}: total mass lost (1 − e^{−t}) Σ x0; stays positive."""

        def rollout(self, x0, t):
            return x0[:, None] * torch.exp(-(t - t[0]))[None, :, None]

    class Drop:
        """x(t) = x0 − t: keeps Σ x − (number of species) t and goes negative."""

        def rollout(self, x0, t):
            return x0[:, None] - (t - t[0])[None, :, None]

    t = torch.linspace(0, 2, 21, dtype=torch.float64)
    x0 = torch.tensor([[1.0, 0.5, 0.25], [0.2, 0.3, 0.5]], dtype=torch.float64)
    data = Trajectories(t=t, states=x0[:, None].expand(2, 21, 3).clone())
    m = evaluate(Decay(), data, 20, system=Kinetics()).metrics
    lost = (1 - math.exp(-2)) * x0.sum(-1)
    assert m["mass_error"]["final"] == pytest.approx(float(lost.mean()))
    assert m["mass_error"]["worst"] == pytest.approx(float(lost.max()))
    assert m["positivity_violation"]["depth"] == 0
    m = evaluate(Drop(), data, 20, system=Kinetics()).metrics
    assert m["positivity_violation"]["depth"] == pytest.approx(2 - 0.2)
    assert m["mass_error"]["final"] == pytest.approx(3 * 2.0)


def test_field_states_do_not_break_the_plots(tmp_path):
    class Decay:
        def rollout(self, x0, t):
            return x0[:, None] * torch.exp(-(t - t[0]))[None, :, None, None, None]

    t = torch.linspace(0, 1, 11, dtype=torch.float64)
    x0 = torch.rand(2, 2, 5, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    data = Trajectories(t=t, states=x0[:, None] * torch.exp(-1.2 * t)[None, :, None, None, None],
                        state_names=("u", "v"))
    report = evaluate(Decay(), data, 10, out_dir=tmp_path / "r")
    for name in ("trajectories.png", "phase_portrait.png", "error_vs_horizon.png", "fields.png"):
        assert (tmp_path / "r" / name).read_bytes()[:8] == PNG
    assert report.metrics["rmse"][-1] > 0
    assert load(tmp_path / "r" / "predictions.h5").states.shape == (2, 11, 2, 5, 5)


def test_bad_input_is_refused_in_one_line():
    data = rotation_data(n=2, n_t=21)
    for horizon, match in ((0, "horizon must be"), (21, "at most 20 steps"), (2.5, "horizon must be")):
        with pytest.raises(ValueError, match=match):
            evaluate(Rotation(), data, horizon)

    class Wrong(Rotation):
        state_shape = (3,)

    with pytest.raises(ValueError, match=r"state shape \(2,\) differs from the model's \(3,\)"):
        evaluate(Wrong(), data, 5)


# Lorenz-63: the true system as a model, a perturbed one, and VPT against the Lyapunov time.

LORENZ = systems.get("lorenz")


class RK4:
    """A system's own vector field integrated by fixed-step RK4 with step ``h``; optionally from x0 + δ."""

    def __init__(self, system, h: float = 0.0025, delta: float = 0.0, seed: int = 0) -> None:
        self.system, self.h, self.delta, self.seed = system, h, delta, seed

    def rollout(self, x0, t):
        g = torch.Generator().manual_seed(self.seed)
        direction = torch.randn(x0.shape, generator=g, dtype=x0.dtype)
        x0 = x0 + self.delta * direction / direction.norm(dim=-1, keepdim=True)
        return rk_integrate(self.system.vector_field, x0, t, max_step=self.h)


def lorenz_data(n: int, t_end: float, dt: float = 0.02, h: float = 4e-3) -> Trajectories:
    """Lorenz trajectories on the attractor (a transient of 2 time units dropped), RK4 with step h."""
    x = LORENZ.random_initial_states(n, torch.Generator().manual_seed(3))
    transient = torch.tensor([0.0, 2.0], dtype=torch.float64)
    x = rk_integrate(LORENZ.vector_field, x, transient, max_step=h)[:, -1]
    t = torch.arange(round(t_end / dt) + 1, dtype=torch.float64) * dt
    states = rk_integrate(LORENZ.vector_field, x, t, max_step=h)
    return Trajectories(t=t, states=states, system="lorenz", state_names=("x", "y", "z"),
                        system_params=dict(LORENZ.params))


@pytest.fixture(scope="module")
def lorenz() -> Trajectories:
    return lorenz_data(8, 14.0)


def test_lorenz_true_system_as_model():
    short = lorenz_data(3, 1.0, h=1e-3)
    m = evaluate(LORENZ, short, 50, system=LORENZ, lyapunov=False, attractor_steps=0).metrics
    assert max(m["rmse"]) < 1e-7  # dopri5 at 1e-10 against RK4 at h = 1e-3
    assert m["vpt"] == pytest.approx(1.0)
    assert m["lyapunov_max_true"] == pytest.approx(0.9056)
    assert m["vpt_lyapunov"] == pytest.approx(0.9056)


def test_lorenz_vpt_of_a_perturbed_start_matches_the_lyapunov_time(lorenz):
    """An initial error δ grows as δ e^{λt}: the error reaches 0.4 σ at t* ≈ ln(0.4 σ / δ) / λ."""
    delta = 1e-3
    m = evaluate(RK4(LORENZ, h=0.005, delta=delta), lorenz, 700, system=LORENZ, lyapunov=False,
                 attractor_steps=0).metrics
    lam = 0.9056
    sigma = float(np.sqrt(np.mean(np.square(m["scale"]))))
    t_star = math.log(0.4 * sigma / delta) / lam
    assert abs(m["vpt"] - t_star) < 3 / lam, (m["vpt"], t_star)
    assert m["vpt_lyapunov"] == pytest.approx(m["vpt"] * lam)


def test_lorenz_with_a_perturbed_parameter(lorenz, tmp_path):
    model = RK4(systems.get("lorenz", rho=28.5), h=0.005)
    report = evaluate(model, lorenz[:4], 400, system=LORENZ, lyapunov=False, attractor_steps=600,
                      out_dir=tmp_path / "r")
    m = report.metrics
    assert 0 < m["vpt"] < 8.0  # loses the trajectory before the horizon
    a = m["attractor"]
    assert set(a) >= {"mean_pred", "mean_true", "std_pred", "std_true", "wasserstein"}
    # both attractors are Lorenz butterflies of nearly the same size
    np.testing.assert_allclose(a["std_pred"], a["std_true"], rtol=0.25)
    assert (tmp_path / "r" / "attractor.png").read_bytes()[:8] == PNG


def test_pendulum_data_brings_its_true_energy():
    """Data simulated by physdyn names its system: the reference is rebuilt from it, with its energy."""
    from physdyn.evaluation import reference_system

    data = systems.get("pendulum", L=2.0).simulate(3, t_end=5.0, dt=0.05, seed=2)
    system = reference_system(data)
    assert system.params["L"] == 2.0
    model = systems.get("pendulum", L=2.0)
    m = evaluate(model, data, 100, system=system).metrics
    assert m["energy_source"] == "true" and max(m["rmse"]) < 1e-9
    assert m["energy_drift"]["worst"] < 1e-6  # a symplectic order-6 integrator keeps H
    assert "lyapunov_max_model" not in m and "attractor" not in m  # not a chaotic system


def test_a_crossing_at_the_last_step_is_a_crossing_not_a_lower_bound():
    # The error of the wrong rotation first exceeds the threshold at step k: a horizon of exactly k steps
    # still measures the VPT (it is not the whole horizon reached without crossing).
    data, omega = rotation_data(n=1), 1.1
    full = evaluate(Rotation(omega), data, 200).metrics
    k = int(torch.nonzero(data.t == full["vpt"])[0])
    assert 1 < k < 200 and full["vpt_reached_horizon"] == 0
    at_k = evaluate(Rotation(omega), data, k).metrics  # σ comes from all of the data, as above
    assert at_k["vpt"] == full["vpt"] and at_k["vpt_reached_horizon"] == 0
    short = evaluate(Rotation(omega), data, k - 1).metrics  # one step short: the VPT is a lower bound
    assert short["vpt_reached_horizon"] == 1 and short["vpt"] == pytest.approx(float(data.t[k - 1]))


def test_a_learned_energy_without_a_physical_form_is_a_note_not_a_crash():
    from physdyn import models
    from physdyn.data import Normalizer
    from physdyn.training import LearnedModel

    hnn = models.get("hnn", 4, width=8, depth=1).double()
    norm = Normalizer("standard", torch.zeros(4, dtype=torch.float64),
                      torch.tensor([1.0, 2.0, 1.0, 1.0], dtype=torch.float64), (4,))
    data = Trajectories(t=torch.linspace(0, 1, 6, dtype=torch.float64),
                        states=torch.randn(2, 6, 4, generator=torch.Generator().manual_seed(0),
                                           dtype=torch.float64))
    m = evaluate(LearnedModel(hnn, norm), data, 5).metrics
    assert "energy_drift" not in m and any("energy metrics not computed" in n for n in m["notes"])
