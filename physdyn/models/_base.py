"""The bases of every learned model: what a family is built for, what it can do, and how it predicts.

A model is a plain ``nn.Module`` built for the data's state shape. Each family declares, as class
attributes, what the rest of physdyn needs to know of it -- which normalisation and training data it wants,
its training objective, whether its predictions are samples, what it reads of a context -- and offers one
prediction entry point, :meth:`Model.predict`, which evaluation uses for every family. Capabilities (a
vector field, an energy, an encoder) are declared in :attr:`Model.capabilities`, never guessed from
attributes.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from ..solvers import integrate


def as_state_shape(state_shape: int | Sequence[int]) -> tuple[int, ...]:
    """``state_shape`` as a tuple of positive ints (an int D means (D,)); ValueError otherwise."""
    shape = (state_shape,) if isinstance(state_shape, int) else state_shape
    try:
        shape = tuple(shape)
    except TypeError:
        shape = None
    if not shape or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in shape):
        raise ValueError(f"state_shape must be a positive integer or a tuple of them, got {state_shape!r}")
    return shape


def check_times(t: Tensor, n: int) -> Tensor:
    """``t`` as float64, shape (T,) or (N, T) with N = ``n``: one grid for all or one per trajectory."""
    t = torch.as_tensor(t).to(torch.float64)  # float64 before any shift: late steps of long grids keep digits
    if t.ndim not in (1, 2) or (t.ndim == 2 and t.shape[0] != n) or t.shape[-1] < 1:
        raise ValueError(f"t must have shape (T,) or (N, T) with N = {n}, got {tuple(t.shape)}")
    return t


class Model(nn.Module):
    """A learned model of trajectories whose states have shape ``state_shape``.

    Class attributes a family sets:

    - ``capabilities``: what it offers beyond :meth:`predict`: "vector_field" (``vector_field`` and
      ``rollout``), "energy" (a learned conserved energy), "samples" (random predictions);
    - ``normalization``: the normalisation that suits it where the config says ``auto``;
    - ``data``: how training data is cut, "windows" (short windows of consecutive samples) or
      "sequences" (whole masked trajectories, nothing dropped for a missing first state);
    - ``objective``: the registry name of its training objective (``physdyn.training.OBJECTIVES``);
    - ``context``: what :meth:`predict` reads of the context observations: "last_state" (rollouts start
      from the context's last state, which must be fully observed; queries at or after it), "frames" (the
      last few context frames of a uniform grid, a step map's history; queries at or after the last) or
      "sequence" (all observed values and their times; queries anywhere, inside the context too);
    - ``state_rank``: the number of state axes the family works on (1: vectors (D,); 3: fields (C, H, W);
      None: any, flattened inside); ``state_ranks`` (optional) every rank it accepts, when more than one
      (fields in one and two space dimensions: (2, 3)), ``state_rank`` then being the one tests build.

    The constructor's keyword arguments are the model's hyperparameters, kept in ``self.hparams``;
    ``state_shape`` is not one of them: it comes from the data.
    """

    capabilities: ClassVar[frozenset[str]] = frozenset()
    normalization: ClassVar[str] = "standard"
    data: ClassVar[str] = "windows"
    objective: ClassVar[str] = "trajectory_matching"
    context: ClassVar[str] = "last_state"
    state_rank: ClassVar[int | None] = None
    state_ranks: ClassVar[tuple[int, ...] | None] = None
    #: Optional packages the family needs (import names); building it without them raises ValueError.
    requires: ClassVar[tuple[str, ...]] = ()

    def __init__(self, state_shape: int | Sequence[int], **hparams: Any) -> None:
        super().__init__()
        self.state_shape = as_state_shape(state_shape)
        ranks = self.state_ranks or ((self.state_rank,) if self.state_rank is not None else None)
        if ranks is not None and len(self.state_shape) not in ranks:
            raise ValueError(f"{type(self).__name__} works on states with {' or '.join(map(str, ranks))} "
                             f"axes, got state shape {self.state_shape}")
        self.state_size = math.prod(self.state_shape)
        self.hparams = dict(hparams)

    @property
    def stochastic(self) -> bool:
        """True when :meth:`predict` draws samples (K predictions of one context differ)."""
        return "samples" in self.capabilities

    @abstractmethod
    def predict(self, t_context: Tensor, x_context: Tensor, mask_context: Tensor | None, t: Tensor, *,
                samples: int = 1, generator: torch.Generator | None = None) -> Tensor:
        """Predictions at the query times ``t`` from the context observations; (N, K, Q, *S).

        Args:
            t_context: (N, C) or (C,) times of the context observations.
            x_context: (N, C, *S) observed values (any value where unobserved).
            mask_context: (N, C, *S) bool, True where observed; None: all observed.
            t: (N, Q) or (Q,) query times, increasing (for ``context = "last_state"``: at or after the
                last context time).
            samples: K, predictions per trajectory (deterministic models repeat the one they have).
            generator: the random source of stochastic models.
        """

    def _check_context(self, t_context: Tensor, x_context: Tensor, mask_context: Tensor | None,
                       t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Shapes checked; float64 (N, C) context times, (N, C, *S) mask, (N, Q) query times."""
        if x_context.ndim < 2 or tuple(x_context.shape[2:]) != self.state_shape:
            raise ValueError(f"x_context must have shape (N, C, {', '.join(map(str, self.state_shape))}), "
                             f"got {tuple(x_context.shape)}")
        n, c = x_context.shape[:2]
        if c == 0:
            raise ValueError("the context is empty: predictions need at least one observed sample")
        t_context = check_times(t_context, n).expand(n, -1)
        if t_context.shape != (n, c):
            raise ValueError(f"t_context must have shape ({c},) or ({n}, {c}), got {tuple(t_context.shape)}")
        mask = torch.ones_like(x_context, dtype=torch.bool) if mask_context is None else mask_context.bool()
        if mask.shape != x_context.shape:
            raise ValueError(f"mask_context must have the shape of x_context {tuple(x_context.shape)}")
        t = check_times(t, n)
        return t_context, mask, t.expand(n, t.shape[-1])


class VectorFieldModel(Model):
    """A learned autonomous ODE dx/dt = f_θ(x) on states of shape ``state_shape``.

    Subclasses implement :meth:`vector_field`; ``forward(t, x)`` is the same, so the module can be handed
    to torchdiffeq directly; :meth:`rollout` integrates it through ``physdyn.solvers.integrate``. The
    solver hyperparameters (``method``, ``substeps``, ``rtol``, ``atol``, ``adjoint``) are the defaults of
    :meth:`rollout`. :meth:`predict` rolls out from the last context state.
    """

    capabilities = frozenset({"vector_field"})

    @abstractmethod
    def vector_field(self, t: Tensor | float, x: Tensor) -> Tensor:
        """dx/dt for states ``x`` (B, *S); returns (B, *S). ``t`` is ignored (autonomous)."""

    def forward(self, t: Tensor | float, x: Tensor) -> Tensor:
        return self.vector_field(t, x)

    def solver_options(self) -> dict[str, Any]:
        """Extra keywords of ``physdyn.solvers.integrate`` this model's rollouts need (e.g. its energy)."""
        return {}

    def rollout(
        self,
        x0: Tensor,
        t: Tensor,
        *,
        method: str | None = None,
        substeps: int | None = None,
        rtol: float | None = None,
        atol: float | None = None,
        adjoint: bool | None = None,
        options: dict | None = None,
        progress: bool = False,
    ) -> Tensor:
        """Integrate from ``x0`` (N, *S) and return the states at ``t`` as (N, T, *S), starting with ``x0``.

        Args:
            t: output times, (T,) shared or (N, T) one grid per trajectory (only differences matter).
            method: any method of ``physdyn.solvers.METHODS`` ("rk4", "dopri5", "yoshida4" for models
                with an energy, "rodas5p", ...); defaults to the ``method`` hyperparameter.
            substeps: fixed-step and symplectic methods split each output interval into this many steps.
            rtol, atol, adjoint, options: for torchdiffeq and stiff methods (``adjoint=True``: adjoint
                gradients).
            progress: show a progress bar.
        """
        if tuple(x0.shape[1:]) != self.state_shape or x0.ndim < 2:
            raise ValueError(f"x0 must have shape (N, {', '.join(map(str, self.state_shape))}), "
                             f"got {tuple(x0.shape)}")
        hp = self.hparams
        t = check_times(t, len(x0))
        t = t - t[..., :1]  # autonomous: only the time since each start matters
        if t.ndim == 2 and bool((t == t[:1]).all()):
            t = t[0]  # one shared grid: one batched solve
        pick = lambda value, key: hp.get(key) if value is None else value  # noqa: E731
        return integrate(self, x0, t, method=pick(method, "method"),
                         substeps=pick(substeps, "substeps") or 1, rtol=pick(rtol, "rtol"),
                         atol=pick(atol, "atol"), adjoint=bool(pick(adjoint, "adjoint")), options=options,
                         progress=progress, **self.solver_options())

    def predict(self, t_context: Tensor, x_context: Tensor, mask_context: Tensor | None, t: Tensor, *,
                samples: int = 1, generator: torch.Generator | None = None) -> Tensor:
        """A rollout from the context's last state (it must be fully observed) to the query times."""
        t_context, mask, t = self._check_context(t_context, x_context, mask_context, t)
        unobserved = ~mask[:, -1].flatten(1).all(1)
        if bool(unobserved.any()):
            raise ValueError(f"trajectory {int(unobserved.nonzero()[0])}: the last context state is not "
                             "fully observed, and this model starts its rollouts there")
        start = t_context[:, -1]
        if bool((t < start[:, None]).any()):
            raise ValueError("query times before the last context time: this model predicts forward only")
        x0, at_start = x_context[:, -1], t[:, 0] == start
        out = torch.empty(len(x0), t.shape[1], *self.state_shape, dtype=x0.dtype, device=x0.device)
        # Queries that begin at the start state, and those that begin later (the start is put in front).
        for rows, prepend in ((at_start, False), (~at_start, True)):
            if bool(rows.any()):
                grid = torch.cat([start[rows, None], t[rows]], 1) if prepend else t[rows]
                x = self.rollout(x0[rows], grid)
                out[rows] = x[:, 1:] if prepend else x
        return out[:, None].expand(-1, samples, *out.shape[1:])
