"""Judge a model on a dataset: predict, compute metrics, write metrics.json, plots and predictions.h5.

``evaluate(model, data, horizon, context=..., samples=...)`` works for every learned model family and for a
reference system alike; ``forecast`` is the prediction step on its own.
"""

from ._evaluate import LYAPUNOV_OPTIONS, VPT_THRESHOLD, evaluate, forecast, reference_system
from ._examples import EXAMPLES, run_example
from ._report import check_report_dir, foreign_in_report, json_safe, summary, write_report
from ._results import Report

__all__ = [
    "EXAMPLES",
    "LYAPUNOV_OPTIONS",
    "VPT_THRESHOLD",
    "Report",
    "check_report_dir",
    "evaluate",
    "forecast",
    "foreign_in_report",
    "json_safe",
    "reference_system",
    "run_example",
    "summary",
    "write_report",
]
