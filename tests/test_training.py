"""Training: losses against exact dynamics, recovery of a known field, repeatable and resumable runs, DDP."""

import csv
import math

import pytest
import torch
from torch import nn

from physdyn import models
from physdyn.data import Normalizer, Trajectories, TrajectoryDataModule, save
from physdyn.metrics import largest_lyapunov_exponent
from physdyn.models import VectorFieldModel
from physdyn.training import DynamicsModule, LearnedModel, TrajectoryMatching, fit, load_run, masked_mse

# A damped rotation dx/dt = A x: exact solution expm(A t) x0, largest Lyapunov exponent max Re λ(A) = −0.1.
A = torch.tensor([[-0.1, 2.0], [-2.0, -0.1]], dtype=torch.float64)
FAST = {"progress_bar": False, "log_every_n_steps": 1}


def linear_data(n=8, n_t=30, seed=0, per_trajectory_times=False) -> Trajectories:
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(n, 2, generator=g, dtype=torch.float64) * torch.tensor([3.0, 0.5])
    x0 = x0 + torch.tensor([1.0, -2.0])
    if per_trajectory_times:  # irregular, each trajectory its own grid and start
        steps = 0.02 + 0.1 * torch.rand(n, n_t - 1, generator=g, dtype=torch.float64)
        t = torch.cat([torch.rand(n, 1, generator=g, dtype=torch.float64), steps], 1).cumsum(1)
    else:
        t = torch.linspace(0.0, 3.0, n_t, dtype=torch.float64)
    tt = t.expand(n, n_t)
    # x(t) = expm(A (t − t0)) x0, with x0 the state at each trajectory's first time
    states = torch.einsum("ntij,nj->nti", torch.linalg.matrix_exp(A * (tt - tt[:, :1])[..., None, None]), x0)
    return Trajectories(t=t, states=states, derivatives=states @ A.T, system="custom", state_names=("q", "p"))


class ExactLinear(VectorFieldModel):
    """The true field in normalised coordinates: dz/dt = S⁻¹ A (S z + m), S = diag(std)."""

    def __init__(self, a: torch.Tensor, norm: Normalizer) -> None:
        super().__init__(2, method="rk4", substeps=8, rtol=1e-9, atol=1e-9, adjoint=False)
        self.register_buffer("a", a.clone())
        self.register_buffer("mean", norm.mean.clone())
        self.register_buffer("std", norm.std.clone())
        self.dummy = nn.Parameter(torch.zeros((), dtype=torch.float64))  # LearnedModel reads the dtype here

    def vector_field(self, t, z):
        return ((z * self.std + self.mean) @ self.a.T) / self.std + 0 * self.dummy


def test_masked_mse_ignores_masked_entries():
    g = torch.Generator().manual_seed(0)
    pred, target = torch.randn(2, 4, 10, 3, generator=g, dtype=torch.float64).unbind()
    mask = torch.rand(4, 10, 3, generator=g) > 0.4
    garbage = torch.where(mask, target, torch.full_like(target, 1e9))
    expected = ((pred - target)[mask] ** 2).mean()
    torch.testing.assert_close(masked_mse(pred, garbage, mask), expected)


@pytest.mark.parametrize("per_trajectory_times", [False, True])
def test_losses_vanish_for_the_true_dynamics(per_trajectory_times):
    data = linear_data(per_trajectory_times=per_trajectory_times)
    dm = TrajectoryDataModule(data, window=6, stride=2, normalization="standard", dtype=torch.float64,
                              batch_size=1000)
    dm.setup()
    batch = next(iter(dm.train_dataloader()))
    with torch.no_grad():
        exact, wrong = ExactLinear(A, dm.normalizer), ExactLinear(A * 1.01, dm.normalizer)
        losses = TrajectoryMatching(exact, rollout_substeps=8)(exact, batch)
        # the same losses see a slightly wrong field: the checks below can fail
        wrong = DynamicsModule(wrong, TrajectoryMatching(wrong, rollout_substeps=8)).losses(batch)
    assert float(losses["derivative_loss"]) < 1e-24
    assert float(losses["rollout_loss"]) < 1e-14  # rk4 error with 8 steps per sampling interval
    assert float(wrong["derivative_loss"]) > 1e-6 and float(wrong["rollout_loss"]) > 1e-6


