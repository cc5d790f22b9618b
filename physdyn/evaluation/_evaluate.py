"""Predict on a dataset and judge the predictions: error curves, valid prediction time, physics, chaos.

Every model family is judged the same way: :func:`forecast` asks it for predictions from a context (the
first samples of each trajectory) through its one prediction entry point, and the metric suites that
apply follow from what the model and the data have: point metrics always, sample spread for stochastic
models, invariants where the system defines them, chaos metrics for chaotic systems (the Lyapunov exponent
of the model where it has a vector field).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .. import metrics as M
from ..data import Trajectories
from ..solvers import rk_integrate
from ._fields import field_metrics, is_field
from ._report import check_report_dir, write_report
from ._results import Report

#: Normalised-error threshold of the valid prediction time (Vlachas et al., Neural Networks 126, 191 (2020)).
VPT_THRESHOLD = 0.4
#: Settings of ``physdyn.metrics.largest_lyapunov_exponent`` for a report: the two-trajectory method needs
#: only the vector field (no double backward through a network), and 4 starts × 50 time units give a few
#: per cent on Lorenz-63, enough to tell a learned attractor's chaos from the truth's.
LYAPUNOV_OPTIONS: dict[str, Any] = {"method": "two_trajectory", "t_transient": 5.0, "t_total": 50.0}


def reference_system(data: Trajectories):
    """The reference System that produced ``data`` (from its ``system`` and ``system_params``), or None.

    None for "custom" data, parameters the registry does not know, and data whose system parameters vary
    across trajectories (no one system produced them all); DataFormatError (one line) when the data names a
    bundled system whose states have another shape.
    """
    from ..training._source import source_system

    return source_system(data)


def _has(obj, capability: str) -> bool:
    """Whether ``obj`` offers ``capability``: as it declares (models), else as a system does (a method)."""
    declared = getattr(obj, "capabilities", None)
    if declared is not None:
        return capability in declared
    return callable(getattr(obj, capability, None))


def _rollout(obj, x0: Tensor, t: Tensor) -> Tensor:
    """``obj`` integrated from ``x0`` (N, *S) on ``t`` ((T,) or (N, T)); (N, T, *S). ``obj`` has
    ``rollout(x0, t)`` or, as a reference system does, ``integrate(x0, t)``."""
    if hasattr(obj, "rollout"):
        return obj.rollout(x0, t)
    if t.ndim == 1:
        return obj.integrate(x0, t.to(x0.dtype))
    return torch.cat([obj.integrate(x0[i : i + 1], t[i].to(x0.dtype)) for i in range(len(x0))])


def forecast(model, t: Tensor, x_context: Tensor, mask_context: Tensor | None = None, *, samples: int = 1,
             seed: int = 0) -> Tensor:
    """Predictions (N, K, T, *S) of ``model`` at the times ``t`` from the context ``x_context`` (N, C, *S).

    ``t`` ((T,) or (N, T)) starts with the C context times. A model that reads the whole context
    (``model.context == "sequence"``: latent models) predicts at every time, the context's included; any
    other model -- a learned vector field, anything with ``rollout(x0, t)``, a reference system -- is rolled
    out from the context's last state, and the context's other samples are returned as they were given.
    """
    n, c = x_context.shape[:2]
    t = torch.as_tensor(t, dtype=torch.float64)
    grid = t.expand(n, t.shape[-1])
    generator = torch.Generator().manual_seed(seed)
    if getattr(model, "context", "last_state") == "sequence":
        return model.predict(grid[:, :c], x_context, mask_context, grid, samples=samples, generator=generator)
    if hasattr(model, "predict"):
        ahead = model.predict(grid[:, :c], x_context, mask_context, grid[:, c - 1 :], samples=samples,
                              generator=generator)
    else:
        x0 = x_context[:, -1].repeat_interleave(samples, dim=0)
        times = t[c - 1 :] if t.ndim == 1 else grid[:, c - 1 :].repeat_interleave(samples, dim=0)
        ahead = _rollout(model, x0, times).reshape(n, samples, -1, *x_context.shape[2:])
    ahead = ahead.to(x_context.dtype)
    ahead[:, :, 0] = x_context[:, None, -1]  # the data's state, not its round trip through a normalisation
    given = x_context[:, None, : c - 1].to(ahead.dtype)
    given = given.expand(n, samples, *given.shape[2:])
    return torch.cat([given, ahead], dim=2)


def model_name(model) -> str:
    """A name for ``model``: its ``name``, its run config's model name, or its class name."""
    name = getattr(model, "name", None)
    if isinstance(name, str):
        return name
    config = getattr(model, "config", None)
    if isinstance(config, dict) and isinstance(config.get("model"), dict) and "name" in config["model"]:
        return str(config["model"]["name"])
    return type(model).__name__


