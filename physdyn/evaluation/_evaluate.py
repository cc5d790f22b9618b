"""Roll a model out on a dataset and judge it: error curves, valid prediction time, physics, chaos."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .. import metrics as M
from ..data import Trajectories
from ..solvers import rk_integrate
from ._report import check_report_dir, write_report

#: Normalised-error threshold of the valid prediction time (Vlachas et al., Neural Networks 126, 191 (2020)).
VPT_THRESHOLD = 0.4
#: Settings of ``physdyn.metrics.largest_lyapunov_exponent`` for a report: the two-trajectory method needs
#: only the vector field (no double backward through a network), and 4 starts × 50 time units give a few
#: per cent on Lorenz-63, enough to tell a learned attractor's chaos from the truth's.
LYAPUNOV_OPTIONS: dict[str, Any] = {"method": "two_trajectory", "t_transient": 5.0, "t_total": 50.0}


@dataclass
class Report:
    """What :func:`evaluate` found.

    Attributes:
        metrics: the content of metrics.json (strict-JSON-able once NaN is replaced, see ``json_safe``).
        truth: the data over the horizon, (N, H + 1, *S).
        predictions: the rollouts on the same times, (N·K, H + 1, *S) for K samples per initial state
            (sample-major within each trajectory), physical units, starting with the true initial state.
        energy: (H(truth), H(predictions)), (N, H + 1) and (N·K, H + 1), where an energy is defined.
        attractor: (model, system) long rollouts (M, L, *S) after their burn-in, for chaotic systems.
        path: the report folder once written.
    """

    metrics: dict[str, Any]
    truth: Trajectories
    predictions: Trajectories
    energy: tuple[Tensor, Tensor] | None = None
    attractor: tuple[Tensor, Tensor] | None = None
    path: Path | None = None


def reference_system(data: Trajectories):
    """The reference System that produced ``data`` (from its ``system`` and ``system_params``), or None.

    None for "custom" data or parameters the registry does not know; DataFormatError (one line) when the
    data names a bundled system whose states have another shape.
    """
    from ..training._source import source_system

    return source_system(data)


def rollout(model, x0: Tensor, t: Tensor) -> Tensor:
    """``model`` integrated from ``x0`` (N, *S) on ``t`` ((T,) or (N, T)); returns (N, T, *S).

    A learned model (anything with ``rollout``) and a reference system (``integrate``) are both accepted:
    a system can be evaluated as a model, which is how the metrics themselves are tested.
    """
    if hasattr(model, "rollout"):
        return model.rollout(x0, t)
    if t.ndim == 1:
        return model.integrate(x0, t.to(x0.dtype))
    return torch.cat([model.integrate(x0[i : i + 1], t[i].to(x0.dtype)) for i in range(len(x0))])


def model_name(model) -> str:
    """A name for ``model``: its ``name``, its run config's model name, or its class name."""
    name = getattr(model, "name", None)
    if isinstance(name, str):
        return name
    config = getattr(model, "config", None)
    if isinstance(config, dict) and isinstance(config.get("model"), dict) and "name" in config["model"]:
        return str(config["model"]["name"])
    return type(model).__name__


def check_inputs(model, data: Trajectories, horizon: int) -> None:
    """ValueError (one line) unless ``model`` can be evaluated on ``data`` over ``horizon`` steps."""
    if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 1:
        raise ValueError(f"horizon must be an integer >= 1 (output steps), got {horizon!r}")
    if horizon > data.n_times - 1:
        raise ValueError(f"horizon {horizon} is longer than the data: its trajectories have {data.n_times} "
                         f"times, so at most {data.n_times - 1} steps after the initial state")
    shape = getattr(model, "state_shape", None)
    if shape is not None and tuple(shape) != data.state_shape:
        raise ValueError(f"the data's state shape {data.state_shape} differs from the model's {tuple(shape)}")
    if data.mask is not None and not bool(data.mask[:, 0].all()):
        raise ValueError("mask: every first state must be fully observed (the rollouts start there)")