def test_module_rejects_bad_settings():
    model = ExactLinear(A, Normalizer.identity((2,)))
    for kwargs, message in [({"optimizer": "sgd"}, "optimizer"), ({"schedule": "step"}, "schedule"),
                            ({"lr": 0}, "lr")]:
        with pytest.raises(ValueError, match=message):
            DynamicsModule(model, **kwargs)
    for kwargs, message in [({"derivative_weight": 0, "rollout_weight": 0}, "nothing"),
                            ({"rollout_substeps": 0}, "rollout_substeps"),
                            ({"initial_state": "x"}, "observed")]:
        with pytest.raises(ValueError, match=message):
            TrajectoryMatching(model, **kwargs)


def test_learned_model_is_the_field_in_physical_units():
    data = linear_data()
    norm = Normalizer.fit(data, "standard")
    learned = LearnedModel(ExactLinear(A, norm), norm)
    x = data.states[:, 5]
    torch.testing.assert_close(learned.vector_field(0.0, x), x @ A.T)
    torch.testing.assert_close(learned.rollout(data.states[:, 0], data.t), data.states, rtol=1e-7, atol=1e-7)
    assert learned.state_shape == (2,) and learned.invariants == ()


def test_learned_model_has_the_lyapunov_exponent_of_its_field():
    # A = −0.1 I + 2 J is normal, so every tangent vector shrinks exactly like exp(−0.1 t).
    data = linear_data()
    norm = Normalizer.fit(data, "standard")
    learned = LearnedModel(ExactLinear(A, norm), norm)
    lam = largest_lyapunov_exponent(learned, data.states[:2, 0], t_transient=0.5, t_total=5.0, dt=0.05,
                                    renorm_every=0.5)
    assert lam == pytest.approx(-0.1, abs=1e-5)


@pytest.mark.parametrize(("kind", "dims"), [("scale", 4), ("standard", 2), ("none", 4)])
def test_learned_energy_generates_the_physical_field(kind, dims):
    # dx/dt = J ∇_x E(x) in physical units, for the energy LearnedModel reports.
    torch.manual_seed(0)
    hnn = models.get("hnn", state_shape=dims, width=16, depth=2).double()
    g = torch.Generator().manual_seed(1)
    traj = Trajectories(t=torch.linspace(0, 1, 5),
                        states=torch.randn(3, 5, dims, generator=g, dtype=torch.float64) * 4 + 1)
    norm = Normalizer.fit(traj, kind)
    learned = LearnedModel(hnn, norm)
    x = traj.states[:, 2].clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(learned.energy(x).sum(), x)
    d = dims // 2
    torch.testing.assert_close(learned.vector_field(0.0, x), torch.cat([grad[:, d:], -grad[:, :d]], -1))
    assert learned.invariants == ("energy",)


def test_learned_energy_refuses_a_non_canonical_normalisation():
    hnn = models.get("hnn", state_shape=4, width=8, depth=1).double()
    norm = Normalizer("standard", torch.zeros(4, dtype=torch.float64),
                      torch.tensor([1.0, 2.0, 1.0, 1.0], dtype=torch.float64), (4,))
    with pytest.raises(ValueError, match="scale"):
        LearnedModel(hnn, norm).energy(torch.zeros(1, 4, dtype=torch.float64))


# ------------------------------------------------------------------------------------------- runs


@pytest.fixture(scope="module")
def linear_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "linear.h5"
    save(linear_data(n=10, n_t=40), path)
    return path


OBJECTIVE_KEYS = tuple(TrajectoryMatching.defaults())


def config(path, **settings):
    """A small run; ``settings`` go to the training section, or to the objective's where they belong."""
    objective = {k: v for k, v in settings.items() if k in OBJECTIVE_KEYS}
    training = {k: v for k, v in settings.items() if k not in OBJECTIVE_KEYS}
    return {"data": {"path": str(path), "window": 4, "stride": 3, "batch_size": 16},
            "model": {"name": "node", "width": 8, "depth": 1}, "objective": objective,
            "training": {"max_epochs": 2, **FAST, **training}}


