"""Integration: wrappers over torchdiffeq and torchsde, and the integrators those libraries lack."""

from ._ode import VectorField, odeint, sdeint

__all__ = ["VectorField", "odeint", "sdeint"]