def check_inputs(model, data: Trajectories, horizon: int, context: int = 1) -> None:
    """ValueError (one line) unless ``model`` can be evaluated on ``data`` over ``horizon`` steps."""
    if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 1:
        raise ValueError(f"horizon must be an integer >= 1 (output steps), got {horizon!r}")
    if horizon > data.n_times - 1:
        raise ValueError(f"horizon {horizon} is longer than the data: its trajectories have {data.n_times} "
                         f"times, so at most {data.n_times - 1} steps after the initial state")
    if isinstance(context, bool) or not isinstance(context, int) or not 1 <= context <= horizon:
        raise ValueError(f"context must be an integer from 1 to the horizon ({horizon}), got {context!r}")
    shape = getattr(model, "state_shape", None)
    if shape is not None and tuple(shape) != data.state_shape:
        raise ValueError(f"the data's state shape {data.state_shape} differs from the model's {tuple(shape)}")
    if data.mask is not None and getattr(model, "context", "last_state") != "sequence":
        unobserved = ~data.mask[:, context - 1].flatten(1).all(1)
        if bool(unobserved.any()):
            where = "first state" if context == 1 else f"context's last state (sample {context - 1})"
            raise ValueError(f"mask: the {where} of trajectory {int(unobserved.nonzero()[0])} is not fully "
                             f"observed, and {model_name(model)} starts its forecasts there (choose a "
                             "context that ends on a fully observed sample, or a model that reads sequences)")