def weights(run_dir, which="last"):
    return torch.load(run_dir / "checkpoints" / f"{which}.ckpt", weights_only=True)["state_dict"]


def epochs_logged(run_dir):
    with open(run_dir / "logs" / "metrics.csv", newline="") as f:
        return [int(row["epoch"]) for row in csv.DictReader(f) if row.get("train_loss")]


def test_fit_writes_the_run_folder(tmp_path, linear_file):
    run = fit(config(linear_file), tmp_path / "run")
    names = {p.relative_to(run).as_posix() for p in run.rglob("*") if p.is_file()}
    assert {"config.yaml", "normalization.json", "split.json", "checkpoints/last.ckpt",
            "checkpoints/best.ckpt", "logs/metrics.csv"} <= names
    assert epochs_logged(run) == [0, 1]
    learned = load_run(run)
    assert learned.config["model"]["name"] == "node" and learned.config["data"]["normalization"] == "standard"
    assert torch.isfinite(learned.rollout(linear_data(2).states[:, 0], torch.linspace(0, 1, 5))).all()
    with pytest.raises(ValueError, match="not empty"):
        fit(config(linear_file), run)
    with pytest.raises(ValueError, match="not a run folder"):
        load_run(tmp_path)


def test_runs_repeat_and_resume_exactly(tmp_path, linear_file):
    # Two runs with the same seed, one of them interrupted after an epoch and resumed: identical weights
    # (which needs both repeatable runs and an exact resume).
    a = fit(config(linear_file, max_epochs=3), tmp_path / "a")
    other = fit(config(linear_file, max_epochs=1, seed=1), tmp_path / "other")
    b = fit(config(linear_file, max_epochs=1), tmp_path / "b")
    b_after_one = weights(b)
    fit({"training": {"max_epochs": 3}}, b, resume=True)  # the rest comes from b/config.yaml

    wa, wb = weights(a), weights(b)
    assert all(torch.equal(wa[k], wb[k]) for k in wa), "same seed, different weights"
    assert not all(torch.equal(b_after_one[k], weights(other)[k]) for k in wa), "seed has no effect"
    assert not all(torch.equal(b_after_one[k], wb[k]) for k in wa), "resume did not train"
    assert epochs_logged(b) == [0, 1, 2]
    with pytest.raises(ValueError, match="nothing to resume"):
        fit(config(linear_file), tmp_path / "c", resume=True)


def test_fit_recovers_a_known_field_in_physical_units(tmp_path, linear_file):
    # An affine model (depth 0) can represent the field exactly; derivative matching finds it.
    cfg = config(linear_file, max_epochs=4, lr=0.05, rollout_weight=0.0)
    cfg["model"] = {"name": "node", "depth": 0}
    cfg["data"].update(window=1, stride=1, batch_size=8)
    learned = load_run(fit(cfg, tmp_path / "run"))
    x = linear_data(5, seed=9).states[:, ::7].reshape(-1, 2)
    with torch.no_grad():
        error = (learned.vector_field(0.0, x) - x @ A.T).norm() / (x @ A.T).norm()
    assert error < 5e-3  # reached: ~3e-4; without the de-normalisation: ~0.5


def test_training_does_not_depend_on_the_units(tmp_path):
    # The same damped oscillator stored at 1e-15 (SI units at small scales) and at 1: the same field is
    # learned, to the same relative error (the normalised data are alike), where a normaliser blind to the
    # scale would let the model see zeros.
    errors = {}
    for scale in (1.0, 1e-15):
        data = linear_data(n=10, n_t=40)
        data.states, data.derivatives = data.states * scale, data.derivatives * scale
        cfg = config(save(data, tmp_path / f"{scale}.h5"), max_epochs=4, lr=0.05, rollout_weight=0.0)
        cfg["model"] = {"name": "node", "depth": 0}  # affine: can represent dx/dt = A x exactly
        cfg["data"].update(window=1, stride=1, batch_size=8)
        learned = load_run(fit(cfg, tmp_path / f"run-{scale}"))
        x = linear_data(5, seed=9).states[:, ::7].reshape(-1, 2) * scale
        with torch.no_grad():
            errors[scale] = float((learned.vector_field(0.0, x) - x @ A.T).norm() / (x @ A.T).norm())
    assert errors[1.0] < 5e-3
    assert errors[1e-15] == pytest.approx(errors[1.0], rel=0.05)


