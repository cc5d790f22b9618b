"""Latent models of irregular, partially observed sequences: the latent ODE and its two baselines.

- ``latent_ode`` (Rubanova, Chen & Duvenaud, NeurIPS 2019): an ODE-RNN encoder runs backwards in time over
  the observed values (with their masks) to a Gaussian q(z0 | observations); a latent ODE dz/dt = f_θ(z)
  carries z0 to any query time, and an observation model maps z(t) to the state, x(t) ~ N(g_θ(z(t)), σ²).
  Trained by the ELBO (``physdyn.training.ELBO``); predictions are K samples of z0 decoded.
- ``ode_rnn``: a hidden state that evolves by a learned ODE between observations and is updated by a GRU at
  each of them; it predicts each point from the observations before it (deterministic).
- ``gru_dt``: the same with a GRU fed with the time gap in place of the ODE ("RNN-Δt" of the paper).

All three read whole masked sequences (``data = "sequences"``) on each trajectory's own time grid and take
the whole context (``context = "sequence"``): values where the mask is False never enter a computation
(they are replaced by 0 before any arithmetic, so even NaN there is harmless), and a missing first state is
no obstacle. Vector states are expected; other shapes are flattened inside.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.distributions import Normal

from ..solvers import integrate
from ._base import Model
from ._mlp import check_positive_int, mlp

#: Steps of the hidden-state ODE between updates. Written here rather than taken from ``solvers.integrate``,
#: whose grids must be strictly increasing: the encoder runs backwards, coinciding times give zero-length
#: intervals, and every interval is interleaved with a GRU update.
_STEPS = ("euler", "midpoint", "rk4")


def _ode_step(f: nn.Module, h: Tensor, dt: Tensor, method: str) -> Tensor:
    """One explicit step of dh/dt = f(h) over dt (B, 1), which may be negative or zero."""
    if method == "euler":
        return h + dt * f(h)
    if method == "midpoint":
        return h + dt * f(h + 0.5 * dt * f(h))
    k1 = f(h)
    k2 = f(h + 0.5 * dt * k1)
    k3 = f(h + 0.5 * dt * k2)
    k4 = f(h + dt * k3)
    return h + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)


def _check_method(name: str, value: str, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
    return value


def _observed(x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """(values, mask) flattened to (B, L, D), values 0 where unobserved, mask as the values' dtype."""
    x, mask = x.flatten(2), mask.flatten(2)
    return torch.where(mask, x, torch.zeros((), dtype=x.dtype, device=x.device)), mask.to(x.dtype)


class ODERNN(nn.Module):
    """The ODE-RNN (Rubanova et al. 2019, Algorithm 1): between observation times the hidden state h evolves
    by dh/dt = f_θ(h); at an observation, h ← GRU([x ⊙ m, m], h) with m the mask of that sample (samples with
    nothing observed leave h as it is)."""

    def __init__(self, input_dim: int, hidden: int, width: int, depth: int, activation: str, method: str,
                 substeps: int) -> None:
        super().__init__()
        self.field = mlp(hidden, hidden, width, depth, activation)
        self.gru = nn.GRUCell(2 * input_dim, hidden)
        self.hidden, self.method, self.substeps = hidden, method, substeps

    def evolve(self, h: Tensor, dt: Tensor) -> Tensor:
        """h carried over the time dt (B,) (negative: backwards) by ``substeps`` steps of ``method``."""
        step = (dt / self.substeps).to(h.dtype)[:, None]
        for _ in range(self.substeps):
            h = _ode_step(self.field, h, step, self.method)
        return h

    def update(self, h: Tensor, x: Tensor, m: Tensor) -> Tensor:
        """The GRU update by one sample's values x (B, D) with mask m (B, D) (0/1), where anything is
        observed."""
        new = self.gru(torch.cat([x * m, m], -1), h)
        return torch.where(m.amax(-1, keepdim=True) > 0, new, h)


