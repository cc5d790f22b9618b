"""Integration: wrappers over torchdiffeq and torchsde, and the integrators those libraries lack.

``integrate(f, x0, t, method=...)`` is the one entry point for deterministic integration; the functions
behind it (``rk_integrate``, ``odeint``, ``symplectic_integrate``, ``stiff_integrate``) stay public for
their own options. ``sdeint`` solves torchsde SDEs.
"""

from ._explicit import rk_integrate
from ._integrate import METHODS, TORCHDIFFEQ_METHODS, integrate
from ._ode import VectorField, odeint, sdeint
from ._stiff import stiff_integrate
from ._symplectic import symplectic_integrate

__all__ = [
    "METHODS",
    "TORCHDIFFEQ_METHODS",
    "VectorField",
    "integrate",
    "odeint",
    "rk_integrate",
    "sdeint",
    "stiff_integrate",
    "symplectic_integrate",
]
