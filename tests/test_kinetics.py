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
