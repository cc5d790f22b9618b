"""Mass-action kinetics with learned rate constants: parsing, the field against Robertson's equations,
conservation and positivity of its stiff rollouts, gradients through the solver, rates recovered by a fit."""

from __future__ import annotations

import math

import pytest
import torch

from physdyn import models, systems
from physdyn.data import Trajectories, save
from physdyn.models.kinetics import (
    Kinetics,
    estimate_rate_constants,
    is_log_spaced,
    parse_reaction,
    species_in,
    stoichiometry,
)
from physdyn.training import fit, load_run

ROBERTSON = ["A -> B", "2 B -> B + C", "B + C -> A + C"]
TRUE_RATES = [0.04, 3e7, 1e4]


def _robertson(rates=TRUE_RATES) -> Kinetics:
    return Kinetics(3, reactions=ROBERTSON, species=["A", "B", "C"], rate_constants=rates).double()


def test_reactions_parse_into_reactant_and_product_matrices():
    assert parse_reaction("2 B -> B + C") == ({"B": 2}, {"B": 1, "C": 1})
    assert parse_reaction("2*X + Y -> 3Z") == ({"X": 2, "Y": 1}, {"Z": 3})
    assert species_in(ROBERTSON) == ["A", "B", "C"]
    s = stoichiometry(ROBERTSON, ["A", "B", "C"])
    assert s.reactants.tolist() == [[1, 0, 0], [0, 2, 0], [0, 1, 1]]
    assert s.products.tolist() == [[0, 1, 0], [0, 1, 1], [1, 0, 1]]
    assert s.matrix.tolist() == [[-1, 0, 1], [1, -1, -1], [0, 1, 0]]
    assert s.conserves_total() and not stoichiometry(["A -> 2 B"], ["A", "B"]).conserves_total()


@pytest.mark.parametrize("reaction, message", [
    ("A B", "expected one '->'"),
    ("A -> B -> C", "expected one '->'"),
    ("A + -> B", "cannot read the term ''"),
    ("0 A -> B", "coefficient of 'A' must be >= 1"),
    ("A + B -> B + A", "changes nothing"),
    ("A -> D", "unknown species 'D'"),
])
def test_bad_reactions_give_one_line_errors_naming_the_reaction(reaction, message):
    with pytest.raises(ValueError, match=message) as err:
        stoichiometry([reaction], ["A", "B", "C"])
    assert repr(reaction) in str(err.value) and "\n" not in str(err.value)


def test_bad_hyperparameters_are_refused():
    with pytest.raises(ValueError, match="model.species names 2 species"):
        Kinetics(3, reactions=ROBERTSON, species=["A", "B"])
    with pytest.raises(ValueError, match="model.rate_constants must be one positive number or 3"):
        Kinetics(3, reactions=ROBERTSON, species=["A", "B", "C"], rate_constants=[1.0, -1.0, 2.0])
    with pytest.raises(ValueError, match="reactions must be a non-empty list"):
        Kinetics(3, reactions="A -> B", species=["A", "B", "C"])


