"""The base every reference system derives from: equations in code, facts in ``facts.json``."""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from functools import cache
from importlib.resources import files
from typing import Any, ClassVar

import torch
from torch import Tensor

from ..data import Trajectories


@cache
def _all_facts() -> dict[str, Any]:
    return json.loads(files("physdyn.systems").joinpath("facts.json").read_text())


def facts(name: str) -> dict[str, Any]:
    """Defaults, parameters and published facts (with citations) for the system ``name``."""
    return _all_facts()[name]


class System(ABC):
    """A reference dynamical system dx/dt = f(t, x), batched over a leading axis.

    Subclasses set ``name`` (the key in ``facts.json``) and implement ``vector_field`` and
    ``random_initial_states``; they may override ``integrate`` (the deterministic solver), ``jacobian``
    (analytic form) and ``sde`` (the stochastic form). Everything else comes from here.
    """

    name: ClassVar[str]
    #: conserved quantities or constraints this system obeys, e.g. ("energy",), ("mass", "positivity").
    invariants: ClassVar[tuple[str, ...]] = ()

    def __init__(self, dtype: torch.dtype = torch.float64, **params: float) -> None:
        known = self.facts["params"]
        for key, value in params.items():
            if key not in known:
                raise ValueError(
                    f"unknown parameter {key!r} for system {self.name!r} (known: {', '.join(known)})"
                )
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"parameter {key!r} of system {self.name!r} must be a number, got {value!r}")
        self.dtype = dtype
        self.params: dict[str, float] = {k: float(v["default"]) for k, v in known.items()} | {
            k: float(v) for k, v in params.items()
        }

    @property
    def facts(self) -> dict[str, Any]:
        return facts(self.name)

    @property
    def state_names(self) -> tuple[str, ...]:
        return tuple(self.facts["state_names"])

    @property
    def state_shape(self) -> tuple[int, ...]:
        return (len(self.state_names),)

    @property
    def lyapunov_max(self) -> float | None:
        """The published largest Lyapunov exponent at the default parameters, if known and applicable."""
        known = self.facts.get("lyapunov_exponents")
        defaults = {k: float(v["default"]) for k, v in self.facts["params"].items()}
        return None if known is None or self.params != defaults else float(known["values"][0])

    @abstractmethod
    def vector_field(self, t: Tensor | float, x: Tensor) -> Tensor:
        """dx/dt at time ``t`` for states ``x`` of shape (B, *state_shape); returns the same shape."""

    @abstractmethod
    def random_initial_states(self, n: int, generator: torch.Generator) -> Tensor:
        """``n`` initial states typical for this system, shape (n, *state_shape), dtype ``self.dtype``."""

    def jacobian(self, t: Tensor | float, x: Tensor) -> Tensor:
        """∂f/∂x for states of shape (B, D); returns (B, D, D). Autograd by default."""
        f = lambda xi: self.vector_field(t, xi[None])[0]  # noqa: E731
        return torch.vmap(torch.func.jacrev(f))(x)

    def integrate(self, x0: Tensor, t: Tensor, progress: bool = False) -> Tensor:
        """Deterministic solution from ``x0`` (N, *state_shape) at the times ``t`` (T,): (N, T, *S)."""
        from ..solvers import odeint

        solver = self.facts.get("solver", {})
        return odeint(self.vector_field, x0, t, rtol=solver.get("rtol", 1e-9), atol=solver.get("atol", 1e-9),
                      method=solver.get("method", "dopri5"), progress=progress)

    def sde(self, noise: float, noise_type: str | None = None):
        """The stochastic form as a torchsde SDE object (attributes f, g, noise_type, sde_type)."""
        raise ValueError(f"system {self.name!r} has no stochastic form")

    def simulate(
        self,
        n_trajectories: int | None = None,
        t_end: float | None = None,
        dt: float | None = None,
        seed: int = 0,
        noise: float = 0.0,
        x0: Tensor | None = None,
        t: Tensor | None = None,
        noise_type: str | None = None,
        progress: bool = False,
    ) -> Trajectories:
        """Simulate trajectories.

        Args:
            n_trajectories: number of random initial states (ignored when ``x0`` is given).
            t_end, dt: output grid 0, dt, ..., t_end (defaults from facts.json); ignored when ``t`` is given.
            seed: seeds the initial states and, for ``noise > 0``, the Brownian paths.
            noise: 0 for the deterministic system; > 0 scales the system's stochastic form (see its docs).
            x0: initial states (N, *state_shape).
            t: explicit output times (T,), strictly increasing.
            noise_type: for systems with more than one stochastic form, which one.
            progress: show a progress bar.
        """
        defaults = self.facts["simulate"]
        generator = torch.Generator().manual_seed(seed)
        if x0 is None:
            n = defaults["n_trajectories"] if n_trajectories is None else n_trajectories
            if n < 1:
                raise ValueError(f"n_trajectories must be >= 1, got {n}")
            x0 = self.random_initial_states(n, generator)
        x0 = torch.as_tensor(x0, dtype=self.dtype)
        if t is None:
            t = time_grid(defaults["t_end"] if t_end is None else t_end, defaults["dt"] if dt is None else dt)
        t = torch.as_tensor(t, dtype=torch.float64)
        if t.ndim != 1 or len(t) < 2 or bool((t.diff() <= 0).any()):
            raise ValueError("t must be a strictly increasing 1-D grid of at least two times")
        if noise < 0:
            raise ValueError(f"noise must be >= 0, got {noise}")
        if noise == 0:
            states = self.integrate(x0, t.to(self.dtype), progress=progress)
        else:
            from ..solvers import sdeint

            states = sdeint(self.sde(noise, noise_type), x0, t.to(self.dtype), seed=seed,
                            dt=self.facts.get("sde_dt", float(t.diff().min())),
                            method=self.facts.get("sde_method"), progress=progress)
        states = states.detach()  # data, not a graph (torchsde's Milstein step enables grad internally)
        n, n_t = states.shape[:2]
        derivatives = None
        if noise == 0:  # the systems are autonomous, so f needs no per-sample time
            flat = states.reshape(n * n_t, *states.shape[2:])
            derivatives = self.vector_field(t[0], flat).reshape(states.shape)
        meta: dict[str, Any] = {"seed": seed, "noise": noise}
        if noise > 0:
            meta["noise_type"] = noise_type or self.facts.get("default_noise_type", "")
        return Trajectories(
            t=t,
            states=states,
            derivatives=derivatives,
            params={k: torch.full((n,), v, dtype=torch.float64) for k, v in self.params.items()},
            system=self.name,
            state_names=self.state_names,
            system_params=dict(self.params),
            meta=meta,
        )

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v:g}" for k, v in self.params.items())
        return f"{type(self).__name__}({args})"


def time_grid(t_end: float, dt: float) -> Tensor:
    """The grid 0, dt, 2 dt, ..., t_end (t_end rounded to the nearest multiple of dt)."""
    if not (math.isfinite(t_end) and t_end > 0):
        raise ValueError(f"t_end must be a positive number, got {t_end}")
    if not (math.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be a positive number, got {dt}")
    steps = round(t_end / dt)
    if steps < 1:
        raise ValueError(f"dt={dt} is longer than t_end={t_end}")
    return torch.arange(steps + 1, dtype=torch.float64) * dt
