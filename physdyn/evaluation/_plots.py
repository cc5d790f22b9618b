"""PNG plots of an evaluation report, drawn with matplotlib's object API (no pyplot state, Agg canvas)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ._fields import is_field, write_field_plots

if TYPE_CHECKING:
    from ._results import Report

#: How many trajectories the per-trajectory plots show, and how many state components at most.
N_SHOWN = 3
MAX_COMPONENTS = 6
TRUE_STYLE = {"color": "black", "lw": 1.4}
COLOURS = ("tab:blue", "tab:orange", "tab:green")


def write_plots(report: Report, folder: Path) -> list[str]:
    """Draw every plot that applies to ``report`` into ``folder``; returns notes on what was skipped."""
    notes: list[str] = []
    _error_vs_horizon(report, folder / "error_vs_horizon.png")
    _trajectories(report, folder / "trajectories.png")
    if report.truth.states[0, 0].numel() >= 2:
        _phase_portrait(report, folder / "phase_portrait.png")
    else:
        notes.append("phase_portrait.png skipped: the state has a single component")
    if report.energy is not None:
        _energy(report, folder / "energy.png")
    if report.attractor is not None:
        _attractor(report, folder / "attractor.png")
    if "probabilistic" in report.metrics:
        _rank_histogram(report, folder / "rank_histogram.png")
        _coverage(report, folder / "coverage.png")
    if len(report.truth.state_shape) > 1:
        _field_snapshot(report, folder / "fields.png")
        if is_field(report.truth.state_shape):
            notes += write_field_plots(report, folder)
        notes.append("field states: trajectories and phase portrait show spatial means per channel")
    return notes


def _save(fig: Figure, path: Path) -> None:
    fig.savefig(path, dpi=110)


def _log_scale(ax, drawable: bool) -> None:
    """A log y axis, or a note where every value is 0 (a perfect model): nothing to draw on a log axis."""
    if drawable:
        ax.set_yscale("log")
    else:
        ax.text(0.5, 0.5, "0 at every step", transform=ax.transAxes, ha="center", va="center", color="grey")


def _style_legend(where, n: int, **kwargs) -> None:
    """One legend for many trajectories: line style says true or predicted, colour says which trajectory."""
    handles = [Line2D([], [], color="grey", lw=1.4, label="true"),
               Line2D([], [], color="grey", lw=1.2, ls="--", label="predicted")]
    handles += [Line2D([], [], color=COLOURS[j % len(COLOURS)], lw=3, label=f"trajectory {j}")
                for j in range(n)]
    where.legend(handles=handles, **({"loc": "best", "fontsize": 7, "framealpha": 0.8} | kwargs))


def _components(report: Report) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Times (N, T), truth (N, T, C), predictions (N, K, T, C) and component names.

    Vector states are shown as they are; field states (C, *space) as the spatial mean of each channel,
    which is what can be drawn against time without hiding the grid in thousands of lines.
    """
    truth = report.truth.states.detach().double().cpu().numpy()
    pred = report.predictions.states.detach().double().cpu().numpy()
    n, n_t = truth.shape[:2]
    names = list(report.truth.state_names)
    if truth.ndim > 3:
        space = tuple(range(3, truth.ndim))
        truth, pred = truth.mean(axis=space), pred.mean(axis=space)
        channels = names[: truth.shape[-1]] if len(names) == truth.shape[-1] else []
        names = [f"mean {c}" for c in channels] or [f"mean of channel {i}" for i in range(truth.shape[-1])]
    elif len(names) != truth.shape[-1]:
        names = [f"x{i}" for i in range(truth.shape[-1])]
    times = report.truth.times().detach().cpu().numpy()
    return times, truth, pred.reshape(n, -1, n_t, pred.shape[-1]), names


def _time_label(report: Report) -> str:
    return "time (data units)"


def _time_axis(ax, t: np.ndarray) -> None:
    """A log time axis for grids spanning many decades (stiff kinetics: 1e-5 … 1e11), else linear."""
    positive = t[t > 0]
    if positive.size > 1 and positive.max() / positive.min() > 1e4:
        ax.set_xscale("log")


