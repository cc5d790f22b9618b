"""The LightningModule that trains any registry model: it optimises, schedules and logs; the objective
decides what is learned."""

from __future__ import annotations

import math

import lightning as L
import torch
from torch import Tensor

from ..models import Model
from ._objectives import Objective, objective_class
from ._optim import OPTIMIZERS

SCHEDULES = ("none", "cosine", "plateau")


class DynamicsModule(L.LightningModule):
    """Trains ``model`` on the loss of ``objective`` (default: the model's own objective, default options).

    Logs ``train_loss``, ``val_loss`` and every part the objective returns (``train_rollout_loss``, ...)
    once per epoch. The objective sees the epoch and the global step (for annealed losses).

    Args:
        model: the :class:`physdyn.models.Model` to train (``self.model``).
        objective: a :class:`physdyn.training.Objective` built for this model (and its training data).
        optimizer: "adam" or "adamw"; ``lr`` and ``weight_decay`` go to it.
        schedule: "none", "cosine" (cosine annealing to 0 over the trainer's ``max_epochs``, the current
            value on resume, so a resumed run with more epochs anneals over the new total) or "plateau"
            (halve the rate after 5 epochs without improvement of ``monitor``).
        monitor: the logged metric the plateau schedule watches.
    """

    def __init__(
        self,
        model: Model,
        objective: Objective | None = None,
        *,
        optimizer: str = "adam",
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        schedule: str = "none",
        monitor: str = "val_loss",
    ) -> None:
        super().__init__()
        if isinstance(weight_decay, bool) or not isinstance(weight_decay, int | float) or weight_decay < 0:
            raise ValueError(f"weight_decay must be a number >= 0, got {weight_decay!r}")
        if isinstance(lr, bool) or not isinstance(lr, int | float) or not lr > 0:
            raise ValueError(f"lr must be a number > 0, got {lr!r}")
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {optimizer!r} (available: {', '.join(OPTIMIZERS)})")
        if schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {schedule!r} (available: {', '.join(SCHEDULES)})")
        self.model = model
        self.objective = objective_class(model.objective)(model) if objective is None else objective
        self.save_hyperparameters(ignore=["model", "objective"])

    def losses(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """The objective's losses on ``batch`` at the current epoch and step."""
        epoch, step = (self.current_epoch, self.global_step) if self._trainer is not None else (0, 0)
        return self.objective(self.model, batch, epoch=epoch, step=step)

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
        groups = [{"params": list(self.model.parameters())}, *self.objective.parameter_groups()]
        opt = OPTIMIZERS[hp.optimizer](groups, lr=hp.lr, weight_decay=hp.weight_decay)
        if hp.schedule == "cosine":
            # The closed form, with the trainer's max_epochs read at every step: a stored T_max would come
            # back with a resumed scheduler's state and let the rate climb again past the old horizon.
            sched = torch.optim.lr_scheduler.LambdaLR(opt, self._cosine_factor)
            return {"optimizer": opt, "lr_scheduler": sched}
        if hp.schedule == "plateau":
            sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=5)
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": hp.monitor}}
        return opt

    def _cosine_factor(self, epoch: int) -> float:
        total = self.trainer.max_epochs if self._trainer is not None and self.trainer.max_epochs else 1
        return 0.5 * (1 + math.cos(math.pi * min(epoch, total) / total))

    def on_train_start(self) -> None:
        # After a resume, the restored optimiser holds the rate of the old schedule for this epoch; set the
        # rate the cosine schedule gives now (a no-op for a fresh run, where both agree).
        if self.hparams.schedule == "cosine":
            sched = self.lr_schedulers()
            for group, base in zip(sched.optimizer.param_groups, sched.base_lrs, strict=True):
                group["lr"] = base * self._cosine_factor(sched.last_epoch)
