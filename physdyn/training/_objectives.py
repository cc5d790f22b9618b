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
from typing import Any

import torch
from torch import Tensor, nn
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


#: Objective name -> class. A model names its own (``Model.objective``); the config may choose another.
OBJECTIVES: dict[str, type[Objective]] = {"trajectory_matching": TrajectoryMatching,
                                          "unrolled_steps": UnrolledSteps}


def objective_class(name: str) -> type[Objective]:
    """The objective registered as ``name``; ValueError for an unknown one."""
    if name not in OBJECTIVES:
        raise ValueError(f"unknown objective {name!r} (available: {', '.join(OBJECTIVES)})")
    return OBJECTIVES[name]
