"""Writing a report folder all-or-nothing: metrics.json, predictions.h5 and the PNG plots."""

from __future__ import annotations

import json
import math
import shutil
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._results import Report


def check_report_dir(out_dir: str | Path, force: bool = False,
                     keep: Iterable[str | Path] = ()) -> Path:
    """``out_dir`` as a Path if a report may be written there; FileExistsError (one line) if not.

    A report may go into a folder that does not exist or is empty. An existing non-empty folder is replaced
    only with ``force`` and only if it holds an earlier physdyn report and nothing else (see
    :func:`foreign_in_report`). Never: a file of that name, the current folder or one that contains it,
    or a folder that is or contains one of ``keep`` (the inputs: the run folder, the data file).
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out}: exists and is not a folder")
    if not out.exists():
        return out
    where = out.resolve()
    here = Path.cwd().resolve()
    if where == here or where in here.parents:
        raise FileExistsError(f"{out}: is the current folder or contains it; "
                              "a report needs a folder of its own")
    for path in keep:
        inside = Path(path).resolve()
        if where == inside or where in inside.parents:
            raise FileExistsError(f"{out}: is or holds {path}, an input of this evaluation; "
                                  "a report needs a folder of its own")
    if not any(out.iterdir()):
        return out
    foreign = foreign_in_report(out)
    if foreign is not None:
        raise FileExistsError(f"{out}: folder is not empty and is not a physdyn report ({foreign}); "
                              "--force replaces only an earlier report: choose another folder")
    if not force:
        raise FileExistsError(f"{out}: folder is not empty: it holds an earlier report "
                              "(--force or force=True replaces it)")
    return out


def foreign_in_report(folder: str | Path) -> str | None:
    """What in ``folder`` is not part of a physdyn report, or None if it holds a report and nothing else.

    A report is recognised by its metrics.json, whose ``files`` lists every file the report wrote; any other
    entry (a file it does not list, a subfolder, a link) was put there by someone else.
    """
    folder = Path(folder)
    try:
        files = json.loads((folder / "metrics.json").read_text()).get("files")
    except (OSError, UnicodeDecodeError, ValueError, AttributeError):
        files = None
    entries = sorted(folder.iterdir())
    if entries and not isinstance(files, list):
        return f"{entries[0].name}, and no metrics.json listing a report's files"
    for entry in entries:
        if entry.name not in files or entry.is_symlink() or not entry.is_file():
            return entry.name
    return None


def json_safe(value: Any) -> Any:
    """``value`` with NaN and ±Inf replaced by None and tuples by lists, so that it is strict JSON."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_report(report: Report, out_dir: str | Path, force: bool = False, plots: bool = True,
                 keep: Iterable[str | Path] = ()) -> Path:
    """Write ``report`` into ``out_dir``: metrics.json, predictions.h5, the plots; returns the folder.

    Everything is written into a temporary folder next to ``out_dir`` and renamed into place at the end,
    so an interrupted or failed run leaves either the old folder or the complete new one, never a mixture.
    ``force`` and ``keep``: as in :func:`check_report_dir`.
    """
    from ..data import save
    from ._plots import write_plots

    keep = list(keep)
    out = check_report_dir(out_dir, force, keep)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = _fresh_name(out, "tmp")
    tmp.mkdir()  # not tempfile.mkdtemp: the report folder should follow the umask, not be private
    try:
        save(report.predictions, tmp / "predictions.h5")
        notes = write_plots(report, tmp) if plots else ["plots not drawn (plots=False)"]
        metrics = dict(report.metrics)
        metrics["notes"] = list(metrics.get("notes", [])) + notes
        metrics["files"] = sorted(p.name for p in tmp.iterdir()) + ["metrics.json"]
        text = json.dumps(json_safe(metrics), indent=2, allow_nan=False)
        (tmp / "metrics.json").write_text(text + "\n")
        _replace(tmp, out, force, keep)
        report.metrics = metrics
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    report.path = out
    return out


def _replace(new: Path, out: Path, force: bool, keep: list[str | Path]) -> None:
    """Rename the finished folder ``new`` to ``out``, moving an existing ``out`` aside first."""
    check_report_dir(out, force, keep)  # again: something may have appeared while the report was computed
    if not out.exists():
        new.rename(out)
        return
    old = _fresh_name(out, "old")
    out.rename(old)
    try:
        new.rename(out)
    except BaseException:
        old.rename(out)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _fresh_name(out: Path, suffix: str) -> Path:
    """An unused hidden name next to ``out``."""
    return out.parent / f".{out.name}.{uuid.uuid4().hex[:12]}.{suffix}"


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:.4g}"


