"""Splits, windows, normalisation and the data module, checked against direct numpy computations."""

import json

import numpy as np
import pytest
import torch

from physdyn.data import (
    Normalizer,
    Trajectories,
    WindowDataset,
    example_trajectories,
    load,
    split_by_trajectory,
    write_example_file,
)


def indexed_trajectories(n=4, n_t=12, per_trajectory_times=False, mask=None):
    """States that name their position: x[i, k] = (i, k, 0.5 i k), so a window shows where it came from."""
    i, k = torch.meshgrid(torch.arange(n, dtype=torch.float64), torch.arange(n_t, dtype=torch.float64),
                          indexing="ij")
    states = torch.stack([i, k, 0.5 * i * k], -1)
    t = 0.1 * torch.arange(n_t, dtype=torch.float64)
    if per_trajectory_times:
        t = (1.0 + i) * t + 10.0 * i  # own spacing and offset per trajectory
    return Trajectories(t=t, states=states, mask=mask)


# ----------------------------------------------------------------------------------------------- split


@pytest.mark.parametrize("n", [3, 4, 10, 101])
def test_split_is_disjoint_covering_and_non_empty(n):
    split = split_by_trajectory(n, (0.8, 0.1, 0.1), seed=3)
    parts = [set(split[k]) for k in ("train", "val", "test")]
    assert all(parts), split
    assert sum(len(p) for p in parts) == n
    assert set().union(*parts) == set(range(n))
    if n == 101:
        assert (len(parts[0]), len(parts[1]), len(parts[2])) == (81, 10, 10)


def test_split_is_deterministic_per_seed():
    assert split_by_trajectory(50, seed=1) == split_by_trajectory(50, seed=1)
    assert split_by_trajectory(50, seed=1) != split_by_trajectory(50, seed=2)


def test_split_zero_fraction_leaves_that_split_empty():
    split = split_by_trajectory(2, (0.5, 0.5, 0.0))
    assert len(split["train"]) == 1 and len(split["val"]) == 1 and split["test"] == []


@pytest.mark.parametrize(("n", "fractions", "message"), [
    (2, (0.8, 0.1, 0.1), "need at least 3 trajectories"),
    (10, (0.8, 0.1), "three numbers"),
    (10, (0.8, 0.3, 0.1), "sum to 1"),
    (10, (0.9, -0.1, 0.2), "three numbers"),
    (10, (0.0, 0.5, 0.5), "train fraction"),
])
def test_split_rejects_bad_input(n, fractions, message):
    with pytest.raises(ValueError, match=message):
        split_by_trajectory(n, fractions)


# --------------------------------------------------------------------------------------------- windows


