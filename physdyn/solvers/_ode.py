"""Deterministic and stochastic integration: thin wrappers over torchdiffeq and torchsde.

Both take and return physdyn's batch-first layout (N, T, *state_shape); the libraries are time-first.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torchdiffeq
import torchsde
from torch import Tensor
from tqdm.auto import tqdm

VectorField = Callable[[Tensor, Tensor], Tensor]


def _chunks(t: Tensor, progress: bool) -> list[Tensor]:
    """Output times split into overlapping pieces so a progress bar can advance between them."""
    if not progress or len(t) < 3:
        return [t]
    n = min(50, len(t) - 1)
    edges = torch.linspace(0, len(t) - 1, n + 1).round().long().unique()
    return [t[a : b + 1] for a, b in zip(edges[:-1].tolist(), edges[1:].tolist(), strict=True)]


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
    (``f`` must then be an ``nn.Module``).
    """
    solve = torchdiffeq.odeint_adjoint if adjoint else torchdiffeq.odeint
    kwargs = {"method": method, "rtol": rtol, "atol": atol, "options": options}
    pieces, x = [x0[None]], x0
    for piece in tqdm(_chunks(t, progress), disable=not progress, desc="integrating", leave=False):
        out = solve(f, x, piece, **kwargs)
        pieces.append(out[1:])
        x = out[-1]
    return torch.cat(pieces).movedim(0, 1)


def sdeint(sde, x0: Tensor, t: Tensor, *, seed: int, dt: float, method: str | None = None,
           progress: bool = False) -> Tensor:
    """Solve a torchsde SDE from ``x0`` (N, D) and return the states at ``t`` (T,) as (N, T, D).

    The Brownian motion is a ``torchsde.BrownianInterval`` seeded by ``seed``: the same seed gives the same
    paths, whatever the output grid is split into.
    """
    n, d = x0.shape
    m = getattr(sde, "brownian_size", d)
    bm = torchsde.BrownianInterval(
        t0=float(t[0]), t1=float(t[-1]), size=(n, m), dtype=x0.dtype, entropy=seed,
        levy_area_approximation="space-time" if method == "srk" else "none",
    )
    method = method or ("milstein" if sde.noise_type == "diagonal" else "euler")
    pieces, x = [x0[None]], x0
    for piece in tqdm(_chunks(t, progress), disable=not progress, desc="integrating", leave=False):
        out = torchsde.sdeint(sde, x, piece, bm=bm, dt=dt, method=method)
        pieces.append(out[1:])
        x = out[-1]
    return torch.cat(pieces).movedim(0, 1)