def _error_vs_horizon(report: Report, path: Path) -> None:
    m = report.metrics
    t = np.asarray(m["times"], dtype=float)
    fig = Figure(figsize=(9, 3.6), layout="constrained")
    axes = fig.subplots(1, 2, sharex=True)
    for ax, key, label in ((axes[0], "rmse", "RMSE (state units)"), (axes[1], "nrmse", "nRMSE")):
        y = np.array([np.nan if v is None else v for v in m[key]], dtype=float)
        shown = np.isfinite(y) & (y > 0)  # step 0 starts from the true state: its error 0 has no logarithm
        ax.plot(t[shown], y[shown], color="tab:blue", lw=1.5, label=label.split(" ")[0])
        if m.get("vpt") is not None:
            whole = m.get("vpt_reached_horizon") == m.get("n_trajectories")
            text = f"VPT ≥ {m['vpt']:.3g} (whole horizon)" if whole else f"VPT = {m['vpt']:.3g} (median)"
            ax.axvline(m["vpt"], color="tab:red", ls="--", lw=1, label=text)
        _log_scale(ax, shown.any())
        _time_axis(ax, t)
        ax.set_xlabel("elapsed " + _time_label(report))
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(loc="best", fontsize=8)
    if m.get("vpt_threshold") is not None:
        axes[1].axhline(m["vpt_threshold"], color="grey", ls=":", lw=1,
                        label=f"VPT threshold {m['vpt_threshold']:g}")
        axes[1].legend(loc="best", fontsize=8)
    fig.suptitle(f"Rollout error against horizon ({m.get('n_trajectories')} trajectories)")
    _save(fig, path)


def _observed_points(report: Report) -> np.ndarray | None:
    """(N, T, C) bool: the observed entries of vector states with a mask (None otherwise)."""
    mask = report.truth.mask
    if mask is None or mask.ndim != 3:
        return None
    return mask.detach().cpu().numpy()


def _rank_histogram(report: Report, path: Path) -> None:
    """The rank of the truth among the K samples (a discrete PIT) over the forecast steps: flat when the
    samples are calibrated, U-shaped when too narrow, hump-shaped when too wide, sloped when biased."""
    freq = np.asarray(report.metrics["probabilistic"]["rank_histogram"], dtype=float)
    fig = Figure(figsize=(6, 3.6), layout="constrained")
    ax = fig.subplots()
    ax.bar(np.arange(len(freq)), freq, width=0.9, color="tab:blue")
    ax.axhline(1 / len(freq), color="black", ls="--", lw=1, label="calibrated (uniform)")
    ax.set_xlabel(f"rank of the truth among the {len(freq) - 1} samples")
    ax.set_ylabel("frequency")
    ax.legend(loc="best", fontsize=8)
    fig.suptitle("Rank histogram over the forecast steps and coordinates")
    _save(fig, path)


def _coverage(report: Report, path: Path) -> None:
    """Coverage of the central intervals of the samples against the horizon, beside the nominal levels."""
    m = report.metrics
    prob = m["probabilistic"]
    t = np.asarray(m["times"], dtype=float)
    ahead = slice(m.get("context", 1), len(t))
    fig = Figure(figsize=(7, 3.6), layout="constrained")
    ax = fig.subplots()
    for level, colour in zip(prob["levels"], ("tab:blue", "tab:orange", "tab:green"), strict=False):
        values = prob[f"coverage_{round(100 * level)}"]
        y = np.array([np.nan if v is None else v for v in values], dtype=float)
        ax.plot(t[ahead], y[ahead], color=colour, lw=1.5, label=f"{round(100 * level)} % interval")
        ax.axhline(level, color=colour, ls="--", lw=1)
    ax.set_ylim(0, 1.02)
    _time_axis(ax, t)
    ax.set_xlabel("elapsed " + _time_label(report))
    ax.set_ylabel("coverage (dashed: nominal)")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.suptitle(f"Interval coverage against horizon ({m.get('samples')} samples, "
                 f"{m.get('n_trajectories')} trajectories)")
    _save(fig, path)


