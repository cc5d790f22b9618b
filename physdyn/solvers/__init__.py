"""Integration: wrappers over torchdiffeq and torchsde, and the integrators those libraries lack."""

from ._explicit import rk_integrate
from ._ode import VectorField, odeint, sdeint
from ._stiff import stiff_integrate
from ._symplectic import symplectic_integrate

__all__ = ["VectorField", "odeint", "rk_integrate", "sdeint", "stiff_integrate", "symplectic_integrate"]
