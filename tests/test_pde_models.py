"""Next-frame models on fields: shapes, zero-flux boundaries, the stability and reversibility of the
Ruthotto-Haber layers, moment-constrained stencils against finite differences, per-channel normalisation."""

from __future__ import annotations

import pytest
import torch

from physdyn import models, systems
from physdyn.data import Normalizer, Trajectories
from physdyn.models._fields import ZeroFluxConv, pad_zero_flux, pad_zero_flux_adjoint
from physdyn.models.pde_net import MomentKernel, moment_matrix
from physdyn.training import UnrolledSteps

FIELD_MODELS = ["parabolic_cnn", "hyperbolic_cnn", "hamiltonian_cnn", "pde_net", "unet"]


@pytest.mark.parametrize("shape", [(2, 6, 5), (3, 9)])
@pytest.mark.parametrize("name", FIELD_MODELS)
def test_field_models_predict_on_the_grid_in_one_and_two_space_dimensions(name, shape):
    torch.manual_seed(0)
    model = models.get(name, shape)
    model.set_time_step(0.1)
    t_context = torch.tensor([0.0, 0.1, 0.2])
    x = torch.randn(4, 3, *shape)
    t = torch.tensor([0.2, 0.3, 0.5])
    out = model.predict(t_context, x, None, t, samples=2)
    assert out.shape == (4, 2, 3, *shape)
    assert torch.equal(out[:, 0, 0], x[:, -1])  # the query at the last context time is that frame
    assert torch.isfinite(out).all()
    with pytest.raises(ValueError, match="grid"):
        model.predict(t_context, x, None, torch.tensor([0.25]))
    with pytest.raises(ValueError, match="works on states"):
        models.get(name, (4,))


def test_pde_net_steps_by_euler_or_rk4_and_rk4_is_the_more_accurate_for_linear_diffusion():
    # Pure diffusion with fixed stencils (free moments 0, no reaction, no advection): the exact one-frame map
    # is exp(dt D Δ) on each Fourier mode; RK4's error is far below Euler's.
    n, dt, d = 16, 0.5, 0.2
    x = torch.randn(1, 1, 2, n, n, dtype=torch.float64, generator=torch.Generator().manual_seed(8))
    errors = {}
    for method in ("euler", "rk4"):
        net = models.get("pde_net", (2, n, n), method=method, advection=False, substeps=4).double()
        net.set_time_step(dt)
        with torch.no_grad():
            for p in net.reaction.parameters():
                p.zero_()
            net.diffusion_number.fill_(d * dt)  # D = θ dx²/dt with dx = 1
        with torch.no_grad():
            out = net.step(x[:, 0:1])
        exact, term = x[:, 0].clone(), x[:, 0].clone()  # exp(dt D Δ) x by its series, the same stencil
        with torch.no_grad():
            for j in range(1, 30):
                term = dt * d * sum(k(term) for k in net.second) / j
                exact = exact + term
        errors[method] = float((out - exact).abs().max())
    assert errors["rk4"] < 1e-3 * errors["euler"]
    with pytest.raises(ValueError, match="euler or rk4"):
        models.get("pde_net", (2, 4, 4), method="heun")


def test_a_context_shorter_than_the_history_is_refused():
    model = models.get("parabolic_cnn", (2, 4, 4), history=3)
    model.set_time_step(1.0)
    with pytest.raises(ValueError, match="at least 3"):
        model.predict(torch.arange(2.0), torch.zeros(1, 2, 2, 4, 4), None, torch.tensor([1.0, 2.0]))