def test_fit_options_reach_the_trainer(tmp_path, linear_file):
    cos = fit(config(linear_file, max_epochs=3, schedule="cosine", lr=0.01), tmp_path / "cos")
    with open(cos / "logs" / "metrics.csv", newline="") as f:
        lrs = [float(row["lr-Adam"]) for row in csv.DictReader(f) if row.get("lr-Adam")]
    # cosine annealing over 3 epochs: lr_k = lr (1 + cos(π k / 3)) / 2
    assert lrs == pytest.approx([0.01 * (1 + math.cos(math.pi * k / 3)) / 2 for k in range(3)], rel=1e-6)

    # Resumed with more epochs, the schedule anneals over the new total and never climbs back up (a stored
    # T_max of 3 would give lr 0 at epoch 3 and then rise again).
    fit({"training": {"max_epochs": 6}}, cos, resume=True)
    with open(cos / "logs" / "metrics.csv", newline="") as f:
        lrs = [float(row["lr-Adam"]) for row in csv.DictReader(f) if row.get("lr-Adam")]
    assert lrs[3:] == pytest.approx([0.01 * (1 + math.cos(math.pi * k / 6)) / 2 for k in range(3, 6)],
                                    rel=1e-6)
    assert all(b <= a for a, b in zip(lrs[3:], lrs[4:], strict=False))

    cfg = config(linear_file, max_epochs=2, optimizer="adamw", weight_decay=0.01, schedule="plateau",
                 grad_clip=0.5, early_stopping_patience=1, precision="64-true")
    learned = load_run(fit(cfg, tmp_path / "more"))
    assert next(learned.model.parameters()).dtype == torch.float64
    assert learned.config["training"]["optimizer"] == "adamw"


def test_hnn_runs_use_a_canonical_scale(tmp_path, linear_file):
    cfg = config(linear_file, max_epochs=1)
    cfg["model"] = {"name": "hnn", "width": 8, "depth": 1}
    learned = load_run(fit(cfg, tmp_path / "run"))
    assert learned.normalizer.kind == "scale"
    x = linear_data(3).states[:, 0]
    assert torch.isfinite(learned.energy(x)).all() and learned.energy(x).shape == (3,)


def test_two_process_fit_gives_a_usable_checkpoint(tmp_path, linear_file):
    # "ddp_fork" (CPU, gloo) from within pytest; the CLI test covers "ddp", which re-launches the script.
    run = fit(config(linear_file, devices=2, strategy="ddp_fork", accelerator="cpu"), tmp_path / "run")
    learned = load_run(run)
    x = learned.rollout(linear_data(2).states[:, 0], torch.linspace(0, 2, 11))
    assert x.shape == (2, 11, 2) and torch.isfinite(x).all()
    assert epochs_logged(run) == [0, 1]


# -------------------------------------------------------------------------- fitted initial states


def noisy_rotations(n=64, n_t=41, noise=0.2, seed=0) -> Trajectories:
    """x(t) = (a cos(t + φ), −a sin(t + φ)), the flow of dx/dt = J x (J = [[0, 1], [−1, 0]]), plus noise."""
    g = torch.Generator().manual_seed(seed)
    t = torch.linspace(0, 4, n_t, dtype=torch.float64)
    phase = torch.rand(n, 1, generator=g, dtype=torch.float64) * 2 * math.pi
    amplitude = 1 + torch.rand(n, 1, generator=g, dtype=torch.float64)
    clean = torch.stack([amplitude * torch.cos(t + phase), -amplitude * torch.sin(t + phase)], -1)
    noise = noise * torch.randn(clean.shape, generator=g, dtype=torch.float64)
    return Trajectories(t=t, states=clean + noise)


