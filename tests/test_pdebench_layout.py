"""Files in PDEBench's own layout (one group per sample, (T, H, W, C) data) load as they are."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from physdyn.data import DataFormatError, load


def _pdebench_file(path, n=3, t=5, h=4, w=6, c=2, seed=0):
    """Groups 0000, 0001, ... with data (T, H, W, C) and grid/t, grid/x, grid/y, as PDEBench's generator."""
    rng = np.random.default_rng(seed)
    data = rng.standard_normal((n, t, h, w, c)).astype(np.float32)
    with h5py.File(path, "w") as f:
        for i in range(n):
            g = f.create_group(f"{i:04d}")
            g.create_dataset("data", data=data[i])
            grid = g.create_group("grid")
            grid.create_dataset("t", data=np.linspace(0, 1, t) + 0.1 * i, dtype=np.float32)
            grid.create_dataset("x", data=np.linspace(-1, 1, w), dtype=np.float32)
            grid.create_dataset("y", data=np.linspace(-1, 1, h), dtype=np.float32)
    return data


def test_one_trajectory_per_group_with_channels_first(tmp_path):
    path = tmp_path / "2D_diff-react.h5"
    data = _pdebench_file(path)
    traj = load(path, states="*/data", times="*/grid/t", layout="THWC")
    assert traj.states.shape == (3, 5, 2, 4, 6)  # (N, T, C, H, W)
    np.testing.assert_array_equal(traj.states.numpy(), data.transpose(0, 1, 4, 2, 3))
    # each group's own times, paired by the group the wildcard matched
    torch.testing.assert_close(traj.times()[2], torch.linspace(0, 1, 5, dtype=torch.float64) + 0.2,
                               rtol=0, atol=1e-6)
    assert traj.meta["groups"] == ["0000", "0001", "0002"]
    shared = load(path, states="*/data", times="0000/grid/t", layout="THWC")
    assert shared.t.shape == (5,)


def test_field_layouts_without_wildcards_and_bad_layouts(tmp_path):
    path = tmp_path / "one.h5"
    data = _pdebench_file(path, n=1)
    traj = load(path, states="0000/data", times="0000/grid/t", layout="THWC")
    assert traj.states.shape == (1, 5, 2, 4, 6)
    np.testing.assert_array_equal(traj.states[0].numpy(), data[0].transpose(0, 3, 1, 2))
    with pytest.raises(DataFormatError, match="names 3 axes"):
        load(path, states="0000/data", times="0000/grid/t", layout="THW")
    with pytest.raises(DataFormatError, match="field layout"):
        load(path, states="0000/data", times="0000/grid/t", layout="TTWC")
    with pytest.raises(DataFormatError, match="no N axis"):
        load(path, states="*/data", times="*/grid/t", layout="NTHWC")
    with pytest.raises(DataFormatError, match="no dataset matches"):
        load(path, states="*/nothing", times="*/grid/t", layout="THWC")


def test_fit_reads_a_pdebench_file_from_the_command_line(tmp_path):
    from physdyn.cli import main

    path = tmp_path / "pde.h5"
    _pdebench_file(path, n=4, t=6)
    # a uniform grid, as the step models need
    with h5py.File(path, "a") as f:
        for i in range(4):
            f[f"{i:04d}/grid/t"][...] = np.linspace(0, 1, 6)
    code = main(["fit", str(path), "--states", "*/data", "--times", "*/grid/t", "--layout", "THWC",
                 "--model", "unet", "--out", str(tmp_path / "run"), "--max-epochs", "1",
                 "--set", "training.progress_bar=false"])
    assert code == 0


def test_the_data_format_snippet_runs(tmp_path, monkeypatch):
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "data-format.md").read_text()
    (snippet,) = [b for b in re.findall(r"```python\n(.*?)```", text, flags=re.S) if "THWC" in b]
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(snippet, scope)
    assert tuple(scope["traj"].states.shape) == (2, 101, 2, 8, 8)