def test_zero_flux_padding_gives_the_finite_volume_laplacian_whose_grid_sum_vanishes():
    g = torch.Generator().manual_seed(1)
    system = systems.get("reaction_diffusion", n=7)
    x = torch.randn(3, 2, 7, 7, generator=g, dtype=torch.float64)
    p = pad_zero_flux(x, 1, 2)
    stencil = torch.tensor([[0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=torch.float64) / system.dx**2
    lap = torch.nn.functional.conv2d(p.flatten(0, 1)[:, None], stencil[None, None]).view_as(x)
    torch.testing.assert_close(lap, system.laplacian(x), rtol=1e-12, atol=1e-10)
    assert lap.sum((-2, -1)).abs().max() < 1e-9  # no flux through the walls: diffusion conserves the sum


@pytest.mark.parametrize("dims,pad", [(1, 1), (1, 3), (2, 2)])
def test_the_padding_adjoint_is_its_transpose(dims, pad):
    g = torch.Generator().manual_seed(2)
    shape = (2, 5) if dims == 1 else (2, 5, 4)
    x = torch.randn(*shape, generator=g, dtype=torch.float64)
    y = torch.randn(pad_zero_flux(x, pad, dims).shape, generator=g, dtype=torch.float64)
    lhs = (pad_zero_flux(x, pad, dims) * y).sum()
    rhs = (x * pad_zero_flux_adjoint(y, pad, dims)).sum()
    torch.testing.assert_close(lhs, rhs, rtol=1e-12, atol=1e-12)


def _matrix(f, shape):
    """The matrix of a linear map f on tensors of ``shape`` (batch of one)."""
    n = torch.Size(shape).numel()
    eye = torch.eye(n, dtype=torch.float64).reshape(n, 1, *shape)
    return torch.stack([f(e).flatten() for e in eye], 1)


@pytest.mark.parametrize("dims", [1, 2])
def test_the_convolution_transpose_is_exact_and_its_norm_bound_holds(dims):
    torch.manual_seed(3)
    conv = ZeroFluxConv(3, 3, 3, dims).double()
    shape = (3, 6) if dims == 1 else (3, 5, 4)
    k = _matrix(lambda e: conv(e) - conv.bias.reshape(1, -1, *[1] * dims), shape)
    kt = _matrix(conv.transpose, shape)
    torch.testing.assert_close(kt, k.T, rtol=1e-12, atol=1e-12)
    assert float(torch.linalg.matrix_norm(k.detach(), ord=2)) <= float(conv.norm_bound().detach()) + 1e-12


def _layer_jacobian(model, y):
    return torch.autograd.functional.jacobian(lambda v: model.propagate(v[None])[0], y).reshape(y.numel(), -1)


def test_the_parabolic_layer_is_symmetric_and_non_expansive_under_its_constraint():
    torch.manual_seed(4)
    shape = (2, 5, 5)
    y = torch.randn(3, 5, 5, dtype=torch.float64)
    stable = models.get("parabolic_cnn", shape, width=3, depth=1, h=50.0, stable=True).double()
    free = models.get("parabolic_cnn", shape, width=3, depth=1, h=50.0, stable=False).double()
    free.load_state_dict(stable.state_dict())
    # One layer: J = I − h Kᵀ diag(σ') K, symmetric; eigenvalues in [1 − h ‖K‖², 1].
    jac = _layer_jacobian(stable, y)
    torch.testing.assert_close(jac, jac.T, rtol=1e-10, atol=1e-10)
    eig = torch.linalg.eigvalsh(jac)
    assert eig.max() <= 1 + 1e-10 and eig.min() >= -1 - 1e-10
    # The same weights with the unconstrained step expand: the constraint is what makes it hold.
    assert torch.linalg.eigvalsh(_layer_jacobian(free, y)).min() < -1


def test_leapfrog_and_verlet_layers_run_backwards_to_their_start():
    torch.manual_seed(5)
    y0 = torch.randn(1, 4, 6, 6, dtype=torch.float64)
    hyp = models.get("hyperbolic_cnn", (2, 6, 6), width=4, depth=6, h=0.7).double()
    y_prev, y = hyp.leapfrog(y0, y0 + 0.1)
    back_prev, back = hyp.leapfrog(y, y_prev, reverse=True)
    torch.testing.assert_close(back_prev, y0 + 0.1, rtol=0, atol=1e-11)
    torch.testing.assert_close(back, y0, rtol=0, atol=1e-11)
    ham = models.get("hamiltonian_cnn", (2, 6, 6), width=4, depth=6, h=0.7).double()
    z0 = torch.randn_like(y0)
    y, z = ham.verlet(y0, z0)
    assert (y - y0).abs().max() > 1e-2  # the layers do move the features
    y_back, z_back = ham.verlet(y, z, reverse=True)
    torch.testing.assert_close(y_back, y0, rtol=0, atol=1e-11)
    torch.testing.assert_close(z_back, z0, rtol=0, atol=1e-11)


def test_moment_matrix_maps_a_stencil_to_its_taylor_moments():
    # The 3-point second difference [1, -2, 1] has moments (0, 0, 1): it is d²/dx² to second order.
    m = moment_matrix(3) @ torch.tensor([1.0, -2.0, 1.0], dtype=torch.float64)
    torch.testing.assert_close(m, torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64))


@pytest.mark.parametrize("order,size,accuracy,stencil", [
    ((0, 2), 3, 1, [1.0, -2.0, 1.0]),
    ((0, 1), 3, 2, [-0.5, 0.0, 0.5]),
    ((0, 2), 5, 2, [-1 / 12, 4 / 3, -5 / 2, 4 / 3, -1 / 12]),
    ((0, 1), 5, 4, [1 / 12, -2 / 3, 0.0, 2 / 3, -1 / 12]),
])
def test_moment_kernels_with_free_moments_zero_are_the_central_difference_stencils(order, size, accuracy,
                                                                                    stencil):
    kernel = MomentKernel(order, size, accuracy).double().kernel()
    expected = torch.zeros(size, size, dtype=torch.float64)
    expected[size // 2] = torch.tensor(stencil, dtype=torch.float64)
    torch.testing.assert_close(kernel, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("order", [(0, 1), (1, 0), (0, 2), (2, 0), (1, 1)])
def test_moment_kernels_differentiate_polynomials_exactly_whatever_their_free_moments(order):
    g = torch.Generator().manual_seed(6)
    dx, size, accuracy = 0.1, 5, 2
    kernel = MomentKernel(order, size, accuracy, dx).double()
    with torch.no_grad():
        kernel.free.copy_(torch.randn(kernel.free.shape, generator=g, dtype=torch.float64))
    yy, xx = torch.meshgrid(*[torch.arange(12, dtype=torch.float64) * dx] * 2, indexing="ij")
    # Every monomial y^a x^b of degree < |order| + accuracy, and its exact derivative.
    for a in range(4):
        for b in range(4 - a):
            if a + b >= sum(order) + accuracy:
                continue
            u = yy**a * xx**b
            da, db = order
            coef = 1.0
            for k in range(da):
                coef *= a - k
            for k in range(db):
                coef *= b - k
            exact = coef * yy ** max(a - da, 0) * xx ** max(b - db, 0)
            got = kernel(u[None, None])[0, 0, 2:-2, 2:-2]  # interior: the walls mirror, polynomials do not
            torch.testing.assert_close(got, exact[2:-2, 2:-2], rtol=1e-8, atol=1e-8)


def test_a_stencil_asked_for_more_accuracy_than_it_has_moments_is_refused():
    with pytest.raises(ValueError, match="accuracy"):
        MomentKernel((0, 2), 3, 2)


def test_channel_normalisation_is_one_affine_map_per_channel():
    g = torch.Generator().manual_seed(7)
    states = torch.randn(3, 4, 2, 5, 6, generator=g, dtype=torch.float64) * torch.tensor([2.0, 0.5])[:, None,
                                                                                                    None]
    states = states + torch.tensor([1.0, -3.0])[:, None, None]
    traj = Trajectories(t=torch.arange(4.0, dtype=torch.float64), states=states)
    norm = Normalizer.fit(traj, "channel")
    z = norm.transform(states)
    per_channel = states.transpose(0, 2).reshape(2, -1)
    for c in range(2):
        torch.testing.assert_close(z[:, :, c].mean(), torch.tensor(0.0, dtype=torch.float64), atol=1e-12,
                                   rtol=0)
        torch.testing.assert_close(norm.std.view(2, -1)[c], per_channel[c].std(unbiased=False).expand(30))
    # The same map at every cell: normalising commutes with a shift of the grid.
    torch.testing.assert_close(norm.transform(states.roll(2, -1)), z.roll(2, -1))


def test_unrolled_steps_checks_its_windows_and_grid():
    from physdyn.data import WindowDataset

    model = models.get("parabolic_cnn", (2, 4, 4), history=2)
    t = torch.arange(8.0, dtype=torch.float64) * 0.5
    traj = Trajectories(t=t, states=torch.randn(2, 8, 2, 4, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match="data.window must be at least 4"):
        UnrolledSteps(model, WindowDataset(traj, 3), pushforward=1)
    objective = UnrolledSteps(model, WindowDataset(traj, 5), pushforward=1)
    assert float(model.dt) == 0.5
    batch = torch.utils.data.default_collate([WindowDataset(traj, 5)[i] for i in range(3)])
    losses = objective(model, batch)
    losses["loss"].backward()
    assert torch.isfinite(losses["loss"]) and model.open.weight.grad is not None
    uneven = Trajectories(t=t**1.5, states=traj.states)
    with pytest.raises(ValueError, match="uniform time grid"):
        UnrolledSteps(model, WindowDataset(uneven, 4))
    with pytest.raises(ValueError, match=r"step\) model"):
        UnrolledSteps(models.get("node", (4,)))


def test_fno_says_in_one_line_how_to_install_its_package(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "neuralop.models", None)  # as if not installed
    with pytest.raises(ValueError, match=r'neuraloperator package: pip install -e "\.\[operators\]"'):
        models.get("fno", (2, 8, 8))


def test_fno_predicts_on_fields_when_installed():
    pytest.importorskip("neuralop")
    torch.manual_seed(0)
    model = models.get("fno", (2, 8, 8), history=2)
    model.set_time_step(0.1)
    out = model.predict(torch.tensor([0.0, 0.1]), torch.randn(3, 2, 2, 8, 8), None, torch.tensor([0.1, 0.3]))
    assert out.shape == (3, 1, 2, 2, 8, 8) and torch.isfinite(out).all()
    assert "_metadata" not in model.state_dict()
