"""One entry point for deterministic integration, by method name: explicit RK, torchdiffeq, symplectic, stiff.

Every learned model and every reference system integrates through :func:`integrate`, so a method name
means the same thing everywhere (a model's ``rollout(method=...)``, a system's ``facts.json`` solver, a
training objective's ``rollout_method``). Stochastic integration stays separate (``sdeint``): an SDE has a
noise term and a Brownian path, not just a method.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ._explicit import TABLEAUS
from ._ode import VectorField, odeint
from ._stiff import METHODS as _STIFF
from ._symplectic import ORDERS as _SYMPLECTIC

#: torchdiffeq methods with step-size control or multistep schemes (``physdyn.solvers.odeint``).
TORCHDIFFEQ_METHODS: tuple[str, ...] = (
    "dopri5", "dopri8", "bosh3", "fehlberg2", "adaptive_heun",
    "explicit_adams", "implicit_adams", "fixed_adams", "scipy_solver",
)
#: Method name -> family. "rk": fixed-step explicit Runge–Kutta (``rk_integrate``: little overhead per step,
#: one grid per trajectory); "torchdiffeq": adaptive (``odeint``); "symplectic": Hamilton's equations of an
#: energy (``symplectic_integrate``); "stiff": Rosenbrock (``stiff_integrate``).
METHODS: dict[str, str] = {
    **dict.fromkeys(TABLEAUS, "rk"),
    **dict.fromkeys(TORCHDIFFEQ_METHODS, "torchdiffeq"),
    **dict.fromkeys(_SYMPLECTIC, "symplectic"),
    **dict.fromkeys(_STIFF, "stiff"),
}


def integrate(
    f: VectorField | None,
    x0: Tensor,
    t: Tensor,
    *,
    method: str = "rk4",
    substeps: int = 1,
    max_step: float | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    adjoint: bool = False,
    options: dict | None = None,
    energy: Callable[[Tensor], Tensor] | None = None,
    separable: bool = False,
    jacobian: Callable[[Tensor, Tensor], Tensor] | None = None,
    progress: bool = False,
) -> Tensor:
    """Solve dx/dt = f(t, x) from ``x0`` (N, *S) and return the states at ``t`` as (N, T, *S), x0 first.

    Args:
        f: the vector field ``f(t, x)`` on batches (B, *S). Symplectic methods need ``energy`` instead
            (they integrate Hamilton's equations of H = ``energy``; ``f`` is ignored and may be None).
        t: output times, (T,) shared or (N, T) one grid per trajectory, strictly increasing.
        method: a key of :data:`METHODS`.
        substeps, max_step: fixed-step and symplectic methods: steps per output interval, longest step.
        rtol, atol: torchdiffeq and stiff methods (defaults: 1e-7 / 1e-9 and 1e-8 / 1e-12).
        adjoint, options: torchdiffeq methods (adjoint gradients; solver options).
        energy, separable: symplectic methods: H(x) -> (B,) on states (B, 2d) = (q, p), and whether
            H = T(p) + V(q).
        jacobian: stiff methods: ∂f/∂x (B, D, D); autograd when None.
        progress: a progress bar.

    Differentiable with respect to ``x0`` and the parameters inside ``f`` / ``energy`` whenever grad mode is
    on (symplectic rollouts then keep their graph; stiff ones backpropagate through the accepted steps).
    """
    family = METHODS.get(method)
    if family is None:
        raise ValueError(f"unknown integration method {method!r} (available: {', '.join(METHODS)})")
    t = torch.as_tensor(t, device=x0.device)
    if family == "rk":
        from ._explicit import rk_integrate

        return rk_integrate(f, x0, t, method=method, substeps=substeps, max_step=max_step, progress=progress)
    if family == "symplectic":
        from ._symplectic import symplectic_integrate

        if energy is None:
            raise ValueError(f"the symplectic method {method!r} integrates an energy: pass energy=H")
        return symplectic_integrate(energy, x0, t, method=method, substeps=substeps, separable=separable,
                                    create_graph=torch.is_grad_enabled(), progress=progress)
    if family == "stiff":
        from ._stiff import stiff_integrate

        flat = x0.reshape(len(x0), -1)
        g = f if flat.shape == x0.shape else (
            lambda s, y: f(s, y.reshape(x0.shape)).reshape(len(y), -1))
        out = stiff_integrate(g, flat, t, jacobian=jacobian, method=method,
                              rtol=1e-8 if rtol is None else rtol, atol=1e-12 if atol is None else atol,
                              progress=progress)
        return out.reshape(len(x0), out.shape[1], *x0.shape[1:])
    kwargs = dict(method=method, rtol=1e-7 if rtol is None else rtol, atol=1e-9 if atol is None else atol,
                  adjoint=adjoint, options=options, progress=progress)
    t = t.to(x0.dtype)
    if t.ndim == 1:
        return odeint(f, x0, t, **kwargs)
    # torchdiffeq shares one grid across the batch: solve trajectory by trajectory.
    return torch.cat([odeint(f, x0[i : i + 1], t[i], **kwargs) for i in range(len(x0))])
