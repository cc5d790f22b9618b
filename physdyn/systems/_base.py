"""The base every reference system derives from: equations in code, facts in ``facts.json``."""

from __future__ import annotations

import copy
import json
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from functools import cache
from importlib.resources import files
from numbers import Integral, Real
from typing import Any, ClassVar

import torch
from torch import Tensor

from ..data import Trajectories

#: A parameter's value: a number shared by all trajectories, or an (N,) tensor, one value per trajectory.
ParamValue = float | Tensor

_BOUNDS = (("exclusive_minimum", ">", torch.gt), ("minimum", ">=", torch.ge),
           ("exclusive_maximum", "<", torch.lt), ("maximum", "<=", torch.le))


@cache
def _all_facts() -> dict[str, Any]:
    return json.loads(files("physdyn.systems").joinpath("facts.json").read_text())


def facts(name: str) -> dict[str, Any]:
    """Defaults, parameters and published facts (with citations) for the system ``name``."""
    return _all_facts()[name]


def describe_range(spec: Mapping[str, Any]) -> str:
    """A parameter's valid range from its ``facts.json`` entry, in words, e.g. "a finite number > 0"."""
    bounds = " and ".join(f"{op} {spec[key]:g}" for key, op, _ in _BOUNDS if key in spec)
    kind = "an integer" if spec.get("integer") else "a finite number"
    return f"{kind} {bounds}" if bounds else kind


def _in_range(value: Tensor, spec: Mapping[str, Any]) -> Tensor:
    """Elementwise: is ``value`` finite, inside the bounds of ``spec`` and, where asked, a whole number?"""
    ok = torch.isfinite(value)
    for key, _, inside in _BOUNDS:
        if key in spec:
            ok &= inside(value, spec[key])
    if spec.get("integer"):
        ok &= value == value.round()
    return ok


def check_parameter(system: str, name: str, value: object, spec: Mapping[str, Any]) -> float | int:
    """``value`` as a float (an int for an integer parameter) if it lies in the range ``spec`` states;
    otherwise a one-line ValueError naming the system, the parameter, the value and the range."""
    if isinstance(value, bool) or not isinstance(value, Real) or not bool(
            _in_range(torch.tensor(float(value), dtype=torch.float64), spec)):
        raise ValueError(f"parameter {name!r} of system {system!r} must be {describe_range(spec)}, "
                         f"got {value!r}")
    return int(value) if spec.get("integer") else float(value)


def check_count(name: str, value: object, minimum: int) -> int:
    """``value`` as an int if it is an integer >= ``minimum``, else a one-line ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def along_batch(value: ParamValue, like: Tensor) -> ParamValue:
    """A parameter ready to broadcast against ``like`` (B, ...): a number as it is, a per-trajectory (B,)
    tensor as (B, 1, ..., 1), so that state i of the batch meets its own value whatever ``like``'s shape."""
    if not isinstance(value, Tensor):
        return value
    return value.reshape(-1, *(1,) * (like.ndim - 1))