def evaluate(
    model,
    data: Trajectories,
    horizon: int,
    *,
    context: int = 1,
    system=None,
    out_dir: str | Path | None = None,
    force: bool = False,
    plots: bool = True,
    samples: int = 1,
    threshold: float = VPT_THRESHOLD,
    lyapunov: bool = True,
    lyapunov_options: dict[str, Any] | None = None,
    attractor_steps: int = 5000,
    max_chaos_trajectories: int = 4,
    seed: int = 0,
) -> Report:
    """Predict the first ``horizon + 1`` samples of every trajectory from its first ``context`` and judge.

    Each trajectory is predicted on its own times t_0 … t_H (per-trajectory grids allowed) by
    :func:`forecast`. Metrics (see docs/evaluation.md): per-step ``rmse`` (state units) and ``nrmse`` (each
    coordinate divided by its standard deviation σ_i over all of ``data``), on observed entries only where
    the data has a mask (null at a step nothing observes); ``forecast`` and ``context`` errors apart;
    ``vpt``, the median over trajectories of the time from the context's last sample to the first at which
    sqrt(mean_i ((x̂_i − x_i)/σ_i)²) exceeds ``threshold`` (the whole horizon, a lower bound, when it never
    does); with a known λ_max also ``vpt_lyapunov`` = vpt·λ_max. Physics metrics use the true system's
    energy and invariants when ``system`` is given, else the model's own ``energy`` where it has one. For
    chaotic systems (published Lyapunov exponents in their facts) also the learned model's largest Lyapunov
    exponent (models with a vector field) and attractor statistics of long rollouts (``attractor_steps``
    steps of the data's median step) of model and system from the data's final states.

    Args:
        model: a learned model (``physdyn.training.LearnedModel``), anything with ``rollout(x0, t)``, or a
            reference system (rolled out with its own ``integrate``).
        data: trajectories of at least ``horizon + 1`` times.
        context: the first ``context`` samples of each trajectory are given to the model; forecasts start
            at the last of them (which models without an encoder need fully observed).
        system: the reference system for physics metrics, or None (see :func:`reference_system`).
        out_dir: if given, write metrics.json, predictions.h5 and the plots there (all-or-nothing);
            an existing non-empty folder is replaced only with ``force`` and only if it holds an earlier
            report and nothing else (never the data file or the run folder). ``plots=False`` skips the PNGs.
        samples: predictions per trajectory K for stochastic models (``model.stochastic``); point metrics use
            the sample mean. A deterministic model gets K = 1 and a note.
        threshold: normalised-error threshold of the valid prediction time.
        lyapunov: compute the learned model's Lyapunov exponent (chaotic systems only; the slow part).
        lyapunov_options: override :data:`LYAPUNOV_OPTIONS` (keywords of ``largest_lyapunov_exponent``).
        attractor_steps: length of the long rollouts for attractor statistics (0 skips them).
        max_chaos_trajectories: initial states used for the Lyapunov exponent and the long rollouts.
        seed: seeds the samples of stochastic models.

    Returns:
        A :class:`Report`; ``report.metrics`` is what metrics.json holds.
    """
    check_inputs(model, data, horizon, context)
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ValueError(f"samples must be an integer >= 1, got {samples!r}")
    # the inputs a report must never replace: the data file and the model's run folder, where known
    keep = [path for path in (data.meta.get("source"), getattr(model, "run_dir", None)) if path]
    if out_dir is not None:
        check_report_dir(out_dir, force, keep)  # fail before the work, not after it
    notes: list[str] = []
    if samples > 1 and not getattr(model, "stochastic", False):
        notes.append(f"samples={samples} asked for, but {model_name(model)} is deterministic: its K "
                     "predictions would be identical, so one per trajectory is reported (no spread)")
        samples = 1
    truth = data.window(0, horizon + 1)
    c = context
    with torch.no_grad():  # rollouts needing gradients inside (HNN) switch them on themselves
        pred = forecast(model, truth.t, truth.states[:, :c], None if truth.mask is None else
                        truth.mask[:, :c], samples=samples, seed=seed).detach().to(truth.states.dtype)

    metrics: dict[str, Any] = {
        "model": model_name(model),
        "data": str(data.meta.get("source", "")),
        "system": data.system,
        "system_params": dict(data.system_params),
        "n_trajectories": truth.n_trajectories,
        "horizon": horizon,
        "context": c,
        "samples": samples,
        "times": _elapsed(truth.times()).tolist(),
        "coverage": _coverage(truth),
        "notes": notes,
    }
    point = _point_metrics(model, pred, truth, data, c, threshold)
    notes.extend(point.pop("notes"))
    metrics.update(point)
    if samples > 1:
        metrics["probabilistic"] = _probabilistic_metrics(pred, truth, c, metrics["scale"])
    if is_field(data.state_shape):  # PDEBench's suite, over the forecast frames only
        field = field_metrics(pred.mean(1), truth.states, truth.mask, c, truth.times(), system, notes)
        if field is not None:
            metrics["field"] = field
    if system is None and data.system != "custom":
        notes.append(f"no reference system given for data of system {data.system!r}: physics metrics use the "
                     "model's own energy, if any")
    energy = _physics_metrics(model, system, pred, truth, c, metrics)
    options = {**LYAPUNOV_OPTIONS, **(lyapunov_options or {})} if lyapunov else None
    attractor = _chaos_metrics(model, system, truth, metrics, options, attractor_steps,
                               max_chaos_trajectories, seed)

    report = Report(metrics=metrics, truth=truth, predictions=_predictions(pred, truth, metrics),
                    energy=energy, attractor=attractor)
    if out_dir is not None:
        write_report(report, out_dir, force, plots, keep)
    return report


def _elapsed(t: Tensor) -> Tensor:
    """Elapsed time since each trajectory's first sample, averaged over trajectories (exact for a shared
    grid); (T,)."""
    return (t - t[:, :1]).mean(0)


