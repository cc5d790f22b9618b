"""Neural SDEs: the transition likelihood, sampling, physical units, and a short fit of a known process."""

from __future__ import annotations

import math

import pytest
import torch
from scipy.stats import multivariate_normal, norm

from physdyn import models, systems
from physdyn.data import Normalizer, save
from physdyn.solvers import sdeint
from physdyn.training import LearnedModel, TransitionLikelihood, fit, load_run
from physdyn.training._objectives import transition_nll, transition_scales

F64 = torch.float64


def _model(noise: str = "diagonal", **hp) -> models.NeuralSDE:
    torch.manual_seed(0)
    return models.get("neural_sde", (3,), noise=noise, width=16, depth=1, diffusion_width=8,
                      diffusion_depth=1, **hp).double()


@pytest.mark.parametrize("noise", ["diagonal", "general"])
def test_transition_nll_is_the_euler_maruyama_gaussian_log_density(noise):
    model = _model(noise, **({"brownian_size": 4} if noise == "general" else {}))
    g = torch.Generator().manual_seed(1)
    x0, x1 = torch.randn(5, 3, generator=g, dtype=F64), torch.randn(5, 3, generator=g, dtype=F64)
    h = torch.tensor([0.1, 0.05, 0.2, 0.1, 0.01], dtype=F64)
    with torch.no_grad():
        f, gm = model.drift(x0), model.diffusion(x0)
    expected = 0.0
    for i in range(5):  # scipy's density of N(x0 + h f, h G Gᵀ) (+ the floor on general noise)
        cov = torch.diag(gm[i] ** 2) if noise == "diagonal" else gm[i] @ gm[i].T + 1e-8 * torch.eye(3)
        mean = (x0[i] + h[i] * f[i]).numpy()
        expected -= multivariate_normal(mean, (h[i] * cov).numpy()).logpdf(x1[i].numpy())
    with torch.no_grad():
        got = float(transition_nll(model, x0, x1, h))
    assert got == pytest.approx(expected / 15, rel=1e-9)


def test_transition_nll_counts_only_observed_coordinates_for_diagonal_noise():
    model = _model()
    x0, x1 = torch.zeros(1, 3, dtype=F64), torch.tensor([[0.3, -0.2, 5.0]], dtype=F64)
    h = torch.tensor([0.1], dtype=F64)
    observed = torch.tensor([[True, True, False]])
    with torch.no_grad():
        f, g = model.drift(x0)[0], model.diffusion(x0)[0]
    s = (0.1**0.5) * g[:2]
    expected = -sum(norm(float(0.1 * f[i]), float(s[i])).logpdf(float(x1[0, i])) for i in range(2)) / 2
    with torch.no_grad():
        assert float(transition_nll(model, x0, x1, h, observed)) == pytest.approx(expected, rel=1e-9)


def test_transition_scales_recover_the_noise_of_a_random_walk():
    g = torch.Generator().manual_seed(0)
    h, sigma = 0.01, torch.tensor([0.5, 2.0], dtype=F64)
    steps = sigma * h**0.5 * torch.randn(4, 2000, 2, generator=g, dtype=F64)
    x = steps.cumsum(1) + 0.3 * torch.arange(2000, dtype=F64)[None, :, None] * h  # a constant drift cancels
    t = torch.arange(2000, dtype=F64).expand(4, -1) * h
    step, scale = transition_scales(t, x, torch.ones_like(x, dtype=torch.bool))
    assert step == pytest.approx(h)
    torch.testing.assert_close(scale, sigma, rtol=0.05, atol=0)


@pytest.mark.parametrize("noise", ["diagonal", "general"])
def test_samples_have_the_seam_shape_and_follow_the_generator(noise):
    model = _model(noise)
    x = torch.randn(4, 2, 3, dtype=F64)
    t = torch.linspace(0.0, 1.0, 11, dtype=F64)
    draw = lambda seed: model.predict(t[:2], x, None, t[1:], samples=5,  # noqa: E731
                                      generator=torch.Generator().manual_seed(seed))
    a, b, c = draw(0), draw(0), draw(1)
    assert a.shape == (4, 5, 10, 3)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.allclose(a, c)
    assert float(a[:, :, 1:].detach().std(1).mean()) > 0  # the K paths differ
    torch.testing.assert_close(a[:, :, 0], x[:, None, -1].expand(-1, 5, -1))  # the query at the start


def test_samples_on_per_trajectory_grids_start_at_each_context_end():
    model = _model()
    x = torch.randn(2, 1, 3, dtype=F64)
    t_context = torch.tensor([[0.0], [5.0]], dtype=F64)
    t = torch.tensor([[0.1, 0.2], [5.3, 5.4]], dtype=F64)
    out = model.predict(t_context, x, None, t, samples=3, generator=torch.Generator().manual_seed(0))
    assert out.shape == (2, 3, 2, 3) and torch.isfinite(out).all()
    with pytest.raises(ValueError, match="before the last context time"):
        model.predict(t_context, x, None, t - 1.0, samples=3)