def evaluate(
    model,
    data: Trajectories,
    horizon: int,
    *,
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
) -> Report:
    """Roll ``model`` out from each trajectory's first state for ``horizon`` steps and compare with ``data``.

    Each trajectory is rolled out on its own times t_0 … t_H (per-trajectory grids allowed). Metrics
    (see docs/evaluation.md): per-step ``rmse`` (state units) and ``nrmse`` (each coordinate divided by its
    standard deviation σ_i over all of ``data``); ``vpt``, the median over trajectories of the first elapsed
    time at which sqrt(mean_i ((x̂_i − x_i)/σ_i)²) exceeds ``threshold`` (the whole horizon, a lower bound,
    when it never does); with a known λ_max also ``vpt_lyapunov`` = vpt·λ_max. Physics metrics use the true
    system's energy and invariants when ``system`` is given, else the model's own ``energy`` where it has
    one. For chaotic systems (published Lyapunov exponents in their facts) also the learned model's largest
    Lyapunov exponent and attractor statistics of long rollouts (``attractor_steps`` steps of the data's
    median step) of model and system from the data's final states.

    Args:
        model: a learned model (``physdyn.training.LearnedModel``) or anything with ``rollout(x0, t)``,
            or a reference system (rolled out with its own ``integrate``).
        data: trajectories of at least ``horizon + 1`` times; their first states must be fully observed.
        system: the reference system for physics metrics, or None (see :func:`reference_system`).
        out_dir: if given, write metrics.json, predictions.h5 and the plots there (all-or-nothing);
            an existing non-empty folder is replaced only with ``force`` and only if it holds an earlier
            report and nothing else (never the data file or the run folder). ``plots=False`` skips the PNGs.
        samples: rollouts per initial state K (for stochastic models); point metrics use the sample mean.
        threshold: normalised-error threshold of the valid prediction time.
        lyapunov: compute the learned model's Lyapunov exponent (chaotic systems only; the slow part).
        lyapunov_options: override :data:`LYAPUNOV_OPTIONS` (keywords of ``largest_lyapunov_exponent``).
        attractor_steps: length of the long rollouts for attractor statistics (0 skips them).
        max_chaos_trajectories: initial states used for the Lyapunov exponent and the long rollouts.

    Returns:
        A :class:`Report`; ``report.metrics`` is what metrics.json holds.
    """
    check_inputs(model, data, horizon)
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ValueError(f"samples must be an integer >= 1, got {samples!r}")
    # the inputs a report must never replace: the data file and the model's run folder, where known
    keep = [path for path in (data.meta.get("source"), getattr(model, "run_dir", None)) if path]
    if out_dir is not None:
        check_report_dir(out_dir, force, keep)  # fail before the work, not after it
    truth = _window(data, horizon)
    n, k = truth.n_trajectories, samples
    t = truth.times()
    x0 = truth.states[:, 0].repeat_interleave(k, dim=0)
    with torch.no_grad():  # rollouts needing gradients inside (HNN) switch them on themselves
        pred = rollout(model, x0, truth.t if truth.shared_times else truth.t.repeat_interleave(k, dim=0))
    pred = pred.detach().to(truth.states.dtype).reshape(n * k, *truth.states.shape[1:]).clone()
    pred[:, 0] = x0  # the rollouts start at the data's state; not its round trip through a normalisation

    metrics: dict[str, Any] = {
        "model": model_name(model),
        "data": str(data.meta.get("source", "")),
        "system": data.system,
        "system_params": dict(data.system_params),
        "n_trajectories": n,
        "horizon": horizon,
        "samples": k,
        "times": _elapsed(t).tolist(),
        "notes": [],
    }
    metrics.update(_rollout_metrics(pred, truth, data, k, threshold))
    if system is None and data.system != "custom":
        metrics["notes"].append(f"no reference system given for data of system {data.system!r}: "
                                "physics metrics use the model's own energy, if any")
    energy = _physics_metrics(model, system, pred, truth, metrics)
    options = {**LYAPUNOV_OPTIONS, **(lyapunov_options or {})} if lyapunov else None
    attractor = _chaos_metrics(model, system, truth, metrics, options, attractor_steps,
                               max_chaos_trajectories)

    report = Report(metrics=metrics, truth=truth, predictions=_predictions(pred, truth, k, metrics),
                    energy=energy, attractor=attractor)
    if out_dir is not None:
        write_report(report, out_dir, force, plots, keep)
    return report


