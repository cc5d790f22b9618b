"""Metrics of rollouts and predictions: ``metric(pred, true, *, t=None, mask=None, **options)``, (N, T, *S).

Rollout metrics (``rmse``, ``nrmse``, ``normalized_error``, ``valid_prediction_time``) take ``mask=`` (True
where the truth is observed); physics metrics take the energy or weights they judge; statistical metrics
pool the visited states; probabilistic scores (``crps_ensemble``, ``energy_score``, ``interval_coverage``,
``rank_histogram``, ``energy_distance``, ``spread_coverage``) judge K samples (N, K, T, *S). Dynamical
invariants of a system or a model, ``largest_lyapunov_exponent(obj, x0, ...)`` and ``lyapunov_spectrum``,
take the object itself. Field metrics as PDEBench defines them (``pdebench_rmse``; ``pdebench_nrmse``,
PDEBench's relative nRMSE, kept apart from physdyn's σ-normalised ``nrmse``; ``crmse``, ``brmse``,
``frmse``) take fields (N, T, C, *space) and return (T, C).
"""

from ._fields import (
    BANDS,
    brmse,
    crmse,
    field_metrics,
    frmse,
    frmse_shells,
    mean_balance_residual,
    pdebench_nrmse,
    pdebench_rmse,
)
from ._intervals import spread_coverage
from ._lyapunov import largest_lyapunov_exponent, lyapunov_spectrum
from ._physics import energies, energy_drift, energy_error, mass_error, positivity_violation
from ._probabilistic import (
    crps_ensemble,
    crps_gaussian,
    energy_distance,
    energy_score,
    interval_bounds,
    interval_coverage,
    rank_histogram,
    ranks,
)
from ._rollout import (
    attractor_scale,
    horizon_reached,
    lyapunov_times,
    normalized_error,
    nrmse,
    rmse,
    valid_prediction_time,
)
from ._statistics import attractor_statistics, wasserstein_1d

__all__ = [
    "BANDS",
    "brmse",
    "crmse",
    "field_metrics",
    "frmse",
    "frmse_shells",
    "mean_balance_residual",
    "pdebench_nrmse",
    "pdebench_rmse",
    "attractor_scale",
    "attractor_statistics",
    "crps_ensemble",
    "crps_gaussian",
    "energy_distance",
    "energies",
    "energy_drift",
    "energy_error",
    "energy_score",
    "horizon_reached",
    "interval_bounds",
    "interval_coverage",
    "largest_lyapunov_exponent",
    "lyapunov_spectrum",
    "lyapunov_times",
    "mass_error",
    "normalized_error",
    "nrmse",
    "positivity_violation",
    "rank_histogram",
    "ranks",
    "rmse",
    "spread_coverage",
    "valid_prediction_time",
    "wasserstein_1d",
]