def test_bad_hyperparameters_name_the_key():
    with pytest.raises(ValueError, match="noise must be one of"):
        models.get("neural_sde", (2,), noise="scalar")
    with pytest.raises(ValueError, match="method 'milstein' does not solve general noise"):
        models.get("neural_sde", (2,), noise="general", method="milstein")
    with pytest.raises(ValueError, match="brownian_size applies to noise='general'"):
        models.get("neural_sde", (2,), brownian_size=1)


def test_learned_drift_and_diffusion_are_in_physical_units():
    model = _model("general", brownian_size=2)
    norm_ = Normalizer("standard", torch.tensor([1.0, -2.0, 0.5], dtype=F64),
                       torch.tensor([2.0, 0.5, 10.0], dtype=F64), (3,))
    learned = LearnedModel(model, norm_)
    x = torch.randn(6, 3, dtype=F64)
    z = (x - norm_.mean) / norm_.std
    with torch.no_grad():
        torch.testing.assert_close(learned.drift(0.0, x), norm_.std * model.drift(z))
        g = learned.diffusion(0.0, x)
        torch.testing.assert_close(g, norm_.std[:, None] * model.diffusion(z))
        torch.testing.assert_close(learned.diffusion_covariance(0.0, x), g @ g.transpose(1, 2))
    sde = learned.sde()
    assert sde.noise_type == "general" and sde.brownian_size == 2
    paths = sdeint(sde, x, torch.linspace(0, 0.1, 3, dtype=F64), seed=0, dt=0.01)
    assert paths.shape == (6, 3, 3)


def test_a_vector_field_model_has_no_sde():
    learned = LearnedModel(models.get("node", (2,)), Normalizer.identity((2,)))
    with pytest.raises(AttributeError, match="has no sde"):
        learned.drift(0.0, torch.zeros(1, 2))


def test_the_objective_refuses_models_without_diffusion():
    with pytest.raises(ValueError, match="needs an SDE model"):
        TransitionLikelihood(models.get("node", (2,)))


def test_a_short_fit_of_an_ornstein_uhlenbeck_process_learns_its_noise(tmp_path):
    """Seeded: the learned diffusion over the visited states and the drift's slope are near the truth."""
    ou = systems.get("ornstein_uhlenbeck", theta=1.0, mu=1.0, sigma=0.5)
    data = ou.simulate(n_trajectories=32, t_end=10.0, dt=0.05, noise=1.0, seed=3)
    path = save(data, tmp_path / "ou.h5")
    run = fit({"data": {"path": str(path), "split": [0.8, 0.2, 0.0], "batch_size": 64},
               "model": {"name": "neural_sde", "width": 32, "depth": 2, "diffusion_width": 16},
               "training": {"max_epochs": 60, "progress_bar": False, "lr": 2e-2}}, tmp_path / "run")
    learned = load_run(run)
    x = torch.linspace(0.0, 2.0, 31, dtype=torch.float32)[:, None]  # the visited states
    with torch.no_grad():
        g = learned.diffusion(0.0, x)[:, 0]
        f = learned.drift(0.0, x)[:, 0]
    assert float(g.mean()) == pytest.approx(0.5, rel=0.05)
    slope = float(torch.linalg.lstsq(torch.stack([x[:, 0], torch.ones(31)], 1), f[:, None]).solution[0, 0])
    # Euler–Maruyama's drift at step h is the secant (e^(−θh) − 1)/h = −0.975 for θ = 1, h = 0.05
    assert slope == pytest.approx((math.exp(-0.05) - 1) / 0.05, rel=0.25)


def test_the_ornstein_uhlenbeck_moments_are_the_closed_form():
    ou = systems.get("ornstein_uhlenbeck", theta=2.0, mu=1.0, sigma=0.8)
    x0 = torch.full((4000, 1), -1.0, dtype=F64)
    t = torch.tensor([0.0, 0.1, 0.5, 2.0], dtype=F64)
    paths = ou.simulate(x0=x0, t=t, noise=1.0, seed=0).states
    mean, var = ou.mean(x0[:1], t)[0, :, 0], ou.variance(t)
    torch.testing.assert_close(mean[1:], torch.tensor([1 - 2 * math.exp(-0.2), 1 - 2 * math.exp(-1.0),
                                                       1 - 2 * math.exp(-4.0)], dtype=F64))
    sem = (var / 4000).sqrt()
    assert bool(((paths[:, :, 0].mean(0) - mean).abs() <= 4 * sem + 1e-12).all())
    torch.testing.assert_close(var[-1], torch.tensor(0.64 * (1 - math.exp(-8.0)) / 4, dtype=F64))
    assert bool(((paths[:, 1:, 0].var(0) / var[1:] - 1).abs() < 4 * math.sqrt(2 / 4000)).all())


