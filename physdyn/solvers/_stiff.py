"""A batched, differentiable Rosenbrock solver for stiff ODEs.

Written by hand because torchdiffeq has no implicit methods and scipy's stiff solvers (``Radau``, ``BDF``,
``LSODA``) integrate one trajectory at a time and are not differentiable. A Rosenbrock method needs no
Newton iteration: each step solves ``s`` linear systems with the one matrix W = I/(hγ) − J, so a batch of
trajectories needs one batched inverse of W per step (``torch.linalg.inv``, reused by every stage: for the
small dense systems this solver is for, cheaper than a factorisation plus ``s`` triangular solves), and
every operation is an ordinary differentiable torch op.

Each trajectory has its own step size and accept/reject decision (trajectories that have reached their
last output time idle), and every output time is hit exactly. Gradients w.r.t. ``x0`` and any parameters
inside ``f`` (and ``jacobian``) come from backpropagating through the accepted steps; the step-size
control is computed from detached values, so it is treated as a constant.

Methods (Hairer & Wanner, Solving ODEs II, 2nd ed., Springer 1996, sec. IV.7, in the W-transformed form
used by their code RODAS):
- ``"rodas5p"``: 8 stages, order 5, embedded order 4, L-stable, stiffly accurate. G. Steinebach,
  "Construction of Rosenbrock-Wanner method Rodas5P and numerical benchmarks within the Julia Differential
  Equations package", BIT Numer. Math. 63, 27 (2023).
- ``"rodas4"``: 6 stages, order 4, embedded order 3, L-stable, stiffly accurate. Hairer & Wanner (1996).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor
from tqdm.auto import tqdm

Jacobian = Callable[[Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class _Tableau:
    """Stage i (1-based) of a step from (t, y) with step h:

    Y_i = y + Σ_{j<i} a_ij k_j,
    (I/(hγ) − J) k_i = f(t + c_i h, Y_i) + Σ_{j<i} (C_ij / h) k_j + h d_i ∂f/∂t,

    and, the methods being stiffly accurate, y_new = Y_s + k_s with k_s the error estimate.
    ``a[i]``/``C[i]`` hold row i + 2 (stage 1 has no coefficients).
    """

    gamma: float
    a: tuple[tuple[float, ...], ...]
    C: tuple[tuple[float, ...], ...]
    c: tuple[float, ...]
    d: tuple[float, ...]
    order: int  # of the embedded solution + 1: the error estimate is O(h^order)


_A4 = (1.221224509226641, 6.019134481288629, 12.53708332932087, -0.6878860361058950)
_RODAS4 = _Tableau(
    gamma=0.25,
    a=(
        (1.544,),
        (0.9466785280815826, 0.2557011698983284),
        (3.314825187068521, 2.896124015972201, 0.9986419139977817),
        _A4,
        (*_A4, 1.0),
    ),
    C=(
        (-5.6688,),
        (-2.430093356833875, -0.2063599157091915),
        (-0.1073529058151375, -9.594562251023355, -20.47028614809616),
        (7.496443313967647, -10.24680431464352, -33.99990352819905, 11.70890893206160),
        (8.083246795921522, -7.981132988064893, -31.52159432874371, 16.31930543123136, -6.058818238834054),
    ),
    c=(0.0, 0.386, 0.21, 0.63, 1.0, 1.0),
    d=(0.25, -0.1043, 0.1035, -0.0362, 0.0, 0.0),
    order=4,
)

_A5 = (-7.502846399306121, 2.561846144803919, -11.627539656261098, -0.18268767659942256, 0.030198172008377946)
_RODAS5P = _Tableau(
    gamma=0.21193756319429014,
    a=(
        (3.0,),
        (2.849394379747939, 0.45842242204463923),
        (-6.954028509809101, 2.489845061869568, -10.358996098473584),
        (2.8029986275628964, 0.5072464736228206, -0.3988312541770524, -0.04721187230404641),
        _A5,
        (*_A5, 1.0),
        (*_A5, 1.0, 1.0),
    ),
    C=(
        (-14.155112264123755,),
        (-17.97296035885952, -2.859693295451294),
        (147.12150275711716, -1.41221402718213, 71.68940251302358),
        (165.43517024871676, -0.4592823456491126, 42.90938336958603, -5.961986721573306),
        (24.854864614690072, -3.0009227002832186, 47.4931110020768, 5.5814197821558125, -0.6610691825249471),
        (30.91273214028599, -3.1208243349937974, 77.79954646070892, 34.28646028294783, -19.097331116725623,
         -28.087943162872662),
        (37.80277123390563, -3.2571969029072276, 112.26918849496327, 66.9347231244047, -40.06618937091002,
         -54.66780262877968, -9.48861652309627),
    ),
    c=(0.0, 0.6358126895828704, 0.4095798393397535, 0.9769306725060716, 0.4288403609558664, 1.0, 1.0, 1.0),
    d=(0.21193756319429014, -0.42387512638858027, -0.3384627126235924, 1.8046452872882734, 2.325825639765069,
       0.0, 0.0, 0.0),
    order=5,
)

METHODS: dict[str, _Tableau] = {"rodas5p": _RODAS5P, "rodas4": _RODAS4}


def _autograd_jacobian(f: Callable[[Tensor, Tensor], Tensor]) -> Jacobian:
    """∂f/∂x (B, D, D) by reverse mode, for a batched f whose row b depends on x[b] alone.

    Row i of every sample's Jacobian is the gradient of Σ_b f(t, x)[b, i]: D backward passes through one
    evaluation of f on the whole batch (so per-trajectory parameters inside f keep working). When autograd
    is on outside, the Jacobian keeps its graph, so gradients of the solution see its dependence on x and on
    the parameters of f.
    """

    def jacobian(t: Tensor, x: Tensor) -> Tensor:
        create_graph = torch.is_grad_enabled()
        with torch.enable_grad():
            z = x if x.requires_grad else x.detach().requires_grad_(True)
            out = f(t, z)
            if not out.requires_grad:  # f does not depend on x at all
                return out.new_zeros(*out.shape, x.shape[-1])
            rows = [
                torch.autograd.grad(out[:, i].sum(), z, retain_graph=True, create_graph=create_graph,
                                    allow_unused=True, materialize_grads=True)[0]
                for i in range(out.shape[-1])
            ]
        return torch.stack(rows, dim=1)

    return jacobian


def _coefficients(method: str, dtype: torch.dtype, device: torch.device) -> list[Tensor]:
    """Row i: the (i + 1, 2) matrix [a_{i+2, j}, C_{i+2, j}] of stage i + 2 (0-based i)."""
    tab = METHODS[method]
    rows = zip(tab.a, tab.C, strict=True)
    return [torch.tensor(list(zip(a, C, strict=True)), dtype=dtype, device=device) for a, C in rows]


def rosenbrock_step(
    f: Callable[[Tensor, Tensor], Tensor],
    jac: Tensor,
    t: Tensor,
    y: Tensor,
    h: Tensor,
    *,
    method: str = "rodas5p",
    fy: Tensor | None = None,
    dfdt: Tensor | None = None,
    coefficients: list[Tensor] | None = None,
) -> tuple[Tensor, Tensor]:
    """One Rosenbrock step per trajectory: states ``y`` (B, D) at times ``t`` (B,) with steps ``h`` (B,).

    ``jac`` is ∂f/∂y at (t, y), shape (B, D, D); ``fy`` is f(t, y) if already known; ``dfdt`` is ∂f/∂t at
    (t, y), shape (B, D), or None for an autonomous f. Returns the new states (B, D) and the local error
    estimate (B, D). ``coefficients`` caches ``_coefficients(method, ...)`` across steps.
    """
    tab = METHODS[method]
    coefficients = _coefficients(method, y.dtype, y.device) if coefficients is None else coefficients
    w_inv = torch.linalg.inv(torch.diag_embed((1.0 / (h * tab.gamma))[:, None].expand_as(y)) - jac)
    inv_h = 1.0 / h[:, None]
    ks: list[Tensor] = []
    for i in range(len(tab.c)):
        if i == 0:
            stage, rhs = y, f(t, y) if fy is None else fy
        else:
            # One product gives both the stage state (a_i·k) and the correction (C_i·k / h).
            ak, ck = (torch.stack(ks, dim=-1) @ coefficients[i - 1]).unbind(-1)
            stage = y + ak
            rhs = f(t + tab.c[i] * h, stage) + ck * inv_h
        if dfdt is not None and tab.d[i] != 0.0:
            rhs = rhs + (tab.d[i] * h)[:, None] * dfdt
        ks.append((w_inv @ rhs[..., None])[..., 0])
    return stage + ks[-1], ks[-1]


def _rms(x: Tensor) -> Tensor:
    return x.square().mean(-1).sqrt()


def _initial_step(f, t0: Tensor, y0: Tensor, f0: Tensor, scale: Tensor, order: int, span: Tensor) -> Tensor:
    """Hairer, Nørsett & Wanner, Solving ODEs I, sec. II.4 (the starting-step heuristic scipy also uses)."""
    d0, d1 = _rms(y0 / scale), _rms(f0 / scale)
    h0 = torch.where((d0 < 1e-5) | (d1 < 1e-5), torch.full_like(d0, 1e-6), 0.01 * d0 / d1)
    h0 = torch.minimum(h0, span)
    d2 = _rms((f(t0 + h0, y0 + h0[:, None] * f0) - f0) / scale) / h0
    big = torch.maximum(d1, d2)
    h1 = torch.where(big <= 1e-15, torch.clamp(h0 * 1e-3, min=1e-6), (0.01 / big) ** (1.0 / (order + 1)))
    return torch.minimum(torch.minimum(100 * h0, h1), span)


def stiff_integrate(
    f: Callable[[Tensor, Tensor], Tensor],
    x0: Tensor,
    t: Tensor,
    *,
    jacobian: Jacobian | None = None,
    rtol: float = 1e-8,
    atol: float | Tensor = 1e-12,
    method: str = "rodas5p",
    autonomous: bool = False,
    h0: float | None = None,
    max_steps: int = 100_000,
    progress: bool = False,
) -> Tensor:
    """Solve the stiff system dx/dt = f(t, x) from ``x0`` (N, D); return the states at ``t`` as (N, T, D).

    Args:
        f: batched vector field, ``f(t, x) -> (B, D)`` for ``x`` (B, D) and ``t`` a (B,) tensor (one time
            per trajectory, since each advances on its own). Row b of the result must depend on ``x[b]``
            alone; parameters inside ``f`` may be per-trajectory (f is always called on the whole batch).
        x0: initial states (N, D), at the first output time. float64 is advised (and needed for
            ``rtol`` below ~1e-5).
        t: output times, (T,) shared or (N, T) one grid per trajectory, strictly increasing; ``t[..., 0]``
            is the initial time.
        jacobian: ``jacobian(t, x) -> (B, D, D)``, ∂f/∂x; None computes it by autograd (D backward passes).
        rtol, atol: the local error of each step, measured as the RMS over components of
            err / (atol + rtol · max(|x_old|, |x_new|)), is kept ≤ 1. ``atol`` > 0 may be a (D,) tensor.
        method: ``"rodas5p"`` (order 5, default) or ``"rodas4"`` (order 4).
        autonomous: True when f does not depend on t; otherwise ∂f/∂t is taken by a forward difference.
        h0: first step (the same for every trajectory); None picks one per trajectory.
        max_steps: most step attempts (accepted or rejected) before giving up with a RuntimeError.
        progress: show a progress bar over the output times.

    Returns:
        (N, T, D) states, ``out[:, 0] = x0``. Differentiable w.r.t. ``x0`` and tensors inside ``f`` and
        ``jacobian`` when autograd is on (direct backpropagation through the steps).
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r} (available: {', '.join(METHODS)})")
    tab = METHODS[method]
    if x0.ndim != 2:
        raise ValueError(f"x0 must have shape (N, D), got {tuple(x0.shape)}")
    if not x0.is_floating_point():
        raise ValueError(f"x0 must be a floating-point tensor, got {x0.dtype}")
    n, dim = x0.shape
    dtype, device = x0.dtype, x0.device
    eps = torch.finfo(dtype).eps
    if not (math.isfinite(rtol) and rtol >= 10 * eps):
        raise ValueError(f"rtol={rtol} must be a number >= {10 * eps:.1e} (10 x machine epsilon of {dtype})")
    atol_t = torch.as_tensor(atol, dtype=dtype, device=device)
    if atol_t.shape not in {(), (dim,)} or not bool((torch.isfinite(atol_t) & (atol_t > 0)).all()):
        raise ValueError(f"atol must be a number > 0 or a ({dim},) tensor of them, got {atol}")
    if max_steps < 1:
        raise ValueError(f"max_steps must be >= 1, got {max_steps}")
    times = torch.as_tensor(t, dtype=dtype, device=device)
    if times.ndim == 1:
        times = times.expand(n, -1)
    if times.ndim != 2 or times.shape[0] != n or times.shape[1] < 2:
        raise ValueError(f"t must have shape (T,) or ({n}, T) with T >= 2, got {tuple(times.shape)}")
    if not bool((times.diff(dim=1) > 0).all()):
        raise ValueError("t must be strictly increasing")
    if h0 is not None and not (math.isfinite(h0) and h0 > 0):
        raise ValueError(f"h0 must be a positive number, got {h0}")
    start, x_start = times[:, 0], x0.detach()
    with torch.no_grad():
        if h0 is None:
            scale = atol_t + rtol * x_start.abs()
            h = _initial_step(f, start, x_start, f(start, x_start), scale, tab.order, times[:, 1] - start)
        else:
            h = torch.full((n,), h0, dtype=dtype, device=device)
    # Build a graph only when something upstream wants gradients: x0, or tensors inside f or the Jacobian.
    needs_graph = torch.is_grad_enabled() and (
        x0.requires_grad
        or f(start, x_start).requires_grad
        or (jacobian is not None and jacobian(start, x_start).requires_grad)
    )
    with torch.set_grad_enabled(needs_graph):
        return _solve(f, jacobian or _autograd_jacobian(f), x0, times, h, rtol=rtol, atol=atol_t,
                      method=method, autonomous=autonomous, max_steps=max_steps, progress=progress)


