"""Field metrics as PDEBench defines them, and the mean balance of reaction-diffusion rollouts.

Fields have shape (N, T, C, *space) with one or two space axes. Every PDEBench metric is returned per
frame and channel, (T, C), averaged over the N samples as PDEBench does (its ``metric_func`` with
``if_mean=False``; take the mean over T and C for its single numbers). They are written here from the
definitions of Takamoto et al. (NeurIPS 2022, Appendix), with e = prediction − truth:

- ``pdebench_rmse``: sqrt(mean over cells of e²), mean over samples;
- ``pdebench_nrmse``: ‖e‖₂ / ‖y‖₂ per sample, channel and frame, mean over samples -- PDEBench's nRMSE,
  a *relative* error; physdyn's own ``nrmse`` divides by the spread σ of each coordinate instead;
- ``crmse``: the error of the conserved quantity, sqrt(mean over samples of (Σ_cells e)²) / cells, i.e.
  the RMS error of the spatial mean;
- ``brmse``: RMS error over the boundary cells (the cells along each wall; corner cells count for both
  walls, as in PDEBench), mean over samples;
- ``frmse``: RMS error of the Fourier coefficients in radial wavenumber shells, floor(|k|) = 0, 1, ...,
  (over the non-negative quarter of the 2-D spectrum, as PDEBench), normalised by the number of cells and
  times the domain size; averaged in the bands low (shells < 4), mid (4 to 11) and high (12 on).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ._rollout import check_pair

#: PDEBench's wavenumber bands: low shells [0, 4), mid [4, 12), high [12, ...).
BANDS = {"low": (0, 4), "mid": (4, 12), "high": (12, None)}


def _check_fields(pred: Tensor, true: Tensor) -> int:
    check_pair(pred, true)
    dims = pred.ndim - 3
    if dims not in (1, 2):
        raise ValueError(f"field metrics need states (N, T, C, *space) with 1 or 2 space axes, got "
                         f"{tuple(pred.shape)}")
    return dims


def pdebench_rmse(pred: Tensor, true: Tensor) -> Tensor:
    """sqrt(mean over cells of (pred − true)²), mean over samples; (T, C)."""
    _check_fields(pred, true)
    return (pred - true).pow(2).flatten(3).mean(-1).sqrt().mean(0)


def pdebench_nrmse(pred: Tensor, true: Tensor) -> Tensor:
    """‖pred − true‖₂ / ‖true‖₂ over the cells of each sample, channel and frame, mean over samples; (T, C).

    PDEBench's nRMSE (dimensionless); inf where a true field is identically zero."""
    _check_fields(pred, true)
    err = (pred - true).pow(2).flatten(3).sum(-1).sqrt()
    return (err / true.pow(2).flatten(3).sum(-1).sqrt()).mean(0)


def crmse(pred: Tensor, true: Tensor) -> Tensor:
    """RMS over samples of the error of the spatial sum, divided by the number of cells; (T, C)."""
    _check_fields(pred, true)
    e = (pred - true).flatten(3)
    return e.sum(-1).pow(2).mean(0).sqrt() / e.shape[-1]


def brmse(pred: Tensor, true: Tensor) -> Tensor:
    """RMS error over the cells along the walls, mean over samples; (T, C)."""
    dims = _check_fields(pred, true)
    e2 = (pred - true).pow(2)
    if dims == 1:
        wall = (e2[..., 0] + e2[..., -1]) / 2
    else:
        ny, nx = e2.shape[-2:]
        total = (e2[..., 0, :] + e2[..., -1, :]).sum(-1) + (e2[..., :, 0] + e2[..., :, -1]).sum(-1)
        wall = total / (2 * nx + 2 * ny)
    return wall.sqrt().mean(0)


