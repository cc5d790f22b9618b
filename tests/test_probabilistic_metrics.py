"""Scores of sample forecasts against closed forms, scipy and scoringrules."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.special import gamma
from scipy.stats import energy_distance as scipy_energy_distance
from scipy.stats import norm

from physdyn import metrics as M

F64 = torch.float64
sr = pytest.importorskip("scoringrules")


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_crps_of_a_gaussian_is_the_closed_form():
    assert float(M.crps_gaussian(*torch.tensor([0.0, 1.0, 0.0], dtype=F64))) == \
        pytest.approx(0.2336949772, abs=1e-10)
    mu, sigma = torch.tensor([0.3, -1.0, 2.0]), torch.tensor([0.5, 2.0, 1.0])
    y = torch.tensor([1.0, 0.0, 2.0])
    expected = sr.crps_normal(y.numpy(), mu.numpy(), sigma.numpy())
    np.testing.assert_allclose(M.crps_gaussian(mu, sigma, y).numpy(), expected, rtol=1e-6)


@pytest.mark.parametrize("fair", [False, True])
def test_ensemble_crps_matches_scoringrules(fair):
    samples = torch.randn(4, 6, 17, generator=_gen(1), dtype=F64)
    y = torch.randn(4, 6, generator=_gen(2), dtype=F64)
    expected = sr.crps_ensemble(y.numpy(), samples.numpy(), estimator="fair" if fair else "nrg")
    np.testing.assert_allclose(M.crps_ensemble(samples, y, fair=fair).numpy(), expected, rtol=1e-12)


def test_ensemble_crps_by_hand_and_for_a_large_gaussian_ensemble():
    # one member: |x − y|; two members ±1 at 0: E|X − y| = 1, E|X − X'| = (0 + 2 + 2 + 0)/4 = 1
    assert float(M.crps_ensemble(torch.tensor([[2.5]]), torch.tensor([1.0]))) == pytest.approx(1.5)
    assert float(M.crps_ensemble(torch.tensor([[1.0, -1.0]]), torch.tensor([0.0]))) == pytest.approx(0.5)
    # the ensemble of the Gaussian's quantiles at (i − ½)/K tends to the Gaussian itself
    k = 20_000
    z = torch.as_tensor(norm.ppf((np.arange(k) + 0.5) / k), dtype=F64)
    for y in (1.1, 0.3, -4.0):
        got = float(M.crps_ensemble(0.3 + 2.0 * z[None], torch.tensor([y], dtype=F64)))
        expected = float(M.crps_gaussian(*torch.tensor([0.3, 2.0, y], dtype=F64)))
        assert got == pytest.approx(expected, rel=1e-3)


@pytest.mark.parametrize("d", [1, 3])
def test_energy_score_matches_scoringrules_and_reduces_to_the_crps_in_one_dimension(d):
    samples = torch.randn(5, 9, d, generator=_gen(4), dtype=F64)
    y = torch.randn(5, d, generator=_gen(5), dtype=F64)
    got = M.energy_score(samples, y)
    es = getattr(sr, "es_ensemble", None) or sr.energy_score  # renamed in scoringrules 0.8
    np.testing.assert_allclose(got.numpy(), es(y.numpy(), samples.numpy()), rtol=1e-10)
    if d == 1:
        torch.testing.assert_close(got, M.crps_ensemble(samples[..., 0], y[..., 0]))


def test_energy_score_of_a_standard_gaussian_at_its_mean_is_the_closed_form():
    # E‖Z‖ = √2 Γ((D+1)/2) / Γ(D/2) =: m_D, E‖Z − Z'‖ = √2 m_D, so ES(0) = m_D (1 − 1/√2)
    d = 3
    m_d = math.sqrt(2) * gamma((d + 1) / 2) / gamma(d / 2)
    samples = torch.randn(1, 4000, d, generator=_gen(6), dtype=F64)
    got = float(M.energy_score(samples, torch.zeros(1, d, dtype=F64), fair=True))
    assert got == pytest.approx(m_d * (1 - 1 / math.sqrt(2)), rel=1e-2)


def test_interval_bounds_are_numpy_quantiles_and_coverage_is_the_gaussian_probability():
    samples = torch.randn(3, 50, generator=_gen(7), dtype=F64)
    lo, hi = M.interval_bounds(samples, 0.9)
    for got, p in ((lo, 0.05), (hi, 0.95)):
        expected = np.quantile(samples.numpy(), p, axis=-1, method="weibull")
        np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12)
    # forecast N(0, 1), truth N(0, s²): P(|Y| <= z_{(1+l)/2}) = 2 Φ(z / s) − 1
    forecasts = torch.randn(4000, 400, generator=_gen(8), dtype=F64)
    for s, level in ((1.0, 0.9), (1.0, 0.5), (2.0, 0.9)):
        y = s * torch.randn(4000, generator=_gen(9), dtype=F64)
        expected = 2 * norm.cdf(norm.ppf((1 + level) / 2) / s) - 1
        got = float(M.interval_coverage(forecasts, y, level).double().mean())
        assert got == pytest.approx(expected, abs=0.02)
    # a calibrated ensemble of only 19 members: the truth's rank is uniform, coverage exactly the level
    small = torch.randn(40_000, 19, generator=_gen(10), dtype=F64)
    y = torch.randn(40_000, generator=_gen(11), dtype=F64)
    assert float(M.interval_coverage(small, y, 0.9).double().mean()) == pytest.approx(0.9, abs=0.006)
    with pytest.raises(ValueError, match="level must lie in"):
        M.interval_bounds(samples, 1.5)


def test_ranks_and_the_rank_histogram():
    assert M.ranks(torch.tensor([[3.0, 1.0, 2.0]]), torch.tensor([2.5])).tolist() == [2]
    # a calibrated ensemble: ranks uniform over 0..K; an overconfident one: a U shape
    k = 9
    truth = torch.randn(20_000, generator=_gen(10), dtype=F64)
    calibrated = M.rank_histogram(torch.randn(20_000, k, generator=_gen(11), dtype=F64), truth)
    assert calibrated.shape == (k + 1,) and float(calibrated.sum()) == pytest.approx(1.0)
    assert float((calibrated - 1 / (k + 1)).abs().max()) < 0.01
    narrow = M.rank_histogram(0.3 * torch.randn(20_000, k, generator=_gen(11), dtype=F64), truth)
    assert float(narrow[0] + narrow[-1]) > 0.5
    # a forecast equal to the truth: ties split at random, not all rank 0
    tied = M.rank_histogram(truth[:, None].expand(-1, 4), truth)
    assert float((tied - 0.2).abs().max()) < 0.02
    mask = torch.zeros(20_000, dtype=torch.bool)
    mask[:10] = True
    assert float(M.rank_histogram(torch.randn(20_000, k, generator=_gen(12)), truth.float(), mask).sum()) == 1


def test_energy_distance_matches_scipy_in_one_dimension_and_vanishes_for_equal_samples():
    a = torch.randn(300, 1, generator=_gen(13), dtype=F64)
    b = 0.5 + 1.5 * torch.randn(200, 1, generator=_gen(14), dtype=F64)
    got = float(M.energy_distance(a, b))
    assert got == pytest.approx(scipy_energy_distance(a[:, 0].numpy(), b[:, 0].numpy()), rel=1e-10)
    c = torch.randn(100, 3, generator=_gen(15), dtype=F64)
    assert float(M.energy_distance(c, c)) == pytest.approx(0.0, abs=1e-7)
    # closed form in 1-D for N(0,1) vs N(δ,1): D² = 2 E|X − Y| − 2 E|X − X'|, X − Y ~ N(−δ, 2)
    x, y = torch.randn(6000, 1, generator=_gen(16), dtype=F64), 1.0 + torch.randn(6000, 1, generator=_gen(17),
                                                                                 dtype=F64)
    s, m = math.sqrt(2), 1.0
    e_xy = s * math.sqrt(2 / math.pi) * math.exp(-(m**2) / (2 * s**2)) + m * (1 - 2 * norm.cdf(-m / s))
    expected = math.sqrt(2 * e_xy - 2 * 2 / math.sqrt(math.pi))
    assert float(M.energy_distance(x, y)) == pytest.approx(expected, rel=0.05)
    with pytest.raises(ValueError, match="must be"):
        M.energy_distance(a, c)
