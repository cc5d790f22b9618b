"""``physdyn models``: the learned models and their hyperparameters with defaults."""

from __future__ import annotations

import argparse
import json
from typing import Any

EPILOG = """\
examples:
  physdyn models
  physdyn models --json

Hyperparameters are set in the model section of a config or with `physdyn fit ... --set model.KEY=VALUE`,
the training objective's options with --set objective.KEY=VALUE. The state shape comes from the data.
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
    """One record per registered model: name, hyperparameters with defaults, capabilities, objective."""
    from .. import models
    from ..training import objective_class

    records = []
    for name in models.names():
        cls = models.model_class(name)
        records.append({"name": name, "defaults": models.defaults(name),
                        "capabilities": sorted(cls.capabilities), "data": cls.data,
                        "normalization": cls.normalization,
                        "objective": {"name": cls.objective,
                                      "defaults": objective_class(cls.objective).defaults()}})
    return records


def run(args: argparse.Namespace) -> int:
    records = describe()
    if args.json:
        print(json.dumps(records, indent=2))
        return 0
    width = max(len(r["name"]) for r in records)
    for r in records:
        print(f"{r['name'].ljust(width)}  " + " ".join(f"{k}={v}" for k, v in r["defaults"].items()))
        objective = r["objective"]
        options = " ".join(f"{k}={v}" for k, v in objective["defaults"].items())
        print(f"{''.ljust(width)}  objective {objective['name']}: {options}")
        offers = ", ".join(r["capabilities"]) or "predictions"
        print(f"{''.ljust(width)}  offers {offers}; trains on {r['data']}")
    return 0
