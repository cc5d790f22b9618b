"""``physdyn evaluate``: roll a trained model out on trajectories and write a report folder."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import UsageError

EPILOG = """\
examples:
  physdyn evaluate runs/lorenz --data lorenz_test.h5 --horizon 500
  physdyn evaluate runs/lorenz --data lorenz_test.h5 --horizon 500 --out reports/lorenz --force
  physdyn evaluate runs/theirs --data theirs.h5 --states grp/x --times grp/time --layout TND --horizon 100
  physdyn evaluate runs/latent --data test.h5 --horizon 99 --context 50 --samples 32

Each trajectory is predicted for STEPS steps on its own times from its first N samples (--context, default
1: a rollout from the first state) and compared with the data. Given the run's own training file, only
the run's test trajectories (split.json) are used.
REPORT_DIR (default RUN_DIR/report): metrics.json, predictions.h5 (the rollouts, format v1, STEPS + 1
times) and PNG plots; written all-or-nothing. Every key of metrics.json: docs/evaluation.md.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "evaluate",
        help="roll a trained model out on trajectories and write metrics and plots",
        description="Roll the model of RUN_DIR out from the first state of each trajectory in TEST.h5 and\n"
        "judge it: error against horizon, valid prediction time, energy drift and other conserved\n"
        "quantities, and for chaotic systems the Lyapunov exponent and attractor of the learned model.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="run folder written by `physdyn fit`")
    p.add_argument("--data", required=True, metavar="TEST.h5", help="trajectories to compare with")
    p.add_argument("--horizon", required=True, type=int, metavar="STEPS",
                   help="output steps to roll out after the initial state (at most the data's length - 1)")
    p.add_argument("--out", metavar="REPORT_DIR", help="report folder (default RUN_DIR/report)")
    p.add_argument("--states", metavar="KEY", help="dataset of the states (default: the run's data.states)")
    p.add_argument("--times", metavar="KEY", help="dataset of the times (default: the run's data.times)")
    p.add_argument("--layout", metavar="L", help="axis order NTD, TND, TD or a field layout such as THWC "
                                                    "(default: the run's data.layout)")
    p.add_argument("--mask", metavar="KEY",
                   help="dataset of the mask, True where observed (default: the run's data.mask)")
    p.add_argument("--missing", choices=("error", "nan"),
                   help="a NaN in the states is an error or an unobserved entry (default: the run's "
                   "data.missing)")
    p.add_argument("--context", type=int, default=1, metavar="N",
                   help="samples of each trajectory given to the model; forecasts start at the last of them "
                   "(default 1)")
    p.add_argument("--samples", type=int, default=1, metavar="K",
                   help="predictions per trajectory, for stochastic models (default 1)")
    p.add_argument("--checkpoint", default="best", metavar="C",
                   help="best (default), last, or a checkpoint file")
    p.add_argument("--no-lyapunov", action="store_true",
                   help="skip the learned model's Lyapunov exponent (the slowest metric)")
    p.add_argument("--force", action="store_true",
                   help="replace an earlier report in REPORT_DIR (never a folder holding anything else)")
    p.set_defaults(run=run)


def check_run_dir(run_dir: Path, checkpoint: str) -> None:
    """UsageError unless ``run_dir`` is a folder with the checkpoint asked for."""
    if not run_dir.is_dir():
        raise UsageError(f"{run_dir}: no such run folder")
    if checkpoint in ("best", "last"):
        found = [name for name in ("best.ckpt", "last.ckpt") if (run_dir / "checkpoints" / name).is_file()]
        if not found:
            raise UsageError(f"{run_dir}: no checkpoint (checkpoints/best.ckpt or last.ckpt); "
                             "is this a folder written by `physdyn fit`?")
    elif not Path(checkpoint).is_file():
        raise UsageError(f"--checkpoint {checkpoint}: no such file")


