"""Learned models: plain ``nn.Module``s built for the data's state shape, each predicting through ``predict``.

``get(name, state_shape, **hparams)`` builds one; ``names()`` lists them; ``defaults(name)`` gives the
hyperparameters a model takes and their defaults; ``model_class(name)`` the class, whose attributes say
what it can do (``capabilities``), which normalisation, data and training objective it wants. A new family
is one module here plus one entry in ``_REGISTRY`` (docs/models.md, "Adding a model family").
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

from ..solvers import TORCHDIFFEQ_METHODS
from ._base import Model, VectorFieldModel, as_state_shape
from ._fields import StepModel
from .fno import FNO
from .hnn import HamiltonianNN
from .kinetics import Kinetics
from .latent import GRUDeltaT, LatentODE, ODERNNModel
from .neural_sde import NeuralSDE
from .node import NeuralODE
from .pde_cnn import HamiltonianCNN, HyperbolicCNN, ParabolicCNN
from .pde_net import PDENet
from .scaled_node import ScaledNeuralODE
from .unet import UNet

_REGISTRY: dict[str, type[Model]] = {
    "node": NeuralODE, "hnn": HamiltonianNN,
    "latent_ode": LatentODE, "ode_rnn": ODERNNModel, "gru_dt": GRUDeltaT,
    "kinetics": Kinetics, "scaled_node": ScaledNeuralODE,
    "neural_sde": NeuralSDE,
    "parabolic_cnn": ParabolicCNN, "hyperbolic_cnn": HyperbolicCNN, "hamiltonian_cnn": HamiltonianCNN,
    "pde_net": PDENet, "unet": UNet, "fno": FNO,
}


def names() -> list[str]:
    """Names of the registered models."""
    return list(_REGISTRY)


def model_class(name: str) -> type[Model]:
    """The class registered as ``name``; ValueError for an unknown name."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r} (available: {', '.join(_REGISTRY)})")
    return _REGISTRY[name]


def defaults(name: str) -> dict[str, Any]:
    """The hyperparameters of model ``name`` and their defaults (``state_shape`` comes from the data)."""
    params = inspect.signature(model_class(name).__init__).parameters
    return {key: p.default for key, p in params.items() if key not in ("self", "state_shape")}


def get(name: str, state_shape: int | Sequence[int], **hparams: Any) -> Model:
    """Model ``name`` for states of ``state_shape`` with ``hparams`` over its defaults.

    Unknown names or hyperparameters raise ValueError naming them.
    """
    known = defaults(name)
    unknown = sorted(set(hparams) - set(known))
    if unknown:
        raise ValueError(f"unknown hyperparameter(s) {', '.join(unknown)} for model {name!r} "
                         f"(known: {', '.join(known)})")
    return model_class(name)(as_state_shape(state_shape), **hparams)


__all__ = [
    "FNO",
    "TORCHDIFFEQ_METHODS",
    "GRUDeltaT",
    "HamiltonianCNN",
    "HamiltonianNN",
    "HyperbolicCNN",
    "Kinetics",
    "LatentODE",
    "Model",
    "NeuralODE",
    "NeuralSDE",
    "ODERNNModel",
    "PDENet",
    "ParabolicCNN",
    "ScaledNeuralODE",
    "StepModel",
    "UNet",
    "VectorFieldModel",
    "defaults",
    "get",
    "model_class",
    "names",
]
