"""What a user gets with the defaults alone: ``physdyn fit DATA --model NAME`` and ``physdyn evaluate``.

Two tasks, each a file as a user would bring it, trained and evaluated through the command line with nothing
but the data file and the model's name (the recipe ``fit`` chooses is printed by fit and quoted here):

- Lorenz-63: 64 trajectories × 2001 samples (dt 0.01) with their exact dx/dt; judged by the median valid
  prediction time over 32 held-out states on the attractor, in Lyapunov times (target >= 5), and the time
  the fit takes (target <= 10 minutes on this machine).
- the HNN paper's pendulum task (Greydanus et al. 2019): 25 trajectories of 45 noisy samples (std 0.1),
  states only; judged by the energy MSE of rollouts from 15 held-out starts over t in [0, 20] (target for
  the HNN <= 2.5e-3), with the NODE trained the same way beside it.

    python benchmarks/defaults.py [--only lorenz hnn] [--quick] [--workdir DIR]

The rows of benchmarks/learning.py are the tuned recipes these defaults are compared with. Run on a quiet
machine (timings are wall clock); ``--quick`` shrinks everything to a smoke test of about a minute.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from learning import DTYPE, paper_data, paper_pendulum, paper_starts, print_table, rollout  # noqa: E402

from physdyn import metrics, systems  # noqa: E402
from physdyn.data import Trajectories, save  # noqa: E402
from physdyn.training import load_run  # noqa: E402

PHYSDYN = [sys.executable, "-m", "physdyn.cli"]
LORENZ_LYAPUNOV = 0.9056  # Sprott


def physdyn(*args: object, extra: tuple[str, ...] = ()) -> tuple[float, str]:
    """Run ``physdyn ARGS``; its wall time and stderr (where fit prints its recipe)."""
    command = [*PHYSDYN, *map(str, args), *extra]
    print("$ physdyn " + " ".join(map(str, args)), flush=True)
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"physdyn {' '.join(map(str, args))} failed:\n{done.stderr}")
    for line in done.stderr.splitlines():
        if line.startswith(("recipe:", "data:")):
            print("    " + line)
    return seconds, done.stderr


def lorenz(workdir: Path, quick: bool, extra: tuple[str, ...]) -> list[list[str]]:
    lorenz = systems.get("lorenz")
    n, t_end = (6, 2.0) if quick else (64, 20.0)
    save(lorenz.simulate(n_trajectories=n, t_end=t_end, dt=0.01, seed=1), workdir / "lorenz.h5",
         overwrite=True)
    # held-out states on the attractor: 5 time units of transient dropped, 25 time units of forecast
    test = lorenz.simulate(n_trajectories=4 if quick else 32, t_end=5.0 + (2.0 if quick else 25.0), dt=0.01,
                           seed=2)
    test = test.window(500, test.n_times)
    test = Trajectories(t=test.t - test.t[0], states=test.states, derivatives=test.derivatives,
                        system="lorenz", state_names=test.state_names, system_params=test.system_params)
    save(test, workdir / "lorenz_test.h5", overwrite=True)
    run = workdir / "lorenz-run"
    seconds, _ = physdyn("fit", workdir / "lorenz.h5", "--model", "node", "--out", run, extra=extra)
    physdyn("evaluate", run, "--data", workdir / "lorenz_test.h5", "--horizon", test.n_times - 1,
            "--out", workdir / "lorenz-report", "--no-lyapunov")
    m = json.loads((workdir / "lorenz-report" / "metrics.json").read_text())
    vpt = m["vpt"] * LORENZ_LYAPUNOV
    per = sorted(v * LORENZ_LYAPUNOV for v in m["vpt_per_trajectory"])
    return [["Lorenz-63, 64 x 2001 samples with dx/dt", "node",
             f"median VPT {vpt:.2f} Lyapunov times (min {per[0]:.2f}, max {per[-1]:.2f})",
             ">= 5 " + ("met" if vpt >= 5 else "MISSED"), f"{seconds / 60:.1f} min",
             "<= 10 min " + ("met" if seconds <= 600 else "MISSED")]]


def hnn_task(workdir: Path, quick: bool, extra: tuple[str, ...]) -> list[list[str]]:
    pendulum = paper_pendulum()
    data = paper_data(pendulum, "b")  # 27 noisy trajectories, states only
    data = data.select(range(25))
    save(Trajectories(t=data.t, states=data.states, state_names=data.state_names), workdir / "pendulum.h5",
         overwrite=True)  # as a user's own file: no system attribute, no derivatives
    x0 = paper_starts(15, seed=1000)
    t = torch.linspace(0, 20, 100, dtype=DTYPE)
    truth = pendulum.simulate(x0=x0, t=t).states
    rows = []
    for name in ("hnn", "node"):
        run = workdir / f"pendulum-{name}"
        seconds, _ = physdyn("fit", workdir / "pendulum.h5", "--model", name, "--out", run, extra=extra)
        error = float(metrics.energy_error(rollout(load_run(run), x0, t), truth, energy=pendulum.energy))
        target = "<= 2.5e-3 " + ("met" if error <= 2.5e-3 else "MISSED") if name == "hnn" else ""
        rows.append(["HNN paper pendulum, 25 x 45 noisy states", name, f"energy MSE {error:.2e}", target,
                     f"{seconds / 60:.1f} min", ""])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=("lorenz", "hnn"), default=("lorenz", "hnn"))
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test")
    parser.add_argument("--workdir", type=Path, help="where files and runs go (default: a temporary folder)")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="physdyn-defaults-"))
    workdir.mkdir(parents=True, exist_ok=True)
    for pattern in ("*-run", "pendulum-*", "*-report"):  # runs of an earlier call: fit wants new folders
        for path in workdir.glob(pattern):
            shutil.rmtree(path)
    extra = ("--max-epochs", "2") if args.quick else ()  # nothing but the data and the model otherwise
    print(f"physdyn defaults benchmark{' (quick)' if args.quick else ''}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; files and runs in {workdir}")
    rows = []
    if "lorenz" in args.only:
        rows += lorenz(workdir, args.quick, extra)
    if "hnn" in args.only:
        rows += hnn_task(workdir, args.quick, extra)
    print_table("Defaults only: physdyn fit DATA --model NAME (then physdyn evaluate)",
                ["data", "model", "figure", "target", "fit time", "time target"], rows)


if __name__ == "__main__":
    main()