def merged_timeline(t_context: Tensor, x_context: Tensor, mask_context: Tensor,
                    t: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Context observations and query times on one time line per trajectory, for models that step through
    time: (times (N, Q + C), values, mask (False at queries), where each query went (N, Q)).

    Queries come first where times coincide, so a query at an observation time is answered before that
    observation is read (a prediction, not a copy).
    """
    n, q = t.shape
    times = torch.cat([t, t_context], 1)
    x = torch.cat([x_context.new_zeros(n, q, *x_context.shape[2:]), x_context], 1)
    mask = torch.cat([mask_context.new_zeros(n, q, *mask_context.shape[2:]), mask_context], 1)
    order = torch.argsort(times, dim=1, stable=True)
    where = torch.argsort(order, dim=1)[:, :q]
    pick = lambda a: a.gather(1, order.reshape(n, -1, *[1] * (a.ndim - 2)).expand_as(a))  # noqa: E731
    return times.gather(1, order), pick(x), pick(mask), where


class SequenceModel(Model):
    """A model that steps through a sequence and predicts each sample from the observations before it.

    Subclasses implement :meth:`run`; :meth:`predict` puts context and queries on one time line and reads
    the predictions at the queries off a run. Deterministic: K samples are K copies.
    """

    data = "sequences"
    context = "sequence"
    objective = "sequence_prediction"

    def run(self, t: Tensor, x: Tensor, mask: Tensor) -> Tensor:
        """Predictions (B, L, *S) at every time of ``t`` (B, L), each made from the observed values of
        ``x`` (B, L, *S) (``mask``) strictly before it, or at the same time but earlier in the sequence."""
        raise NotImplementedError

    def predict(self, t_context: Tensor, x_context: Tensor, mask_context: Tensor | None, t: Tensor, *,
                samples: int = 1, generator: torch.Generator | None = None) -> Tensor:
        t_context, mask, t = self._check_context(t_context, x_context, mask_context, t)
        times, x, m, where = merged_timeline(t_context, x_context, mask, t)
        out = self.run(times, x, m)
        out = out.gather(1, where.reshape(*where.shape, *[1] * len(self.state_shape)).expand(
            *where.shape, *self.state_shape))
        return out[:, None].expand(-1, samples, *out.shape[1:])


class ODERNNModel(SequenceModel):
    """``ode_rnn``: an ODE-RNN over the observations; the prediction at a time is a linear readout of the
    hidden state carried there by the hidden ODE from the last update (deterministic).

    Reference: Y. Rubanova, R. T. Q. Chen, D. Duvenaud, "Latent ODEs for Irregularly-Sampled Time Series",
    NeurIPS 2019 (the ODE-RNN baseline of its tables).
    """

    def __init__(
        self,
        state_shape: int | Sequence[int],
        hidden: int = 32,
        width: int = 64,
        depth: int = 2,
        activation: str = "tanh",
        method: str = "rk4",
        substeps: int = 1,
    ) -> None:
        super().__init__(state_shape, hidden=hidden, width=width, depth=depth, activation=activation,
                         method=method, substeps=substeps)
        check_positive_int("hidden", hidden)
        check_positive_int("substeps", substeps)
        _check_method("method", method, _STEPS)
        self.cell = ODERNN(self.state_size, hidden, width, depth, activation, method, substeps)
        self.readout = nn.Linear(hidden, self.state_size)

    def run(self, t: Tensor, x: Tensor, mask: Tensor) -> Tensor:
        values, m = _observed(x, mask)
        h = values.new_zeros(len(values), self.cell.hidden)
        out = []
        for i in range(t.shape[1]):
            if i:
                h = self.cell.evolve(h, t[:, i] - t[:, i - 1])
            out.append(self.readout(h))
            h = self.cell.update(h, values[:, i], m[:, i])
        return torch.stack(out, 1).view(x.shape)


class GRUDeltaT(SequenceModel):
    """``gru_dt``: a GRU fed with the time gaps. Where time passes (Δt > 0), h ← GRU_gap([Δt], h); at an
    observation, h ← GRU_obs([x ⊙ m, m], h); the prediction at a time is a linear readout of h after the
    gap and before the observation (deterministic). The same as ``ode_rnn`` with the ODE replaced by a
    recurrent cell that only sees how long the gap was.

    Reference: the RNN-Δt baseline of Rubanova, Chen & Duvenaud, NeurIPS 2019.
    """

    def __init__(self, state_shape: int | Sequence[int], hidden: int = 32) -> None:
        super().__init__(state_shape, hidden=hidden)
        check_positive_int("hidden", hidden)
        self.hidden = hidden
        self.gap = nn.GRUCell(1, hidden)
        self.obs = nn.GRUCell(2 * self.state_size, hidden)
        self.readout = nn.Linear(hidden, self.state_size)

    def run(self, t: Tensor, x: Tensor, mask: Tensor) -> Tensor:
        values, m = _observed(x, mask)
        h = values.new_zeros(len(values), self.hidden)
        dt = torch.diff(t, dim=1, prepend=t[:, :1]).to(values.dtype)  # 0 at the first sample
        out = []
        for i in range(t.shape[1]):
            gap = dt[:, i, None]
            h = torch.where(gap > 0, self.gap(gap, h), h)
            out.append(self.readout(h))
            new = self.obs(torch.cat([values[:, i] * m[:, i], m[:, i]], -1), h)
            h = torch.where(m[:, i].amax(-1, keepdim=True) > 0, new, h)
        return torch.stack(out, 1).view(x.shape)


class LatentODE(Model):
    """``latent_ode``: x(t) ~ N(g_θ(z(t)), σ²), dz/dt = f_θ(z), z(t0) ~ q(z0 | observations).

    - Encoder: an ODE-RNN (``hidden`` units, its ODE a ``width`` × ``depth`` MLP) run from the last context
      time back to the first, t0, reading each observed sample (masked values and the mask itself) with a
      GRU; a linear map of its final state gives the mean and (softplus) standard deviation of the diagonal
      Gaussian q(z0) in ``latent`` dimensions. Its hidden ODE takes one ``encoder_method`` step from one
      observation to the previous (the paper steps Euler over every grid time; stepping only between
      observations makes the encoder's cost follow the observations, and the midpoint rule keeps those
      longer steps stable).
    - Decoder: the latent ODE f_θ (an MLP, ``width`` × ``depth``) integrated from t0 to every query time with
      ``method`` and ``substeps`` through ``physdyn.solvers.integrate``; g_θ a linear map to the state.
    - Observation model: Gaussian with standard deviation ``obs_std`` per state coordinate (normalised
      units), learned when ``learn_obs_std``.

    :meth:`predict` draws K samples z0 ~ q and decodes each; K = 1 decodes the mean of q (the most likely
    latent path, no sampling). With ``sample_noise`` (the default) the samples also carry the observation
    noise σ, so they are draws of the posterior predictive of the observations; a learned σ absorbs what the
    model cannot explain, and without it the spread holds only the uncertainty of z0, which is too small:
    on the pendulum at 30 % observed (benchmarks/latent.py) mean ± 2 std covered 61 % of the extrapolated
    truth without σ and 88 % with it.

    Reference: Y. Rubanova, R. T. Q. Chen, D. Duvenaud, "Latent ODEs for Irregularly-Sampled Time Series",
    NeurIPS 2019.
    """

    capabilities = frozenset({"samples", "encoder"})
    data = "sequences"
    context = "sequence"
    objective = "elbo"

    def __init__(
        self,
        state_shape: int | Sequence[int],
        latent: int = 16,
        hidden: int = 32,
        width: int = 64,
        depth: int = 2,
        activation: str = "tanh",
        method: str = "rk4",
        substeps: int = 1,
        encoder_method: str = "midpoint",
        obs_std: float = 0.1,
        learn_obs_std: bool = True,
        sample_noise: bool = True,
    ) -> None:
        super().__init__(state_shape, latent=latent, hidden=hidden, width=width, depth=depth,
                         activation=activation, method=method, substeps=substeps,
                         encoder_method=encoder_method, obs_std=obs_std, learn_obs_std=learn_obs_std,
                         sample_noise=sample_noise)
        check_positive_int("latent", latent)
        check_positive_int("hidden", hidden)
        check_positive_int("substeps", substeps)
        _check_method("encoder_method", encoder_method, _STEPS)
        if isinstance(obs_std, bool) or not isinstance(obs_std, int | float) or not 0 < obs_std < math.inf:
            raise ValueError(f"obs_std must be a number > 0, got {obs_std!r}")
        self.latent, self.method, self.substeps = latent, method, substeps
        self.sample_noise = bool(sample_noise)
        self.encoder = ODERNN(self.state_size, hidden, width, depth, activation, encoder_method, 1)
        self.to_q = nn.Linear(hidden, 2 * latent)
        self.field = mlp(latent, latent, width, depth, activation)
        self.readout = nn.Linear(latent, self.state_size)
        self.log_obs_std = nn.Parameter(torch.full((self.state_size,), math.log(obs_std)),
                                        requires_grad=bool(learn_obs_std))

    @property
    def obs_std(self) -> Tensor:
        """The observation model's standard deviation per state coordinate (normalised units), (D,)."""
        return self.log_obs_std.exp()

    def encode(self, t: Tensor, x: Tensor, mask: Tensor) -> Normal:
        """q(z0 | observations) at t0 = ``t[:, 0]``: a diagonal Normal of batch shape (B, latent).

        ``t`` (B, L) increasing, ``x`` (B, L, *S), ``mask`` (B, L, *S) bool; unobserved values never matter.
        """
        values, m = _observed(x, mask)
        # Only samples with something observed change h: each row's are packed to the front, in time order,
        # so the loop runs over the most observations of any row, not over every time of the grid (at 10 %
        # observed, a tenth of the steps). Padding repeats the row's last observed time: zero-length
        # intervals, no update.
        seen = m.amax(-1) > 0  # (B, L)
        order = torch.argsort((~seen).to(torch.int8), dim=1, stable=True)[:, : max(1, int(seen.sum(1).max()))]
        valid = seen.gather(1, order)
        times = t.gather(1, order)
        last = times.gather(1, (valid.sum(1, keepdim=True) - 1).clamp(min=0))
        times = torch.where(valid, times, last)
        pick = order[..., None].expand(-1, -1, values.shape[-1])
        values, m = values.gather(1, pick), m.gather(1, pick) * valid[..., None]
        h = values.new_zeros(len(values), self.encoder.hidden)
        for i in reversed(range(times.shape[1])):
            if i < times.shape[1] - 1:
                h = self.encoder.evolve(h, times[:, i] - times[:, i + 1])
            h = self.encoder.update(h, values[:, i], m[:, i])
        h = self.encoder.evolve(h, t[:, 0] - times[:, 0])  # from the first observation back to t0
        mean, raw = self.to_q(h).chunk(2, -1)
        return Normal(mean, nn.functional.softplus(raw) + 1e-4)

    def _latent_field(self, t: Tensor, z: Tensor) -> Tensor:
        return self.field(z)

    def decode(self, z0: Tensor, t0: Tensor, t: Tensor) -> Tensor:
        """Means g_θ(z(t)) (B, Q, *S) of the observations at the times ``t`` (B, Q) (each ≥ its t0), from
        latent states ``z0`` (B, latent) at times ``t0`` (B,)."""
        t, t0 = t.to(torch.float64), t0.to(torch.float64)
        if bool((t < t0[:, None]).any()):
            raise ValueError("query times before the first context time: the latent path starts there")
        at_start = t[:, 0] == t0
        z = z0.new_empty(len(z0), t.shape[1], self.latent)
        for rows, prepend in ((at_start, False), (~at_start, True)):
            if bool(rows.any()):
                grid = torch.cat([t0[rows, None], t[rows]], 1) if prepend else t[rows]
                path = integrate(self._latent_field, z0[rows], grid, method=self.method,
                                 substeps=self.substeps)
                z[rows] = path[:, 1:] if prepend else path
        return self.readout(z).view(len(z0), t.shape[1], *self.state_shape)

    def predict(self, t_context: Tensor, x_context: Tensor, mask_context: Tensor | None, t: Tensor, *,
                samples: int = 1, generator: torch.Generator | None = None) -> Tensor:
        t_context, mask, t = self._check_context(t_context, x_context, mask_context, t)
        q = self.encode(t_context, x_context, mask)
        n = len(x_context)
        if samples == 1:
            z0 = q.mean[:, None]
        else:
            eps = torch.randn(n, samples, self.latent, generator=generator, dtype=q.mean.dtype)
            z0 = q.mean[:, None] + q.stddev[:, None] * eps.to(q.mean.device)
        x = self.decode(z0.flatten(0, 1), t_context[:, 0].repeat_interleave(samples),
                        t.repeat_interleave(samples, 0))
        x = x.view(n, samples, *x.shape[1:])
        if self.sample_noise and samples > 1:
            noise = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
            x = x + noise * self.obs_std.view(self.state_shape).to(x.dtype)
        return x