def test_the_recipe_of_the_transition_likelihood_cuts_windows_that_share_their_ends():
    from physdyn.training._recipe import choose

    data = systems.get("ornstein_uhlenbeck").simulate(n_trajectories=4, noise=1.0)
    chosen, reasons = choose(data, "transition_likelihood", {})
    assert chosen["data"]["window"] == 12 and chosen["data"]["stride"] == 11
    assert chosen["training"]["schedule"] == "cosine" and reasons


class _ExactOrnsteinUhlenbeck:
    """A perfect probabilistic forecaster: samples of the closed-form OU transition (for the evaluation)."""

    stochastic, context, state_shape, name = True, "last_state", (1,), "exact_ou"

    def __init__(self, system):
        self.system = system

    def predict(self, t_context, x_context, mask_context, t, *, samples=1, generator=None):
        x0, elapsed = x_context[:, -1], t - t_context[:, -1:]
        theta, mu, sigma = (self.system.params[k] for k in ("theta", "mu", "sigma"))
        mean = mu + (x0 - mu) * torch.exp(-theta * elapsed)  # (N, Q)
        std = (sigma**2 * (1 - torch.exp(-2 * theta * elapsed)) / (2 * theta)).sqrt()
        # the exact marginal at each time: enough for per-step scores
        z = torch.randn(len(x0), samples, t.shape[1], generator=generator, dtype=x0.dtype)
        return (mean[:, None] + std[:, None] * z)[..., None]


def test_evaluation_of_a_calibrated_forecaster_finds_nominal_coverage_and_flat_ranks(tmp_path):
    from physdyn.evaluation import evaluate

    ou = systems.get("ornstein_uhlenbeck")
    data = ou.simulate(n_trajectories=300, t_end=1.0, dt=0.05, noise=1.0, seed=5)
    report = evaluate(_ExactOrnsteinUhlenbeck(ou), data, 20, samples=39, out_dir=tmp_path / "report",
                      lyapunov=False, attractor_steps=0)
    prob = report.metrics["probabilistic"]
    assert len(prob["crps"]) == 21 and len(prob["crps"][0]) == 1 and len(prob["coverage_90"]) == 21
    assert prob["forecast"]["coverage_90"] == pytest.approx(0.9, abs=0.02)
    assert prob["forecast"]["coverage_50"] == pytest.approx(0.5, abs=0.03)
    ranks = torch.tensor(prob["rank_histogram"])
    assert len(ranks) == 40 and float((ranks - 1 / 40).abs().max()) < 0.012
    # E CRPS of a calibrated Gaussian is σ_t/√π (plus the K-member estimator's bias σ_t/(K√π))
    sigma_t = ou.variance(torch.tensor(report.metrics["times"][1:], dtype=F64)).sqrt()
    expected = sigma_t / math.sqrt(math.pi) * (1 + 1 / 39)
    ratio = torch.tensor([v[0] for v in prob["crps"][1:]], dtype=F64) / expected
    assert float(ratio.mean()) == pytest.approx(1.0, abs=0.06)
    assert prob["marginal"]["steps"] == [4, 8, 12, 16, 20]
    assert {"rank_histogram.png", "coverage.png"} <= set(report.metrics["files"])


def test_evaluation_of_a_neural_sde_reports_sample_scores_from_the_cli(tmp_path, monkeypatch):
    from physdyn.cli import main

    ou = systems.get("ornstein_uhlenbeck")
    train = save(ou.simulate(n_trajectories=8, t_end=2.0, noise=1.0, seed=0), tmp_path / "train.h5")
    test = save(ou.simulate(n_trajectories=8, t_end=2.0, noise=1.0, seed=1), tmp_path / "test.h5")
    monkeypatch.chdir(tmp_path)
    assert main(["fit", str(train), "--model", "neural_sde", "--out", "run", "--max-epochs", "2"]) == 0
    assert main(["evaluate", "run", "--data", str(test), "--horizon", "10", "--samples", "8",
                 "--out", "report"]) == 0
    import json

    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert metrics["samples"] == 8 and len(metrics["probabilistic"]["energy_score"]) == 11
    assert (tmp_path / "report" / "coverage.png").is_file()


def test_a_float32_model_solves_one_step_per_training_interval():
    model = models.get("neural_sde", (2,)).float()  # as fit casts it: the step buffer holds 0.02 rounded down
    model.step.fill_(0.02)
    assert float(model.step) < 0.02
    grid = torch.tensor([0.0, 0.02, 0.04], dtype=F64)
    dt = model._solver_step(grid)
    assert math.ceil(0.02 / dt - 1e-9) == 1 and dt < 0.02 * (1 + 1e-5)
    assert models.get("neural_sde", (2,), substeps=4)._solver_step(grid) == pytest.approx(0.005, rel=1e-5)
