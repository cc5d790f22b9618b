"""Metrics with one signature, ``metric(pred, true, *, t=None, **options)``, pred/true of shape (N, T, *S).

``SUITE`` maps a name to each rollout, physics and statistical metric. Dynamical invariants of a system or a
model, ``largest_lyapunov_exponent(obj, x0, ...)`` and ``lyapunov_spectrum``, take the object itself.
"""

from ._lyapunov import largest_lyapunov_exponent, lyapunov_spectrum
from ._physics import energy_drift, energy_error, mass_error, positivity_violation
from ._rollout import attractor_scale, lyapunov_times, normalized_error, nrmse, rmse, valid_prediction_time
from ._statistics import attractor_statistics, wasserstein_1d

#: The ready suite: name -> metric function (all take ``(pred, true, *, t=None, **options)``).
SUITE = {
    "rmse": rmse,
    "nrmse": nrmse,
    "vpt": valid_prediction_time,
    "energy_drift": energy_drift,
    "energy_error": energy_error,
    "mass_error": mass_error,
    "positivity_violation": positivity_violation,
    "attractor_statistics": attractor_statistics,
}

__all__ = [
    "SUITE",
    "attractor_scale",
    "attractor_statistics",
    "energy_drift",
    "energy_error",
    "largest_lyapunov_exponent",
    "lyapunov_spectrum",
    "lyapunov_times",
    "mass_error",
    "normalized_error",
    "nrmse",
    "positivity_violation",
    "rmse",
    "valid_prediction_time",
    "wasserstein_1d",
]
