"""``physdyn example``: run a bundled example end to end (data, training, evaluation, report)."""

from __future__ import annotations

import argparse
import sys

from . import UsageError

EPILOG = """\
examples:
  physdyn example --list
  physdyn example pendulum-hnn
  physdyn example lorenz-node --out runs/lorenz-demo --max-epochs 20 --force

Each example trains on the bundled data set (datasets/), or on data simulated on the spot where that file
is absent, with a small budget (a minute or two on a laptop), evaluates on the held-out test trajectories
and writes OUT/run (the RUN_DIR), OUT/report and, for simulated data, OUT/data.h5. The same examples are
scripts in examples/; docs/evaluation.md describes the report.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "example",
        help="run a bundled example end to end",
        description="Run a bundled example end to end: train a model on a reference data set,\n"
        "evaluate it on held-out trajectories, write the run and the report.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("name", nargs="?", metavar="NAME", help="example name (see --list)")
    p.add_argument("--list", action="store_true", help="list the examples and exit")
    p.add_argument("--out", metavar="OUT", help="output folder (default runs/NAME)")
    p.add_argument("--data", metavar="DATA.h5", help="train and test on this file instead of the bundled one")
    p.add_argument("--max-epochs", type=int, metavar="E", help="training epochs (default: the example's)")
    p.add_argument("--force", action="store_true",
                   help="replace the outputs of an earlier example in OUT (only what physdyn wrote there)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..data import DataFormatError
    from ..evaluation import EXAMPLES, run_example, summary

    if args.list:
        width = max(len(name) for name in EXAMPLES)
        for name, example in EXAMPLES.items():
            print(f"{name.ljust(width)}  {example.description}")
        return 0
    if args.name is None:
        raise UsageError(f"give an example NAME or --list (examples: {', '.join(EXAMPLES)})")
    if args.name not in EXAMPLES:
        raise UsageError(f"unknown example {args.name!r} (available: {', '.join(EXAMPLES)})")
    if args.max_epochs is not None and args.max_epochs < 1:
        raise UsageError(f"--max-epochs {args.max_epochs}: must be at least 1")
    try:
        report = run_example(args.name, args.out, data=args.data, force=args.force,
                             max_epochs=args.max_epochs, log=lambda line: print(line, file=sys.stderr))
    except (FileExistsError, DataFormatError) as err:
        raise UsageError(str(err)) from None
    print(summary(report.metrics))
    print(f"report: {report.path}")
    return 0