def _coverage(truth: Trajectories) -> dict[str, Any]:
    """Which trajectories of the file and which time range of each the evaluation covered."""
    t = truth.times()
    indices = truth.meta.get("indices")
    return {"trajectories": list(indices) if indices is not None else list(range(truth.n_trajectories)),
            "t_start": t[:, 0].tolist(), "t_end": t[:, -1].tolist()}


def _median(x: Tensor) -> float:
    """The median of a 1-D tensor (the mean of the two middle values for even length, as numpy does)."""
    return float(x.double().quantile(0.5))


def _overall(pred: Tensor, true: Tensor, mask: Tensor | None, scale: Tensor) -> dict[str, float]:
    """RMSE and nRMSE over every (observed) entry of (N, T, *S) at once: one row of N·T states."""
    flat = lambda x: None if x is None else x.reshape(-1, 1, *x.shape[2:])  # noqa: E731
    p, y, m = flat(pred), flat(true), flat(mask)
    return {"rmse": float(M.rmse(p, y, mask=m)[0]), "nrmse": float(M.nrmse(p, y, scale=scale, mask=m)[0])}


def _interval_coverage(pred: Tensor, true: Tensor, mask: Tensor | None, c: int, model) -> dict[str, Any]:
    """How often the truth lies inside mean ± 2 std of the K samples: over the forecast, and over the
    context where the model predicts it too."""
    def overall(a: int, b: int) -> float:
        p, y = pred[:, :, a:b], true[:, a:b]
        flat = p.transpose(1, 2).reshape(-1, p.shape[1], 1, *p.shape[3:])  # every (trajectory, step) a row
        m = None if mask is None else mask[:, a:b].reshape(-1, 1, *y.shape[2:])
        return float(M.spread_coverage(flat, y.reshape(-1, 1, *y.shape[2:]), mask=m)[0])

    out = {"width": 2.0, "forecast": overall(c, true.shape[1]) if c < true.shape[1] else None}
    if c > 1 and getattr(model, "context", "last_state") == "sequence":
        out["context"] = overall(0, c)
    return out


def _point_metrics(model, pred: Tensor, truth: Trajectories, data: Trajectories, c: int,
                   threshold: float) -> dict[str, Any]:
    n, k = pred.shape[:2]
    true = truth.states.double()
    pred = pred.double()
    diverged = ~pred.flatten(2).isfinite().all(2)  # (N, K)
    # A NaN error would never exceed the VPT threshold; count a blown-up rollout as infinitely wrong instead.
    pred = torch.where(pred.isnan(), torch.inf, pred)
    point = pred.mean(1)
    mask = truth.mask
    scale = M.attractor_scale(data.states.double(), mask=data.mask)
    t = truth.times()
    rmse, nrmse = M.rmse(point, true, mask=mask), M.nrmse(point, true, scale=scale, mask=mask)
    options = dict(threshold=threshold, scale=scale, mask=mask, start=c - 1)
    vpt = M.valid_prediction_time(point, true, t=t, **options)
    reached = M.horizon_reached(point, true, **options)
    out: dict[str, Any] = {
        "rmse": rmse.tolist(), "nrmse": nrmse.tolist(),
        "forecast": _overall(point[:, c:], true[:, c:], None if mask is None else mask[:, c:], scale),
        "vpt": _median(vpt), "vpt_per_trajectory": vpt.tolist(), "vpt_threshold": threshold,
        "vpt_reached_horizon": int(reached.sum()), "scale": scale.flatten().tolist(),
        "rmse_final": float(rmse[-1]), "nrmse_final": float(nrmse[-1]),
        "diverged": int(diverged.any(1).sum()),
    }
    notes = []
    if c > 1 and getattr(model, "context", "last_state") == "sequence":
        out["context_error"] = _overall(point[:, :c], true[:, :c], None if mask is None else mask[:, :c],
                                        scale)
    elif c > 1:
        notes.append(f"the first {c} samples are the context, given to {model_name(model)} (not predicted): "
                     "no context error")
    if k > 1:
        spread = pred.std(1).flatten(2).pow(2).mean((0, 2)).sqrt()
        out["ensemble_spread"] = spread.tolist()
        out["interval_coverage"] = _interval_coverage(pred, true, mask, c, model)
    unobserved = int(rmse.isnan().sum())
    if unobserved:
        notes.append(f"{unobserved} of {len(rmse)} steps have no observed truth in any trajectory: "
                     "their rmse and nrmse are null")
    if out["vpt_reached_horizon"]:
        notes.append(f"{out['vpt_reached_horizon']} of {n} trajectories stayed below the threshold for the "
                     "whole horizon: their VPT is the horizon, a lower bound")
    out["notes"] = notes
    return out