def summary(metrics: dict[str, Any]) -> str:
    """A few lines for the terminal: the headline numbers of ``metrics`` (the content of metrics.json)."""
    m = metrics
    span = m["times"][-1] if m.get("times") else None
    rows = [("model", f"{m.get('model')} on {m.get('data') or 'data'} ({m.get('system')})"),
            ("trajectories", f"{m.get('n_trajectories')}, horizon {m.get('horizon')} steps = "
                             f"{_fmt(span)} time units"),
            ("rmse / nrmse at the horizon", f"{_fmt(m.get('rmse_final'))} / {_fmt(m.get('nrmse_final'))}")]
    if m.get("context_error"):
        rows.append(("context rmse / nrmse", f"{_fmt(m['context_error']['rmse'])} / "
                                            f"{_fmt(m['context_error']['nrmse'])} (first {m.get('context')} "
                                            "samples, reconstructed)"))
    if m.get("forecast") and m.get("context", 1) > 1:
        ahead = m["forecast"]
        rows.append(("forecast rmse / nrmse", f"{_fmt(ahead['rmse'])} / {_fmt(ahead['nrmse'])}"))
    if m.get("interval_coverage"):
        cover = m["interval_coverage"]
        text = f"forecast {_fmt(cover.get('forecast'))}"
        if cover.get("context") is not None:
            text += f", context {_fmt(cover['context'])}"
        rows.append(("truth inside mean ± 2 std", text + f" (of {m.get('samples')} samples)"))
    vpt = f"{_fmt(m.get('vpt'))} time units (median)"
    if m.get("vpt_lyapunov") is not None:
        vpt += f" = {_fmt(m['vpt_lyapunov'])} Lyapunov times"
    rows.append(("valid prediction time", vpt))
    if "field" in m:
        f = m["field"]
        rows.append(("PDEBench nRMSE mean / final",
                     f"{_fmt(f['nrmse']['mean'])} / {_fmt(f['nrmse']['final'])} "
                     f"(cRMSE {_fmt(f['crmse']['mean'])}, bRMSE {_fmt(f['brmse']['mean'])})"))
        if "mean_balance" in f:
            rows.append(("mean-balance residual", "model " + ", ".join(map(_fmt, f["mean_balance"]["model"]))
                         + "; true " + ", ".join(map(_fmt, f["mean_balance"]["true"]))))
    if "energy_drift" in m:
        drift = m["energy_drift"]
        rows.append((f"energy drift ({m.get('energy_source')} H)",
                     f"max {_fmt(drift['max'])}, final {_fmt(drift['final'])} (relative)"))
    if "energy_error" in m:
        rows.append(("energy error", _fmt(m["energy_error"])))
    if "mass_error" in m:
        rows.append(("mass error", f"max {_fmt(m['mass_error']['max'])}"))
    if "positivity_violation" in m:
        pos = m["positivity_violation"]
        rows.append(("positivity violation", f"depth {_fmt(pos['depth'])}"
                     + (f", {pos['count']} negative values" if "count" in pos else "")))
    if "species_error" in m:
        rows.append(("error per species / its range", ", ".join(f"{name} {_fmt(v)}"
                                                               for name, v in m["species_error"].items())))
    for group, values in m.get("learned_parameters", {}).items():
        rows.append((f"learned {group.replace('_', ' ')}", ", ".join(f"{name}: {_fmt(v)}"
                                                                   for name, v in values.items())))
    if "lyapunov_max_model" in m or "lyapunov_max_true" in m:
        learned = _fmt(m["lyapunov_max_model"]) if "lyapunov_max_model" in m else "not computed"
        rows.append(("largest Lyapunov exponent", f"model {learned}, true {_fmt(m.get('lyapunov_max_true'))} "
                     f"({m.get('lyapunov_max_true_source', '')})"))
    if "attractor" in m:
        w = m["attractor"]["wasserstein"]
        rows.append(("attractor W1 per coordinate", ", ".join(_fmt(v) for v in w)))
    if "probabilistic" in m:
        f = m["probabilistic"]["forecast"]
        rows.append((f"samples ({m.get('samples')}): crps / energy score", f"{_fmt(f['crps'])} / "
                     f"{_fmt(f['energy_score'])} (mean over the forecast steps)"))
        rows.append(("coverage of the 50 % / 90 % intervals", f"{_fmt(f['coverage_50'])} / "
                     f"{_fmt(f['coverage_90'])}"))
    if m.get("diverged"):
        rows.append(("diverged rollouts", str(m["diverged"])))
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"  {name.ljust(width)}  {value}" for name, value in rows)
