"""Training objectives: what a model family is trained to do, as a plain ``nn.Module`` returning its loss.

Each model class names its objective (``Model.objective``); ``OBJECTIVES`` maps that name to a class here.
An objective is built as ``cls(model, train, **options)`` -- ``train`` the training dataset (for objectives
that keep something per training sample, such as fitted initial states), ``options`` the ``objective``
section of the config -- and called as ``objective(model, batch, epoch=..., step=...)``, returning
``{"loss": total, part: value, ...}`` (every part is logged). The LightningModule only optimises,
schedules and logs.
"""

from __future__ import annotations

import inspect
import math
from typing import Any

import torch
from torch import Tensor, nn
from torch.distributions import Normal, kl_divergence
from torch.utils.data import Dataset

from ..models import Model, VectorFieldModel
from ..models._fields import StepModel
from ..models._mlp import check_positive_int


def masked_mse(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Mean of (pred − target)² over the entries where ``mask`` is True (0 when none is)."""
    w = mask.to(pred.dtype)
    return ((pred - target) ** 2 * w).sum() / w.sum().clamp(min=1)


def _non_negative(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ValueError(f"objective.{name} must be a number >= 0, got {value!r}")
    return float(value)


class Objective(nn.Module):
    """Base of the training objectives.

    Subclasses take ``(model, train=None, **options)`` with keyword-only options (their defaults are the
    config's), implement :meth:`forward`, and may hold parameters of their own, offered to the optimiser
    through :meth:`parameter_groups`. The model is passed to every call rather than kept, so a checkpoint
    holds its weights once.
    """

    def forward(self, model: Model, batch: dict[str, Tensor], *, epoch: int = 0,
                step: int = 0) -> dict[str, Tensor]:
        raise NotImplementedError

    def parameter_groups(self) -> list[dict[str, Any]]:
        """Optimiser parameter groups of the objective's own parameters (none by default)."""
        return []

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """The options this objective takes and their defaults (the ``objective`` config section)."""
        params = inspect.signature(cls.__init__).parameters.values()
        return {p.name: p.default for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY}


class TrajectoryMatching(Objective):
    """Match the data's derivatives and short rollouts of a vector-field model (on normalised states).

    Loss = ``derivative_weight`` · L_deriv + ``rollout_weight`` · L_rollout:

    - L_deriv: masked MSE of f_θ(x_k) against the data's dx/dt at every fully observed window sample
      (only when the batch holds ``"dxdt"``);
    - L_rollout: masked MSE of x̂(t_k) against x(t_k), k ≥ 1, where x̂ integrates f_θ from each window's
      first state over that window's own times with ``rollout_method`` and ``rollout_substeps`` (windows
      of one sample have no rollout).

    ``initial_state="fitted"``: a rollout from a noisy observed state carries that noise along the whole
    window, and the model learns to expect it (a biased field, the errors-in-variables problem). Instead each
    training window starts from its own learned state, initialised at the observed one and trained jointly
    with the model; L_rollout then includes k = 0, and L_deriv compares f_θ at the rollout's states, not at
    the noisy observations. Validation windows start from their observed states. The states are updated
    only while their window is in the batch (lazy rows, see ``physdyn.training._optim``), so states of
    other windows do not drift on stale momentum.

    Batches are dicts {"t": (B, W), "x": (B, W, *S), "mask": (B, W, *S), "dxdt": (B, W, *S),
    "index": (B,)} as made by :class:`physdyn.data.WindowDataset`.
    """

    def __init__(
        self,
        model: Model,
        train: Dataset | None = None,
        *,
        derivative_weight: float = 1.0,
        rollout_weight: float = 1.0,
        rollout_method: str = "rk4",
        rollout_substeps: int = 1,
        initial_state: str = "observed",
    ) -> None:
        super().__init__()
        if not isinstance(model, VectorFieldModel):
            raise ValueError(f"the objective trajectory_matching needs a model with a vector field, not "
                             f"{type(model).__name__}")
        self.derivative_weight = _non_negative("derivative_weight", derivative_weight)
        self.rollout_weight = _non_negative("rollout_weight", rollout_weight)
        check_positive_int("objective.rollout_substeps", rollout_substeps)
        if not isinstance(rollout_method, str):
            raise ValueError(f"objective.rollout_method must be a method name, got {rollout_method!r}")
        if initial_state not in ("observed", "fitted"):
            raise ValueError(f"objective.initial_state must be observed or fitted, got {initial_state!r}")
        self.rollout_method, self.rollout_substeps = rollout_method, rollout_substeps
        derivatives = train is None or getattr(train, "dxdt", None) is not None
        if self.rollout_weight == 0 and (self.derivative_weight == 0 or not derivatives):
            raise ValueError("nothing to train on: objective.rollout_weight is 0 and "
                             + ("the data has no derivatives" if not derivatives
                                else "so is objective.derivative_weight"))
        window = getattr(train, "window", None)
        self.initial_states = None
        if initial_state == "fitted":
            if self.rollout_weight == 0 or train is None or window is None or window < 2:
                raise ValueError("objective.initial_state=fitted needs rollouts: data.window >= 2 and "
                                 "objective.rollout_weight > 0 (and the training windows)")
            self.initial_states = nn.Parameter(train.first_states().clone())

    def parameter_groups(self) -> list[dict[str, Any]]:
        if self.initial_states is None:
            return []
        # States are data, not weights: no decay towards 0; rows move only when their window is in the batch.
        return [{"params": [self.initial_states], "weight_decay": 0.0, "lazy_rows": True}]

    def forward(self, model: Model, batch: dict[str, Tensor], *, epoch: int = 0,
                step: int = 0) -> dict[str, Tensor]:
        t, x, mask = batch["t"], batch["x"], batch["mask"]
        out: dict[str, Tensor] = {}
        fitted = self.initial_states is not None and self.training and x.shape[1] > 1
        if self.rollout_weight > 0 and x.shape[1] > 1:
            x0 = self.initial_states[batch["index"]] if fitted else x[:, 0]
            rollout = model.rollout(x0, t, method=self.rollout_method, substeps=self.rollout_substeps)
            first = 0 if fitted else 1  # a fitted start is itself compared with the observed one
            out["rollout_loss"] = masked_mse(rollout[:, first:], x[:, first:], mask[:, first:])
        if self.derivative_weight > 0 and "dxdt" in batch:
            if fitted:  # the field at the fitted trajectory's states, which carry no observation noise
                pred = model.vector_field(t.flatten(), rollout.flatten(0, 1)).view_as(x)
                out["derivative_loss"] = masked_mse(pred, batch["dxdt"], mask)
            else:
                full = mask.flatten(2).all(-1)  # the field needs the whole state as input
                pred = model.vector_field(t[full], x[full])
                out["derivative_loss"] = masked_mse(pred, batch["dxdt"][full], mask[full])
        if not out:
            raise ValueError("no loss applies: the data has no derivatives and windows of one sample "
                             "(or objective.rollout_weight = 0) leave no rollout")
        weights = {"derivative_loss": self.derivative_weight, "rollout_loss": self.rollout_weight}
        out["loss"] = sum(weights[k] * v for k, v in out.items())
        return out


class UnrolledSteps(Objective):
    """Multi-step unrolled loss of a next-frame model (on normalised fields).

    Each training window of W frames gives the model its first ``history`` frames; the model steps on over
    the remaining W − history frames, feeding its own predictions back, and the loss is the masked MSE of
    those frames against the data. Unrolling trains the model on the inputs it meets in a forecast (its
    own, imperfect frames) rather than only on clean one-step pairs.

    ``pushforward`` = p > 0 is the pushforward trick (Brandstetter, Worrall, Welling, ICLR 2022): the first
    p steps run without gradient and are not scored, so the later steps learn to correct the
    distribution shift of the model's own frames without backpropagating through the whole unroll.

    The model's time step is set from the training windows, which must lie on one uniform grid.
    """

    def __init__(self, model: Model, train: Dataset | None = None, *, pushforward: int = 0) -> None:
        super().__init__()
        if not isinstance(model, StepModel):
            raise ValueError(f"the objective unrolled_steps needs a next-frame (step) model, not "
                             f"{type(model).__name__}")
        self.pushforward = check_positive_int("objective.pushforward", pushforward, minimum=0)
        window = getattr(train, "window", None)
        if window is not None and window < model.history + 1 + self.pushforward:
            raise ValueError(f"data.window={window} leaves no scored step: the model reads {model.history} "
                             f"frame(s) and objective.pushforward={self.pushforward} more go unscored, so "
                             f"data.window must be at least {model.history + 1 + self.pushforward}")
        t = getattr(train, "t", None)
        if t is not None and t.shape[-1] > 1:
            steps = t.diff(dim=-1)
            dt = float(steps.median())
            if not dt > 0 or float((steps - dt).abs().max()) > 1e-6 * max(abs(dt), 1e-300) + 1e-12:
                raise ValueError("a next-frame model needs one uniform time grid: the steps of the data "
                                 f"range from {float(steps.min()):g} to {float(steps.max()):g}")
            model.set_time_step(dt)

    def forward(self, model: Model, batch: dict[str, Tensor], *, epoch: int = 0,
                step: int = 0) -> dict[str, Tensor]:
        x, mask = batch["x"], batch["mask"]
        h, p = model.history, self.pushforward
        frames = x[:, :h]
        if p:
            with torch.no_grad():
                ahead = model.unroll(frames, p)
            frames = torch.cat([frames, ahead], 1)[:, -h:]
        start = h + p
        pred = model.unroll(frames, x.shape[1] - start)
        loss = masked_mse(pred, x[:, start:], mask[:, start:])
        return {"loss": loss, "unrolled_loss": loss.detach()}


def _fraction(name: str, value: object, low: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= 1:
        raise ValueError(f"objective.{name} must be a number from {low:g} to 1, got {value!r}")
    return float(value)


def context_cut(mask: Tensor, probability: float, shortest: float) -> Tensor:
    """``mask`` (B, L, *S) with, for a random ``probability`` share of the sequences, every sample from a
    random cut on hidden: the observations a model may read when it must forecast the rest.

    The cut leaves the first ⌈``shortest`` · L⌉ to L samples (uniform), drawn from torch's global generator
    (seeded by ``fit``). Training on such cuts teaches a sequence model to predict past its context, which
    is what an extrapolation asks; reading every observation only teaches it to fill gaps.
    """
    b, n_t = mask.shape[:2]
    if probability == 0 or n_t < 2:
        return mask
    first = max(1, math.ceil(shortest * n_t))
    keep = torch.randint(first, n_t + 1, (b,), device=mask.device)
    cut = torch.rand(b, device=mask.device) < probability
    keep = torch.where(cut, keep, torch.full_like(keep, n_t))
    visible = torch.arange(n_t, device=mask.device)[None, :] < keep[:, None]
    return mask & visible.reshape(b, n_t, *[1] * (mask.ndim - 2))


class SequencePrediction(Objective):
    """Masked MSE of a sequence model's predictions at every observed sample, each predicted from the
    observations before it (the next-point loss of ODE-RNN and GRU-Δt baselines).

    With probability ``free_run`` a training sequence is read only up to a random cut (at least ``shortest``
    of it, see :func:`context_cut`), and the samples after it are predicted without further observations,
    so the model also learns to forecast. Validation reads whole sequences. Batches are dicts {"t": (B, L),
    "x": (B, L, *S), "mask": (B, L, *S)} as made by :class:`physdyn.data.SequenceDataset`.
    """

    def __init__(self, model: Model, train: Dataset | None = None, *, free_run: float = 0.5,
                 shortest: float = 0.25) -> None:
        super().__init__()
        if not callable(getattr(model, "run", None)):
            raise ValueError("the objective sequence_prediction needs a sequence model (ode_rnn, gru_dt), "
                             f"not {type(model).__name__}")
        self.free_run = _fraction("free_run", free_run)
        self.shortest = _fraction("shortest", shortest)

    def forward(self, model: Model, batch: dict[str, Tensor], *, epoch: int = 0,
                step: int = 0) -> dict[str, Tensor]:
        t, x, mask = batch["t"], batch["x"], batch["mask"]
        seen = context_cut(mask, self.free_run, self.shortest) if self.training else mask
        pred = model.run(t, x, seen)
        x = torch.where(mask, x, torch.zeros((), dtype=x.dtype, device=x.device))
        loss = masked_mse(pred, x, mask)
        return {"loss": loss, "mse": loss.detach()}


def kl_weight(epoch: int, warmup: int, rate: float) -> float:
    """The KL annealing schedule of Rubanova et al. (2019): 0 for the first ``warmup`` epochs, then
    1 − ``rate``^(epoch − warmup), rising to 1."""
    return 0.0 if epoch < warmup else 1.0 - rate ** (epoch - warmup)


class ELBO(Objective):
    """The negative evidence lower bound of a latent model, per observed entry, with KL annealing.

    For each sequence, with q = q(z0 | observations) from the model's encoder and p(z0) = N(0, I):

        ELBO = E_q[ Σ_observed log N(x_k | g(z(t_k)), σ²) ] − β · KL(q ‖ p),

    the expectation taken over ``samples`` reparameterised draws of z0; the loss is −Σ ELBO over the batch
    divided by the number of observed entries. β follows :func:`kl_weight` of the epoch (``kl_warmup``
    epochs of 0, then 1 − ``kl_rate``^(epoch − kl_warmup)). With probability ``context_cut`` a training
    sequence is encoded from its first part only (a random cut, at least ``shortest`` of it) while every
    observed entry is still reconstructed, so that z0 is also inferred from a context and the rest
    extrapolated (the paper's ``--extrap`` setting, drawn per sequence). Validation encodes everything.

    Logged parts: ``nll`` (per observed entry), ``kl`` (per sequence), ``kl_weight``, ``mse`` (of the
    decoded means, per observed entry).
    """

    def __init__(self, model: Model, train: Dataset | None = None, *, samples: int = 3, kl_warmup: int = 10,
                 kl_rate: float = 0.99, context_cut: float = 0.5, shortest: float = 0.25) -> None:
        super().__init__()
        if not (callable(getattr(model, "encode", None)) and callable(getattr(model, "decode", None))):
            raise ValueError(f"the objective elbo needs a latent model (encode and decode), not "
                             f"{type(model).__name__}")
        self.samples = check_positive_int("objective.samples", samples)
        self.kl_warmup = check_positive_int("objective.kl_warmup", kl_warmup, minimum=0)
        if isinstance(kl_rate, bool) or not isinstance(kl_rate, int | float) or not 0 <= kl_rate < 1:
            raise ValueError(f"objective.kl_rate must be a number in [0, 1), got {kl_rate!r}")
        self.kl_rate = float(kl_rate)
        self.context_cut = _fraction("context_cut", context_cut)
        self.shortest = _fraction("shortest", shortest)

    def forward(self, model: Model, batch: dict[str, Tensor], *, epoch: int = 0,
                step: int = 0) -> dict[str, Tensor]:
        t, x, mask = batch["t"], batch["x"], batch["mask"]
        b, k = len(x), self.samples
        seen = context_cut(mask, self.context_cut, self.shortest) if self.training else mask
        q = model.encode(t, x, seen)
        z0 = q.rsample((k,)).transpose(0, 1)  # (B, K, latent)
        mean = model.decode(z0.flatten(0, 1), t[:, 0].repeat_interleave(k), t.repeat_interleave(k, 0))
        mean = mean.view(b, k, -1)
        target = torch.where(mask, x, torch.zeros((), dtype=x.dtype, device=x.device)).flatten(1)[:, None]
        observed = mask.flatten(1)[:, None].to(mean.dtype)  # (B, 1, L·D), as target
        std = model.obs_std.to(mean.dtype).repeat(t.shape[1])
        log_lik = (Normal(mean, std).log_prob(target) * observed).sum(-1).mean(1)  # (B,)
        kl = kl_divergence(q, Normal(torch.zeros_like(q.mean), torch.ones_like(q.stddev))).sum(-1)  # (B,)
        beta = kl_weight(epoch, self.kl_warmup, self.kl_rate)
        count = observed.sum().clamp(min=1)
        sq = (((mean - target) ** 2) * observed).sum() / (count * k)
        return {"loss": -(log_lik.sum() - beta * kl.sum()) / count, "nll": -log_lik.sum().detach() / count,
                "kl": kl.mean().detach(), "kl_weight": torch.tensor(beta), "mse": sq.detach()}


class KineticsMatching(Objective):
    """Match whole trajectories of a kinetics model rolled out through the stiff solver, scaled per species.

    Loss = mean over the observed samples k >= 1 and species i of ((ŷ_i(t_k) − y_i(t_k)) / s_i)², where ŷ
    integrates the model from each window's first state with ``method`` at ``rtol``/``atol`` and s_i is
    species i's largest concentration in the training windows (``species_scale="auto"``; or a list, one
    per species): concentrations of 1e-5 then count as much as those of 1. Where the data are log-spaced in
    time, every sample counting alike gives every decade of time the same weight; the times themselves are
    never shifted or rescaled (the rate constants keep the data's units).

    ``initial_rates="estimate"``: a model whose ``rate_constants`` were not given starts from the
    differential-method estimate from the training windows (``physdyn.models.kinetics
    .estimate_rate_constants``), so the rollouts only refine it; ``"model"``: from the model's own values.
    The learned rate constants are logged as ``k1``, ``k2``, ... (the run's metrics.csv).
    """

    def __init__(
        self,
        model: Model,
        train: Dataset | None = None,
        *,
        method: str = "rodas5p",
        rtol: float = 1e-6,
        atol: float = 1e-12,
        species_scale: str | list[float] = "auto",
        initial_rates: str = "estimate",
    ) -> None:
        super().__init__()
        from ..models.kinetics import Kinetics, estimate_rate_constants

        if not isinstance(model, VectorFieldModel):
            raise ValueError(f"the objective kinetics_matching needs a model with a vector field, not "
                             f"{type(model).__name__}")
        if not isinstance(method, str):
            raise ValueError(f"objective.method must be a method name, got {method!r}")
        for name, value in (("rtol", rtol), ("atol", atol)):
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ValueError(f"objective.{name} must be a number > 0, got {value!r}")
        if initial_rates not in ("estimate", "model"):
            raise ValueError(f"objective.initial_rates must be estimate or model, got {initial_rates!r}")
        self.method, self.rtol, self.atol = method, float(rtol), float(atol)
        d = model.state_size
        if species_scale == "auto":
            scale = torch.ones(d, dtype=torch.float64)
            if train is not None and len(train) > 0:
                x, mask = self._windows(train)[1:]
                largest = torch.where(mask, x.abs(), 0.0).flatten(2).amax((0, 1)).to(torch.float64)
                scale = torch.where(largest > 0, largest, torch.ones_like(largest))
        else:
            scale = torch.as_tensor(species_scale, dtype=torch.float64) if isinstance(
                species_scale, list | tuple) else None
            if scale is None or scale.shape != (d,) or not bool((torch.isfinite(scale) & (scale > 0)).all()):
                raise ValueError(f"objective.species_scale must be auto or {d} positive numbers (one per "
                                 f"species), got {species_scale!r}")
        self.register_buffer("species_scale", scale)
        self.rate_names: list[str] = []
        if isinstance(model, Kinetics):
            self.rate_names = [f"k{j + 1}" for j in range(len(model.stoichiometry.reactions))]
            estimate = (initial_rates == "estimate" and model.hparams.get("rate_constants") is None
                        and train is not None and len(train) > 0)
            if estimate:
                k = estimate_rate_constants(model, *self._windows(train))
                with torch.no_grad():
                    model.log_rate_constants.copy_(k.log().to(model.log_rate_constants.dtype))

    @staticmethod
    def _windows(train: Dataset) -> tuple[Tensor, Tensor, Tensor]:
        """Times (N, W), states (N, W, *S) and mask of every training window."""
        items = [train[i] for i in range(len(train))]
        return tuple(torch.stack([item[key] for item in items]) for key in ("t", "x", "mask"))

    def forward(self, model: Model, batch: dict[str, Tensor], *, epoch: int = 0,
                step: int = 0) -> dict[str, Tensor]:
        t, x, mask = batch["t"], batch["x"], batch["mask"]
        if x.shape[1] < 2:
            raise ValueError("kinetics_matching needs windows of at least two samples (data.window >= 2)")
        rollout = model.rollout(x[:, 0], t, method=self.method, rtol=self.rtol, atol=self.atol)
        scale = self.species_scale.to(x.dtype).reshape(model.state_shape)
        loss = masked_mse(rollout[:, 1:] / scale, x[:, 1:] / scale, mask[:, 1:])
        out = {"loss": loss}
        if self.rate_names:
            out |= dict(zip(self.rate_names, model.log_rate_constants.detach().exp(), strict=True))
        return out


class TransitionLikelihood(Objective):
    """The Gaussian log-likelihood of one-step transitions of an SDE model (Euler–Maruyama), on normalised
    states, so that the drift and the noise intensity are both learned from the data.

    For consecutive fully observed samples x_k, x_{k+1} of a window, h = t_{k+1} − t_k, the Euler–Maruyama
    transition is x_{k+1} ~ N(m, h G Gᵀ) with m = x_k + h f(x_k) (``model.substeps`` > 1: m takes that many
    Euler steps of the drift alone). The loss is the negative log-density per transition and coordinate,
    averaged over the batch's transitions; with diagonal noise each coordinate of x_{k+1} counts where it is
    observed. Windows of one sample hold no transition. The model needs ``drift``, ``diffusion`` and, for
    general noise, ``covariance`` (:class:`physdyn.models.NeuralSDE`).

    ``initialize=True``: the data fixes two things before the first step, recorded in the model (not
    options of it): its ``step`` buffer, the median sampling step of the training windows, at which
    predictions are solved; and a starting diffusion from the second differences of the training states
    (x_{k+1} − 2 x_k + x_{k−1} ≈ the noise of two steps, the drift cancelling to first order), so the
    noise intensity need not climb orders of magnitude by gradient steps alone.
    """

    def __init__(self, model: Model, train: Dataset | None = None, *, initialize: bool = True) -> None:
        super().__init__()
        if not all(callable(getattr(model, name, None)) for name in ("drift", "diffusion", "covariance")):
            raise ValueError(f"the objective transition_likelihood needs an SDE model (drift and diffusion), "
                             f"not {type(model).__name__}")
        if not isinstance(initialize, bool):
            raise ValueError(f"objective.initialize must be true or false, got {initialize!r}")
        window = getattr(train, "window", None)
        if window is not None and window < 2:
            raise ValueError("the objective transition_likelihood needs windows of at least 2 samples "
                             "(data.window >= 2): a window of one holds no transition")
        if initialize and train is not None and len(train) > 0:
            windows = [train[k] for k in range(len(train))]  # the training windows only, not val or test
            step, scale = transition_scales(*(torch.stack([w[key] for w in windows])
                                              for key in ("t", "x", "mask")))
            if step is not None:
                model.step.fill_(step)
                model.initialize_diffusion(scale)

    def forward(self, model: Model, batch: dict[str, Tensor], *, epoch: int = 0,
                step: int = 0) -> dict[str, Tensor]:
        t, x, mask = batch["t"], batch["x"].flatten(2), batch["mask"].flatten(2)
        if x.shape[1] < 2:
            raise ValueError("windows of one sample hold no transition (data.window must be >= 2)")
        start_seen = mask[:, :-1].all(-1)  # the networks need the whole state
        h = t.diff(dim=1).to(x.dtype)[start_seen]  # (P,)
        x0, x1, seen1 = x[:, :-1][start_seen], x[:, 1:][start_seen], mask[:, 1:][start_seen]
        nll = transition_nll(model, x0, x1, h, seen1)
        return {"loss": nll, "transition_nll": nll.detach()}


def transition_nll(model: Model, x0: Tensor, x1: Tensor, h: Tensor, observed: Tensor | None = None) -> Tensor:
    """Mean negative Euler–Maruyama log-density −log N(x1; m(x0), h G Gᵀ(x0)) per transition and coordinate.

    ``x0``, ``x1`` (P, D) flattened states, ``h`` (P,) steps, ``observed`` (P, D) which coordinates of x1
    count (diagonal noise; general noise needs them all and drops transitions that lack any).
    """
    mean = x0
    substeps = int(model.hparams.get("substeps", 1))
    for _ in range(substeps):
        mean = mean + (h / substeps)[:, None] * model.drift(mean)
    r = x1 - mean
    observed = torch.ones_like(r, dtype=torch.bool) if observed is None else observed
    if model.noise_type == "diagonal":
        var = h[:, None] * model.diffusion(x0) ** 2
        terms = 0.5 * (torch.log(2 * torch.pi * var) + r**2 / var)
        w = observed.to(r.dtype)
        return (terms * w).sum() / w.sum().clamp(min=1)
    full = observed.all(-1)
    r, x0, h = r[full], x0[full], h[full]
    d = r.shape[-1]
    floor = model.min_diffusion**2 * torch.eye(d, dtype=r.dtype, device=r.device)
    cov = h[:, None, None] * (model.covariance(x0) + floor)
    chol = torch.linalg.cholesky(cov)
    white = torch.linalg.solve_triangular(chol, r[..., None], upper=False)[..., 0]
    logdet = 2 * chol.diagonal(dim1=-2, dim2=-1).log().sum(-1)
    nll = 0.5 * (d * torch.log(torch.tensor(2 * torch.pi, dtype=r.dtype)) + logdet + (white**2).sum(-1))
    return nll.sum() / (d * max(len(r), 1))


def transition_scales(t: Tensor, x: Tensor, mask: Tensor) -> tuple[float | None, Tensor]:
    """The median step of trajectories ``t`` (N, T) and a robust diffusion scale per coordinate of ``x``
    (N, T, *S): 1.4826 · median |x_{k+1} − 2 x_k + x_{k−1}| / sqrt(2 h) over fully observed triples
    (None and ones when there are none)."""
    x, mask = x.flatten(2).double(), mask.flatten(2)
    d = x.shape[-1]
    if x.shape[1] < 3:
        return None, torch.ones(d, dtype=torch.float64)
    h = t.diff(dim=1).double()
    seen = mask.all(-1)
    triple = seen[:, 2:] & seen[:, 1:-1] & seen[:, :-2]
    if not bool(triple.any()):
        return None, torch.ones(d, dtype=torch.float64)
    second = (x[:, 2:] - 2 * x[:, 1:-1] + x[:, :-2])[triple]
    step = float(h[:, :-1][triple].median())
    return step, 1.4826 * second.abs().median(0).values / (2 * step) ** 0.5


#: Objective name -> class. A model names its own (``Model.objective``); the config may choose another.
OBJECTIVES: dict[str, type[Objective]] = {"trajectory_matching": TrajectoryMatching, "elbo": ELBO,
                                          "sequence_prediction": SequencePrediction,
                                          "kinetics_matching": KineticsMatching,
                                          "transition_likelihood": TransitionLikelihood,
                                          "unrolled_steps": UnrolledSteps}


def objective_class(name: str) -> type[Objective]:
    """The objective registered as ``name``; ValueError for an unknown one."""
    if name not in OBJECTIVES:
        raise ValueError(f"unknown objective {name!r} (available: {', '.join(OBJECTIVES)})")
    return OBJECTIVES[name]
