"""Learning benchmark: neural ODE against Hamiltonian network, long-horizon physics, chaotic forecasting.

    python benchmarks/learning.py [--quick] [--only hnn pendulum lorenz] [--threads 2] [--workdir DIR]

Every figure is measured in the same run, through the package's own training path: trajectories are written
to HDF5 files, trained with ``physdyn.training.fit`` (Lightning), loaded back with ``load_run`` and rolled out
in physical units. Sections:

- ``hnn``: the pendulum task of Greydanus, Dzamba & Yosinski, "Hamiltonian Neural Networks" (NeurIPS 2019):
  H = 3(1 − cos q) + p², 25 training trajectories on t ∈ [0, 3] (45 points) from phase-space radius
  U[1.3, 2.3], Gaussian noise 0.1 on q and p; MLPs of 200 tanh units, Adam 1e-3, 2000 full-batch steps.
  Energy error = mean over 15 held-out starts and 100 times in [0, 20] of (H(x̂) − H(x))², H the true
  Hamiltonian. Data (a): exact dx/dt as targets (the paper's); (b): the noisy states only. Each is trained
  by the paper's derivative matching or by matching short rollouts, from the observed or from fitted initial
  states (``objective.initial_state``); NODE and HNN alike.
- ``pendulum``: the NODE and HNN trained on (a), rolled out for 100 periods: drift of the true energy.
- ``lorenz``: a neural ODE trained by derivative matching on simulated Lorenz-63 trajectories: valid
  prediction time over 32 held-out states on the attractor, its own largest Lyapunov exponent, and the
  training wall time.

``--quick`` shrinks every budget to a smoke test of a few seconds per model (the figures are then
meaningless).
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from physdyn import metrics, systems
from physdyn.data import Trajectories, save
from physdyn.training import LearnedModel, fit, load_run

# Greydanus et al. (2019), Table 1, pendulum task, energy MSE of rollouts (their metric, loosely specified).
PAPER_ENERGY = {"node": 42e-3, "hnn": 25e-3}
LORENZ_LYAPUNOV = 0.9056  # Sprott (facts.json)
DTYPE = torch.float64
SECTIONS = ("hnn", "pendulum", "lorenz")


@dataclass
class Budget:
    """Sizes of one benchmark run (the full run, or the ``--quick`` smoke test)."""

    paper_steps: int = 2000  # full-batch optimiser steps (= epochs) on the HNN task
    rollout_window: int = 12  # samples per rollout window (stride 11: 4 windows cover 45)
    periods: int = 100  # long-horizon pendulum rollout
    lorenz_train: int = 32  # training trajectories
    lorenz_t_end: float = 20.0  # their length
    lorenz_epochs: int = 200
    lorenz_test: int = 32  # held-out initial states
    lorenz_horizon: float = 25.0  # forecast length
    lyapunov_states: int = 16
    lyapunov_time: float = 100.0


QUICK = Budget(paper_steps=10, periods=3, lorenz_train=4, lorenz_t_end=2.0, lorenz_epochs=2, lorenz_test=4,
               lorenz_horizon=2.0, lyapunov_states=2, lyapunov_time=2.0)


def train(traj: Trajectories, workdir: Path, name: str, model: dict, data: dict, training: dict,
          objective: dict) -> tuple[LearnedModel, float]:
    """Write ``traj`` to HDF5 and train on it with ``physdyn.training.fit``; the model and the fit wall time.

    Two trajectories of ``traj`` go to the validation and test splits (the data module wants every split
    non-empty); they play no part in the reported figures. The rest are trained on.
    """
    path = save(traj, workdir / f"{name}.h5", overwrite=True)
    n = traj.n_trajectories
    config = {
        "data": {"path": str(path), "split": [(n - 2) / n, 1 / n, 1 / n], **data},
        "model": model,
        "objective": objective,
        "training": {"precision": "64-true", "progress_bar": False, "log_every_n_steps": 1, "seed": 0,
                     **training},
    }
    start = time.perf_counter()
    run_dir = fit(config, workdir / name)
    seconds = time.perf_counter() - start
    return load_run(run_dir, checkpoint="last"), seconds


# --------------------------------------------------------------------------------------------------------
# Pendulum of the HNN paper


def paper_pendulum() -> systems.System:
    """physdyn's pendulum with m L² = 1/2 and m g L = 3, so that H = 3(1 − cos q) + p² (Greydanus et al.)."""
    pendulum = systems.get("pendulum", m=0.5, L=1.0, g=6.0)
    x = torch.randn(100, 2, generator=torch.Generator().manual_seed(0), dtype=DTYPE) * 2
    paper_h = 3 * (1 - torch.cos(x[:, 0])) + x[:, 1] ** 2
    if not torch.allclose(pendulum.energy(x), paper_h, rtol=1e-12, atol=1e-12):
        raise RuntimeError("the pendulum's energy does not match the HNN paper's H = 3(1 - cos q) + p^2")
    return pendulum


