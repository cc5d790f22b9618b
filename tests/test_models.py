"""Learned models: registry, gradients, and rollouts against closed forms and conservation laws."""

import numpy as np
import pytest
import scipy.linalg
import torch

from physdyn import models

# Autonomous MLP fields (width, depth, activation); kinetics (rate constants, no network) and the log-time
# scaled_node (non-autonomous) have tests of their own in test_kinetics.py.
VECTOR_FIELD_MODELS = [n for n in models.names() if "vector_field" in models.model_class(n).capabilities
                       and "width" in models.defaults(n)
                       and getattr(models.model_class(n), "autonomous", True)]


@pytest.mark.parametrize("name", VECTOR_FIELD_MODELS)
def test_every_vector_field_model_runs_forward_rollout_and_backward(name):
    torch.manual_seed(0)
    model = models.get(name, 4, width=16)
    x = torch.randn(5, 4)
    assert model(torch.tensor(0.0), x).shape == (5, 4)
    t = torch.linspace(0, 0.5, 6)
    out = model.rollout(x, t)
    assert out.shape == (5, 6, 4) and torch.equal(out[:, 0], x)
    (model.vector_field(0.0, x).pow(2).sum() + out.pow(2).sum()).backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)
    assert set(models.defaults(name)) >= {"width", "depth", "activation", "method"}
    # predict: a rollout from the context's last state, at the query times
    # (autonomous, uniform grid: from x at t_1 over t_1..t_5 is the rollout from t_0 over t_0..t_4)
    pred = model.predict(t[:2], torch.stack([x, x], 1), None, t[1:], samples=2)
    assert pred.shape == (5, 2, 5, 4) and torch.allclose(pred[:, 1], out[:, :5], atol=1e-6)


@pytest.mark.parametrize("separable", [False, True])
def test_hnn_vector_field_is_the_symplectic_gradient_of_its_energy(separable):
    # Central finite differences of H_θ, independent of autograd: f = (∂H/∂p, −∂H/∂q).
    torch.manual_seed(1)
    model = models.get("hnn", state_shape=4, width=32, separable=separable).double()
    x = torch.randn(6, 4, dtype=torch.float64)
    eps = 1e-6
    grad = torch.stack([(model.energy(x + eps * e) - model.energy(x - eps * e)) / (2 * eps)
                        for e in torch.eye(4, dtype=torch.float64)], -1)
    expected = torch.cat([grad[:, 2:], -grad[:, :2]], -1)
    assert torch.allclose(model.vector_field(0.0, x), expected, atol=1e-8)
    # The field composes with torch.func (Jacobians for Lyapunov exponents): compare with differences of f.
    jac = torch.vmap(torch.func.jacrev(lambda xi: model.vector_field(0.0, xi[None])[0]))(x)
    f = model.vector_field
    fd = torch.stack([(f(0.0, x + eps * e) - f(0.0, x - eps * e)) / (2 * eps)
                      for e in torch.eye(4, dtype=torch.float64)], -1)
    assert torch.allclose(jac, fd, atol=1e-7)
    # A Hamiltonian field is divergence-free: the Jacobian has zero trace.
    divergence = jac.diagonal(dim1=-2, dim2=-1).sum(-1)
    assert torch.allclose(divergence, torch.zeros(6, dtype=torch.float64), atol=1e-12)


def _convex_hnn(separable: bool) -> models.HamiltonianNN:
    """A random HNN whose H is convex and confining (softplus units with positive output weights), so every
    orbit is closed and bounded: a generic nonlinear oscillator with periods of a few time units."""
    torch.manual_seed(0)
    model = models.get("hnn", state_shape=2, width=16, depth=1, activation="softplus", separable=separable)
    model = model.double()
    with torch.no_grad():
        for net in ([model.kinetic, model.potential] if separable else [model.net]):
            net[0].weight.mul_(3.0)
            net[-1].weight.abs_()
    return model


