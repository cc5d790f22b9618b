"""``physdyn models``: the learned models and their hyperparameters with defaults."""

from __future__ import annotations

import argparse
import json
from typing import Any

EPILOG = """\
examples:
  physdyn models
  physdyn models --json

Hyperparameters are set in the model section of a config or with `physdyn fit ... --set model.KEY=VALUE`.
A default of None (state_dim) is filled in from the data by `physdyn fit`.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "models",
        help="list the learned models",
        description="List the learned models (for `physdyn fit --model NAME`) and their hyperparameters.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    p.set_defaults(run=run)


def describe() -> list[dict[str, Any]]:
    """One record per registered model: its name and its hyperparameters with their defaults."""
    from .. import models

    return [{"name": name, "defaults": models.defaults(name)} for name in models.names()]


def run(args: argparse.Namespace) -> int:
    records = describe()
    if args.json:
        print(json.dumps(records, indent=2))
        return 0
    width = max(len(r["name"]) for r in records)
    print(f"{'NAME'.ljust(width)}  HYPERPARAMETERS (defaults)")
    for r in records:
        print(f"{r['name'].ljust(width)}  " + " ".join(f"{k}={v}" for k, v in r["defaults"].items()))
    return 0
