"""What an evaluation found: the :class:`Report` that metrics, plots and files are made from."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import Tensor

from ..data import Trajectories


@dataclass
class Report:
    """What :func:`physdyn.evaluation.evaluate` found.

    Attributes:
        metrics: the content of metrics.json (strict-JSON-able once NaN is replaced, see ``json_safe``).
        truth: the data over the horizon, (N, H + 1, *S).
        predictions: the predictions on the same times, (N·K, H + 1, *S) for K samples per trajectory
            (sample-major within each trajectory), physical units; the first ``context`` times hold the
            context (as given, or as reconstructed by models that read the whole context).
        energy: (H(truth), H(predictions)), (N, H + 1) and (N·K, H + 1), where an energy is defined.
        attractor: (model, system) long rollouts (M, L, *S) after their burn-in, for chaotic systems.
        path: the report folder once written.
    """

    metrics: dict[str, Any]
    truth: Trajectories
    predictions: Trajectories
    energy: tuple[Tensor, Tensor] | None = None
    attractor: tuple[Tensor, Tensor] | None = None
    path: Path | None = None