def paper_starts(n: int, seed: int) -> torch.Tensor:
    """Initial states as in the paper's code: a random direction (normalised uniform point of the square
    [−1, 1]²) scaled to a radius drawn from U[1.3, 2.3]. Shape (n, 2)."""
    g = torch.Generator().manual_seed(seed)
    direction = torch.rand(n, 2, generator=g, dtype=DTYPE) * 2 - 1
    radius = torch.rand(n, 1, generator=g, dtype=DTYPE) + 1.3
    return direction / direction.norm(dim=1, keepdim=True) * radius


#: The data of the HNN task: how the targets are made.
DATA = {
    "a": "(a) exact dx/dt, noisy states",
    "b": "(b) noisy states only",
}
#: How a model is trained on them (physdyn.training config, beside the paper's optimiser):
#: "derivatives" derivative matching at the observed (noisy) states, one full batch of 25 × 45 samples (the
#: paper's); "observed" matching rollouts over windows of ``rollout_window`` samples started from the observed
#: states; "fitted" the same with fitted initial states (``objective.initial_state: fitted``), where the
#: derivative loss, when there are derivatives, is taken at the fitted trajectory.
RECIPES = {"a": ("derivatives", "fitted"), "b": ("observed", "fitted")}
#: The models, trained alike: MLPs of 200 tanh units (the paper's); "hnn" learns H = T(p) + V(q), the form of
#: every mechanical Hamiltonian; "hnn-paper" one MLP for H(q, p) as in the paper (trained on the paper's
#: recipe only).
MODELS = {
    "node": {"name": "node", "width": 200, "depth": 2, "activation": "tanh"},
    "hnn": {"name": "hnn", "width": 200, "depth": 2, "activation": "tanh", "separable": True},
    "hnn-paper": {"name": "hnn", "width": 200, "depth": 2, "activation": "tanh"},
}
LABELS = {"node": "NODE", "hnn": "HNN, H = T(p) + V(q)", "hnn-paper": "HNN, H(q, p) (paper)"}


def paper_data(pendulum: systems.System, setting: str, seed: int = 0) -> Trajectories:
    """25 training trajectories (+ 2 for the validation and test splits) on t ∈ [0, 3] (45 points), noise
    0.1 on q and p. Setting "a" carries the exact dx/dt of the clean states (the paper's code computes its
    targets so, then adds the noise to the states); "b" no derivatives."""
    t = torch.linspace(0, 3, 45, dtype=DTYPE)
    clean = pendulum.simulate(x0=paper_starts(27, seed), t=t)
    g = torch.Generator().manual_seed(seed + 1)
    states = clean.states + 0.1 * torch.randn(clean.states.shape, generator=g, dtype=DTYPE)
    return Trajectories(t=t, states=states, derivatives=clean.derivatives if setting == "a" else None,
                        system="pendulum", state_names=clean.state_names, system_params=clean.system_params)


def paper_model(pendulum: systems.System, setting: str, recipe: str, name: str, budget: Budget,
                workdir: Path) -> tuple[LearnedModel, float]:
    """Model ``name`` of :data:`MODELS` trained on the data of ``setting`` with ``recipe`` (see
    :data:`RECIPES`) and the paper's optimiser: Adam 1e-3, ``budget.paper_steps`` full-batch steps."""
    traj = paper_data(pendulum, setting)
    if recipe == "derivatives":  # every sample is its own window: one full batch of 25 × 45 targets
        data = {"window": 1, "batch_size": 25 * 45}
        losses = {"derivative_weight": 1.0, "rollout_weight": 0.0}
    else:  # consecutive windows sharing their end samples; the loss integrates the model across each
        w = budget.rollout_window
        data = {"window": w, "stride": w - 1, "batch_size": 25 * len(range(0, 45 - w + 1, w - 1))}
        losses = {"derivative_weight": 1.0, "rollout_weight": 1.0, "rollout_method": "rk4",
                  "initial_state": recipe}
    training = {"max_epochs": budget.paper_steps, "optimizer": "adam", "lr": 1e-3}
    return train(traj, workdir, f"paper-{setting}-{recipe}-{name}", MODELS[name], data, training, losses)


def trained(pendulum: systems.System, budget: Budget, workdir: Path, cache: dict,
            ) -> dict[tuple[str, str, str], tuple[LearnedModel, float]]:
    """Every (setting, recipe, model) of the HNN task, trained once per run."""
    if not cache:
        for setting, recipes in RECIPES.items():
            for recipe in recipes:
                for name in MODELS:
                    if name != "hnn-paper" or recipe == "derivatives":
                        cache[setting, recipe, name] = paper_model(pendulum, setting, recipe, name, budget,
                                                                   workdir)
    return cache


