"""Deterministic and stochastic integration: thin wrappers over torchdiffeq and torchsde.

Both take and return physdyn's batch-first layout (N, T, *state_shape); the libraries are time-first.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from numbers import Integral

import numpy as np
import torch
import torchdiffeq
import torchsde
from torch import Tensor, nn
from tqdm.auto import tqdm

VectorField = Callable[[Tensor, Tensor], Tensor]


class _Reporting(nn.Module):
    """``f`` unchanged, moving a progress bar to the latest time it is evaluated at. An ``nn.Module`` holding
    ``f``, so the adjoint method still finds ``f``'s parameters."""

    def __init__(self, f: VectorField, bar: tqdm, t0: float) -> None:
        super().__init__()
        self.f, self.bar, self.t0 = f, bar, t0

    def forward(self, t: Tensor, x: Tensor) -> Tensor:
        self.bar.update(max(0.0, float(t) - self.t0 - self.bar.n))
        return self.f(t, x)


def odeint(
    f: VectorField,
    x0: Tensor,
    t: Tensor,
    *,
    method: str = "dopri5",
    rtol: float = 1e-7,
    atol: float = 1e-9,
    adjoint: bool = False,
    progress: bool = False,
    options: dict | None = None,
) -> Tensor:
    """Solve dx/dt = f(t, x) from ``x0`` (N, *S) and return the states at ``t`` (T,) as (N, T, *S).

    ``f`` may be any callable or ``nn.Module``; ``adjoint=True`` uses torchdiffeq's adjoint method
    (``f`` must then be an ``nn.Module``). The progress bar follows the solver's time and leaves the solution
    as it is (one solve over the whole grid either way).
    """
    solve = torchdiffeq.odeint_adjoint if adjoint else torchdiffeq.odeint
    kwargs = {"method": method, "rtol": rtol, "atol": atol, "options": options}
    if not progress:
        return solve(f, x0, t, **kwargs).movedim(0, 1)
    t0, t1 = float(t[0]), float(t[-1])
    with tqdm(total=t1 - t0, disable=not progress, desc="integrating", leave=False,
              bar_format="{l_bar}{bar}| t = {n:.3g}/{total:.3g}") as bar:
        return solve(_Reporting(f, bar, t0), x0, t, **kwargs).movedim(0, 1)


#: The most SDE steps one Brownian window covers. torchsde's BrownianInterval keeps a node for every interval
#: it was asked about (about two per step) and builds its search tree by recursion, which overflows Python's
#: stack on long runs; one interval per window keeps memory and depth bounded, however long the run.
WINDOW_STEPS = 1000


def sdeint(sde, x0: Tensor, t: Tensor, *, seed: int, dt: float, method: str | None = None,
           progress: bool = False) -> Tensor:
    """Solve a torchsde SDE from ``x0`` (N, D) and return the states at ``t`` (T,) as (N, T, D).

    Fixed steps no longer than ``dt``: each output interval is split into equal steps, so every output is
    a state the solver reached (torchsde would otherwise interpolate between steps). The time span is cut at
    output times (and, where one output interval is longer than ``WINDOW_STEPS`` steps, inside it) into
    windows of at most ``WINDOW_STEPS`` steps. Each window has its own ``torchsde.BrownianInterval``, seeded
    by ``(seed, window number)``: increments over disjoint windows are independent, so together they are one
    Brownian motion. The same seed, grid and ``dt`` give the same paths, with or without ``progress``.
    """
    if isinstance(seed, bool) or not isinstance(seed, Integral) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    n, d = x0.shape
    size = (n, getattr(sde, "brownian_size", d))
    levy_area = "space-time" if method == "srk" else "none"
    method = method or ("milstein" if sde.noise_type == "diagonal" else "euler")
    times, is_output = _with_window_breaks(t, dt)
    out, x = [x0[None]], x0
    for k, (start, stop, steps) in enumerate(tqdm(_windows(times, dt), disable=not progress,
                                                    desc="integrating", leave=False)):
        window = times[start : stop + 1]
        t0, t1 = float(window[0]), float(window[-1])
        h = (t1 - t0) / steps
        entropy = int(np.random.SeedSequence([int(seed), k]).generate_state(1, np.uint64)[0])
        bm = torchsde.BrownianInterval(t0=t0, t1=t1, size=size, dtype=x0.dtype, device=x0.device,
                                       entropy=entropy, dt=h, levy_area_approximation=levy_area)
        states = torchsde.sdeint(sde, x, window, bm=bm, dt=h, method=method)
        out.append(states[1:][is_output[start + 1 : stop + 1]])
        x = states[-1]
    return torch.cat(out).movedim(0, 1)


def _steps(width: float, dt: float) -> int:
    """Equal steps no longer than ``dt`` that span ``width`` (the 1e-9 forgives round-off in the grid)."""
    return max(1, math.ceil(width / dt - 1e-9))


def _with_window_breaks(t: Tensor, dt: float) -> tuple[Tensor, Tensor]:
    """``t`` with equally spaced extra times inside intervals longer than ``WINDOW_STEPS`` steps, and the
    (len,) bool mask of the original times."""
    pieces = [math.ceil(_steps(width, dt) / WINDOW_STEPS) for width in t.diff().tolist()]
    if max(pieces) == 1:
        return t, torch.ones(len(t), dtype=torch.bool)
    times, is_output = [t[:1]], [True]
    for i, m in enumerate(pieces):
        times.append(torch.linspace(float(t[i]), float(t[i + 1]), m + 1, dtype=t.dtype)[1:])
        is_output += [False] * (m - 1) + [True]
    return torch.cat(times), torch.tensor(is_output)


def _windows(times: Tensor, dt: float) -> list[tuple[int, int, int]]:
    """``times`` cut into windows (start index, stop index, steps) of equal intervals, each of the same number
    of steps, and at most ``WINDOW_STEPS`` steps in all."""
    widths = times.diff().tolist()
    windows, start = [], 0
    while start < len(widths):
        width, per = widths[start], _steps(widths[start], dt)
        stop = start + 1
        while (stop < len(widths) and (stop - start + 1) * per <= WINDOW_STEPS
               and abs(widths[stop] - width) <= 1e-6 * width):
            stop += 1
        windows.append((start, stop, (stop - start) * per))
        start = stop
    return windows
