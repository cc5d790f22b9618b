"""The latent family: latent_ode, ode_rnn, gru_dt on masked, irregular sequences."""

from __future__ import annotations

import json
import math

import h5py
import pytest
import torch

from physdyn import models
from physdyn.cli import main
from physdyn.data import Trajectories, observe, save
from physdyn.metrics import spread_coverage
from physdyn.training import ELBO, SequencePrediction, kl_weight

LATENT = ("latent_ode", "ode_rnn", "gru_dt")


def _sequences(n: int = 6, n_t: int = 12, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-trajectory irregular grids, 2-D states, a random mask with unobserved first samples."""
    g = torch.Generator().manual_seed(seed)
    t = torch.sort(torch.rand(n, n_t, generator=g, dtype=torch.float64) * 3, dim=1).values
    x = torch.randn(n, n_t, 2, generator=g)
    mask = torch.rand(n, n_t, 2, generator=g) < 0.5
    mask[:, 0] = False  # nothing observed at the first time: no obstacle for sequence models
    return t, x, mask


@pytest.mark.parametrize("name", LATENT)
def test_predictions_have_one_sample_axis_and_only_latent_ode_samples(name):
    torch.manual_seed(0)
    model = models.get(name, (2,))
    t, x, mask = _sequences()
    queries = torch.linspace(0, 4, 9, dtype=torch.float64)
    queries = queries + t[:, :1]  # from each trajectory's first context time on, past its end
    out = model.predict(t, x, mask, queries, samples=5, generator=torch.Generator().manual_seed(1))
    assert out.shape == (6, 5, 9, 2) and torch.isfinite(out).all()
    spread = out.std(1).max()
    assert (spread > 1e-4) if name == "latent_ode" else (spread == 0)
    assert model.stochastic == (name == "latent_ode")


@pytest.mark.parametrize("name", LATENT)
def test_unobserved_values_cannot_change_predictions_or_losses(name):
    torch.manual_seed(0)
    model = models.get(name, (2,))
    t, x, mask = _sequences()
    other = torch.where(mask, x, torch.randn_like(x) * 1e3)
    other[~mask & (torch.rand_like(x) < 0.3)] = float("nan")
    gen = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    a = model.predict(t, x, mask, t, samples=3, generator=gen())
    b = model.predict(t, other, mask, t, samples=3, generator=gen())
    assert torch.equal(a, b)
    objective = (ELBO if name == "latent_ode" else SequencePrediction)(model)
    batch = {"t": t, "x": x, "mask": mask}
    torch.manual_seed(5)
    la = objective(model, batch, epoch=20)["loss"]
    torch.manual_seed(5)
    lb = objective(model, dict(batch, x=other), epoch=20)["loss"]
    assert torch.isfinite(la) and torch.equal(la, lb)


def test_observed_values_do_change_predictions():  # the test above is not vacuous
    torch.manual_seed(0)
    model = models.get("latent_ode", (2,))
    t, x, mask = _sequences()
    a = model.predict(t, x, mask, t)
    b = model.predict(t, torch.where(mask, x + 1, x), mask, t)
    assert (a - b).abs().max() > 1e-4


def test_elbo_is_the_gaussian_likelihood_minus_the_closed_form_kl():
    torch.manual_seed(0)
    model = models.get("latent_ode", (2,), obs_std=0.3)
    t, x, mask = _sequences()
    objective = ELBO(model, samples=1, kl_warmup=0, kl_rate=0.5).eval()  # eval: no context cut
    torch.manual_seed(7)
    with torch.no_grad():
        out = objective(model, {"t": t, "x": x, "mask": mask}, epoch=30)  # weight 1 − 0.5^30 ≈ 1
    torch.manual_seed(7)
    with torch.no_grad():
        q = model.encode(t, x, mask)
        z0 = q.rsample((1,))[0]
        mean = model.decode(z0, t[:, 0], t).double()
    mu, sigma = q.mean.double(), q.stddev.double()
    kl = 0.5 * (sigma**2 + mu**2 - 1 - 2 * sigma.log()).sum(-1)  # KL(N(μ, σ²) ‖ N(0, 1)), closed form
    s = 0.3
    log_density = -0.5 * ((x.double() - mean) / s) ** 2 - math.log(s) - 0.5 * math.log(2 * math.pi)
    log_lik = (log_density * mask).sum()
    beta = 1 - 0.5**30
    expected = -(log_lik - beta * kl.sum()) / mask.sum()
    assert float(out["kl"]) == pytest.approx(float(kl.mean()), rel=1e-5)
    assert float(out["loss"]) == pytest.approx(float(expected), rel=1e-5)
    assert float(out["nll"]) == pytest.approx(float(-log_lik / mask.sum()), rel=1e-5)


def test_kl_annealing_follows_rubanovas_schedule():
    assert [kl_weight(e, 10, 0.99) for e in (0, 5, 9, 10)] == [0.0, 0.0, 0.0, 0.0]
    assert kl_weight(11, 10, 0.99) == pytest.approx(0.01)
    assert kl_weight(110, 10, 0.99) == pytest.approx(1 - 0.99**100)
    assert kl_weight(10_000, 10, 0.99) == pytest.approx(1.0)
    model = models.get("latent_ode", (2,))
    t, x, mask = _sequences()
    objective = ELBO(model, kl_warmup=3, kl_rate=0.9)
    weights = [float(objective(model, {"t": t, "x": x, "mask": mask}, epoch=e)["kl_weight"]) for e in (2, 4)]
    assert weights == pytest.approx([0.0, 0.1])
    with pytest.raises(ValueError, match="kl_rate"):
        ELBO(model, kl_rate=1.0)


def test_gru_dt_reads_the_time_gaps_not_the_clock():
    torch.manual_seed(0)
    model = models.get("gru_dt", (2,))
    t, x, mask = _sequences()
    base = model.predict(t, x, mask, t)
    shifted = model.predict(t + 100.0, x, mask, t + 100.0)  # the same gaps, another clock
    assert torch.allclose(base, shifted, atol=1e-6)
    stretched = model.predict(2 * t, x, mask, 2 * t)  # other gaps
    assert (base - stretched).abs().max() > 1e-4


def test_sequence_models_answer_a_query_before_reading_the_observation_at_its_time():
    torch.manual_seed(0)
    t, x, mask = _sequences()
    for name in ("ode_rnn", "gru_dt"):
        model = models.get(name, (2,))
        pred = model.predict(t, x, mask, t)[:, 0]
        changed = model.predict(t, torch.where(mask, x + 5, x), mask, t)[:, 0]
        # the first sample is predicted from nothing at all, whatever is observed
        assert torch.equal(pred[:, 0], changed[:, 0])
        assert torch.equal(pred, model.run(t, x, mask))


def test_spread_coverage_of_exact_gaussian_samples_is_nominal():
    g = torch.Generator().manual_seed(0)
    samples = torch.randn(200, 400, 3, 1, generator=g, dtype=torch.float64)
    truth = torch.randn(200, 3, 1, generator=g, dtype=torch.float64)
    cover = spread_coverage(samples, truth)
    assert cover.shape == (3,)
    # P(|Z| ≤ 2) = erf(2/√2) = 0.9545; the sample mean and std carry O(1/√K) error
    assert torch.allclose(cover, torch.full((3,), math.erf(2 / math.sqrt(2)), dtype=torch.float64), atol=0.03)
    mask = torch.zeros_like(truth, dtype=torch.bool)
    mask[:10] = True
    assert torch.allclose(spread_coverage(samples, truth, mask=mask), spread_coverage(samples[:10],
                                                                                          truth[:10]))


def test_observe_keeps_the_fraction_asked_for_with_nan_elsewhere():
    t = torch.linspace(0, 1, 20, dtype=torch.float64)
    states = torch.stack([torch.sin(t), torch.cos(t)], -1).expand(4, 20, 2).clone()
    obs = observe(Trajectories(t=t, states=states, system="pendulum"), [0], keep=0.3, noise=0.0, seed=1)
    assert obs.states.shape == (4, 20, 1) and obs.system == "custom"
    assert obs.mask.sum(1).flatten().tolist() == [6, 6, 6, 6]
    assert obs.states[~obs.mask].isnan().all()
    assert torch.equal(obs.states[obs.mask], states[..., :1][obs.mask])
    assert not torch.equal(obs.mask[0], obs.mask[1])  # drawn per trajectory
    with pytest.raises(ValueError, match="keep"):
        observe(obs, keep=0.0)


def _damped(n: int, n_t: int, seed: int) -> Trajectories:
    """x = a e^{−0.2 t} cos(ω t + φ), ω ∈ [2, 3]: a damped oscillator observed at 50 % of its samples."""
    g = torch.Generator().manual_seed(seed)
    t = torch.linspace(0, 5, n_t, dtype=torch.float64)
    a, w, phi = (1 + torch.rand(n, 1, generator=g, dtype=torch.float64), 2 + torch.rand(n, 1, generator=g,
                 dtype=torch.float64), 2 * math.pi * torch.rand(n, 1, generator=g, dtype=torch.float64))
    x = (a * torch.exp(-0.2 * t) * torch.cos(w * t + phi))[..., None]
    return Trajectories(t=t, states=x)


@pytest.mark.slow
def test_a_short_latent_ode_run_beats_the_constant_predictor_on_a_damped_oscillator(tmp_path):
    from physdyn.training import fit, load_run

    train = observe(_damped(96, 40, 0), keep=0.5, noise=0.01, seed=0)
    test = _damped(16, 40, 1)
    test_obs = observe(test, keep=0.5, noise=0.01, seed=2)
    run = fit({"data": {"path": str(save(train, tmp_path / "train.h5")), "split": [0.9, 0.1, 0.0]},
               "model": {"name": "latent_ode"},
               "training": {"max_epochs": 150, "seed": 0, "progress_bar": False}}, tmp_path / "run")
    model = load_run(run)
    with torch.no_grad():
        pred = model.predict(test.t, test_obs.states, test_obs.mask, test.t)[:, 0]
    unobserved = ~test_obs.mask
    mse = float(((pred - test.states) ** 2)[unobserved].mean())
    constant = float(((train.states[train.mask].mean() - test.states) ** 2)[unobserved].mean())
    assert mse < 0.2 * constant


def test_cli_fit_and_evaluate_with_a_context_and_samples(tmp_path, capsys):
    data = observe(_damped(12, 16, 0), keep=0.5, noise=0.01, seed=0)
    path = save(data, tmp_path / "data.h5")
    assert main(["fit", str(path), "--model", "latent_ode", "--out", str(tmp_path / "run"),
                 "--max-epochs", "2", "--set", "data.split=[0.5,0.0,0.5]"]) == 0
    report = tmp_path / "report"
    assert main(["evaluate", str(tmp_path / "run"), "--data", str(path), "--horizon", "15", "--context", "8",
                 "--samples", "4", "--out", str(report)]) == 0
    metrics = json.loads((report / "metrics.json").read_text())
    assert metrics["context"] == 8 and metrics["samples"] == 4
    assert set(metrics["context_error"]) == set(metrics["forecast"]) == {"rmse", "nrmse"}
    assert 0 <= metrics["interval_coverage"]["forecast"] <= 1 and "context" in metrics["interval_coverage"]
    assert "trajectories.png" in metrics["files"]
    with h5py.File(report / "predictions.h5") as f:
        assert f["states"].shape == (6 * 4, 16, 1)  # N·K: the K samples of each trajectory in a row
        index = f["params/source_index"][()]
    assert index.tolist() == sorted(index.tolist()) and len(set(index.tolist())) == 6
    assert "truth inside mean ± 2 std" in capsys.readouterr().out
