"""The LightningModule that trains any registry model: losses, optimiser, schedule, logging."""

from __future__ import annotations

import lightning as L
import torch
from torch import Tensor, nn

OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}
SCHEDULES = ("none", "cosine", "plateau")


def masked_mse(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Mean of (pred − target)² over the entries where ``mask`` is True (0 when none is)."""
    w = mask.to(pred.dtype)
    return ((pred - target) ** 2 * w).sum() / w.sum().clamp(min=1)


class DynamicsModule(L.LightningModule):
    """Trains a model with ``vector_field(t, x)`` and ``rollout(x0, t, method=, substeps=)`` on flat states.

    Loss = ``derivative_weight`` · L_deriv + ``rollout_weight`` · L_rollout, on normalised states:

    - L_deriv = masked MSE of f_θ(x_k) against the data's dx/dt at every fully observed window sample
      (only when the batch holds ``"dxdt"``);
    - L_rollout = masked MSE of x̂(t_k) against x(t_k), k ≥ 1, where x̂ integrates f_θ from each window's
      first state over that window's own times (one grid per sample) with ``rollout_method`` and
      ``rollout_substeps`` (windows of one sample have no rollout).

    Fitted initial states (``initial_states`` given, one row per training window): a rollout from a noisy
    observed state carries that noise along the whole window, and the model learns to expect it (a biased
    field, the errors-in-variables problem). Instead each training window starts from its own learned state
    z_k, initialised at the observed one and trained jointly with the model; L_rollout then includes k = 0,
    and L_deriv compares f_θ at the rollout's states x̂(t_k), not at the noisy observations. Validation and
    test windows, which have no fitted state, start from their observed states as above.

    Batches are dicts {"t": (B, W), "x": (B, W, D), "mask": (B, W, D), "dxdt": (B, W, D), "index": (B,)}
    as made by :class:`physdyn.data.WindowDataset`. Logs ``train_loss``, ``val_loss`` and their parts
    (``*_derivative_loss``, ``*_rollout_loss``) once per epoch.

    Args:
        model: the nn.Module to train (``self.model``).
        optimizer: "adam" or "adamw"; ``lr`` and ``weight_decay`` go to it.
        schedule: "none", "cosine" (cosine annealing over ``max_epochs``) or "plateau" (halve the rate after
            5 epochs without improvement of ``monitor``).
        monitor: the logged metric the plateau schedule watches.
        initial_states: (number of training windows, D) the first observed state of each training window
            (``WindowDataset.first_states()``), to fit initial states from; None starts every rollout from
            the observed state.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        derivative_weight: float = 1.0,
        rollout_weight: float = 1.0,
        rollout_method: str = "rk4",
        rollout_substeps: int = 1,
        optimizer: str = "adam",
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        schedule: str = "none",
        max_epochs: int | None = None,
        monitor: str = "val_loss",
        initial_states: Tensor | None = None,
    ) -> None:
        super().__init__()
        for name, value in (("derivative_weight", derivative_weight), ("rollout_weight", rollout_weight),
                            ("weight_decay", weight_decay)):
            if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
                raise ValueError(f"{name} must be a number >= 0, got {value!r}")
        if isinstance(lr, bool) or not isinstance(lr, int | float) or not lr > 0:
            raise ValueError(f"lr must be a number > 0, got {lr!r}")
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {optimizer!r} (available: {', '.join(OPTIMIZERS)})")
        if schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {schedule!r} (available: {', '.join(SCHEDULES)})")
        substeps = rollout_substeps
        if not isinstance(substeps, int) or isinstance(substeps, bool) or substeps < 1:
            raise ValueError(f"rollout_substeps must be an integer >= 1, got {rollout_substeps!r}")
        if not isinstance(rollout_method, str):
            raise ValueError(f"rollout_method must be a method name, got {rollout_method!r}")
        if derivative_weight == 0 and rollout_weight == 0:
            raise ValueError("derivative_weight and rollout_weight are both 0: nothing to train on")
        if initial_states is not None and rollout_weight == 0:
            raise ValueError("fitted initial states need the rollout loss (rollout_weight > 0)")
        self.model = model
        self.initial_states = None if initial_states is None else nn.Parameter(initial_states.clone())
        self.save_hyperparameters(ignore=["model", "initial_states"])

    def forward(self, t: Tensor, x: Tensor) -> Tensor:
        return self.model.vector_field(t, x)

    def losses(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """{"loss": weighted total, "derivative_loss": ..., "rollout_loss": ...} (parts present when used)."""
        hp = self.hparams
        t, x, mask = batch["t"], batch["x"], batch["mask"]
        out: dict[str, Tensor] = {}
        fitted = self.initial_states is not None and self.training and x.shape[1] > 1
        if hp.rollout_weight > 0 and x.shape[1] > 1:
            x0 = self.initial_states[batch["index"]] if fitted else x[:, 0]
            rollout = self.model.rollout(x0, t, method=hp.rollout_method, substeps=hp.rollout_substeps)
            first = 0 if fitted else 1  # a fitted start is itself compared with the observed one
            out["rollout_loss"] = masked_mse(rollout[:, first:], x[:, first:], mask[:, first:])
        if hp.derivative_weight > 0 and "dxdt" in batch:
            if fitted:  # the field at the fitted trajectory's states, which carry no observation noise
                pred = self.model.vector_field(t.flatten(), rollout.flatten(0, 1)).view_as(x)
                out["derivative_loss"] = masked_mse(pred, batch["dxdt"], mask)
            else:
                full = mask.all(-1)  # the field needs the whole state as input
                pred = self.model.vector_field(t[full], x[full])
                out["derivative_loss"] = masked_mse(pred, batch["dxdt"][full], mask[full])
        if not out:
            raise ValueError("no loss applies: the data has no derivatives and windows of one sample "
                             "(or rollout_weight = 0) leave no rollout")
        weights = {"derivative_loss": hp.derivative_weight, "rollout_loss": hp.rollout_weight}
        out["loss"] = sum(weights[k] * v for k, v in out.items())
        return out

    def _log(self, stage: str, losses: dict[str, Tensor], batch_size: int) -> None:
        # sync_dist: under DDP the logged epoch value is the mean over processes, so every process monitors
        # (checkpoints, early stopping, plateau) the same number.
        parts = {f"{stage}_{k}": v.detach() for k, v in losses.items() if k != "loss"}
        self.log_dict(parts, on_step=False, on_epoch=True, batch_size=batch_size, sync_dist=True)
        self.log(f"{stage}_loss", losses["loss"].detach(), on_step=False, on_epoch=True, prog_bar=True,
                 batch_size=batch_size, sync_dist=True)

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        losses = self.losses(batch)
        self._log("train", losses, len(batch["x"]))
        return losses["loss"]

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._log("val", self.losses(batch), len(batch["x"]))

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._log("test", self.losses(batch), len(batch["x"]))

    def configure_optimizers(self):
        hp = self.hparams
        groups = [{"params": list(self.model.parameters())}]
        if self.initial_states is not None:  # states are data, not weights: no decay towards 0
            groups.append({"params": [self.initial_states], "weight_decay": 0.0})
        opt = OPTIMIZERS[hp.optimizer](groups, lr=hp.lr, weight_decay=hp.weight_decay)
        if hp.schedule == "cosine":
            t_max = hp.max_epochs or self.trainer.max_epochs
            return {"optimizer": opt, "lr_scheduler": torch.optim.lr_scheduler.CosineAnnealingLR(opt, t_max)}
        if hp.schedule == "plateau":
            sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=5)
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": hp.monitor}}
        return opt
