"""The field suite of an evaluation: PDEBench's metrics over the forecast frames, the mean balance, plots.

Applies when states have channels and space axes, (C, W) or (C, H, W). The first ``context`` frames are
given to the model, never predicted, so they are never scored (PDEBench once scored them, its issue #41,
which flatters every model); every number here is over frames ``context`` … H.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor

from .. import metrics as M

if TYPE_CHECKING:
    from ._results import Report

#: Frames shown in the snapshot plot (spread over the forecast).
SNAPSHOTS = 4


def is_field(shape: tuple[int, ...]) -> bool:
    """States (C, W) or (C, H, W): channels first, then one or two space axes."""
    return len(shape) in (2, 3)


def field_metrics(pred: Tensor, true: Tensor, mask: Tensor | None, c: int, t: Tensor, system,
                  notes: list[str]) -> dict[str, Any] | None:
    """PDEBench metrics of point predictions ``pred`` (N, T, C, *space) over the forecast frames k ≥ ``c``
    and, where ``system`` has the invariant "mean_balance", the balance residual of model and truth."""
    if mask is not None:
        notes.append("PDEBench field metrics not computed: they have no masked form, and the data has a mask")
        return None
    p, y = pred[:, c:].double(), true[:, c:].double()
    if p.shape[1] == 0:
        return None
    per_frame = M.field_metrics(p, y)
    out: dict[str, Any] = {"frames": list(range(c, true.shape[1])),
                           "definition": "PDEBench (Takamoto et al. 2022): per frame and channel, mean over "
                                         "samples; 'mean' over forecast frames and channels, 'final' at the "
                                         "last frame (mean over channels)"}
    for name, value in per_frame.items():
        out[name] = {"mean": float(value.mean()), "final": float(value[-1].mean()),
                     "per_frame": value.mean(1).tolist(), "per_channel": value.mean(0).tolist()}
    if "mean_balance" in getattr(system, "invariants", ()) and callable(getattr(system, "reaction", None)):
        # From the context's last frame on: its step into the first forecast frame counts too.
        span = slice(c - 1, None)
        t = t[:, span].double()
        with torch.no_grad():
            model = M.mean_balance_residual(pred[:, span].double(), t, system.reaction)
            truth = M.mean_balance_residual(true[:, span].double(), t, system.reaction)
        rms = lambda r: r.pow(2).mean((0, 1)).sqrt().tolist()  # noqa: E731
        out["mean_balance"] = {"model": rms(model), "true": rms(truth),
                               "definition": "RMS over trajectories and steps, per channel, of d<x>/dt - "
                                             "<R(x)> (trapezoidal rule); the truth's is quadrature error"}
    return out


def write_field_plots(report: Report, folder: Path) -> list[str]:
    """Snapshots (truth, prediction, error) at several forecast frames, and PDEBench nRMSE against frame
    with the error spectrum at the last frame."""
    c = int(report.metrics.get("context", 1))
    truth = report.truth.states.double()
    k = len(report.predictions.states) // len(truth)
    pred = report.predictions.states.double().reshape(len(truth), k, *truth.shape[1:]).mean(1)
    if truth.shape[1] <= c:
        return ["field plots skipped: no forecast frame"]
    _snapshots(report, truth, pred, c, folder / "field_frames.png")
    _errors(report, truth, pred, c, folder / "field_errors.png")
    return []


def _as_image(x: np.ndarray) -> np.ndarray:
    return x[:, None] if x.ndim == 1 else x  # a 1-D field as a one-column image


def _snapshots(report: Report, truth: Tensor, pred: Tensor, c: int, path: Path) -> None:
    frames = sorted({int(round(f)) for f in np.linspace(c, truth.shape[1] - 1, SNAPSHOTS)})
    t = report.truth.times()[0]
    names = list(report.truth.state_names)
    label = names[0] if names else "channel 0"
    fig = Figure(figsize=(3.0 * len(frames), 8.4), layout="constrained")
    axes = fig.subplots(3, len(frames), squeeze=False)
    y, p = truth[0, :, 0].numpy(), pred[0, :, 0].numpy()
    lo, hi = float(min(y[frames].min(), p[frames].min())), float(max(y[frames].max(), p[frames].max()))
    bound = max(float(np.abs(p[frames] - y[frames]).max()), math.ulp(1.0))
    for j, f in enumerate(frames):
        for i, (img, kw) in enumerate(((y[f], {"vmin": lo, "vmax": hi, "cmap": "viridis"}),
                                       (p[f], {"vmin": lo, "vmax": hi, "cmap": "viridis"}),
                                       (p[f] - y[f], {"vmin": -bound, "vmax": bound, "cmap": "RdBu_r"}))):
            ax = axes[i, j]
            im = ax.imshow(_as_image(img), origin="lower", aspect="auto", **kw)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(f"frame {f}, t = {float(t[f]):.3g}")
            if j == 0:
                ax.set_ylabel(("true", "predicted", "predicted − true")[i] + f" {label}")
            if j == len(frames) - 1:
                fig.colorbar(im, ax=ax, shrink=0.85)
    fig.suptitle(f"Trajectory 0, {label}: forecast from {c} context frame(s)")
    fig.savefig(path, dpi=100)


def _errors(report: Report, truth: Tensor, pred: Tensor, c: int, path: Path) -> None:
    names = list(report.truth.state_names)
    channels = truth.shape[2]
    nrmse = M.pdebench_nrmse(pred[:, c:], truth[:, c:]).numpy()
    shells = M.frmse_shells(pred[:, -1:], truth[:, -1:])[0].numpy()  # (C, shells)
    fig = Figure(figsize=(11, 4), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    frames = np.arange(c, truth.shape[1])
    for ch in range(channels):
        label = names[ch] if len(names) == channels else f"channel {ch}"
        ax1.plot(frames, nrmse[:, ch], label=label)
        ax2.semilogy(np.arange(shells.shape[1]), np.maximum(shells[ch], 1e-300), label=label)
    ax1.set_xlabel("frame")
    ax1.set_ylabel("nRMSE (PDEBench: ‖e‖/‖y‖)")
    ax1.set_title("Relative error against frame (forecast frames only)")
    ax2.set_xlabel("radial wavenumber shell")
    ax2.set_ylabel("fRMSE per shell")
    ax2.set_title("Error spectrum at the last frame")
    for ax in (ax1, ax2):
        ax.legend()
        ax.grid(alpha=0.3)
    fig.savefig(path, dpi=100)
