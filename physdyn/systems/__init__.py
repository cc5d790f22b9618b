"""Reference systems: ground-truth simulators, verified against closed forms and published values.

``get(name, **params)`` returns a system; ``names()`` lists them.
"""

from __future__ import annotations

from ._base import System, facts, time_grid
from .lorenz import Lorenz
from .ornstein_uhlenbeck import OrnsteinUhlenbeck
from .pendulum import Pendulum
from .reaction_diffusion import ReactionDiffusion
from .robertson import Robertson

_REGISTRY: dict[str, type[System]] = {
    cls.name: cls for cls in (Pendulum, Lorenz, ReactionDiffusion, Robertson, OrnsteinUhlenbeck)
}


def names() -> list[str]:
    """Names of the registered systems."""
    return list(_REGISTRY)


def get(name: str, **params: float) -> System:
    """The system ``name`` with its parameters (unknown names raise ValueError)."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown system {name!r} (available: {', '.join(_REGISTRY)})")
    return _REGISTRY[name](**params)


__all__ = [
    "Lorenz", "OrnsteinUhlenbeck", "Pendulum", "ReactionDiffusion", "Robertson", "System", "facts", "get",
    "names", "time_grid",
]
