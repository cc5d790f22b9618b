"""Judge a model on a dataset: roll it out, compute metrics, write metrics.json, plots and predictions.h5.

``evaluate(model, data, horizon, ...)`` works for a learned model and a reference system alike.
"""

from ._evaluate import LYAPUNOV_OPTIONS, VPT_THRESHOLD, Report, evaluate, reference_system, rollout
from ._examples import EXAMPLES, run_example
from ._report import check_report_dir, foreign_in_report, json_safe, summary, write_report

__all__ = [
    "EXAMPLES",
    "LYAPUNOV_OPTIONS",
    "VPT_THRESHOLD",
    "Report",
    "check_report_dir",
    "evaluate",
    "foreign_in_report",
    "json_safe",
    "reference_system",
    "rollout",
    "run_example",
    "summary",
    "write_report",
]
