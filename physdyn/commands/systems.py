"""``physdyn systems``: the reference systems, their state shapes, parameters and invariants."""

from __future__ import annotations

import argparse
import json
from typing import Any

EPILOG = """\
examples:
  physdyn systems
  physdyn systems --json

Parameters are set with `physdyn simulate SYSTEM --set KEY=VALUE` or `physdyn.systems.get(SYSTEM, KEY=VALUE)`.
"""

COLUMNS = ("NAME", "STATE", "PARAMETERS (defaults)", "INVARIANTS", "DESCRIPTION")
#: the keys of a parameter's entry in facts.json that state its valid range
RANGE_KEYS = ("minimum", "exclusive_minimum", "maximum", "exclusive_maximum", "integer")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "systems",
        help="list the reference systems",
        description="List the reference systems: name, state shape, parameters with their defaults,\n"
        "conserved quantities or constraints, and a one-line description.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--json", action="store_true",
                   help="print a JSON list instead of a table (adds each system's simulation defaults)")
    p.set_defaults(run=run)


def describe() -> list[dict[str, Any]]:
    """One record per registered system, at its default parameters.

    Keys: name, state_shape, params (name -> default), param_ranges (name -> the bounds of its valid
    range, as in facts.json: minimum, exclusive_minimum, maximum, exclusive_maximum, integer; {} for any
    finite number), invariants, description, simulate_defaults (n_trajectories, t_end, dt used by
    ``simulate`` when not given, and how the output times follow from them).
    """
    from .. import systems

    records = []
    for name in systems.names():
        system = systems.get(name)
        records.append({
            "name": name,
            "state_shape": list(system.state_shape),
            "params": dict(system.params),
            "param_ranges": {key: {k: v for k, v in spec.items() if k in RANGE_KEYS}
                             for key, spec in system.facts["params"].items()},
            "invariants": list(system.invariants),
            "description": system.facts.get("description", ""),
            "simulate_defaults": dict(system.facts.get("simulate", {})),
        })
    return records


def run(args: argparse.Namespace) -> int:
    records = describe()
    if args.json:
        print(json.dumps(records, indent=2))
        return 0
    rows = [COLUMNS] + [
        (
            r["name"],
            str(tuple(r["state_shape"])),
            " ".join(f"{k}={v:g}" for k, v in r["params"].items()),
            ", ".join(r["invariants"]) or "-",
            r["description"],
        )
        for r in records
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS) - 1)]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[-1])
    return 0