def rollout(model: LearnedModel, x0: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Accurate rollout of a learned model in physical units: dopri5 at tight tolerance (as the paper's
    RK45 at rtol 1e-12), so that the figures measure the model, not the integrator."""
    with torch.no_grad():
        return model.rollout(x0, t, method="dopri5", rtol=1e-10, atol=1e-10)


def hnn_section(budget: Budget, workdir: Path, cache: dict) -> None:
    pendulum = paper_pendulum()
    x0 = paper_starts(15, seed=1000)
    t = torch.linspace(0, 20, 100, dtype=DTYPE)
    truth = pendulum.simulate(x0=x0, t=t).states
    targets = {"a": 5e-4, "b": 2.5e-3}  # for the HNN
    rows = []
    for (setting, recipe, name), (model, seconds) in trained(pendulum, budget, workdir, cache).items():
        error = float(metrics.energy_error(rollout(model, x0, t), truth, energy=pendulum.energy))
        verdict = ""
        if name == "hnn":
            verdict = f"<= {targets[setting]:.1e} {'met' if error <= targets[setting] else 'MISSED'}"
        rows.append([DATA[setting], recipe, LABELS[name], f"{error:.2e}", verdict, f"{seconds:.0f} s"])
    print_table("Pendulum task of Greydanus et al. (2019): energy MSE over 15 held-out starts, t in [0, 20]",
                ["data", "training", "model", "energy MSE", "target (HNN)", "train"], rows)
    print(f"  energy MSE = mean_(n,t) (H(x_hat) - H(x))^2 with the true H; rollouts dopri5 rtol 1e-10.\n"
          f"  Same budget for every row: {budget.paper_steps} full-batch Adam steps at 1e-3, no weight decay;"
          f" windows of {budget.rollout_window} samples.\n"
          f"  The paper's Table 1 (its own, loosely specified metric): NODE {PAPER_ENERGY['node']:.0e}, HNN "
          f"{PAPER_ENERGY['hnn']:.0e}; context, not the same number.")


def pendulum_section(budget: Budget, workdir: Path, cache: dict) -> None:
    pendulum = paper_pendulum()
    x0 = paper_starts(15, seed=1000)
    amplitude = torch.arccos(1 - pendulum.energy(x0) / 3)  # H = 3 (1 − cos θ0) at the turning point
    horizon = budget.periods * float(pendulum.exact_period(amplitude).max())
    t = torch.arange(0, horizon + 0.1, 0.1, dtype=DTYPE)
    rows, verdicts = [], []
    models = trained(pendulum, budget, workdir, cache)
    for recipe in RECIPES["a"]:
        drifts = {}
        for name in ("node", "hnn"):
            model, _ = models["a", recipe, name]
            own = ""
            if name == "hnn":  # its default rollout: symplectic Yoshida-4 (of leapfrog steps, H separable)
                with torch.no_grad():
                    pred = model.rollout(x0, t, substeps=2)
                    own = f"{float(metrics.energy_drift(pred, energy=model.energy)['max'].max()):.1e}"
                how = "yoshida4, h = 0.05"
            else:
                pred, how = rollout(model, x0, t), "dopri5 rtol 1e-10"
            drift = metrics.energy_drift(pred, energy=pendulum.energy)
            drifts[name] = float(drift["max"].mean())
            rows.append([f"{DATA['a']}, {recipe}", LABELS[name], how, f"{drifts[name]:.2e}",
                         f"{float(drift['max'].max()):.2e}", f"{float(drift['final'].mean()):.2e}", own])
        ratio = drifts["node"] / drifts["hnn"]
        ok = drifts["hnn"] <= 0.01 and ratio >= 10
        verdicts.append(f"  {recipe}: HNN drift {100 * drifts['hnn']:.2f} % (target <= 1 %), "
                        f"NODE / HNN = {ratio:.0f}x (target >= 10x): {'met' if ok else 'MISSED'}")
    print_table(f"Pendulum, {budget.periods} periods of the slowest start (t in [0, {horizon:.0f}]), 15 "
                "held-out starts: relative drift of the true energy, "
                "max_t |H(x_hat(t)) - H(x_hat(0))| / H(x_hat(0))",
                ["training", "model", "rollout", "mean over starts", "worst start", "final (mean)",
                 "learned-H drift (worst)"], rows)
    print("\n".join(verdicts))


# --------------------------------------------------------------------------------------------------------
# Lorenz-63


def lorenz_section(budget: Budget, workdir: Path) -> None:
    lorenz = systems.get("lorenz")
    # two more trajectories than trained on, for the validation and test splits
    train_traj = lorenz.simulate(n_trajectories=budget.lorenz_train + 2, t_end=budget.lorenz_t_end, dt=0.01,
                                 seed=1)
    model = {"name": "node", "width": 128, "depth": 3, "activation": "silu"}
    data = {"window": 1, "batch_size": 1024, "normalization": "standard"}
    training = {"max_epochs": budget.lorenz_epochs, "optimizer": "adam", "lr": 3e-3, "schedule": "cosine"}
    learned, seconds = train(train_traj, workdir, "lorenz-node", model, data, training,
                             {"derivative_weight": 1.0, "rollout_weight": 0.0})

    # Held-out states on the attractor: new random starts, 5 time units of transient dropped.
    transient = 500
    test = lorenz.simulate(n_trajectories=budget.lorenz_test, t_end=5.0 + budget.lorenz_horizon, dt=0.01,
                           seed=2)
    truth, x0 = test.states[:, transient:], test.states[:, transient]
    t = test.t[transient:] - test.t[transient]
    with torch.no_grad():
        pred = learned.rollout(x0, t, method="dop853")
    vpt = metrics.lyapunov_times(metrics.valid_prediction_time(pred, truth, t=t), LORENZ_LYAPUNOV)
    median_vpt = float(vpt.median())

    x_lyap = x0[: budget.lyapunov_states]
    options = {"t_transient": 10.0, "t_total": budget.lyapunov_time, "dt": 0.01}
    lam_model = metrics.largest_lyapunov_exponent(learned, x_lyap, **options)
    lam_true = metrics.largest_lyapunov_exponent(lorenz, x_lyap, **options)
    lam_error = abs(lam_model - 0.906) / 0.906
    n_samples = budget.lorenz_train * (round(budget.lorenz_t_end / 0.01) + 1)
    rows = [
        ["median VPT (Lyapunov times)", f"{median_vpt:.2f}", ">= 5", "met" if median_vpt >= 5 else "MISSED"],
        ["VPT quartiles / min", f"{float(vpt.quantile(0.25)):.2f} / {float(vpt.quantile(0.75)):.2f} / "
                                f"{float(vpt.min()):.2f}", "", ""],
        ["lambda_max of the learned model", f"{lam_model:.4f}", "0.906 +- 5 %",
         f"{100 * lam_error:.1f} % {'met' if lam_error <= 0.05 else 'MISSED'}"],
        ["lambda_max of the true system (same routine)", f"{lam_true:.4f}", "0.9056 (Sprott)", ""],
        ["training wall time", f"{seconds / 60:.1f} min", "<= 15 min", "met" if seconds <= 900 else "MISSED"],
    ]
    print_table(f"Lorenz-63: neural ODE (MLP 3x128 SiLU, float64) by derivative matching on "
                f"{budget.lorenz_train} trajectories ({n_samples} states), {budget.lorenz_epochs} epochs, "
                "Adam 3e-3 cosine",
                ["quantity", "value", "target", ""], rows)
    print(f"  VPT: first time the normalised error exceeds 0.4, over {budget.lorenz_test} held-out states, "
          f"horizon {budget.lorenz_horizon:g} (= {budget.lorenz_horizon * LORENZ_LYAPUNOV:.1f} Lyapunov "
          f"times); learned rollouts dop853 at h = 0.01.\n  lambda_max: tangent method, {len(x_lyap)} "
          f"states, t = {budget.lyapunov_time:g} after a transient of 10.")


# --------------------------------------------------------------------------------------------------------


def print_table(title: str, header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = "  ".join("-" * w for w in widths)
    print(f"\n{title}\n{line}")
    for row in [header, None, *rows]:
        print(line if row is None else "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))
    print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny budgets: a smoke test of a few seconds")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, help="run only these sections")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default %(default)s)")
    parser.add_argument("--workdir", type=Path, help="keep data and runs here (default: a temporary folder)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.getLogger("lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="lightning")
    budget = QUICK if args.quick else Budget()
    print(f"physdyn learning benchmark: {' '.join(sys.argv[1:]) or 'full'}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, float64")
    sections = args.only or SECTIONS
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.workdir / time.strftime("%Y%m%d-%H%M%S") if args.workdir else Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        cache: dict = {}
        for section in sections:
            start = time.perf_counter()
            if section == "hnn":
                hnn_section(budget, workdir, cache)
            elif section == "pendulum":
                pendulum_section(budget, workdir, cache)
            else:
                lorenz_section(budget, workdir)
            print(f"  [{section}: {time.perf_counter() - start:.0f} s]")


if __name__ == "__main__":
    main()
