"""What ``fit`` shows while it trains: Lightning's progress bar with the run's position and the time left."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Timer, TQDMProgressBar


def parse_duration(value: object, key: str = "training.max_time") -> timedelta | None:
    """``None``, ``"HH:MM:SS"`` or ``"DD:HH:MM:SS"`` (Lightning's ``max_time`` strings) as a timedelta.

    ValueError naming ``key`` for anything else, or for a duration of zero.
    """
    if value is None:
        return None
    parts = str(value).split(":")
    try:
        numbers = [int(part) for part in parts] if len(parts) in (3, 4) else None
    except ValueError:
        numbers = None
    if numbers is None or any(n < 0 for n in numbers) or (len(numbers) == 4 and numbers[0] < 0):
        raise ValueError(f"{key} must be HH:MM:SS or DD:HH:MM:SS, got {value!r}")
    days, hours, minutes, seconds = [0] * (4 - len(numbers)) + numbers
    duration = timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    if duration <= timedelta(0):
        raise ValueError(f"{key} must be longer than zero, got {value!r}")
    return duration


def estimate_left(elapsed: float, epochs_done: float, epochs_left: float,
                  budget_left: float | None = None) -> float | None:
    """Seconds left at the mean pace so far (None before the first epoch ends), capped by a time budget."""
    if epochs_done <= 0:
        return budget_left
    left = elapsed / epochs_done * max(epochs_left, 0.0)
    return left if budget_left is None else min(left, max(budget_left, 0.0))


def format_seconds(seconds: float) -> str:
    """``3h05m``, ``12m40s``, ``9s``: as precise as a glance needs."""
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


class RunProgressBar(TQDMProgressBar):
    """Lightning's bar, described ``Epoch E/N`` and with ``left=``: the estimated time to the end of the run
    (the mean epoch time of this process so far, times the epochs left; at most what ``max_time`` leaves)."""

    def __init__(self) -> None:
        super().__init__()
        self._start = 0.0
        self._first_epoch = 0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        self._start, self._first_epoch = time.monotonic(), trainer.current_epoch  # a resumed run starts late

    def on_train_epoch_start(self, trainer: L.Trainer, *args: Any) -> None:
        super().on_train_epoch_start(trainer, *args)
        self.train_progress_bar.set_description(f"Epoch {trainer.current_epoch + 1}/{trainer.max_epochs}")

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
        items = super().get_metrics(trainer, pl_module)
        items.pop("v_num", None)  # the run has one version: its folder
        total = self.total_train_batches if isinstance(self.total_train_batches, int) else 0
        within = self.train_progress_bar.n / total if total and self.train_progress_bar is not None else 0.0
        done = trainer.current_epoch - self._first_epoch + within
        timer = next((c for c in trainer.callbacks if isinstance(c, Timer)), None)
        budget = timer.time_remaining() if timer is not None else None  # None: no max_time
        left = estimate_left(time.monotonic() - self._start, done,
                             trainer.max_epochs - trainer.current_epoch - within, budget)
        if left is not None:
            items["left"] = format_seconds(left)
        return items