def test_mass_action_field_of_the_true_rates_is_robertsons():
    model, system = _robertson(), systems.get("robertson")
    x = torch.rand(64, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    f_model, f_true = model.vector_field(0.0, x), system.vector_field(0.0, x)
    assert torch.allclose(f_model, f_true, rtol=1e-14, atol=0)
    assert torch.allclose(model.jacobian(0.0, x), system.jacobian(0.0, x), rtol=1e-14, atol=1e-300)


def test_analytic_jacobian_matches_autograd_for_higher_orders():
    model = Kinetics(3, reactions=["2 A + B -> C", "C -> A + B", "3 B -> A"], species=["A", "B", "C"],
                     rate_constants=[2.0, 0.5, 3.0]).double()
    x = torch.rand(8, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    autograd = torch.vmap(torch.func.jacrev(lambda v: model.vector_field(0.0, v[None])[0]))(x)
    assert torch.allclose(model.jacobian(0.0, x), autograd, rtol=1e-12, atol=1e-14)


def _log_grid(points: int = 50) -> torch.Tensor:
    zero = torch.zeros(1, dtype=torch.float64)
    return torch.cat([zero, torch.logspace(-5, 5, points, dtype=torch.float64)])


def test_random_rate_rollout_conserves_mass_to_round_off_and_stays_non_negative():
    g = torch.Generator().manual_seed(2)
    rates = (10 ** (torch.rand(3, generator=g, dtype=torch.float64) * 8 - 2)).tolist()
    model = _robertson(rates)
    y1 = 0.5 + 0.5 * torch.rand(6, generator=g, dtype=torch.float64)
    x0 = torch.stack([y1, torch.zeros_like(y1), 1 - y1], -1)
    with torch.no_grad():
        x = model.rollout(x0, _log_grid())
    assert (x.sum(-1) - x0.sum(-1, keepdim=True)).abs().max() <= 1e-12
    assert bool((x >= 0).all())


def test_rollout_matches_the_reference_solver_at_the_true_rates():
    system, t = systems.get("robertson"), _log_grid()
    truth = system.simulate(4, t=t, seed=3)
    with torch.no_grad():
        x = _robertson().rollout(truth.states[:, 0], t)
    scale = truth.states.abs().amax((0, 1))
    assert ((x - truth.states) / scale).abs().max() < 1e-5


def test_gradient_through_the_stiff_solver_matches_finite_differences():
    t = torch.cat([torch.zeros(1, dtype=torch.float64), torch.logspace(-2, 1, 6, dtype=torch.float64)])
    x0 = torch.tensor([[1.0, 0.0, 0.0], [0.7, 0.0, 0.3]], dtype=torch.float64)
    model = Kinetics(3, reactions=ROBERTSON, species=["A", "B", "C"], rate_constants=[0.5, 300.0, 20.0],
                     rtol=1e-10, atol=1e-14).double()
    weights = torch.randn(2, len(t), 3, generator=torch.Generator().manual_seed(4), dtype=torch.float64)

    def loss() -> torch.Tensor:
        return (model.rollout(x0, t) * weights).sum()

    loss().backward()
    grad = model.log_rate_constants.grad.clone()
    h = 1e-4
    for j in range(3):
        with torch.no_grad():
            model.log_rate_constants[j] += h
            up = float(loss())
            model.log_rate_constants[j] -= 2 * h
            down = float(loss())
            model.log_rate_constants[j] += h
        assert math.isclose(float(grad[j]), (up - down) / (2 * h), rel_tol=1e-5, abs_tol=1e-9)


def test_differential_method_estimates_robertsons_rates():
    truth = systems.get("robertson").simulate(6, t=_log_grid(60), seed=5)
    k = estimate_rate_constants(_robertson([1.0, 1.0, 1.0]), truth.t.expand(6, -1), truth.states)
    assert is_log_spaced(truth.t) and not is_log_spaced(torch.linspace(0, 10, 100))
    assert torch.allclose(k, torch.tensor(TRUE_RATES, dtype=torch.float64), rtol=0.03)


def test_a_short_seeded_fit_recovers_the_rate_of_a_first_order_decay(tmp_path):
    """A -> B with k = 0.7: y_A = y_A0 exp(−k t), sampled sparsely, the fit starting from a poor estimate."""
    g = torch.Generator().manual_seed(6)
    t = torch.linspace(0.0, 5.0, 6, dtype=torch.float64)
    a0 = 0.5 + 0.5 * torch.rand(8, 1, generator=g, dtype=torch.float64)
    a = a0 * torch.exp(-0.7 * t)
    states = torch.stack([a, a0 - a + 0.1], -1)
    path = save(Trajectories(t=t, states=states, state_names=("A", "B")), tmp_path / "decay.h5")
    run = fit({"data": {"path": str(path)}, "model": {"name": "kinetics", "reactions": ["A -> B"]},
               "training": {"max_epochs": 80, "lr": 0.05, "progress_bar": False}}, tmp_path / "run")
    learned = load_run(run)
    assert learned.model.species == ("A", "B")
    assert math.isclose(learned.model.rate_constants["A -> B"], 0.7, rel_tol=1e-3)


def test_kinetics_is_registered_with_its_objective():
    assert models.model_class("kinetics") is Kinetics and Kinetics.objective == "kinetics_matching"
    assert models.defaults("kinetics")["method"] == "rodas5p"


def test_species_normalisation_scales_each_component_by_its_largest_value_without_a_shift():
    from physdyn.data import Normalizer

    truth = systems.get("robertson").simulate(3, t=_log_grid(20), seed=7)
    norm = Normalizer.fit(truth, "species")
    assert torch.equal(norm.mean, torch.zeros(3, dtype=torch.float64))
    assert torch.equal(norm.std, truth.states.abs().amax((0, 1)))
    assert float(norm.transform(truth.states).abs().max()) == 1.0


def test_scaled_node_rollout_in_log_time_is_the_solution_of_its_physical_field():
    """Integrated over τ = ln(t + t_c), the rollout must solve dz/dt = vector_field(t, z) in physical time
    (scipy's LSODA at tight tolerance on the physical field, with its t-dependence)."""
    import numpy as np
    from scipy.integrate import solve_ivp

    from physdyn.models.scaled_node import ScaledNeuralODE

    torch.manual_seed(8)
    model = ScaledNeuralODE(3, width=16, depth=2, time_offset=1e-3, log_time_range=[math.log(1e-3), 2.0],
                            rtol=1e-10, atol=1e-12).double()
    t = torch.cat([torch.zeros(1, dtype=torch.float64), torch.logspace(-3, 0.5, 12, dtype=torch.float64)])
    x0 = torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64)
    with torch.no_grad():
        ours = model.rollout(x0, t)[0].numpy()

        def field(s, y):
            return model.vector_field(torch.tensor([s], dtype=torch.float64),
                                      torch.tensor(y, dtype=torch.float64)[None])[0].numpy()

        ref = solve_ivp(field, (0.0, float(t[-1])), x0[0].numpy(), method="LSODA", t_eval=t.numpy(),
                        rtol=1e-11, atol=1e-13).y.T
    np.testing.assert_allclose(ours, ref, rtol=1e-6, atol=1e-8)


def test_fit_names_the_species_after_the_reactions_where_the_file_names_them_otherwise(tmp_path):
    from physdyn.training._run import prepare

    truth = systems.get("robertson").simulate(4, t=_log_grid(10), seed=9)
    path = save(truth, tmp_path / "rober.h5")
    plan = prepare({"data": {"path": str(path)}, "model": {"name": "kinetics", "reactions": ROBERTSON}},
                   tmp_path / "run")
    assert plan.config["model"]["species"] == ["A", "B", "C"]
    assert any("A = y1, B = y2, C = y3" in note for note in plan.notes)
    assert plan.config["data"]["max_gap"] is None and plan.config["training"]["precision"] == "64-true"
    with pytest.raises(ValueError, match="unknown species 'D'"):
        prepare({"data": {"path": str(path)}, "model": {"name": "kinetics", "reactions": ["A -> D"],
                                                         "species": ["A", "B", "C"]}}, tmp_path / "run2")


@pytest.mark.slow
def test_the_robertson_kinetics_example_recovers_the_rate_constants(tmp_path):
    from physdyn.evaluation import run_example

    report = run_example("robertson-kinetics", tmp_path / "out", max_epochs=3, log=lambda line: None)
    m = report.metrics
    rates = m["learned_parameters"]["rate_constants"]
    for (reaction, k), true in zip(rates.items(), TRUE_RATES, strict=True):
        assert abs(k / true - 1) < 0.05, reaction
    assert m["mass_error"]["worst"] <= 1e-12 and m["positivity_violation"]["count"] == 0
    assert max(m["species_error"].values()) < 0.01