@pytest.mark.parametrize(("window", "stride"), [(1, 1), (4, 1), (5, 3), (12, 1)])
def test_windows_stay_inside_one_trajectory(window, stride):
    n, n_t = 4, 12
    ds = WindowDataset(indexed_trajectories(n, n_t), window, stride)
    assert len(ds) == n * ((n_t - window) // stride + 1)
    starts = set()
    for item in ds:
        x = item["x"]
        assert x.shape == (window, 3) and item["mask"].shape == (window, 3) and item["mask"].all()
        assert torch.all(x[:, 0] == x[0, 0]), "a window mixes trajectories"
        assert torch.equal(x[:, 1], x[0, 1] + torch.arange(window, dtype=x.dtype)), "samples not consecutive"
        assert int(x[0, 1]) % stride == 0
        starts.add((int(x[0, 0]), int(x[0, 1])))
    assert len(starts) == len(ds)


def test_windows_carry_their_own_times():
    traj = indexed_trajectories(3, 10, per_trajectory_times=True)
    for item in WindowDataset(traj, 4, 2, dtype=torch.float64):
        i, k = int(item["x"][0, 0]), int(item["x"][0, 1])
        expected = (1.0 + i) * 0.1 * torch.arange(k, k + 4, dtype=torch.float64) + 10.0 * i
        torch.testing.assert_close(item["t"], expected)


def test_windows_keep_the_state_shape():
    traj = Trajectories(t=torch.linspace(0, 1, 6), states=torch.randn(2, 6, 2, 3, 3),
                        derivatives=torch.randn(2, 6, 2, 3, 3))
    item = WindowDataset(traj, 3)[0]
    assert item["x"].shape == (3, 2, 3, 3) and item["dxdt"].shape == (3, 2, 3, 3)
    torch.testing.assert_close(item["x"], traj.states[0, :3].float())


def test_windows_skip_unobserved_first_states():
    n, n_t, window = 3, 10, 3
    g = torch.Generator().manual_seed(0)
    mask = torch.rand(n, n_t, 3, generator=g) > 0.2
    ds = WindowDataset(indexed_trajectories(n, n_t, mask=mask), window)
    expected = {(i, k) for i in range(n) for k in range(n_t - window + 1) if bool(mask[i, k].all())}
    got = {(int(it["x"][0, 0]), int(it["x"][0, 1])) for it in ds}
    assert got == expected and 0 < len(got) < n * (n_t - window + 1)
    for item in ds:
        i, k = int(item["x"][0, 0]), int(item["x"][0, 1])
        assert torch.equal(item["mask"], mask[i, k : k + window])


def test_windows_reject_bad_sizes():
    traj = indexed_trajectories(2, 5)
    with pytest.raises(ValueError, match="longer than"):
        WindowDataset(traj, 6)
    with pytest.raises(ValueError, match="stride"):
        WindowDataset(traj, 2, 0)


# ------------------------------------------------------------------------------------------ normaliser


def test_standard_normalizer_uses_observed_entries_only():
    g = torch.Generator().manual_seed(1)
    states = torch.randn(5, 20, 3, generator=g, dtype=torch.float64) * torch.tensor([1.0, 10.0, 0.1]) + 3.0
    mask = torch.rand(5, 20, 3, generator=g) > 0.3
    states[~mask] = 1e6  # must not leak into the statistics
    norm = Normalizer.fit(Trajectories(t=torch.arange(20.0), states=states, mask=mask), "standard")
    x = np.where(mask.numpy(), states.numpy(), np.nan).reshape(-1, 3)
    np.testing.assert_allclose(norm.mean.numpy(), np.nanmean(x, 0), rtol=1e-12)
    np.testing.assert_allclose(norm.std.numpy(), np.nanstd(x, 0), rtol=1e-12)


def test_scale_normalizer_is_one_rms_for_all_components():
    traj = example_trajectories(4, 15, state_dim=4, seed=2)
    norm = Normalizer.fit(traj, "scale")
    rms = np.sqrt(np.mean(traj.states.numpy() ** 2))
    np.testing.assert_allclose(norm.std.numpy(), np.full(4, rms), rtol=1e-12)
    assert not norm.mean.any()


@pytest.mark.parametrize("scale", [1e-300, 1e-15, 1e-9, 1.0, 1e300])
@pytest.mark.parametrize("kind", ["standard", "scale"])
def test_normalizer_works_at_any_scale_float64_holds(tmp_path, kind, scale):
    g = torch.Generator().manual_seed(3)
    base = torch.randn(4, 50, 3, generator=g, dtype=torch.float64) * torch.tensor([1.0, 3.0, 0.2])
    base = base + torch.tensor([0.5, -1.0, 2.0])
    traj = Trajectories(t=torch.arange(50.0), states=base * scale)
    norm = Normalizer.fit(traj, kind)
    flat = base.reshape(-1, 3).numpy()  # numpy's statistics of the data in units where it is O(1)
    if kind == "standard":
        np.testing.assert_allclose(norm.mean.numpy(), flat.mean(0) * scale, rtol=1e-12)
        np.testing.assert_allclose(norm.std.numpy(), flat.std(0) * scale, rtol=1e-12)
    else:
        np.testing.assert_allclose(norm.std.numpy(), np.sqrt((flat**2).mean()) * scale, rtol=1e-12)
    z = norm.transform(traj.states).reshape(-1, 3)
    assert torch.isfinite(z).all()
    at_one = Normalizer.fit(Trajectories(t=traj.t, states=base), kind).transform(base).reshape(-1, 3)
    np.testing.assert_allclose(z.numpy(), at_one.numpy(), rtol=1e-9, atol=1e-12)  # the same z at any scale
    assert 0.3 < float(z.std()) < 3  # of order 1
    text = norm.save(tmp_path / "normalization.json").read_text()
    json.loads(text, parse_constant=lambda c: pytest.fail(f"normalization.json holds {c}"))
    back = Normalizer.load(tmp_path / "normalization.json")
    assert torch.equal(back.mean, norm.mean) and torch.equal(back.std, norm.std)


@pytest.mark.parametrize("value", [0.0, 7e-15, 3.0, 2e300])
def test_a_constant_component_is_shifted_and_divided_by_its_magnitude(value):
    states = torch.cat([torch.full((2, 10, 1), value, dtype=torch.float64),
                        torch.linspace(-1, 1, 20, dtype=torch.float64).reshape(2, 10, 1)], -1)
    norm = Normalizer.fit(Trajectories(t=torch.arange(10.0), states=states), "standard")
    assert norm.mean[0] == value and norm.std[0] == (abs(value) or 1.0)
    assert not norm.transform(states)[..., 0].any()


def test_normalizer_round_trip_and_json(tmp_path):
    traj = example_trajectories(3, 10, state_dim=2, seed=0)
    for kind in ("standard", "scale", "none"):
        norm = Normalizer.fit(traj, kind)
        z = norm.transform(traj.states)
        torch.testing.assert_close(norm.inverse(z), traj.states)
        back = Normalizer.load(norm.save(tmp_path / f"{kind}.json"))
        assert back.kind == kind and back.state_shape == (2,)
        torch.testing.assert_close(back.mean, norm.mean)
        torch.testing.assert_close(back.std, norm.std)
        keys = set(json.loads((tmp_path / f"{kind}.json").read_text()))
        assert keys == {"kind", "mean", "std", "state_shape"}


def test_normalised_derivatives_are_derivatives_of_normalised_states():
    # Closed-form trajectories with exact dx/dt: dz/dt must match central differences of z(t).
    traj = example_trajectories(2, 2001, state_dim=3, seed=4)
    norm = Normalizer.fit(traj, "standard")
    out = norm.apply(traj)
    dt = float(traj.t[1] - traj.t[0])
    fd = (out.states[:, 2:] - out.states[:, :-2]) / (2 * dt)
    torch.testing.assert_close(out.derivatives[:, 1:-1], fd, rtol=1e-5, atol=1e-5)
    assert torch.equal(out.t, traj.t)


def test_normalizer_takes_flat_and_shaped_states():
    traj = Trajectories(t=torch.linspace(0, 1, 4), states=torch.randn(3, 4, 2, 2, dtype=torch.float64))
    norm = Normalizer.fit(traj)
    flat = norm.transform(traj.states.reshape(3, 4, 4))
    torch.testing.assert_close(flat.reshape(3, 4, 2, 2), norm.transform(traj.states))
    with pytest.raises(ValueError, match="state shape"):
        norm.transform(torch.zeros(3, 5))


# --------------------------------------------------------------------------------------------- module


def test_datamodule_fits_the_normalizer_on_training_trajectories_only(tmp_path):
    from physdyn.data import TrajectoryDataModule

    path = tmp_path / "theirs.h5"
    write_example_file(path, layout="TND", n_trajectories=10, n_times=15, state_dim=2,
                       per_trajectory_times=True)
    dm = TrajectoryDataModule(path, states="grp/x", times="grp/time", layout="TND", window=4, stride=2,
                              seed=5, batch_size=7)
    dm.setup("fit")
    raw = load(path, states="grp/x", times="grp/time", layout="TND")
    train = raw.states.numpy()[dm.split["train"]].reshape(-1, 2)
    everything = raw.states.numpy().reshape(-1, 2)
    np.testing.assert_allclose(dm.normalizer.mean.numpy(), train.mean(0), rtol=1e-12)
    np.testing.assert_allclose(dm.normalizer.std.numpy(), train.std(0), rtol=1e-12)
    assert not np.allclose(dm.normalizer.mean.numpy(), everything.mean(0))  # the test can tell them apart
    assert dm.split == {"by": "trajectory", **split_by_trajectory(10, (0.8, 0.1, 0.1), seed=5)}
    assert len(dm.datasets["train"]) == len(dm.split["train"]) * 6

    batch = next(iter(dm.train_dataloader()))
    assert batch["t"].shape == (7, 4) and batch["x"].shape == (7, 4, 2) and "dxdt" not in batch
    # each window's times are its own trajectory's (irregular) times
    t_all = raw.t.numpy()
    for t_w in batch["t"].numpy():
        rows = [i for i in range(10) if np.isin(t_w, t_all[i]).all()]  # float64, exactly the file's
        assert len(rows) == 1 and rows[0] in dm.split["train"]


def test_per_trajectory_parameters_reach_every_batch(tmp_path):
    """Robertson runs at their own k1: each window and sequence carries its trajectory's k1, through the
    data module's split and normalisation, so a parameter-conditioned model can read it."""
    import physdyn.systems
    from physdyn.data import SequenceDataset, TrajectoryDataModule, WindowDataset, save

    k1 = torch.tensor([0.02, 0.03, 0.04, 0.05, 0.06, 0.07], dtype=torch.float64)
    rober = physdyn.systems.get("robertson")
    traj = rober.simulate(x0=torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64).expand(6, 3),
                          t=torch.logspace(-5, 2, 12, dtype=torch.float64), params={"k1": k1})
    windows = WindowDataset(traj, window=4, stride=4)
    assert windows.param_names == tuple(sorted(traj.params)) and windows.param_names[0] == "k1"
    for k, (i, _) in enumerate(windows.index):
        assert windows[k]["params"].tolist() == [float(traj.params[name][i]) for name in windows.param_names]
    sequences = SequenceDataset(traj)
    assert [float(sequences[i]["params"][0]) for i in range(6)] == k1.tolist()
    save(traj, tmp_path / "rober.h5")
    dm = TrajectoryDataModule(tmp_path / "rober.h5", window=4, stride=4, split=[0.5, 0.5, 0.0],
                              normalization="standard", max_gap=None)
    dm.setup()
    train = dm.datasets["train"]
    batch = torch.utils.data.default_collate([train[k] for k in range(len(train))])
    expected = torch.stack([k1[i] for i, _ in train.index])
    torch.testing.assert_close(batch["params"][:, 0], expected)  # physical units, not normalised
    plain = Trajectories(t=torch.linspace(0, 1, 5), states=torch.zeros(2, 5, 3))
    assert "params" not in WindowDataset(plain, 3)[0]
