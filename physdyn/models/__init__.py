"""Learned models: plain ``nn.Module``s on flat states (B, D), each with ``vector_field`` and ``rollout``.

``get(name, **hparams)`` builds one; ``names()`` lists them; ``defaults(name)`` gives the hyperparameters a
model takes and their defaults. Sizes that come from the data (``state_dim``) are hyperparameters too; the
training fills them in. A new family is one module here plus one entry in ``_REGISTRY``.
"""

from __future__ import annotations

import inspect
from typing import Any

from ._base import TORCHDIFFEQ_METHODS, DynamicsModel
from .hnn import HamiltonianNN
from .node import NeuralODE

_REGISTRY: dict[str, type[DynamicsModel]] = {"node": NeuralODE, "hnn": HamiltonianNN}


def names() -> list[str]:
    """Names of the registered models."""
    return list(_REGISTRY)


def _cls(name: str) -> type[DynamicsModel]:
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r} (available: {', '.join(_REGISTRY)})")
    return _REGISTRY[name]


def defaults(name: str) -> dict[str, Any]:
    """The hyperparameters of model ``name`` and their defaults (``None``: filled in from the data)."""
    params = inspect.signature(_cls(name).__init__).parameters
    return {key: p.default for key, p in params.items() if key != "self"}


def get(name: str, **hparams: Any) -> DynamicsModel:
    """Model ``name`` with ``hparams`` over its defaults; unknown names or hyperparameters: ValueError."""
    known = defaults(name)
    unknown = sorted(set(hparams) - set(known))
    if unknown:
        raise ValueError(f"unknown hyperparameter(s) {', '.join(unknown)} for model {name!r} "
                         f"(known: {', '.join(known)})")
    missing = [key for key, value in (known | hparams).items() if value is None]
    if missing:
        raise ValueError(f"model {name!r} needs {', '.join(missing)} (set from the data by training)")
    return _cls(name)(**hparams)


__all__ = ["TORCHDIFFEQ_METHODS", "DynamicsModel", "HamiltonianNN", "NeuralODE", "defaults", "get", "names"]
