"""``physdyn fit``: train a model on trajectories and write a run folder (RUN_DIR)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from . import UsageError

EPILOG = """\
examples:
  physdyn fit lorenz.h5 --model node --out runs/lorenz
  physdyn fit pendulum.h5 --model hnn --out runs/hnn --max-epochs 50 --set training.lr=3e-3
  physdyn fit theirs.h5 --states grp/x --times grp/time --layout TND --model node --out runs/theirs
  physdyn fit pdebench.h5 --states "*/data" --times "*/grid/t" --layout THWC --model unet --out runs/pde
  physdyn fit --config runs/lorenz/config.yaml --out runs/lorenz-again     # rerun a run
  physdyn fit --out runs/lorenz --resume --max-epochs 200                   # continue a run
  physdyn fit lorenz.h5 --model node --out runs/quick --max-time 00:05:00   # at most 5 minutes
  physdyn fit lorenz.h5 --model node --out runs/ddp --devices 2 --strategy ddp

Settings come from the defaults, then --config FILE.yaml (a relative data.path in it is relative to the
file), then the options above, then --set SECTION.KEY=VALUE; with --resume, RUN_DIR/config.yaml
comes first.
RUN_DIR: config.yaml (resolved, enough to rerun), normalization.json, split.json,
checkpoints/{best,last}.ckpt, logs/metrics.csv. Every setting: docs/training.md.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "fit",
        help="train a model on trajectories and write a run folder",
        description="Train a learned model (Lightning) on trajectories from an HDF5 file: split by\n"
        "trajectory (or by time, for one long recording), normalise with training statistics, train\n"
        "with the recipe the data calls for (printed first, with its reasons), keep the best and the\n"
        "last checkpoint.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("data", nargs="?", metavar="DATA.h5",
                   help="trajectory file: physdyn format, or any layout with --states/--times/--layout "
                   "(may come from --config instead)")
    p.add_argument("--model", metavar="MODEL",
                   help="model name: node, hnn, ... (`physdyn models` lists them)")
    p.add_argument("--out", required=True, metavar="RUN_DIR",
                   help="run folder (new or empty, unless --resume)")
    p.add_argument("--max-epochs", type=int, metavar="E",
                   help="number of training epochs (default: the recipe's, for a budget of optimiser steps)")
    p.add_argument("--max-time", metavar="HH:MM:SS",
                   help="stop training after this wall time (DD:HH:MM:SS also; training.max_time)")
    p.add_argument("--config", metavar="FILE.yaml",
                   help="settings file with sections data, model, objective, training")
    p.add_argument("--states", metavar="KEY", help="dataset path of the states (default: states)")
    p.add_argument("--times", metavar="KEY", help="dataset path of the times (default: t)")
    p.add_argument("--layout", metavar="L",
                   help="axis order of the states: NTD (default), TND, TD, or a field layout such as THWC")
    p.add_argument("--mask", metavar="KEY",
                   help="dataset of the mask, True where observed, in the states' layout (default: mask, "
                   "when the file has one)")
    p.add_argument("--missing", choices=("error", "nan"),
                   help="a NaN in the states is an error (default) or an unobserved entry (nan)")
    p.add_argument("--devices", metavar="D", help="number of processes/devices (default 1), or auto")
    p.add_argument("--strategy", metavar="S", help="Lightning strategy, e.g. ddp (default: auto)")
    p.add_argument("--seed", type=int, metavar="S",
                   help="seed of the split, the weights and the batches (default 0)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in RUN_DIR from its last checkpoint")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", dest="assignments",
                   help="set any config key, e.g. --set training.lr=3e-3 --set model.width=64 (repeatable)")
    p.set_defaults(run=run)


def build_config(args: argparse.Namespace) -> dict[str, Any]:
    """The config the command line asks for: --config file, then options, then --set (ValueError if bad)."""
    from ..training import load_config, merge, parse_assignments

    config: dict[str, Any] = {}
    if args.config is not None:
        config = load_config(args.config)
        path = config.get("data", {}).get("path") if isinstance(config.get("data"), dict) else None
        if isinstance(path, str) and not Path(path).is_absolute():
            config["data"]["path"] = str(Path(args.config).parent / path)
    devices = args.devices
    if devices is not None and devices.isdigit():
        devices = int(devices)
    options = {
        "data": {"path": args.data, "states": args.states, "times": args.times, "layout": args.layout,
                 "mask": args.mask, "missing": args.missing},
        "model": {"name": args.model},
        "training": {"max_epochs": args.max_epochs, "max_time": args.max_time, "devices": devices,
                     "strategy": args.strategy, "seed": args.seed},
    }
    given = {section: {k: v for k, v in values.items() if v is not None}
             for section, values in options.items()}
    config = merge(config, {section: values for section, values in given.items() if values})
    return merge(config, parse_assignments(args.assignments))


def interrupted(run_dir: Path) -> str:
    """One line for a run stopped by Ctrl-C: where it can be resumed from, if anywhere."""
    last = run_dir / "checkpoints" / "last.ckpt"
    if last.is_file():
        return f"interrupted; the run can continue from {last} (physdyn fit --out {run_dir} --resume)"
    return (f"interrupted before the first epoch ended: {run_dir} holds no checkpoint to resume from "
            "(delete it to start again)")


def run(args: argparse.Namespace) -> int:
    from ..training import prepare

    try:
        plan = prepare(build_config(args), args.out, resume=args.resume)
    except ValueError as err:  # physdyn.data.DataFormatError included
        raise UsageError(str(err)) from None
    if plan.rank == 0:
        for line in plan.notes:
            print(line, file=sys.stderr)
    try:
        run_dir = plan.run()
    except KeyboardInterrupt:
        if plan.rank == 0:
            print(f"physdyn fit: {interrupted(plan.run_dir)}", file=sys.stderr)
        return 130
    if plan.rank == 0:
        ckpt = plan.trainer.checkpoint_callback
        best = "" if ckpt is None or ckpt.best_model_score is None else (
            f", best {ckpt.monitor} {float(ckpt.best_model_score):.4g}")
        print(f"wrote {run_dir}: {plan.config['model']['name']}, {plan.trainer.current_epoch} epochs{best}")
    return 0
