"""Partial, irregular, noisy observations of trajectories: what a sensor would have recorded."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import torch

from ._trajectories import Trajectories


def observe(traj: Trajectories, components: Sequence[int] | None = None, *, keep: float = 1.0,
            noise: float = 0.0, seed: int = 0) -> Trajectories:
    """``traj`` as seen by a partial, irregular, noisy measurement.

    Args:
        traj: trajectories with vector states (N, T, D).
        components: the state coordinates observed (e.g. ``[0]``: the pendulum's θ only); the result's
            states hold only these. None: all.
        keep: the fraction of the samples of each trajectory that is observed, drawn at random per
            trajectory (exactly round(keep · T) of them, at least 1): the result's ``mask``.
        noise: Gaussian noise added to the observed values, as a multiple of each coordinate's standard
            deviation over ``traj`` (0.01: one per cent).
        seed: seeds the mask and the noise.

    Returns:
        Trajectories of the chosen coordinates on the same times, NaN where unobserved (so that nothing
        can use those values by accident), with a mask; no derivatives (a measurement has none). Their
        ``system`` is "custom" (part of a state is not the system's state); ``meta["observed"]`` records the
        source system and the settings.
    """
    if traj.states.ndim != 3:
        raise ValueError(f"observe needs vector states (N, T, D), got shape {tuple(traj.states.shape)}")
    n, n_t, d = traj.states.shape
    components = list(range(d)) if components is None else list(components)
    bad = [i for i in components if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < d]
    if not components or bad:
        raise ValueError(f"components must be state indices from 0 to {d - 1}, got {components!r}")
    if isinstance(keep, bool) or not isinstance(keep, int | float) or not 0 < keep <= 1:
        raise ValueError(f"keep must be a fraction in (0, 1], got {keep!r}")
    if isinstance(noise, bool) or not isinstance(noise, int | float) or not noise >= 0:
        raise ValueError(f"noise must be a number >= 0, got {noise!r}")
    g = torch.Generator().manual_seed(seed)
    states = traj.states[..., components].clone()
    count = max(1, round(keep * n_t))
    chosen = torch.rand(n, n_t, generator=g).argsort(1)[:, :count]
    kept = torch.zeros(n, n_t, dtype=torch.bool).scatter_(1, chosen, True)
    mask = kept[..., None].repeat(1, 1, len(components))
    if traj.mask is not None:
        mask &= traj.mask[..., components]
    scale = states.flatten(0, 1).double().std(0).to(states.dtype)
    states = states + noise * scale * torch.randn(states.shape, generator=g, dtype=states.dtype)
    states = torch.where(mask, states, torch.full((), float("nan"), dtype=states.dtype))
    names = tuple(traj.state_names[i] for i in components) if len(traj.state_names) == d else ()
    # Part of a state is no longer the system's state: the file says "custom" and keeps where it came from.
    meta = dict(traj.meta, observed={"system": traj.system, "system_params": dict(traj.system_params),
                                     "components": components, "keep": keep, "noise": noise, "seed": seed})
    return replace(traj, states=states, mask=mask, derivatives=None, state_names=names, meta=meta,
                   system="custom", system_params={})