def _window(data: Trajectories, horizon: int) -> Trajectories:
    """The first ``horizon + 1`` times of every trajectory."""
    cut = slice(0, horizon + 1)

    def part(x: Tensor | None) -> Tensor | None:
        return None if x is None else x[:, cut]

    return replace(data, t=data.t[..., cut], states=data.states[:, cut], mask=part(data.mask),
                   derivatives=part(data.derivatives))


def _elapsed(t: Tensor) -> Tensor:
    """Elapsed time since each rollout's start, averaged over trajectories (exact for a shared grid); (T,)."""
    return (t - t[:, :1]).mean(0)


def _scale(data: Trajectories) -> Tensor:
    """σ_i: standard deviation of each state coordinate over all (observed) entries of the data; shape S."""
    x = data.states.double()
    if data.mask is None:
        return M.attractor_scale(x)
    w = data.mask.double()
    count = w.sum((0, 1)).clamp(min=1)
    mean = (x * w).sum((0, 1)) / count
    std = (((x - mean) ** 2 * w).sum((0, 1)) / count).sqrt()
    return torch.where(std > 0, std, torch.ones_like(std))


def _median(x: Tensor) -> float:
    """The median of a 1-D tensor (the mean of the two middle values for even length, as numpy does)."""
    return float(x.double().quantile(0.5))


def _rollout_metrics(pred: Tensor, truth: Trajectories, data: Trajectories, k: int, threshold: float) -> dict:
    n, n_t = truth.n_trajectories, truth.n_times
    true = truth.states.double()
    pred = pred.double()
    diverged = ~pred.flatten(1).isfinite().all(1)
    # A NaN error would never exceed the VPT threshold; count a blown-up rollout as infinitely wrong instead.
    pred = torch.where(pred.isnan(), torch.inf, pred)
    point = pred.reshape(n, k, *pred.shape[1:]).mean(1)
    scale = _scale(data)
    t = truth.times()
    out: dict[str, Any] = {}
    if truth.mask is None:
        rmse, nrmse = M.rmse(point, true), M.nrmse(point, true, scale=scale)
        vpt = M.valid_prediction_time(point, true, t=t, threshold=threshold, scale=scale)
    else:
        # Unobserved entries carry no truth: compare on observed entries only, re-weighting the means
        # that the metrics take over all entries by (all entries) / (observed entries).
        mask = truth.mask
        point = torch.where(mask, point, true)
        per_step = mask.flatten(2).sum(-1).double()  # (N, T) observed entries
        weight_step = (n * mask[0, 0].numel() / per_step.sum(0)).sqrt()
        rmse = M.rmse(point, true) * weight_step
        nrmse = M.nrmse(point, true, scale=scale) * weight_step
        err = M.normalized_error(point, true, scale=scale) * (mask[0, 0].numel() / per_step).sqrt()
        # The rule of M.valid_prediction_time on the re-weighted error (unobserved steps never count).
        over = err > threshold
        first = torch.where(over.any(1), over.to(torch.int8).argmax(1), torch.full((n,), n_t - 1))
        vpt = t.gather(1, first[:, None]).squeeze(1) - t[:, 0]
    out["rmse"] = rmse.tolist()
    out["nrmse"] = nrmse.tolist()
    out["vpt"] = _median(vpt)
    out["vpt_per_trajectory"] = vpt.tolist()
    out["vpt_threshold"] = threshold
    out["vpt_reached_horizon"] = int((vpt >= t[:, -1] - t[:, 0]).sum())
    out["scale"] = scale.flatten().tolist()
    out["rmse_final"] = float(rmse[-1])
    out["nrmse_final"] = float(nrmse[-1])
    out["diverged"] = int(diverged.reshape(n, k).any(1).sum())
    if k > 1:
        spread = pred.reshape(n, k, *pred.shape[1:]).std(1).flatten(2).pow(2).mean((0, 2)).sqrt()
        out["ensemble_spread"] = spread.tolist()
    if out["vpt_reached_horizon"]:
        out["notes"] = [f"{out['vpt_reached_horizon']} of {n} trajectories stayed below the threshold for "
                        "the whole horizon: their VPT is the horizon, a lower bound"]
    return out


