"""Learned stiff kinetics on Robertson over ten decades: naive NODE, scaled NODE, mass-action kinetics.

    python benchmarks/kinetics.py [--quick]

Data as in Kim, Ji, Deng, Ma & Rackauckas, Chaos 31, 093122 (2021): Robertson's kinetics (k1 = 0.04,
k2 = 3e7, k3 = 1e4) sampled at t = 0 and 50 log-spaced times in [1e-5, 1e5]; the initial states are
physdyn's (y1 ~ U[0.5, 1), y2 = 0, y3 = 1 − y1; the first (1, 0, 0)). Every row trains through
``physdyn.training.fit`` (what ``physdyn fit`` runs) on the same training file and is judged on held-out
initial states (another seed):

- error per species: max over held-out trajectories of max_t |ŷ_i − y_i| / max_t |y_i| (each species
  relative to its own range, so B at 1e-5 counts as much as A at 1), and the pointwise median of
  |ŷ_i − y_i| / |y_i| over t > 0;
- mass error: max |Σ_i ŷ_i(t) − Σ_i y_i(0)| (= max |Σy − 1|); negatives: count of ŷ_i(t) < 0;
- training time (wall clock of fit, one thread) and, for the kinetics model, the learned rate constants
  against the truth.

Rows: "naive NODE" (an MLP field on raw concentrations and times, unscaled loss, through the stiff
solver: Kim et al.'s failure case), "scaled NODE" (``scaled_node``: per-species scaling, log time),
"kinetics" (``kinetics`` with Robertson's reactions, every other setting fit's default: the command
``physdyn fit DATA --model kinetics --set model.reactions=[...]``). Then the solver table: Robertson over
256 rate sets, physdyn's batched Rodas5P against looped scipy BDF, Radau and LSODA
(``benchmarks/_robertson_rows.py``). ``--quick``: fewer epochs and rate sets (a smoke run, not the figures).
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

import torch

from physdyn import systems
from physdyn.data import save
from physdyn.training import fit, load_run

REACTIONS = ["A -> B", "2 B -> B + C", "B + C -> A + C"]
TRUE_RATES = {"A -> B": 0.04, "2 B -> B + C": 3e7, "B + C -> A + C": 1e4}


def log_grid() -> torch.Tensor:
    """t = 0 and 50 log-spaced times in [1e-5, 1e5] (Kim et al.)."""
    return torch.cat([torch.zeros(1, dtype=torch.float64), torch.logspace(-5, 5, 50, dtype=torch.float64)])


def rows_for(configs: dict[str, dict], train_path: Path, test, workdir: Path) -> list[dict]:
    rows = []
    for name, config in configs.items():
        config = {**config, "data": {"path": str(train_path), **config.get("data", {})}}
        config["training"] = {"progress_bar": False, "seed": 0, **config.get("training", {})}
        start = time.perf_counter()
        run = fit(config, workdir / name.replace(" ", "_"))
        seconds = time.perf_counter() - start
        learned = load_run(run, checkpoint="last")
        with torch.no_grad():
            pred = learned.rollout(test.states[:, 0], test.t).to(torch.float64)
        rows.append({"row": name, "time_s": seconds, **judge(pred, test.states),
                     "rates": getattr(learned.model, "rate_constants", None)})
    return rows


def judge(pred: torch.Tensor, true: torch.Tensor) -> dict:
    finite = bool(torch.isfinite(pred).all())
    pred = torch.nan_to_num(pred, nan=1e30, posinf=1e30, neginf=-1e30)
    ranged = ((pred - true).abs().amax(1) / true.abs().amax(1)).amax(0)  # (D,)
    later = true[:, 1:].abs() > 0
    pointwise = ((pred[:, 1:] - true[:, 1:]).abs() / true[:, 1:].abs().clamp(min=1e-300))
    median = torch.stack([pointwise[..., i][later[..., i]].median() for i in range(true.shape[-1])])
    mass = (pred.sum(-1) - true[:, :1].sum(-1)).abs().max()
    return {"range_error": ranged.tolist(), "pointwise_median": median.tolist(), "mass_error": float(mass),
            "negatives": int((pred < 0).sum()), "finite": finite}


def print_rows(rows: list[dict], species: tuple[str, ...]) -> None:
    head = (f"{'row':<14}" + "".join(f" {'err ' + s:>10}" for s in species)
            + "".join(f" {'med ' + s:>10}" for s in species) + f" {'mass err':>9} {'neg':>6} {'train s':>8}")
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['row']:<14}" + "".join(f" {100 * e:9.3g}%" for e in r["range_error"])
              + "".join(f" {100 * e:9.3g}%" for e in r["pointwise_median"])
              + f" {r['mass_error']:9.1e} {r['negatives']:6d} {r['time_s']:8.1f}"
              + ("" if r["finite"] else "  (non-finite rollouts)"))
    print("err: max_t |ŷ−y| / max_t |y| per species, worst held-out trajectory; med: median over t > 0 of "
          "|ŷ−y|/|y|; mass err: max |Σŷ − Σy(0)|; neg: negative concentrations")
    for r in rows:
        if r["rates"]:
            print(f"\nlearned rate constants ({r['row']}):")
            print(f"  {'reaction':<16} {'learned':>12} {'true':>12} {'error':>8}")
            for reaction, k in r["rates"].items():
                true = TRUE_RATES[reaction]
                print(f"  {reaction:<16} {k:12.6g} {true:12.6g} {100 * abs(k / true - 1):7.3f}%")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: few epochs, 16 rate sets")
    parser.add_argument("--n-train", type=int, default=16, help="training trajectories (default 16)")
    parser.add_argument("--n-test", type=int, default=8, help="held-out trajectories (default 8)")
    parser.add_argument("--rate-sets", type=int, default=256, help="rate sets of the solver table")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)  # the table, not Lightning's banners
    system, t = systems.get("robertson"), log_grid()
    train = system.simulate(args.n_train, t=t, seed=0)
    # Held-out initial states: fresh mixtures of A and C (the training seed's first state is (1, 0, 0)).
    y1 = 0.5 + 0.5 * torch.rand(args.n_test, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    test = system.simulate(x0=torch.stack([y1, torch.zeros_like(y1), 1 - y1], -1), t=t)
    # The naive NODE fails whatever its budget (Kim et al.), and each of its epochs is slow (its field keeps
    # the solver's steps short over 1e5 time units): 60 epochs show it. The scaled NODE and kinetics rows
    # train with fit's defaults (the recipe's step budget) unless --quick.
    epochs = {"naive": 20 if args.quick else 60}
    naive = {"data": {"normalization": "none"},
             "model": {"name": "node", "width": 32, "depth": 3, "activation": "tanh", "method": "rodas5p",
                       "rtol": 1e-6, "atol": 1e-9},
             "objective": {"name": "kinetics_matching", "species_scale": [1.0, 1.0, 1.0]},
             "training": {"max_epochs": epochs["naive"], "lr": 3e-3}}
    configs = {
        "naive NODE": naive,
        "scaled NODE": {"model": {"name": "scaled_node"},
                        "training": {"max_epochs": 40} if args.quick else {}},
        "kinetics": {"model": {"name": "kinetics", "reactions": REACTIONS}},
    }
    print(f"Robertson, {args.n_train} training / {args.n_test} held-out initial states, t = 0 and 50 "
          "log-spaced in [1e-5, 1e5]; one thread")
    with tempfile.TemporaryDirectory() as tmp:
        path = save(train, Path(tmp) / "robertson_train.h5")
        rows = rows_for(configs, path, test, Path(tmp))
    print_rows(rows, ("A", "B", "C"))

    sys.path.insert(0, str(Path(__file__).parent))
    from _robertson_rows import robertson_rows

    n_sets = 16 if args.quick else args.rate_sets
    print(f"\nsolver: Robertson over {n_sets} rate sets (one thread)")
    print(f"{'method':<55} {'time s':>8} {'error':>9}  note")
    for row in robertson_rows(quick=args.quick, n=n_sets):
        print(f"{row['method']:<55} {row['time_s']:8.2f} {row['error']:9.2e}  {row['note']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