#: Central intervals whose coverage a sample forecast reports, and how many horizons get a marginal distance.
COVERAGE_LEVELS = (0.5, 0.9)
MARGINAL_HORIZONS = 5
MARGINAL_POINTS = 2000


def _probabilistic_metrics(pred: Tensor, truth: Trajectories, c: int, scale: list[float]) -> dict[str, Any]:
    """Scores of K > 1 samples (N, K, T, *S) per step: CRPS per coordinate, energy score, coverage of the
    central intervals, the rank histogram over the forecast steps, and the distance between the predicted
    and the true marginals (pooled over trajectories) at :data:`MARGINAL_HORIZONS` horizons.

    The ensemble-mean error and the spread are ``rmse`` and ``ensemble_spread``. On observed entries only
    (the energy score and the distances: fully observed states only); entries are in state units, except
    the energy score and energy distance, of states divided by the data's σ_i (``scale``), so that no
    coordinate's units dominate.
    """
    n, k, n_t = pred.shape[:3]
    x = pred.double().flatten(3).movedim(1, -1)  # (N, T, D, K)
    y = truth.states.double().flatten(2)  # (N, T, D)
    mask = torch.ones_like(y, dtype=torch.bool) if truth.mask is None else truth.mask.flatten(2)
    sigma = torch.as_tensor(scale, dtype=torch.float64)
    w = mask.double()

    def per_step(values: Tensor, weights: Tensor) -> Tensor:  # mean over trajectories (and coordinates)
        dims = tuple(i for i in range(values.ndim) if i != 1)
        return (values * weights).sum(dims) / weights.sum(dims)

    crps = M.crps_ensemble(x, y)
    crps_per_coordinate = (crps * w).sum(0) / w.sum(0)  # (T, D)
    full = mask.all(-1)  # (N, T)
    es = torch.stack([M.energy_score(x[:, j].transpose(1, 2) / sigma, y[:, j] / sigma)
                      for j in range(n_t)], 1)
    curves = {"crps_mean": per_step(crps, w), "energy_score": per_step(es, full.double())}
    for level in COVERAGE_LEVELS:
        curves[f"coverage_{round(100 * level)}"] = per_step(M.interval_coverage(x, y, level).double(), w)
    ahead = slice(c, n_t)  # the forecast steps (the context is given)
    out: dict[str, Any] = {"crps": crps_per_coordinate.tolist(), **{k: v.tolist() for k, v in curves.items()},
                           "levels": list(COVERAGE_LEVELS)}
    out["rank_histogram"] = M.rank_histogram(x[:, ahead], y[:, ahead], mask[:, ahead]).tolist()
    steps = sorted({c - 1 + round(j * (n_t - c) / MARGINAL_HORIZONS)
                    for j in range(1, MARGINAL_HORIZONS + 1)})
    distances, w1 = [], []
    for j in steps:
        seen = full[:, j]
        # the first members of every trajectory, MARGINAL_POINTS at most (the cost grows as their square)
        per = max(1, min(k, MARGINAL_POINTS // max(int(seen.sum()), 1)))
        predicted = x[seen, j, :, :per].transpose(1, 2).reshape(-1, y.shape[-1])
        true = y[seen, j]
        if len(true) < 2:
            distances.append(None)
            w1.append(None)
            continue
        distances.append(float(M.energy_distance(predicted / sigma, true / sigma)))
        w1.append(M.wasserstein_1d(predicted.T.contiguous(), true.T.contiguous()).tolist())
    out["marginal"] = {"steps": steps, "energy_distance": distances, "wasserstein": w1}
    # means over the forecast steps
    out["forecast"] = {key.removesuffix("_mean"): float(v[ahead].mean()) for key, v in curves.items()}
    return out


def _physics_metrics(model, system, pred: Tensor, truth: Trajectories, c: int,
                     metrics: dict) -> tuple[Tensor, Tensor] | None:
    """Energy drift and error, mass and positivity along the forecasts (from the context's last sample on),
    where defined; returns the energies over the whole horizon for the plots."""
    # Without a reference system, the invariants the model itself declares (kinetics: mass, positivity).
    invariants = tuple(getattr(system if system is not None else model, "invariants", ()))
    energy, source = None, None
    if system is not None and _has(system, "energy") and "energy" in invariants:
        energy, source = system.energy, "true"
    elif _has(model, "energy"):
        energy, source = model.energy, "learned"
    k = pred.shape[1]
    flat = pred[:, :, c - 1 :].flatten(0, 1)
    true = truth.states[:, c - 1 :].to(pred.dtype)
    mask = None if truth.mask is None else truth.mask[:, c - 1 :]
    energies = None
    if energy is not None:
        try:
            with torch.no_grad():
                drift = M.energy_drift(flat, energy=energy)
                repeat = lambda x: None if x is None else x.repeat_interleave(k, 0)  # noqa: E731
                error = M.energy_error(flat, repeat(true), energy=energy, mask=repeat(mask))
                energies = (M.energies(energy, truth.states.to(pred.dtype)).detach().double(),
                            M.energies(energy, pred.flatten(0, 1)).detach().double())
        except ValueError as err:  # e.g. a learned energy without a physical form under this normalisation
            metrics["notes"].append(f"energy metrics not computed: {err}")
        else:
            metrics["energy_source"] = source
            metrics["energy_drift"] = _summary(drift["max"], drift["final"])
            metrics["energy_error"] = float(error)
    if "mass" in invariants:
        mass = M.mass_error(flat)
        metrics["mass_error"] = _summary(mass["max"], mass["final"])
    balance = ("mean_balance",) if "mean_balance" in metrics.get("field", {}) else ()
    checked = ("energy", "mass", "positivity", *balance)
    unchecked = [name for name in invariants if name not in checked]
    if unchecked:
        metrics["notes"].append(f"invariants of the system not checked here: {', '.join(unchecked)}")
    if "positivity" in invariants:
        pos = M.positivity_violation(flat)
        metrics["positivity_violation"] = {"depth": float(pos["depth"].max()) + 0.0,  # no "-0"
                                           "fraction": float(pos["fraction"].mean()),
                                           "count": int((flat < 0).sum())}
        metrics["species_error"] = _species_error(flat, true.repeat_interleave(k, 0), truth.state_names)
    learned = getattr(getattr(model, "model", model), "learned_parameters", None)
    if callable(learned):
        metrics["learned_parameters"] = learned()
    return energies


def _species_error(pred: Tensor, true: Tensor, names: tuple[str, ...]) -> dict[str, float]:
    """Per species (state component): the worst over trajectories of max_t |x̂_i − x_i| / max_t |x_i|, the
    error relative to the species' own range along its trajectory (concentrations spanning decades)."""
    err = (pred - true).flatten(2).abs().amax(1) / true.flatten(2).abs().amax(1).clamp(min=1e-300)
    worst = err.amax(0).tolist()
    names = names if len(names) == len(worst) else tuple(f"x{i}" for i in range(len(worst)))
    return dict(zip(names, worst, strict=True))


def _summary(worst_in_time: Tensor, final: Tensor) -> dict[str, float]:
    """Per-trajectory maxima and final values, summarised over trajectories."""
    return {"max": float(worst_in_time.double().mean()), "final": float(final.double().mean()),
            "worst": float(worst_in_time.double().max())}


def _chaos_metrics(model, system, truth: Trajectories, metrics: dict, lyapunov: dict[str, Any] | None,
                   steps: int, n_max: int, seed: int) -> tuple[Tensor, Tensor] | None:
    """Chaotic systems: Lyapunov exponents (true, learned), VPT in Lyapunov times, attractor statistics."""
    if system is None:
        return None
    published = getattr(system, "lyapunov_max", None)
    if published is not None:
        metrics["lyapunov_max_true"] = published
        metrics["lyapunov_max_true_source"] = "published"
    if getattr(system, "facts", {}).get("lyapunov_exponents") is None:  # not chaotic: nothing more to do
        if published is not None and metrics["vpt"] is not None:
            metrics["vpt_lyapunov"] = metrics["vpt"] * published
        return None
    x_start = truth.states[:n_max, -1]  # already on the attractor after the horizon
    if lyapunov is not None and not _has(model, "vector_field"):
        metrics["notes"].append(f"lyapunov_max_model not computed: {model_name(model)} has no vector field")
    elif lyapunov is not None:
        metrics["lyapunov_max_model"] = _lyapunov(model, x_start, lyapunov)
        metrics["lyapunov_options"] = dict(lyapunov, n_starts=len(x_start))
        if published is None:  # parameters away from the published ones: measure the truth the same way
            metrics["lyapunov_max_true"] = _lyapunov(system, x_start, lyapunov)
            metrics["lyapunov_max_true_source"] = "computed"
    lam = metrics.get("lyapunov_max_true")
    if lam is not None and metrics["vpt"] is not None:
        metrics["vpt_lyapunov"] = metrics["vpt"] * lam
    if steps < 1:
        return None
    dt = float(truth.times()[0].diff().median())
    t_long = torch.arange(steps + 1, dtype=torch.float64) * dt
    with torch.no_grad():
        model_long = forecast(model, t_long, x_start[:, None], seed=seed)[:, 0].detach().double()
        # Statistics of the invariant measure need no tight tolerance (the phase is lost anyway), so the
        # true system runs with fixed-step RK4 at half the data's step: fast and accurate enough.
        true_long = rk_integrate(system.vector_field, x_start.double(), t_long,
                                 method="rk4", substeps=2).double()
    burn_in = steps // 10
    stats = M.attractor_statistics(torch.where(model_long.isnan(), torch.inf, model_long), true_long,
                                   burn_in=burn_in)
    metrics["attractor"] = {key: value.tolist() for key, value in stats.items()}
    metrics["attractor"].update(time_span=float(t_long[-1] - t_long[burn_in]),
                                burn_in_time=float(t_long[burn_in]), n_trajectories=len(x_start))
    return model_long[:, burn_in:], true_long[:, burn_in:]


def _lyapunov(obj, x0: Tensor, options: dict[str, Any]) -> float | None:
    value = float(M.largest_lyapunov_exponent(obj, x0, **options))
    return value if math.isfinite(value) else None  # nan: the model left the finite numbers


def _predictions(pred: Tensor, truth: Trajectories, metrics: dict) -> Trajectories:
    """The predictions (N, K, T, *S) as Trajectories in format v1 (N·K of them), with the index of the
    trajectory each one belongs to."""
    n, k = pred.shape[:2]
    source = truth.meta.get("indices")
    index = torch.as_tensor(source if source is not None else range(n), dtype=torch.float64)
    return Trajectories(
        t=truth.t if truth.shared_times else truth.t.repeat_interleave(k, 0),
        states=pred.flatten(0, 1),
        params={**{name: v.repeat_interleave(k) for name, v in truth.params.items()},
                "source_index": index.repeat_interleave(k)},
        system=truth.system,
        state_names=truth.state_names,
        system_params=dict(truth.system_params),
        meta={"kind": "predictions", "model": metrics["model"], "data": metrics["data"], "samples": k,
              "horizon": metrics["horizon"], "context": metrics["context"]},
    )
