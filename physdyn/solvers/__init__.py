"""Integration: wrappers over torchdiffeq and torchsde, and the integrators those libraries lack."""

from ._explicit import rk_integrate
from ._ode import VectorField, odeint, sdeint

__all__ = ["VectorField", "odeint", "rk_integrate", "sdeint"]
