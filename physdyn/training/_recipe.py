"""The training recipe ``fit`` chooses from the data for every setting the config leaves open.

What users meet first is the defaults, so they follow the data instead of one fixed set: where the file has
dx/dt, derivative matching (each sample a target, in the data's precision); where it has states only,
rollouts over windows that share their end samples (an epoch visits each sample about once), from fitted
initial states where the states are noisy; a budget of optimiser steps rather than of epochs, so a long
recording and a short one both train to the point. Every choice is recorded in the resolved config and
printed with its reason. A setting given in the config or on the command line is never overridden.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

from ..data import Trajectories

#: Optimiser steps of each recipe: enough to fit a field to the sampling floor on the reference systems
#: (benchmarks/learning.py) while a 100 000-sample file trains in minutes on a laptop's CPU.
DERIVATIVE_STEPS = 10_000
ROLLOUT_STEPS = 2_000
#: Samples per rollout window (consecutive windows share their end samples, so stride = window − 1).
ROLLOUT_WINDOW = 12
#: Batches of at most this many windows; smaller data sets train full-batch.
BATCH = 1024
#: Optimiser steps of the transition likelihood (SDE models): the noise intensity converges more slowly
#: than the drift, since each transition holds one draw of the noise.
TRANSITION_STEPS = 3_000
#: Windows per batch of the transition likelihood: 256 windows of 12 are about 2 800 transitions, plenty for
#: a gradient of the likelihood at a quarter of the cost of a full batch (measured on the Langevin pendulum).
TRANSITION_BATCH = 256
#: Estimated measurement noise above this fraction of the states' spread counts as noisy.
NOISY = 0.01
#: Next-frame models on fields: frames predicted per training window beyond the model's history, windows
#: per batch, and optimiser steps (a 64 x 64 reaction-diffusion file trains in minutes on a laptop's CPU).
UNROLL = 4
FIELD_BATCH = 8
FIELD_STEPS = 1_000
#: Sequence models (objectives elbo, sequence_prediction): optimiser steps on sequences of up to
#: SEQUENCE_POINTS samples, fewer in proportion for longer ones (a step's cost grows with the length, and a
#: long sequence holds more to learn from per step), never fewer than SEQUENCE_MIN_STEPS; batches of at
#: most SEQUENCE_BATCH sequences. A step of latent_ode on 128 sequences of 51 samples takes 0.2–0.5 s on
#: one core of a shared machine, so the defaults train in a few minutes; on the pendulum seen through θ at
#: 30 %, 300 such steps extrapolate 5× better than a constant (benchmarks/latent.py).
SEQUENCE_STEPS = 400
SEQUENCE_POINTS = 100
SEQUENCE_MIN_STEPS = 100
SEQUENCE_BATCH = 128
SEQUENCE_OBJECTIVES = ("elbo", "sequence_prediction")


def noise_level(traj: Trajectories) -> float:
    """The measurement noise of the states relative to their spread, estimated from fourth differences.

    For white noise of standard deviation σ on a smooth signal, the fourth difference
    x_{k+2} − 4 x_{k+1} + 6 x_k − 4 x_{k−1} + x_{k−2} is dominated by the noise, with variance 70 σ² (the
    signal adds only h⁴ d⁴x/dt⁴, small wherever the sampling resolves the motion). σ is taken from the
    median absolute fourth difference (robust to the signal's sharp turns) over every fully observed run of
    five samples, relative to each component's standard deviation; the median over components.
    """
    x = traj.states.flatten(2).double()
    if x.shape[1] < 5:
        return 0.0
    observed = torch.ones_like(x, dtype=torch.bool) if traj.mask is None else traj.mask.flatten(2)
    d4 = x[:, 4:] - 4 * x[:, 3:-1] + 6 * x[:, 2:-2] - 4 * x[:, 1:-3] + x[:, :-4]
    runs = observed[:, 4:] & observed[:, 3:-1] & observed[:, 2:-2] & observed[:, 1:-3] & observed[:, :-4]
    levels = []
    for i in range(x.shape[-1]):
        values, spread = d4[..., i][runs[..., i]], x[..., i][observed[..., i]]
        if values.numel() < 8 or spread.numel() < 2 or float(spread.std()) == 0:
            continue
        sigma = 1.4826 * float(values.abs().median()) / math.sqrt(70)
        levels.append(sigma / float(spread.std()))
    return float(torch.tensor(levels).median()) if levels else 0.0


def _given(config: Mapping[str, Any], section: str, key: str) -> bool:
    values = config.get(section)
    return isinstance(values, Mapping) and key in values


def _step_budget(config: Mapping[str, Any], put, reasons: list[str], windows: int, batch_cap: int, steps: int,
                 fewest_epochs: int) -> None:
    """Batches of at most ``batch_cap`` windows, epochs for about ``steps`` optimiser steps (about 80 % of the
    windows are trained on), and a cosine schedule: what every windowed recipe ends with."""
    batch = min(batch_cap, windows)
    put("data", "batch_size", batch)
    batch = config["data"]["batch_size"] if _given(config, "data", "batch_size") else batch
    per_epoch = max(1, math.ceil(0.8 * windows / batch))
    epochs = max(fewest_epochs, min(2000, math.ceil(steps / per_epoch)))
    if put("training", "max_epochs", epochs):
        reasons.append(f"{epochs} epochs of about {per_epoch} batches of {batch}: about {epochs * per_epoch} "
                       "optimiser steps (training.max_epochs)")


def choose(traj: Trajectories, objective: str, config: Mapping[str, Any],
           model_defaults: Mapping[str, Any] | None = None) -> tuple[dict[str, Any], list[str]]:
    """Settings for what ``config`` (the user's, before defaults) leaves open, and one line per choice.

    Returns a config fragment (sections data / objective / training, and model for kinetics) to merge under
    the user's settings, and the reasons. The objectives ``trajectory_matching``, ``elbo``,
    ``sequence_prediction``, ``kinetics_matching`` and ``unrolled_steps`` have recipes; others keep the
    defaults. ``model_defaults``: the model's hyperparameter defaults (the history of a next-frame model sets
    its windows).
    """
    if objective == "kinetics_matching":
        return _kinetics(traj, config)
    if objective not in ("trajectory_matching", "transition_likelihood", "unrolled_steps",
                         *SEQUENCE_OBJECTIVES):
        return {}, []
    chosen: dict[str, dict[str, Any]] = {"data": {}, "objective": {}, "training": {}}
    reasons: list[str] = []

    def put(section: str, key: str, value: Any) -> bool:
        if _given(config, section, key):
            return False
        chosen[section][key] = value
        return True

    if objective == "unrolled_steps":
        return _unrolled_steps(traj, config, model_defaults or {}, put, chosen, reasons)
    if objective in SEQUENCE_OBJECTIVES:
        _sequence_recipe(traj, objective, config, put, reasons)
        return {section: values for section, values in chosen.items() if values}, reasons
    if objective == "transition_likelihood":
        _transitions(traj, config, put, reasons)
        return {section: values for section, values in chosen.items() if values}, reasons

    n, n_t = traj.n_trajectories, traj.n_times
    rollouts_asked = any(_given(config, *key) for key in (("data", "window"), ("objective", "rollout_weight"),
                                                           ("objective", "initial_state")))
    if traj.derivatives is not None and not rollouts_asked:
        if put("data", "window", 1) | put("data", "stride", 1) | put("objective", "rollout_weight", 0.0):
            reasons.append("the file has dx/dt: derivative matching, every sample a target "
                           "(data.window=1, objective.rollout_weight=0)")
        windows, steps = n * n_t, DERIVATIVE_STEPS
        if traj.states.dtype == torch.float64 and put("training", "precision", "64-true"):
            reasons.append("the states and their derivatives are float64: trained in float64 "
                           "(training.precision=64-true), since chaos amplifies every error of the field")
        put("training", "lr", 3e-3)
    else:
        window = min(ROLLOUT_WINDOW, n_t)
        window = config["data"]["window"] if _given(config, "data", "window") else window
        if put("data", "window", window) | put("data", "stride", max(window - 1, 1)):
            reasons.append(f"states only: rollouts over windows of {window} samples sharing their ends, so "
                           f"an epoch visits each sample about once (data.window={window}, "
                           f"data.stride={max(window - 1, 1)})")
        level = noise_level(traj)
        rollouts = window >= 2 and config.get("objective", {}).get("rollout_weight", 1.0) != 0
        if level > NOISY and rollouts and put("objective", "initial_state", "fitted"):
            reasons.append(f"the states look noisy (estimated noise {100 * level:.1f} % of their spread): "
                           "each window starts from a fitted state, so the noise does not bias the field "
                           "(objective.initial_state=fitted)")
        windows, steps = n * max(1, math.ceil((n_t - 1) / max(window - 1, 1))), ROLLOUT_STEPS
    _step_budget(config, put, reasons, windows, BATCH, steps, fewest_epochs=10)
    if put("training", "schedule", "cosine"):
        reasons.append("the learning rate anneals to 0 over the run (training.schedule=cosine)")
    return {section: values for section, values in chosen.items() if values}, reasons


def _unrolled_steps(traj: Trajectories, config: Mapping[str, Any], model_defaults: Mapping[str, Any], put,
                    chosen: dict[str, dict[str, Any]], reasons: list[str]) -> tuple[dict, list[str]]:
    """Next-frame models: windows of history + :data:`UNROLL` frames starting at every frame, small batches
    (a field is a large sample), :data:`FIELD_STEPS` optimiser steps, a cosine schedule."""
    model_cfg = config.get("model") if isinstance(config.get("model"), Mapping) else {}
    history = model_cfg.get("history", model_defaults.get("history", 1))
    history = history if isinstance(history, int) and not isinstance(history, bool) else 1
    n, n_t = traj.n_trajectories, traj.n_times
    window = min(history + UNROLL, n_t)
    window = config["data"]["window"] if _given(config, "data", "window") else window
    if put("data", "window", window) | put("data", "stride", 1):
        reasons.append(f"a next-frame model: windows of {window} frames from every frame, {history} read and "
                       f"{max(window - history, 0)} predicted by unrolling (data.window={window}, "
                       "data.stride=1)")
    stride = config["data"]["stride"] if _given(config, "data", "stride") else 1
    stride = stride if isinstance(stride, int) and stride >= 1 else 1
    windows = n * max(1, (n_t - window) // stride + 1)
    _step_budget(config, put, reasons, windows, FIELD_BATCH, FIELD_STEPS, fewest_epochs=1)
    if put("training", "schedule", "cosine"):
        reasons.append("the learning rate anneals to 0 over the run (training.schedule=cosine)")
    return {section: values for section, values in chosen.items() if values}, reasons


def _sequence_recipe(traj: Trajectories, objective: str, config: Mapping[str, Any], put,
                     reasons: list[str]) -> None:
    """Whole sequences: a budget of optimiser steps set by the sequence length, large batches (a step's cost
    is mostly the sequential loop, nearly the same for 8 sequences as for 128), a cosine schedule, and for
    the ELBO a KL annealing that reaches its full weight well before the end."""
    n, n_t = traj.n_trajectories, traj.n_times
    steps = max(SEQUENCE_MIN_STEPS, round(SEQUENCE_STEPS * min(1.0, SEQUENCE_POINTS / max(n_t, 1))))
    batch = min(SEQUENCE_BATCH, max(1, math.ceil(0.8 * n)))
    put("data", "batch_size", batch)
    batch = config["data"]["batch_size"] if _given(config, "data", "batch_size") else batch
    per_epoch = max(1, math.ceil(0.8 * n / batch))
    epochs = max(10, min(5000, math.ceil(steps / per_epoch)))
    epochs = config["training"]["max_epochs"] if _given(config, "training", "max_epochs") else epochs
    if put("training", "max_epochs", epochs):
        reasons.append(f"whole sequences of {n_t} samples: {epochs} epochs of about {per_epoch} batches of "
                       f"{batch}, about {epochs * per_epoch} optimiser steps (training.max_epochs)")
    if put("training", "lr", 1e-2):
        reasons.append("a recurrent encoder and a latent ODE train fast at a high rate, annealed "
                       "(training.lr=0.01)")
    if put("training", "schedule", "cosine"):
        reasons.append("the learning rate anneals to 0 over the run (training.schedule=cosine)")
    if put("training", "grad_clip", 1.0):
        reasons.append("recurrent networks over long sequences: gradients clipped at norm 1 "
                       "(training.grad_clip=1)")
    if objective == "elbo":
        # Rubanova et al. anneal the KL over hundreds of epochs; a run of any length should reach the full
        # ELBO by 60 % of its epochs, so that the last part trains the bound itself.
        warmup = max(1, epochs // 20)
        rate = 0.01 ** (1 / max(1.0, 0.6 * epochs - warmup))
        if put("objective", "kl_warmup", warmup) | put("objective", "kl_rate", round(rate, 6)):
            reasons.append(f"KL weight 0 for {warmup} epochs, then 1 − {rate:.4f}^(epoch − {warmup}), "
                           "0.99 at 60 % of the run (objective.kl_warmup, objective.kl_rate)")


#: Optimiser steps of the kinetics recipe: the rollouts refine the differential-method estimate of the rate
#: constants (already within a few per cent on Robertson), at one full batch per step.
KINETICS_STEPS = 60
#: ... and for a network field (scaled_node), trained from scratch.
NETWORK_STEPS = 300


def _kinetics(traj: Trajectories, config: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Whole trajectories through the stiff solver, in float64, the species named after the file's states."""
    from ..data._splits import make_split, split_segments
    from ..models import defaults
    from ..models.kinetics import is_log_spaced, species_in

    chosen: dict[str, dict[str, Any]] = {"data": {}, "model": {}, "training": {}}
    reasons: list[str] = []

    def put(section: str, key: str, value: Any) -> bool:
        if _given(config, section, key):
            return False
        chosen[section][key] = value
        return True

    model = config.get("model", {}) if isinstance(config.get("model"), Mapping) else {}
    if "species" in defaults(model.get("name") or "kinetics") and not _given(config, "model", "species"):
        names = list(traj.state_names)
        if len(names) != math.prod(traj.state_shape):  # unnamed states: x0, x1, ...
            names = [f"x{i}" for i in range(math.prod(traj.state_shape))]
        named = species_in(model["reactions"]) if model.get("reactions") else names
        if not set(named) <= set(names) and len(named) == len(names):
            reasons.append(f"the reactions name the species {', '.join(named)} and the file's states are "
                           f"{', '.join(names)}: taken in the reactions' order of first appearance "
                           f"({', '.join(f'{a} = {b}' for a, b in zip(named, names, strict=True))}); "
                           "model.species says otherwise")
            names = named
        chosen["model"]["species"] = names
    hparams = defaults(model.get("name") or "kinetics")
    positive = traj.t[traj.t > 0]
    if "time_offset" in hparams and len(positive) and not _given(config, "model", "time_offset"):
        offset = float(positive.min())
        chosen["model"]["time_offset"] = offset
        put("model", "log_time_range", [math.log(offset), math.log(float(positive.max()) + offset)])
        reasons.append(f"the field is learned in log time ln(t + {offset:.3g}), the data's first positive "
                       "time as offset (model.time_offset, model.log_time_range)")
    network = "reactions" not in hparams
    fractions = config["data"]["split"] if _given(config, "data", "split") else [0.8, 0.1, 0.1]
    by = config["data"]["split_by"] if _given(config, "data", "split_by") else "auto"
    try:
        train = split_segments(make_split(traj, fractions, by), traj.n_trajectories, traj.n_times)["train"]
        window = max((b - a for _, a, b in train), default=traj.n_times)
    except ValueError:  # a bad split setting: let the data module say what is wrong
        window = traj.n_times
    if put("data", "window", window) | put("data", "stride", window) | put("data", "max_gap", None):
        reasons.append(f"kinetics: each rollout spans a whole trajectory, {window} samples, from its first "
                       "state (data.window, data.stride, data.max_gap=null)")
    if is_log_spaced(traj.t):
        reasons.append("the times are log-spaced: every sample counts alike, so every decade of time does; "
                       "times are used as they are (no shift or scale)")
    windows = traj.n_trajectories * max(1, traj.n_times // window)
    put("data", "batch_size", min(BATCH, windows))
    if put("training", "precision", "64-true"):
        reasons.append("the stiff solver's tolerances need float64 (training.precision=64-true)")
    steps = NETWORK_STEPS if network else KINETICS_STEPS
    if put("training", "max_epochs", max(10, math.ceil(steps / math.ceil(0.8 * windows / BATCH)))):
        reasons.append(f"about {steps} optimiser steps " + ("train the network" if network else
                       "refine the estimated rate constants") + " (training.max_epochs)")
    put("training", "lr", 3e-3 if network else 1e-2)
    put("training", "schedule", "cosine")
    return {section: values for section, values in chosen.items() if values}, reasons


def _transitions(traj: Trajectories, config: Mapping[str, Any], put, reasons: list[str]) -> None:
    """The recipe of the transition likelihood: windows that share their ends (each transition once), a
    budget of optimiser steps, a cosine schedule."""
    n, n_t = traj.n_trajectories, traj.n_times
    window = config["data"]["window"] if _given(config, "data", "window") else min(ROLLOUT_WINDOW, n_t)
    if put("data", "window", window) | put("data", "stride", max(window - 1, 1)):
        reasons.append(f"an SDE: the transitions of windows of {window} samples sharing their ends, so an "
                       f"epoch visits each step once (data.window={window}, "
                       f"data.stride={max(window - 1, 1)})")
    windows = n * max(1, math.ceil((n_t - 1) / max(window - 1, 1)))
    _step_budget(config, put, reasons, windows, TRANSITION_BATCH, TRANSITION_STEPS, fewest_epochs=10)
    put("training", "lr", 3e-3)
    if put("training", "schedule", "cosine"):
        reasons.append("the learning rate anneals to 0 over the run (training.schedule=cosine)")