def stored_split(run_dir: Path, config: dict, data_path: Path) -> dict | None:
    """The run's split (split.json) when ``data_path`` is the file it was trained on, else None."""
    trained_on = config.get("data", {}).get("path")
    split_file = run_dir / "split.json"
    if not trained_on or not split_file.is_file() or Path(trained_on).resolve() != data_path.resolve():
        return None
    try:
        split = json.loads(split_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise UsageError(f"{split_file}: not valid JSON; pass a separate test file") from None
    if not isinstance(split, dict):
        raise UsageError(f"{split_file}: not a split (a JSON object); pass a separate test file")
    return split


def run(args: argparse.Namespace) -> int:
    from ..data import load, select_split, split_segments
    from ..evaluation import check_report_dir, evaluate, reference_system, summary
    from ..training import load_run

    run_dir = Path(args.run_dir)
    check_run_dir(run_dir, args.checkpoint)
    if args.horizon < 1:
        raise UsageError(f"--horizon {args.horizon}: must be at least 1 (steps after the initial state)")
    if args.samples < 1:
        raise UsageError(f"--samples {args.samples}: must be at least 1")
    if not 1 <= args.context <= args.horizon:
        raise UsageError(f"--context {args.context}: must be from 1 to --horizon ({args.horizon})")
    out = Path(args.out) if args.out is not None else run_dir / "report"
    data_path = Path(args.data)
    try:
        check_report_dir(out, args.force, keep=(run_dir, data_path))
    except FileExistsError as err:
        raise UsageError(f"--out {err}") from None
    try:
        model = load_run(run_dir, args.checkpoint)
    except (ValueError, OSError, RuntimeError) as err:
        raise UsageError(f"{run_dir}: cannot load the trained model ({' '.join(str(err).split())})") from None

    data_cfg = model.config.get("data", {})
    data = load(data_path, states=args.states or data_cfg.get("states", "states"),
                times=args.times or data_cfg.get("times", "t"),
                layout=args.layout or data_cfg.get("layout", "NTD"),
                mask=args.mask or data_cfg.get("mask", "mask"),
                missing=args.missing or data_cfg.get("missing", "error"))
    split = stored_split(run_dir, model.config, data_path)
    if split is not None:
        try:
            empty = not split_segments(split, data.n_trajectories, data.n_times)["test"]
        except (ValueError, KeyError, TypeError):
            empty = False  # select_split below names the problem
        if empty:
            raise UsageError(f"{data_path}: this is the run's training file and its test split is empty; "
                             "pass a separate test file")
        try:
            data = select_split(data, split, "test")
        except (ValueError, KeyError, TypeError, IndexError) as err:
            raise UsageError(f"{run_dir / 'split.json'}: its test split does not fit {data_path} ({err}; "
                             "changed since training?); pass a separate test file") from None
        where = (f"samples {data.meta['samples'][0]} to {data.meta['samples'][1] - 1} of its "
                 f"{len(data.meta['indices'])} trajectories" if "samples" in data.meta
                 else f"its {len(data.meta['indices'])} test trajectories")
        print(f"{data_path} is the run's training file: evaluating {where} (split.json)", file=sys.stderr)
    if data.state_shape != model.state_shape:
        raise UsageError(f"{data_path}: states of shape {data.state_shape}, but the model of {run_dir} was "
                         f"trained on states of shape {model.state_shape}")
    if args.horizon > data.n_times - 1:
        raise UsageError(f"--horizon {args.horizon}: longer than the data: the trajectories in {data_path} "
                         f"have {data.n_times} times, i.e. {data.n_times - 1} steps after the initial state")
    try:
        report = evaluate(model, data, args.horizon, context=args.context, system=reference_system(data),
                          out_dir=out, force=args.force, samples=args.samples, lyapunov=not args.no_lyapunov)
    except FileExistsError as err:
        raise UsageError(f"--out {err}") from None
    except ValueError as err:  # data the model cannot be judged on (e.g. an unobserved start state)
        raise UsageError(f"{data_path}: {err}") from None
    print(summary(report.metrics))
    print(f"report: {report.path}")
    return 0