def _solve(
    f: Callable[[Tensor, Tensor], Tensor], jacobian: Jacobian, x0: Tensor, times: Tensor, h: Tensor, *,
    rtol: float, atol: Tensor, method: str, autonomous: bool, max_steps: int, progress: bool,
) -> Tensor:
    """The step loop of :func:`stiff_integrate` (arguments validated there; ``h`` the first steps (N,))."""
    tab = METHODS[method]
    (n, dim), n_t = x0.shape, times.shape[1]
    eps = torch.finfo(x0.dtype).eps
    coefficients = _coefficients(method, x0.dtype, x0.device)

    def dfdt(tc: Tensor, y: Tensor, fy: Tensor, h: Tensor) -> Tensor | None:
        if autonomous:
            return None
        delta = math.sqrt(eps) * torch.maximum(tc.abs(), h)
        return (f(tc + delta, y) - fy) / delta[:, None]

    # Landings (trajectory indices, output indices, states), assembled into the output once at the end.
    rows = torch.arange(n, device=x0.device)
    landings: list[tuple[Tensor, Tensor, Tensor]] = [(rows, torch.zeros_like(rows), x0)]
    y, tc = x0, times[:, 0].clone()
    k = torch.ones_like(rows)  # next output index per trajectory
    bar = tqdm(total=n * (n_t - 1), disable=not progress, desc="integrating (stiff)", leave=False)
    for _ in range(max_steps):
        active = k < n_t
        if not bool(active.any()):
            break
        target = times[rows, k.clamp(max=n_t - 1)]
        remaining = target - tc
        # Stretch a step by up to 5 % to land on the output time rather than leave a sliver for later.
        hit = active & (1.05 * h >= remaining)
        h_step = torch.where(hit, remaining, h)
        underflow = active & (h_step <= 4 * eps * tc.abs())
        if bool(underflow.any()):
            i = int(torch.nonzero(underflow)[0])
            raise RuntimeError(f"stiff_integrate: step size underflow in trajectory {i} at "
                               f"t={float(tc[i]):g} (a singularity, or a tolerance too tight for the dtype?)")
        fy = f(tc, y)
        y_new, err = rosenbrock_step(f, jacobian(tc, y), tc, y, h_step, method=method, fy=fy,
                                     dfdt=dfdt(tc, y, fy, h_step), coefficients=coefficients)
        # Step-size control: from detached values, so gradients treat it as a constant choice.
        with torch.no_grad():
            scale = atol + rtol * torch.maximum(y.abs(), y_new.abs())
            norm = _rms(err / scale)
            norm = torch.where(torch.isfinite(norm), norm, torch.full_like(norm, math.inf))
            accept = active & (norm <= 1.0)
            factor = (0.9 * norm.clamp(min=1e-10) ** (-1.0 / tab.order)).clamp(0.2, 6.0)
            factor = torch.where(accept, factor, factor.clamp(max=1.0))
            h_new = h_step * factor
            # After landing on an output time the shortened step says little: keep the earlier proposal.
            h_new = torch.where(accept & hit, torch.maximum(h_new, h), h_new)
            h = torch.where(active, h_new, h)
            landed = accept & hit
            tc = torch.where(accept, torch.where(hit, target, tc + h_step), tc)
        y = torch.where(accept[:, None], y_new, y)
        if bool(landed.any()):
            idx = torch.nonzero(landed)[:, 0]
            landings.append((idx, k[idx], y[idx]))
            k = k + landed.long()
            bar.update(int(landed.sum()))
    bar.close()
    if bool((k < n_t).any()):
        left = int((k < n_t).sum())
        raise RuntimeError(f"stiff_integrate: {left} of {n} trajectories unfinished after "
                           f"max_steps={max_steps} steps")
    idx, where, states = (torch.cat(parts) for parts in zip(*landings, strict=True))
    return x0.new_zeros(n, n_t, dim).index_put((idx, where), states)