def frmse_shells(pred: Tensor, true: Tensor, lengths: float | tuple[float, ...] = 1.0) -> Tensor:
    """The Fourier-space RMS error per radial wavenumber shell; (T, C, shells).

    1-D: |rfft(e)| per wavenumber, RMS over samples, / cells × length. 2-D: |fft2(e)|² summed over the
    wavenumbers (i, j), 0 ≤ i < ny/2, 0 ≤ j < nx/2, of shell floor(sqrt(i² + j²)) < min(ny, nx)/2, RMS over
    samples, / cells × area (``lengths``: the domain's side lengths, one number for all).
    """
    dims = _check_fields(pred, true)
    e = (pred - true).to(torch.float64 if pred.dtype == torch.float64 else torch.float32)
    sides = (lengths,) * dims if isinstance(lengths, int | float) else tuple(lengths)
    cells = math.prod(e.shape[3:])
    if dims == 1:
        power = torch.fft.rfft(e, dim=-1).abs().pow(2)
        return power.mean(0).sqrt() / cells * sides[0]
    ny, nx = e.shape[-2:]
    power = torch.fft.fftn(e, dim=(-2, -1)).abs().pow(2)[..., : ny // 2, : nx // 2]
    n_shells = min(ny // 2, nx // 2)
    i = torch.arange(ny // 2, dtype=torch.float64)[:, None]
    j = torch.arange(nx // 2, dtype=torch.float64)[None, :]
    shell = (i**2 + j**2).sqrt().floor().long()
    keep = shell < n_shells
    summed = power.new_zeros(*power.shape[:-2], n_shells)
    summed.index_add_(-1, shell[keep], power[..., keep])
    return summed.mean(0).sqrt() / cells * math.prod(sides)


def frmse(pred: Tensor, true: Tensor, lengths: float | tuple[float, ...] = 1.0) -> dict[str, Tensor]:
    """PDEBench's fRMSE in the bands of :data:`BANDS`: the mean of :func:`frmse_shells` over each band's
    shells; {"low", "mid", "high"} -> (T, C) (nan for a band the grid does not reach)."""
    shells = frmse_shells(pred, true, lengths)
    out = {}
    for name, (a, b) in BANDS.items():
        part = shells[..., a:b]
        out[name] = part.mean(-1) if part.shape[-1] else torch.full(shells.shape[:-1], math.nan)
    return out


def field_metrics(pred: Tensor, true: Tensor, lengths: float | tuple[float, ...] = 1.0) -> dict[str, Tensor]:
    """All PDEBench metrics of fields (N, T, C, *space), each (T, C): "rmse", "nrmse", "crmse",
    "brmse", "max_error" and "frmse_low", "frmse_mid", "frmse_high"."""
    _check_fields(pred, true)
    out = {"rmse": pdebench_rmse(pred, true), "nrmse": pdebench_nrmse(pred, true),
           "crmse": crmse(pred, true), "brmse": brmse(pred, true),
           "max_error": (pred - true).abs().flatten(3).amax(-1).amax(0)}
    out.update({f"frmse_{band}": value for band, value in frmse(pred, true, lengths).items()})
    return out


def mean_balance_residual(states: Tensor, t: Tensor, reaction) -> Tensor:
    """How far fields (N, T, C, *space) break the mean balance d⟨x⟩/dt = ⟨R(x)⟩ of zero-flux
    reaction-diffusion (diffusion moves mass but creates none); (N, T − 1, C).

    The residual of each step by the trapezoidal rule: (⟨x⟩_{n+1} − ⟨x⟩_n)/Δt − (⟨R(x_n)⟩ + ⟨R(x_{n+1})⟩)/2,
    ⟨·⟩ the mean over the cells, ``reaction`` the system's local terms (B, C, *space) -> same shape (for
    FitzHugh-Nagumo, R = (u − u³ − k − v, u − v)). ``t``: (T,) or (N, T). The truth's residual is the
    quadrature error, O(Δt²); a learned rollout that adds or loses mass shows more.
    """
    if states.ndim < 4:
        raise ValueError(f"states must have shape (N, T, C, *space), got {tuple(states.shape)}")
    n, n_t = states.shape[:2]
    t = torch.as_tensor(t, dtype=states.dtype).expand(n, n_t)
    mean = states.flatten(3).mean(-1)  # (N, T, C)
    rate = reaction(states.flatten(0, 1)).reshape(states.shape).flatten(3).mean(-1)
    dt = t.diff(dim=1)[..., None]
    return mean.diff(dim=1) / dt - (rate[:, 1:] + rate[:, :-1]) / 2
