"""``physdyn simulate``: simulate a reference system and write the trajectories in format v1."""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

from . import UsageError

EPILOG = """\
examples:
  physdyn simulate lorenz --out lorenz.h5
  physdyn simulate lorenz --out lorenz.h5 --n-traj 64 --t-end 50 --dt 0.01 --seed 1
  physdyn simulate lorenz --out rho35.h5 --set rho=35 --set sigma=12
  physdyn simulate lorenz --out noisy.h5 --noise 0.5 --noise-type multiplicative
  physdyn simulate pendulum --out pendulum.h5 --set L=2 --noise 0.1 --force

Unset options take the system's defaults (`physdyn systems --json` lists them).
The same arguments and seed give the same file, byte for byte. The file is written under a temporary
name and renamed, so an interrupted run leaves nothing. Format: docs/data-format.md.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "simulate",
        help="simulate a reference system and write an HDF5 file",
        description="Simulate trajectories of a reference system from random initial states and write them\n"
        "(times, states, exact derivatives, parameters) to an HDF5 file in physdyn format v1.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("system", metavar="SYSTEM", help="pendulum, lorenz, reaction_diffusion or robertson "
                   "(`physdyn systems` lists them with their parameters)")
    p.add_argument("--out", required=True, metavar="FILE.h5", help="output file (its folder must exist)")
    p.add_argument("--n-traj", type=int, metavar="N", help="number of trajectories (random initial states)")
    p.add_argument("--t-end", type=float, metavar="T", help="final output time")
    p.add_argument("--dt", type=float, metavar="DT",
                   help="output time step: the times are 0, DT, 2 DT, ..., T, or the system's own grid where "
                   "`physdyn systems --json` gives another (simulate_defaults.times)")
    p.add_argument("--seed", type=int, default=0, metavar="S",
                   help="seed (an integer >= 0) of the initial states and, with noise, of the Brownian paths "
                   "(default 0)")
    p.add_argument("--noise", type=float, default=0.0, metavar="SIGMA",
                   help="0 (default) for the deterministic system; > 0 solves the stochastic form with this "
                   "noise scale")
    p.add_argument("--noise-type", metavar="TYPE",
                   help="which stochastic form, for systems with several (lorenz: additive, multiplicative)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="set_params",
                   help="set a system parameter, e.g. --set rho=35 (repeatable)")
    p.add_argument("--force", action="store_true", help="overwrite FILE.h5 if it exists")
    p.add_argument("--quiet", action="store_true", help="print only errors (no progress bar, no summary)")
    p.set_defaults(run=run)


def parse_assignments(items: list[str]) -> dict[str, float]:
    """``["rho=35", "n=64"]`` -> ``{"rho": 35.0, "n": 64}`` (integers stay integers)."""
    params: dict[str, float] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key, text = key.strip(), text.strip()
        if not sep or not key:
            raise UsageError(f"--set {item!r}: expected KEY=VALUE, e.g. --set rho=35")
        if key in params:
            raise UsageError(f"--set {key}: given more than once")
        try:
            value: float = int(text)
        except ValueError:
            try:
                value = float(text)
            except ValueError:
                raise UsageError(f"--set {key}={text}: {text!r} is not a number") from None
        if not math.isfinite(value):
            raise UsageError(f"--set {key}={text}: must be a finite number")
        params[key] = value
    return params


def check_output(out: Path, force: bool) -> None:
    """Fail early, before any simulation, when ``out`` cannot be written."""
    if out.is_dir():
        raise UsageError(f"--out {out}: is a folder, expected a file name")
    if out.exists() and not force:
        raise UsageError(f"--out {out}: file exists (add --force to overwrite it)")
    folder = out.parent
    if not folder.is_dir():
        raise UsageError(f"--out {out}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"--out {out}: folder {folder} is not writable")


def check_numbers(args: argparse.Namespace) -> None:
    for flag, value in (("--t-end", args.t_end), ("--dt", args.dt)):
        if value is not None and not (math.isfinite(value) and value > 0):
            raise UsageError(f"{flag} {value}: must be a positive number")
    if args.n_traj is not None and args.n_traj < 1:
        raise UsageError(f"--n-traj {args.n_traj}: must be at least 1")
    if not (math.isfinite(args.noise) and args.noise >= 0):
        raise UsageError(f"--noise {args.noise}: must be a number >= 0")
    if args.noise_type is not None and args.noise == 0:
        raise UsageError(f"--noise-type {args.noise_type}: applies only with --noise > 0")


def run(args: argparse.Namespace) -> int:
    import torch

    from .. import systems
    from ..data import save

    out = Path(args.out)
    check_numbers(args)
    params = parse_assignments(args.set_params)
    if args.system not in systems.names():
        raise UsageError(f"unknown system {args.system!r} (available: {', '.join(systems.names())})")
    check_output(out, args.force)
    try:
        system = systems.get(args.system, **params)
        traj = system.simulate(
            n_trajectories=args.n_traj,
            t_end=args.t_end,
            dt=args.dt,
            seed=args.seed,
            noise=args.noise,
            noise_type=args.noise_type,
            progress=not args.quiet and sys.stderr.isatty(),
        )
    except ValueError as err:  # systems reject bad parameters, grids and noise types with one-line messages
        raise UsageError(str(err)) from None
    finite = torch.isfinite(traj.states).flatten(2).all(-1)
    if not finite.all():  # such a file would fail validation on load: refuse to write it
        i, k = (int(j) for j in (~finite).nonzero()[0])
        when = float(traj.times()[i, k])
        raise UsageError(f"the simulation diverged: trajectory {i} is NaN or Inf from t = {when:g} on "
                         f"({system!r}; try other parameters or a shorter --t-end)")
    try:
        save(traj, out, overwrite=args.force)
    except OSError as err:  # save removes its temporary file before re-raising
        reason = os.strerror(err.errno) if err.errno else str(err)  # h5py's own text runs over many clauses
        raise UsageError(f"--out {out}: cannot write ({reason})") from None
    if not args.quiet:
        t = traj.t
        shape = "×".join(str(s) for s in traj.states.shape)
        grid = "shared" if traj.shared_times else "per-trajectory"
        noise = ""
        if args.noise > 0:
            noise_type = traj.meta.get("noise_type")
            noise = f", noise {args.noise:g}" + (f" ({noise_type})" if noise_type else "")
        dtype = str(traj.states.dtype).removeprefix("torch.")
        print(f"wrote {out}: {system!r}{noise}, states {shape} (N×T×state) {dtype}, "
              f"t from {float(t.min()):g} to {float(t.max()):g} ({grid} grid)")
    return 0
