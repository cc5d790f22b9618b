"""Neural SDEs on three stochastic systems, beside a deterministic NODE with Gaussian residual noise.

Systems (train and test files simulated with physdyn's stochastic forms, test with another seed):

- the Langevin pendulum (``physdyn simulate pendulum --noise 1``: friction 0.5, kT 1; noise on p only);
- stochastic Lorenz-63 with torchsde's multiplicative noise g = (0.1 x, 0.28 y, 0.3 z) (Li et al. 2020);
- an Ornstein–Uhlenbeck process (θ = 1, μ = 1, σ = 0.5), whose moments are known in closed form.

Ours: ``physdyn fit TRAIN --model neural_sde --out RUN``, nothing else: these rows are the defaults.
Baseline: ``node`` fitted on one-step windows (data.window=2), then Gaussian noise of the covariance of its
one-step residuals on the training data added at every step (scaled with the step).

Rows: training time; energy score (mean over the forecast steps, states divided by the data's σ; lower is
better) and coverage of the central 90 % interval per horizon step (min and max over the steps; target
[0.85, 0.95]) from ``evaluate(..., samples=K)`` on held-out trajectories; for the pendulum the learned
diffusion over the visited states, ‖G Gᵀ − G* G*ᵀ‖_F / ‖G* G*ᵀ‖_F (target <= 10 %); for OU the mean and
standard deviation of K learned paths from x0 = 2.0 against the moment equations at 5 horizons (target 5 %).

    flock /work/bench.lock env OMP_NUM_THREADS=1 python benchmarks/sde.py [--quick] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import math
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from physdyn import systems
from physdyn.data import load, save
from physdyn.evaluation import evaluate
from physdyn.training import fit, load_run

PHYSDYN = [sys.executable, "-m", "physdyn.cli"]
SAMPLES = 100
#: The OU start of the moment check: inside the visited states (the training starts lie in μ ± 3 σ/√(2θ),
#: [−0.06, 2.06]), where the learned drift is fitted rather than extrapolated.
OU_X0, OU_TIMES = 2.0, (0.25, 0.5, 1.0, 2.0, 4.0)


def physdyn(*args: object) -> float:
    """Run ``physdyn ARGS`` (printing the recipe fit chose); its wall time."""
    print("$ physdyn " + " ".join(map(str, args)), flush=True)
    start = time.perf_counter()
    done = subprocess.run([*PHYSDYN, *map(str, args)], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"physdyn {' '.join(map(str, args))} failed:\n{done.stderr[-3000:]}")
    for line in done.stderr.splitlines():
        if line.startswith(("recipe:", "wrote")):
            print("    " + line, flush=True)
    return time.perf_counter() - start


class NodePlusNoise:
    """A learned NODE stepped from sample to sample with Gaussian noise N(0, (Δ/h) Σ) added at each step,
    Σ the covariance of its one-step residuals on the training data at step h: the deterministic baseline
    made probabilistic."""

    stochastic, context, name = True, "last_state", "node+noise"

    def __init__(self, learned, train, h: float) -> None:
        self.learned, self.h, self.state_shape = learned, h, learned.state_shape
        x = train.states.double()
        with torch.no_grad():
            ahead = learned.rollout(x[:, :-1].reshape(-1, *x.shape[2:]), torch.tensor([0.0, h]))[:, -1]
        residual = (x[:, 1:].reshape(ahead.shape) - ahead).flatten(1)
        self.cov = residual.T @ residual / len(residual)
        self.chol = torch.linalg.cholesky(self.cov + 1e-12 * torch.eye(len(self.cov), dtype=torch.float64))

    def predict(self, t_context, x_context, mask_context, t, *, samples=1, generator=None):
        n = len(x_context)
        t = torch.as_tensor(t, dtype=torch.float64).expand(n, -1)
        x = x_context[:, -1].double().repeat_interleave(samples, 0)
        previous, out = float(t_context[0, -1]), []
        for q in range(t.shape[1]):
            dt = float(t[0, q]) - previous
            if dt > 0:
                with torch.no_grad():
                    x = self.learned.rollout(x, torch.tensor([0.0, dt]))[:, -1]
                noise = torch.randn(len(x), len(self.cov), generator=generator, dtype=torch.float64)
                x = x + math.sqrt(dt / self.h) * (noise @ self.chol.T).view_as(x)
            out.append(x)
            previous = float(t[0, q])
        return torch.stack(out, 1).view(n, samples, t.shape[1], *self.state_shape)


def simulate(name: str, path: Path, n: int, t_end: float, dt: float, seed: int, **options) -> None:
    data = systems.get(name).simulate(n_trajectories=n, t_end=t_end, dt=dt, noise=1.0, seed=seed, **options)
    save(data, path)


def scores(model, test, horizon: int) -> dict[str, float]:
    report = evaluate(model, test, horizon, samples=SAMPLES, lyapunov=False, attractor_steps=0, seed=0)
    prob = report.metrics["probabilistic"]
    cover = torch.tensor(prob["coverage_90"][1:])
    return {"es": prob["forecast"]["energy_score"], "c90_min": float(cover.min()),
            "c90_max": float(cover.max()),
            "c90_inside": float(((cover >= 0.85) & (cover <= 0.95)).double().mean()),
            "c50": prob["forecast"]["coverage_50"]}


def baseline(train_path: Path, workdir: Path, quick: bool) -> tuple[NodePlusNoise, float]:
    start = time.perf_counter()
    config = {"data": {"path": str(train_path), "window": 2, "stride": 1},
              "model": {"name": "node"},
              "objective": {"initial_state": "observed"},
              "training": {"progress_bar": False, **({"max_epochs": 3} if quick else {})}}
    run = fit(config, workdir / "node")
    train = load(train_path)
    model = NodePlusNoise(load_run(run), train, float(train.t[1] - train.t[0]))
    return model, time.perf_counter() - start


def ours(train_path: Path, workdir: Path, quick: bool) -> tuple[object, float]:
    extra = ("--max-epochs", 3) if quick else ()
    seconds = physdyn("fit", train_path, "--model", "neural_sde", "--out", workdir / "sde", *extra)
    return load_run(workdir / "sde"), seconds


def diffusion_error(learned, sde, test) -> float:
    """‖G Gᵀ − G* G*ᵀ‖_F / ‖G* G*ᵀ‖_F, both averaged over the test states (every 4th sample)."""
    x = test.states[:, ::4].reshape(-1, *test.state_shape)
    g = sde.g(0.0, x)
    true = torch.diag_embed(g**2) if g.ndim == 2 else g @ g.transpose(1, 2)
    with torch.no_grad():
        got = learned.diffusion_covariance(0.0, x.float()).double()
    return float((got - true).flatten(1).norm(dim=1).mean() / true.flatten(1).norm(dim=1).mean())


def ou_moments(learned, system) -> tuple[list[float], list[float]]:
    t = torch.tensor([0.0, *OU_TIMES], dtype=torch.float64)
    x0 = torch.full((1, 1, 1), OU_X0)
    with torch.no_grad():
        paths = learned.predict(t[:1], x0, None, t, samples=4000,
                                generator=torch.Generator().manual_seed(0))[0, :, 1:, 0].double()
    mean = system.mean(torch.full((1, 1), OU_X0, dtype=torch.float64), t[1:])[0, :, 0]
    std = system.variance(t[1:]).sqrt()
    return ((paths.mean(0) - mean) / mean).abs().tolist(), ((paths.std(0) - std) / std).abs().tolist()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smoke test: small data, 3 epochs")
    parser.add_argument("--workdir", type=Path, help="keep the files here (default: a temporary folder)")
    parser.add_argument("--only", nargs="+", choices=("pendulum", "lorenz", "ornstein_uhlenbeck"),
                        help="run these systems only")
    parser.add_argument("--train-trajectories", type=int, metavar="N",
                        help="training trajectories of every system (default: 64, 256 for OU)")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="physdyn-sde-"))
    q = args.quick
    n = 16 if q else 64
    cases = {  # name: (system, simulate options, train trajectories, t_end, dt, test horizon)
        "pendulum (Langevin)": ("pendulum", {}, n, 20.0, 0.05, 40),
        "lorenz (multiplicative)": ("lorenz", {"noise_type": "multiplicative"}, n, 4.0, 0.02, 25),
        # OU's drift carries little information per step (the MLE of θ has relative std sqrt(2/(θ T)) over
        # a total time T): 256 trajectories of 10 time units put it near 3 %
        "ornstein-uhlenbeck": ("ornstein_uhlenbeck", {}, 16 if q else 256, 10.0, 0.05, 40),
    }
    if args.only:
        cases = {label: case for label, case in cases.items() if case[0] in args.only}
    if args.train_trajectories:
        cases = {label: (*case[:2], args.train_trajectories, *case[3:]) for label, case in cases.items()}
    rows = []
    for label, (name, options, n, t_end, dt, horizon) in cases.items():
        folder = workdir / name
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        train_path, test_path = folder / "train.h5", folder / "test.h5"
        system = systems.get(name)
        simulate(name, train_path, n, t_end, dt, seed=0, **options)
        simulate(name, test_path, 16 if q else 128, horizon * dt, dt, seed=1, **options)
        test = load(test_path)
        sde, sde_time = ours(train_path, folder, q)
        node, node_time = baseline(train_path, folder, q)
        row = {"system": label, "sde": scores(sde, test, horizon), "node": scores(node, test, horizon),
               "sde_time": sde_time, "node_time": node_time}
        if name != "ornstein_uhlenbeck":
            row["diffusion_error"] = diffusion_error(sde, system.sde(1.0, options.get("noise_type")), test)
        else:
            row["ou_mean"], row["ou_std"] = ou_moments(sde, system)
        rows.append(row)
        print_row(row)
    print_table(rows, workdir)


def print_row(row: dict) -> None:
    print(f"  {row['system']}: done (neural_sde {row['sde_time']:.0f} s, node {row['node_time']:.0f} s)",
          flush=True)


def print_table(rows: list[dict], workdir: Path) -> None:
    fmt = lambda v: f"{v:.3g}"  # noqa: E731
    print(f"\nfiles: {workdir}; K = {SAMPLES} samples per test trajectory\n")
    print("| system | model | train time (s) | energy score | 90 % coverage, min–max over steps "
          "| steps in [0.85, 0.95] | 50 % coverage (mean) |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        for key, name in (("sde", "neural_sde (defaults)"), ("node", "node + residual noise")):
            s = r[key]
            print(f"| {r['system']} | {name} | {r[f'{key}_time']:.0f} | {fmt(s['es'])} | "
                  f"{s['c90_min']:.3f}–{s['c90_max']:.3f} | {100 * s['c90_inside']:.0f} % | {s['c50']:.3f} |")
    print("\n| system | check | value | target |")
    print("|---|---|---|---|")
    for r in rows:
        better = r["sde"]["es"] < r["node"]["es"]
        print(f"| {r['system']} | energy score, neural_sde vs baseline | {fmt(r['sde']['es'])} vs "
              f"{fmt(r['node']['es'])} ({'better' if better else 'not better'}) | better |")
        if "diffusion_error" in r:
            error = 100 * r["diffusion_error"]
            print(f"| {r['system']} | diffusion error over visited states | {error:.1f} % "
                  "| <= 10 % (pendulum) |")
        if "ou_mean" in r:
            horizons = ", ".join(f"{t:g}" for t in OU_TIMES)
            print(f"| {r['system']} | mean rel. error at t = {horizons} | "
                  f"{', '.join(f'{100 * v:.1f} %' for v in r['ou_mean'])} | <= 5 % |")
            print(f"| {r['system']} | std rel. error at t = {horizons} | "
                  f"{', '.join(f'{100 * v:.1f} %' for v in r['ou_std'])} | <= 5 % |")


if __name__ == "__main__":
    main()