def test_hnn_symplectic_rollout_keeps_its_energy_bounded_while_rk4_drifts():
    model = _convex_hnn(separable=True)
    x0 = torch.randn(8, 2, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    steps, h = 400, 0.6
    t = torch.arange(steps + 1, dtype=torch.float64) * h

    def relative_error(method: str) -> torch.Tensor:
        with torch.no_grad():
            x = model.rollout(x0, t, method=method)
            energy = model.energy(x.reshape(-1, 2)).reshape(8, -1)
        return ((energy - energy[:, :1]) / energy[:, :1]).abs()

    sym, rk4 = relative_error("yoshida4"), relative_error("rk4")
    quarter = steps // 4
    # Symplectic: the error oscillates but does not grow (no secular drift), and stays small.
    assert sym[:, -quarter:].amax(1).mean() <= 1.2 * sym[:, :quarter].amax(1).mean()
    assert sym.max() < 0.03
    # RK4 at the same step: the error grows with time and ends well above the symplectic bound.
    assert rk4[:, -quarter:].amax(1).mean() > 2.0 * rk4[:, :quarter].amax(1).mean()
    assert rk4[:, -1].mean() > 3.0 * sym.amax(1).mean()


def test_nonseparable_hnn_rollout_conserves_energy_through_implicit_midpoint():
    model = _convex_hnn(separable=False)
    x0 = torch.randn(4, 2, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    t = torch.arange(61, dtype=torch.float64) * 0.2
    with torch.no_grad():
        x = model.rollout(x0, t, method="implicit_midpoint")
        energy = model.energy(x.reshape(-1, 2)).reshape(4, -1)
    # Implicit midpoint conserves quadratic invariants exactly and others to O(h²) without drift.
    assert ((energy - energy[:, :1]).abs() / energy[:, :1].abs()).max() < 1e-2
    dopri = model.rollout(x0, t, method="dopri5", rtol=1e-10, atol=1e-12)
    assert (x - dopri).abs().max() < 0.05  # same orbit, order-2 phase error


def _linear_node(a: np.ndarray) -> models.NeuralODE:
    model = models.get("node", state_shape=len(a), depth=0).double()
    with torch.no_grad():
        model.net[0].weight.copy_(torch.from_numpy(a))
        model.net[0].bias.zero_()
    return model


def test_linear_node_rolls_out_to_the_matrix_exponential():
    a = np.array([[-0.1, 2.0, 0.0], [-2.0, -0.1, 0.5], [0.0, -0.5, -0.3]])
    model = _linear_node(a)
    x0 = torch.tensor([[1.0, 0.0, -1.0], [0.2, 0.3, 0.4]], dtype=torch.float64)
    t = torch.linspace(0, 5, 21, dtype=torch.float64)
    exact = np.stack([scipy.linalg.expm(a * ti) @ x0.numpy().T for ti in t.numpy()], 0).transpose(2, 0, 1)
    dopri = model.rollout(x0, t, method="dopri5", rtol=1e-10, atol=1e-12).detach().numpy()
    rk4 = model.rollout(x0, t, method="rk4", substeps=10).detach().numpy()
    assert np.abs(dopri - exact).max() < 1e-8
    assert np.abs(rk4 - exact).max() < 1e-6
    # One grid per trajectory: each row starts at its own t_0 and only the differences count.
    grids = torch.stack([t, 2.0 + 0.5 * t])
    per = model.rollout(x0, grids, method="rk4", substeps=10).detach().numpy()
    second = np.stack([scipy.linalg.expm(a * 0.5 * ti) @ x0[1].numpy() for ti in t.numpy()])
    assert np.abs(per[0] - exact[0]).max() < 1e-6 and np.abs(per[1] - second).max() < 1e-6
    per_dopri = model.rollout(x0, grids, method="dopri5", rtol=1e-10, atol=1e-12).detach().numpy()
    assert np.abs(per_dopri[1] - second).max() < 1e-8


def test_node_adjoint_gradients_equal_direct_backpropagation():
    torch.manual_seed(2)
    model = models.get("node", state_shape=2, width=8, depth=1).double()
    x0 = torch.randn(3, 2, dtype=torch.float64)
    t = torch.linspace(0, 1, 5, dtype=torch.float64)
    grads = []
    for adjoint in (False, True):
        model.zero_grad()
        model.rollout(x0, t, method="dopri5", rtol=1e-10, atol=1e-10, adjoint=adjoint).pow(2).sum().backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    assert torch.allclose(grads[0], grads[1], rtol=1e-6, atol=1e-9)


def test_hnn_trains_through_its_symplectic_rollout():
    torch.manual_seed(3)
    model = models.get("hnn", state_shape=2, width=8, separable=True).double()
    x0 = torch.randn(3, 2, dtype=torch.float64)
    t = torch.linspace(0, 1, 5, dtype=torch.float64)
    loss = model.rollout(x0, t, method="leapfrog", substeps=2)[:, -1].pow(2).sum()
    loss.backward()
    eps = 1e-6
    w = model.potential[0].weight
    with torch.no_grad():
        w[0, 0] += eps
        up = model.rollout(x0, t, method="leapfrog", substeps=2)[:, -1].pow(2).sum()
        w[0, 0] -= 2 * eps
        down = model.rollout(x0, t, method="leapfrog", substeps=2)[:, -1].pow(2).sum()
        w[0, 0] += eps
    assert torch.isclose(w.grad[0, 0], (up - down) / (2 * eps), rtol=1e-5, atol=1e-9)


def test_registry_errors_name_the_problem():
    with pytest.raises(ValueError, match="unknown model 'transformer'"):
        models.get("transformer", state_shape=2)
    with pytest.raises(ValueError, match="unknown hyperparameter.*widht"):
        models.get("node", state_shape=2, widht=3)
    with pytest.raises(TypeError, match="state_shape"):
        models.get("hnn")
    with pytest.raises(ValueError, match="state_shape must be"):
        models.get("node", state_shape=(2, 0))
    with pytest.raises(ValueError, match="of even size"):
        models.get("hnn", state_shape=3)
    with pytest.raises(ValueError, match="unknown activation 'relu'"):
        models.get("hnn", state_shape=2, activation="relu")
    with pytest.raises(ValueError, match="width"):
        models.get("node", state_shape=2, width=0)
    with pytest.raises(ValueError, match="x0 must have shape"):
        models.get("node", state_shape=2).rollout(torch.zeros(3, 4), torch.linspace(0, 1, 3))
    with pytest.raises(ValueError, match="unknown integration method"):
        models.get("node", state_shape=2).rollout(torch.zeros(3, 2), torch.linspace(0, 1, 3), method="rk99")
    assert {"node", "hnn"} <= set(models.names())
    assert "state_shape" not in models.defaults("hnn")