def test_fitted_initial_states_remove_the_noise_bias():
    # Rollouts from noisy starts teach an affine model spurious damping (trace A < 0: the noise in x0 looks
    # like decay towards the mean); fitting the starts recovers the conservative rotation A = J.
    from torch.utils.data import default_collate

    from physdyn.data import WindowDataset

    windows = WindowDataset(noisy_rotations(), window=9, stride=8, dtype=torch.float64)
    batch = default_collate([windows[k] for k in range(len(windows))])
    fields = {}
    for kind in ("observed", "fitted"):
        torch.manual_seed(0)
        model = models.get("node", state_shape=2, depth=0).double()
        objective = TrajectoryMatching(model, windows, rollout_weight=1.0, initial_state=kind)
        module = DynamicsModule(model, objective, lr=0.02)
        optimizer = module.configure_optimizers()
        for _ in range(250):
            optimizer.zero_grad()
            module.losses(batch)["loss"].backward()
            optimizer.step()
        fields[kind] = model.net[0].weight.detach()
    exact = torch.tensor([[0.0, 1.0], [-1.0, 0.0]], dtype=torch.float64)
    assert float(fields["observed"].trace()) < -0.08  # the bias this feature exists for (measured −0.13)
    assert abs(float(fields["fitted"].trace())) < 0.02  # measured 0.002
    assert float((fields["fitted"] - exact).norm()) < 0.05  # measured 0.03
    with pytest.raises(ValueError, match="rollout"):
        TrajectoryMatching(model, windows, rollout_weight=0.0, initial_state="fitted")


def test_fitted_initial_states_train_with_the_model(tmp_path, linear_file):
    cfg = config(linear_file, initial_state="fitted", max_epochs=2)
    run = fit(cfg, tmp_path / "run")
    state = weights(run)
    n_windows = len(range(0, 40 - 4 + 1, 3)) * 8  # 8 training trajectories of 40 samples
    assert state["objective.initial_states"].shape == (n_windows, 2)
    assert torch.isfinite(load_run(run).rollout(linear_data(2).states[:, 0], torch.linspace(0, 1, 5))).all()
    assert fit({"training": {"max_epochs": 3}}, run, resume=True) == run
    assert not torch.equal(weights(run)["objective.initial_states"], state["objective.initial_states"])
    for bad, message in [({"initial_state": "learned"}, "observed or fitted"),
                         ({"initial_state": "fitted", "rollout_weight": 0.0}, "window >= 2")]:
        with pytest.raises(ValueError, match=message):
            fit(config(linear_file, **bad), tmp_path / "bad")


def test_last_checkpoint_is_the_last_epoch_and_best_the_lowest_loss(tmp_path, linear_file):
    # A learning rate far too large makes the validation loss jump about, so the best epoch is not the last.
    run = fit(config(linear_file, max_epochs=6, lr=0.5), tmp_path / "run")
    with open(run / "logs" / "metrics.csv", newline="") as f:
        rows = [row for row in csv.DictReader(f) if row.get("val_loss")]
    val = [(float(row["val_loss"]), int(row["epoch"])) for row in rows]
    last = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    best = torch.load(run / "checkpoints" / "best.ckpt", weights_only=True)
    assert min(val)[1] != 5, "this run's best epoch is its last: the check below cannot fail"
    assert last["epoch"] == 5 and best["epoch"] == min(val)[1]


def test_late_offset_grids_keep_their_steps_in_a_float32_model():
    # Times 1e6 + k·1e-3: cast to float32 before the shift to the window's start, the steps would be
    # rounded to multiples of 0.0625; shifted in float64 first, the rollout is the one on k·1e-3.
    torch.manual_seed(0)
    model = models.get("node", 2, width=8, depth=1)
    x0 = torch.randn(3, 2)
    steps = torch.arange(50, dtype=torch.float64) * 1e-3
    late = model.rollout(x0, 1e6 + steps)
    early = model.rollout(x0, steps)
    torch.testing.assert_close(late, early, rtol=0, atol=0)
    learned = LearnedModel(model, Normalizer.identity((2,)))
    torch.testing.assert_close(learned.rollout(x0, 1e6 + steps), early, rtol=0, atol=0)
    window = TrajectoryDataModule(Trajectories(t=1e6 + steps, states=torch.randn(1, 50, 2)), window=10,
                                  split=[1.0, 0.0, 0.0], normalization="none")
    window.setup()
    item = window.datasets["train"][3]
    assert item["t"].dtype == torch.float64 and torch.equal(item["t"], (1e6 + steps)[3:13])