def _trajectories(report: Report, path: Path) -> None:
    times, truth, pred, names = _components(report)
    shown = min(N_SHOWN, truth.shape[0])
    n_comp = min(MAX_COMPONENTS, truth.shape[-1])
    observed = _observed_points(report)
    context = int(report.metrics.get("context", 1))
    fig = Figure(figsize=(4 * shown, 1.9 * n_comp + 0.8), layout="constrained")
    axes = np.atleast_2d(fig.subplots(n_comp, shown, sharex="col", squeeze=False))
    for j in range(shown):
        for i in range(n_comp):
            ax = axes[i, j]
            # The truth where known: with a mask only the observed entries are (the loader keeps the others
            # finite, at 0), so they are drawn as points, not joined into a line through unknown values.
            if observed is not None and not observed[j, :, i].all():
                seen = observed[j, :, i]
                ax.plot(times[j][seen], truth[j, seen, i], "o", color="black", ms=3, label="observed")
            else:
                ax.plot(times[j], truth[j, :, i], label="true", **TRUE_STYLE)
            if context > 1:
                ax.axvline(times[j][context - 1], color="grey", ls=":", lw=1, label="end of context")
            samples = pred[j, :, :, i]
            if samples.shape[0] == 1:
                ax.plot(times[j], samples[0], color="tab:orange", lw=1.4, ls="--", label="predicted")
            else:
                mean, std = samples.mean(0), samples.std(0)
                ax.plot(times[j], mean, color="tab:orange", lw=1.4, ls="--", label="predicted mean")
                ax.fill_between(times[j], mean - 2 * std, mean + 2 * std, color="tab:orange", alpha=0.25,
                                label="± 2 std")
            if j == 0:
                ax.set_ylabel(names[i])
            if i == 0:
                ax.set_title(f"trajectory {j}")
            if i == n_comp - 1:
                ax.set_xlabel(_time_label(report))
            _time_axis(ax, times[j])
    axes[0, 0].legend(loc="best", fontsize=8)
    if truth.shape[-1] > n_comp:
        fig.suptitle(f"first {n_comp} of {truth.shape[-1]} state components")
    _save(fig, path)


def _phase_portrait(report: Report, path: Path) -> None:
    _, truth, pred, names = _components(report)
    if truth.shape[-1] < 2:  # fields with a single channel: flatten instead of taking channel means
        truth = report.truth.states.flatten(2).double().cpu().numpy()
        n, n_t = truth.shape[:2]
        pred = report.predictions.states.flatten(2).double().cpu().numpy()
        pred = pred.reshape(n, -1, n_t, truth.shape[-1])
        names = ["state[0]", "state[1]"]
    fig = Figure(figsize=(5.2, 4.6), layout="constrained")
    ax = fig.subplots()
    for j in range(min(N_SHOWN, truth.shape[0])):
        colour = COLOURS[j % len(COLOURS)]
        ax.plot(truth[j, :, 0], truth[j, :, 1], color=colour, lw=1.4)
        ax.plot(pred[j, 0, :, 0], pred[j, 0, :, 1], color=colour, lw=1.2, ls="--")
        ax.plot(truth[j, 0, 0], truth[j, 0, 1], "o", color=colour, ms=5)
    ax.set_xlabel(names[0])
    ax.set_ylabel(names[1])
    ax.set_title("Phase portrait (o: initial state)")
    _style_legend(ax, min(N_SHOWN, truth.shape[0]))
    ax.grid(True, alpha=0.3)
    _save(fig, path)