def _energies(energy, x: Tensor) -> Tensor:
    n, n_t = x.shape[:2]
    return energy(x.reshape(n * n_t, *x.shape[2:])).reshape(n, n_t).detach().double()


def _physics_metrics(model, system, pred: Tensor, truth: Trajectories,
                     metrics: dict) -> tuple[Tensor, Tensor] | None:
    """Energy drift and error, mass and positivity, where defined; returns the energies for the plots."""
    invariants = tuple(getattr(system, "invariants", ()))
    energy, source = None, None
    if _energy_of(system) is not None:
        energy, source = _energy_of(system), "true"
    elif _energy_of(model) is not None:
        energy, source = _energy_of(model), "learned"
    energies, k = None, metrics["samples"]
    true = truth.states.to(pred.dtype)
    if energy is not None:
        with torch.no_grad():
            drift = M.energy_drift(pred, energy=energy)
            h_true, h_pred = _energies(energy, true), _energies(energy, pred)
        metrics["energy_source"] = source
        metrics["energy_drift"] = _summary(drift["max"], drift["final"])
        metrics["energy_error"] = float((h_pred - h_true.repeat_interleave(k, 0)).pow(2).mean())
        energies = (h_true, h_pred)
    if "mass" in invariants:
        mass = M.mass_error(pred)
        metrics["mass_error"] = _summary(mass["max"], mass["final"])
    unchecked = [name for name in invariants if name not in ("energy", "mass", "positivity")]
    if unchecked:
        metrics["notes"].append(f"invariants of the system not checked here: {', '.join(unchecked)}")
    if "positivity" in invariants:
        pos = M.positivity_violation(pred)
        metrics["positivity_violation"] = {"depth": float(pos["depth"].max()) + 0.0,  # no "-0"
                                           "fraction": float(pos["fraction"].mean())}
    return energies


def _energy_of(obj):
    """``obj.energy`` if ``obj`` has an energy, else None.

    That is: a callable ``energy`` and "energy" among ``obj.invariants`` where it lists them (a learned model
    without a learned energy still has the method, which raises).
    """
    energy = getattr(obj, "energy", None)
    if not callable(energy) or "energy" not in getattr(obj, "invariants", ("energy",)):
        return None
    return energy


def _summary(worst_in_time: Tensor, final: Tensor) -> dict[str, float]:
    """Per-trajectory maxima and final values, summarised over trajectories."""
    return {"max": float(worst_in_time.double().mean()), "final": float(final.double().mean()),
            "worst": float(worst_in_time.double().max())}


def _chaos_metrics(model, system, truth: Trajectories, metrics: dict, lyapunov: dict[str, Any] | None,
                   steps: int, n_max: int) -> tuple[Tensor, Tensor] | None:
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
    if lyapunov is not None:
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
        model_long = rollout(model, x_start, t_long).detach().double()
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


def _predictions(pred: Tensor, truth: Trajectories, k: int, metrics: dict) -> Trajectories:
    """The rollouts as Trajectories in format v1, with the index of the trajectory each one started from."""
    n = truth.n_trajectories
    index = torch.arange(n, dtype=torch.float64).repeat_interleave(k)
    source = truth.meta.get("indices")
    if source is not None:
        index = torch.as_tensor(source, dtype=torch.float64).repeat_interleave(k)
    return Trajectories(
        t=truth.t if truth.shared_times else truth.t.repeat_interleave(k, 0),
        states=pred,
        params={**{name: v.repeat_interleave(k) for name, v in truth.params.items()}, "source_index": index},
        system=truth.system,
        state_names=truth.state_names,
        system_params=dict(truth.system_params),
        meta={"kind": "predictions", "model": metrics["model"], "data": metrics["data"], "samples": k,
              "horizon": metrics["horizon"]},
    )
