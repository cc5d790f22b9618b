"""PDEBench's field metrics against hand computations, and the mean balance of reaction-diffusion."""

from __future__ import annotations

import math

import pytest
import torch

from physdyn import metrics as M
from physdyn import systems


def test_rmse_nrmse_crmse_by_hand():
    true = torch.zeros(2, 1, 1, 2, 2, dtype=torch.float64)
    true[0, 0, 0] = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    true[1, 0, 0] = torch.tensor([[2.0, 0.0], [0.0, 0.0]])
    pred = true.clone()
    pred[0, 0, 0, 0, 0] += 2.0  # sample 0: one cell off by 2
    pred[1, 0, 0] += 1.0  # sample 1: every cell off by 1
    # RMSE per sample: sqrt(4/4) = 1 and sqrt(4/4) = 1 -> mean 1.
    assert float(M.pdebench_rmse(pred, true)) == pytest.approx(1.0)
    # nRMSE: ‖e‖/‖y‖ = 2/sqrt(30) and 2/2 -> their mean.
    assert float(M.pdebench_nrmse(pred, true)) == pytest.approx((2 / math.sqrt(30) + 1.0) / 2)
    # cRMSE: spatial sums off by 2 and 4 -> sqrt((4 + 16)/2) / 4 cells.
    assert float(M.crmse(pred, true)) == pytest.approx(math.sqrt(10) / 4)
    assert float(M.field_metrics(pred, true)["max_error"]) == 2.0


def test_brmse_counts_the_wall_cells_as_pdebench_does():
    true = torch.zeros(1, 1, 1, 3, 3, dtype=torch.float64)
    pred = true.clone()
    pred[..., 1, 1] = 5.0  # the centre cell is no boundary cell
    assert float(M.brmse(pred, true)) == 0.0
    pred[..., 0, 0] = 2.0  # a corner: on two walls; 2 walls x 3 + 2 walls x 3 = 12 wall entries
    assert float(M.brmse(pred, true)) == pytest.approx(math.sqrt(2 * 4 / 12))
    one_d = torch.zeros(1, 1, 1, 4, dtype=torch.float64)
    assert float(M.brmse(one_d + torch.tensor([3.0, 9, 9, 1]), one_d)) == pytest.approx(math.sqrt(5))


def test_frmse_puts_a_single_fourier_mode_in_its_shell():
    n = 32
    y, x = torch.meshgrid(*[torch.arange(n, dtype=torch.float64)] * 2, indexing="ij")
    for (ky, kx), band in (((0, 2), "low"), ((3, 4), "mid"), ((0, 13), "high")):
        err = torch.cos(2 * math.pi * (ky * y + kx * x) / n)
        true = torch.zeros(1, 1, 1, n, n, dtype=torch.float64)
        shells = M.frmse_shells(err[None, None, None], true)[0, 0]
        # cos has two Fourier coefficients of magnitude n²/2; only (ky, kx) lies in the quarter kept.
        shell = int(math.floor(math.hypot(ky, kx)))
        expected = torch.zeros(n // 2, dtype=torch.float64)
        expected[shell] = (n * n / 2) / (n * n)
        torch.testing.assert_close(shells, expected, atol=1e-12, rtol=0)
        bands = M.frmse(err[None, None, None], true)
        lo, hi = M.BANDS[band]
        width = (hi or n // 2) - lo
        assert float(bands[band]) == pytest.approx(0.5 / width)
        assert all(float(v) == pytest.approx(0, abs=1e-12) for k, v in bands.items() if k != band)


def test_field_metrics_vanish_on_identical_fields():
    true = torch.randn(3, 4, 2, 32, 32, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for name, value in M.field_metrics(true, true).items():
        assert value.shape == (4, 2) and float(value.abs().max()) == 0.0, name


def test_the_true_reaction_diffusion_keeps_its_mean_balance():
    system = systems.get("reaction_diffusion", n=8)
    x0 = system.random_initial_states(2, torch.Generator().manual_seed(1))
    worst = []
    for steps in (50, 100):  # the same interval at two steps: the residual is quadrature error, O(dt²)
        t = torch.linspace(0, 0.5, steps + 1, dtype=torch.float64)
        states = system.integrate(x0, t)
        residual = M.mean_balance_residual(states, t, system.reaction)
        assert residual.shape == (2, steps, 2)
        worst.append(float(residual.abs().max()))
    assert 3.0 < worst[0] / worst[1] < 4.5
    # Mass added to u at one step breaks it at that step.
    broken = states.clone()
    broken[:, 40:, 0] += 0.1
    bad = M.mean_balance_residual(broken, t, system.reaction)
    assert float(bad[:, 39, 0].abs().min()) > 5.0