def _energy(report: Report, path: Path) -> None:
    true_e, pred_e = (e.detach().double().cpu().numpy() for e in report.energy)
    times = report.truth.times().detach().cpu().numpy()
    n, n_t = true_e.shape
    pred_e = pred_e.reshape(n, -1, n_t)[:, 0]
    source = report.metrics.get("energy_source", "")
    fig = Figure(figsize=(10, 3.8), layout="constrained")
    left, right = fig.subplots(1, 2, sharex=True)
    any_drift = False
    for j in range(min(N_SHOWN, n)):
        colour = COLOURS[j % len(COLOURS)]
        left.plot(times[j], true_e[j], color=colour, lw=1.4)
        left.plot(times[j], pred_e[j], color=colour, lw=1.2, ls="--")
        drift = np.abs(pred_e[j] - pred_e[j, 0]) / max(abs(pred_e[j, 0]), np.finfo(float).tiny)
        shown = np.isfinite(drift) & (drift > 0)
        right.plot(times[j][shown], drift[shown], color=colour, lw=1.2, label=f"trajectory {j}")
        any_drift = any_drift or bool(shown.any())
    left.set_ylabel(f"energy H ({source} H)" if source else "energy H")
    left.set_title("Energy along the rollouts")
    _style_legend(fig, min(N_SHOWN, n), loc="outside lower center", ncols=2 + min(N_SHOWN, n), fontsize=8)
    _log_scale(right, any_drift)
    right.set_ylabel("|H(x̂(t)) − H(x̂(0))| / |H(x̂(0))|")
    right.set_title("Relative energy drift of the predictions")
    for ax in (left, right):
        _time_axis(ax, times[0])
        ax.set_xlabel(_time_label(report))
        ax.grid(True, which="both", alpha=0.3)
    _save(fig, path)


def _attractor(report: Report, path: Path) -> None:
    model_x, true_x = (a.detach().double().cpu().flatten(2).numpy() for a in report.attractor)
    i, j = (0, 2) if model_x.shape[-1] >= 3 else (0, 1)  # x–z shows the Lorenz butterfly's two wings
    names = list(report.truth.state_names) or [f"x{k}" for k in range(model_x.shape[-1])]
    fig = Figure(figsize=(9, 4.2), layout="constrained")
    axes = fig.subplots(1, 2, sharex=True, sharey=True)
    for ax, x, title in ((axes[0], true_x, "true system"), (axes[1], model_x, "learned model")):
        for traj in x[: N_SHOWN]:
            ax.plot(traj[:, i], traj[:, j], lw=0.3, alpha=0.7)
        ax.set_title(f"{title}: long rollout")
        ax.set_xlabel(names[i])
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel(names[j])
    span = report.metrics.get("attractor", {}).get("time_span")
    if span:
        fig.suptitle(f"Attractor ({span:g} time units after a transient)")
    _save(fig, path)


def _field_snapshot(report: Report, path: Path) -> None:
    truth = report.truth.states[0, -1].detach().double().cpu().numpy()
    pred = report.predictions.states[0, -1].detach().double().cpu().numpy()
    while truth.ndim > 3:  # 3-D fields and beyond: show the middle slice
        mid = truth.shape[-1] // 2
        truth, pred = truth[..., mid], pred[..., mid]
    if truth.ndim == 2:  # (C, n): a 1-D field per channel, drawn as lines
        truth, pred = truth[:, :, None], pred[:, :, None]
    channels = min(truth.shape[0], 2)
    fig = Figure(figsize=(11, 3.4 * channels), layout="constrained")
    axes = np.atleast_2d(fig.subplots(channels, 3, squeeze=False))
    names = list(report.truth.state_names)
    for c in range(channels):
        lo, hi = min(truth[c].min(), pred[c].min()), max(truth[c].max(), pred[c].max())
        err = pred[c] - truth[c]
        bound = max(abs(err).max(), math.ulp(1.0))
        label = names[c] if len(names) == truth.shape[0] else f"channel {c}"
        for ax, img, title, kw in (
            (axes[c, 0], truth[c], f"true {label}", {"vmin": lo, "vmax": hi, "cmap": "viridis"}),
            (axes[c, 1], pred[c], f"predicted {label}", {"vmin": lo, "vmax": hi, "cmap": "viridis"}),
            (axes[c, 2], err, "predicted − true", {"vmin": -bound, "vmax": bound, "cmap": "RdBu_r"}),
        ):
            im = ax.imshow(img, origin="lower", **kw)
            ax.set_title(title)
            ax.set_xticks([])
            ax.set_yticks([])
            fig.colorbar(im, ax=ax, shrink=0.85)
    t_last = float(report.truth.times()[0, -1])
    fig.suptitle(f"Trajectory 0 at the last step (t = {t_last:.4g})")
    _save(fig, path)