class System(ABC):
    """A reference dynamical system dx/dt = f(t, x), batched over a leading axis.

    Subclasses set ``name`` (the key in ``facts.json``) and implement ``vector_field`` and
    ``random_initial_states``; they may override ``integrate`` (the deterministic solver), ``jacobian``
    (analytic form), ``sde`` (the stochastic form) and ``default_times`` (the output grid). Everything else
    comes from here.

    ``params`` maps each parameter name to a number or, on a system made by :meth:`with_params`, to an (N,)
    tensor: one value per trajectory of a batch of ``batch_size`` states. The equations meet such a tensor
    aligned with the states' leading axis (:func:`along_batch`).
    """

    name: ClassVar[str]
    #: conserved quantities or constraints this system obeys, e.g. ("energy",), ("mass", "positivity").
    invariants: ClassVar[tuple[str, ...]] = ()
    #: parameters that set the state shape: one value for a whole batch, never one per trajectory.
    shape_params: ClassVar[tuple[str, ...]] = ()

    def __init__(self, dtype: torch.dtype = torch.float64, **params: float) -> None:
        self._check_names(params)
        self.dtype = dtype
        #: the number of trajectories the per-trajectory parameters are for; None when all are numbers.
        self.batch_size: int | None = None
        self.params: dict[str, ParamValue] = {
            key: check_parameter(self.name, key, params.get(key, spec["default"]), spec)
            for key, spec in self.facts["params"].items()
        }

    def _check_names(self, params: Mapping[str, object]) -> None:
        known = self.facts["params"]
        for key in params:
            if key not in known:
                raise ValueError(f"unknown parameter {key!r} for system {self.name!r} "
                                 f"(known: {', '.join(known)})")

    def with_params(self, params: Mapping[str, ParamValue]) -> System:
        """This system with some parameters replaced by numbers or by (N,) tensors, one value per trajectory.

        Every value is checked against its range in ``facts.json``. All tensors must have the same length N,
        which becomes ``batch_size``: the new system's ``vector_field``, ``jacobian``, ``energy``,
        ``integrate``, ``sde`` and ``simulate`` then take batches of exactly N states, state i with parameter
        values i. Tensors keep their autograd graph (so ``integrate`` is differentiable in them). Parameters
        in ``shape_params`` take a number only.
        """
        self._check_names(params)
        system = copy.copy(self)
        system.params = dict(self.params)
        for key, value in params.items():
            system.params[key] = self._check_values(key, value)
        sizes = sorted({len(v) for v in system.params.values() if isinstance(v, Tensor)})
        if len(sizes) > 1:
            raise ValueError(f"per-trajectory parameters of system {self.name!r} must all have the same "
                             f"length, got lengths {', '.join(map(str, sizes))}")
        system.batch_size = sizes[0] if sizes else None
        return system

    def _check_values(self, key: str, value: ParamValue) -> ParamValue:
        """One entry of :meth:`with_params`: a checked number, or a checked (N,) float64 tensor."""
        spec = self.facts["params"][key]
        if not isinstance(value, Tensor | Real):  # a list or an array of values, one per trajectory
            try:
                value = torch.as_tensor(value, dtype=torch.float64)
            except (TypeError, ValueError, RuntimeError):
                raise ValueError(f"parameter {key!r} of system {self.name!r} must be a number or an (N,) "
                                 f"tensor, got {value!r}") from None
        if not isinstance(value, Tensor):
            return check_parameter(self.name, key, value, spec)
        if value.ndim == 0:
            return check_parameter(self.name, key, value.item(), spec)
        if key in self.shape_params:
            raise ValueError(f"parameter {key!r} of system {self.name!r} sets the state shape: give one "
                             "number for the whole batch, not one per trajectory")
        if value.ndim != 1 or len(value) == 0 or value.dtype == torch.bool or value.is_complex():
            raise ValueError(f"parameter {key!r} of system {self.name!r} must be a number or an (N,) tensor, "
                             f"got a tensor of shape {tuple(value.shape)}")
        value = value.to(torch.float64)
        bad = (~_in_range(value.detach(), spec)).nonzero()
        if len(bad):
            i = int(bad[0])
            raise ValueError(f"parameter {key!r} of system {self.name!r} must be {describe_range(spec)}, "
                             f"got {float(value[i])!r} for trajectory {i}")
        return value

    def varying_params(self) -> dict[str, Tensor]:
        """The per-trajectory parameters whose values are not the same for every trajectory."""
        return {k: v for k, v in self.params.items() if isinstance(v, Tensor) and bool((v != v[0]).any())}

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
        if known is None or self.batch_size is not None or self.params != defaults:
            return None
        return float(known["values"][0])

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
        """Deterministic solution from ``x0`` (N, *state_shape) at the times ``t`` (T,): (N, T, *S).

        The method and its options are the system's facts (``facts.json``: ``solver``), passed to
        ``physdyn.solvers.integrate``: a fixed-step RK tableau with ``max_step``, an adaptive torchdiffeq
        method with ``rtol``/``atol``, ... No autograd graph is built unless ``x0`` requires grad.
        """
        from ..solvers import integrate

        solver = {k: v for k, v in self.facts.get("solver", {}).items() if k != "note"}
        options = {"method": "dopri5", "rtol": 1e-9, "atol": 1e-9} | solver
        with torch.set_grad_enabled(torch.is_grad_enabled() and x0.requires_grad):
            return integrate(self.vector_field, x0, t, progress=progress, **options)

    def sde(self, noise: float, noise_type: str | None = None):
        """The stochastic form as a torchsde SDE object (attributes f, g, noise_type, sde_type)."""
        raise ValueError(f"system {self.name!r} has no stochastic form")

    def default_times(self, t_end: float, dt: float) -> Tensor:
        """The output times of ``simulate`` when no ``t`` is given: 0, dt, 2 dt, ..., t_end; float64 (T,).

        A system whose dynamics span many time scales overrides this (Robertson: log-spaced times).
        """
        return time_grid(t_end, dt)

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
        params: Mapping[str, ParamValue] | None = None,
    ) -> Trajectories:
        """Simulate trajectories.

        Args:
            n_trajectories: number of random initial states (ignored when ``x0`` is given). Default: the
                length of the per-trajectory ``params``, else from facts.json.
            t_end, dt: arguments of :meth:`default_times` (defaults from facts.json): the output grid
                0, dt, ..., t_end unless the system has its own; ignored when ``t`` is given.
            seed: an integer >= 0; seeds the initial states and, for ``noise > 0``, the Brownian paths.
            noise: 0 for the deterministic system; > 0 scales the system's stochastic form (see its docs).
            x0: initial states (N, *state_shape).
            t: explicit output times (T,), strictly increasing.
            noise_type: for systems with more than one stochastic form, which one.
            progress: show a progress bar (the result does not depend on it).
            params: parameters for this simulation only (see :meth:`with_params`): numbers, or (N,) tensors
                with one value per trajectory, for the deterministic and the stochastic form alike.

        Returns:
            Trajectories whose ``params`` hold every parameter as an (N,) tensor, and whose ``system_params``
            hold the parameters shared by all trajectories (a parameter that varies is not among them).
        """
        if params:
            return self.with_params(params).simulate(n_trajectories, t_end, dt, seed, noise, x0, t,
                                                     noise_type, progress)
        seed = check_count("seed", seed, 0)
        if seed >= 2**64:
            raise ValueError(f"seed must be an integer below 2**64, got {seed}")
        if isinstance(noise, bool) or not isinstance(noise, Real) or not math.isfinite(noise) or noise < 0:
            raise ValueError(f"noise must be a finite number >= 0, got {noise!r}")
        x0 = self._initial_states(n_trajectories, x0, seed)
        t = self._output_times(t_end, dt, t)
        if noise == 0:
            states = self.integrate(x0, t.to(self.dtype), progress=progress)
        else:
            from ..solvers import sdeint

            states = sdeint(self.sde(noise, noise_type), x0, t.to(self.dtype), seed=seed,
                            dt=self.facts.get("sde_dt", float(t.diff().min())),
                            method=self.facts.get("sde_method"), progress=progress)
        states = states.detach()  # data, not a graph (torchsde's Milstein step enables grad internally)
        n = len(states)
        meta: dict[str, Any] = {"seed": seed, "noise": noise}
        if noise > 0:
            meta["noise_type"] = noise_type or self.facts.get("default_noise_type", "")
        varying = self.varying_params()
        return Trajectories(
            t=t,
            states=states,
            derivatives=self._derivatives(t, states) if noise == 0 else None,
            params={k: torch.as_tensor(v, dtype=torch.float64).detach().expand(n).clone()
                    for k, v in self.params.items()},
            system=self.name,
            state_names=self.state_names,
            system_params={k: v[0].item() if isinstance(v, Tensor) else v
                           for k, v in self.params.items() if k not in varying},
            meta=meta,
        )

    def _initial_states(self, n_trajectories: int | None, x0: Tensor | None, seed: int) -> Tensor:
        """``x0`` checked, or random initial states: (N, *state_shape), N matching ``batch_size``."""
        n = self.batch_size
        if n_trajectories is not None:
            n_trajectories = check_count("n_trajectories", n_trajectories, 1)
            n = n_trajectories if x0 is None else n
        if x0 is None:
            n = self.facts["simulate"]["n_trajectories"] if n is None else n
            x0 = self.random_initial_states(n, torch.Generator().manual_seed(seed))
        x0 = torch.as_tensor(x0, dtype=self.dtype)
        if x0.ndim != 1 + len(self.state_shape) or tuple(x0.shape[1:]) != self.state_shape or len(x0) == 0:
            raise ValueError(f"x0 must have shape (N, {', '.join(map(str, self.state_shape))}) with N >= 1, "
                             f"got {tuple(x0.shape)}")
        if not bool(torch.isfinite(x0).all()):
            raise ValueError("x0 must be finite")
        if self.batch_size is not None and len(x0) != self.batch_size:
            raise ValueError(f"per-trajectory parameters must have shape ({len(x0)},) for {len(x0)} "
                             f"trajectories, got ({self.batch_size},)")
        return x0

    def _output_times(self, t_end: float | None, dt: float | None, t: Tensor | None) -> Tensor:
        """``t`` checked, or :meth:`default_times` of ``t_end``, ``dt`` (defaults: facts.json); float64."""
        if t is None:
            defaults = self.facts["simulate"]
            t = self.default_times(defaults["t_end"] if t_end is None else t_end,
                                   defaults["dt"] if dt is None else dt)
        t = torch.as_tensor(t, dtype=torch.float64)
        if t.ndim != 1 or len(t) < 2 or not bool(torch.isfinite(t).all()) or bool((t.diff() <= 0).any()):
            raise ValueError("t must be a strictly increasing 1-D grid of at least two finite times")
        return t

    def _derivatives(self, t: Tensor, states: Tensor) -> Tensor:
        """dx/dt at every stored state (N, T, *S), each trajectory with its own parameters."""
        n, n_t = states.shape[:2]
        # One call over all N·T states: the systems are autonomous, so f needs no per-sample time, and each
        # per-trajectory parameter is repeated for its trajectory's T states.
        flat = self.with_params({k: v.detach().repeat_interleave(n_t)
                                 for k, v in self.params.items() if isinstance(v, Tensor)})
        return flat.vector_field(t[0], states.reshape(n * n_t, *states.shape[2:])).reshape(states.shape)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}=({len(v)} values)" if isinstance(v, Tensor) else f"{k}={v:g}"
                         for k, v in self.params.items())
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
