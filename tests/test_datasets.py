"""The bundled datasets are what their cards say: rerun each card's command, compare, check physics."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import torch

import physdyn.systems
from physdyn.cli import main
from physdyn.data import load

DATASETS = Path(__file__).resolve().parents[1] / "datasets"
NAMES = ["pendulum", "lorenz", "robertson", "reaction_diffusion"]


def card_command(name: str) -> list[str]:
    text = (DATASETS / f"{name}.md").read_text()
    (command,) = re.findall(r"^```bash\n(physdyn .*)\n```$", text, flags=re.MULTILINE)
    return shlex.split(command)[1:]


@pytest.mark.parametrize("name", NAMES)
def test_bundled_file_matches_a_fresh_simulation(name, tmp_path):
    path = DATASETS / f"{name}.h5"
    assert path.stat().st_size <= 2 * 1024 * 1024
    args = card_command(name)
    args[args.index("--out") + 1] = str(tmp_path / "fresh.h5")
    assert main([*args, "--quiet"]) == 0
    bundled, fresh = load(path), load(tmp_path / "fresh.h5")
    assert bundled.system == name and bundled.system_params == fresh.system_params
    torch.testing.assert_close(bundled.t, fresh.t, rtol=0, atol=0)
    torch.testing.assert_close(bundled.states, fresh.states, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_bundled_derivatives_are_the_vector_field(name):
    traj = load(DATASETS / f"{name}.h5")
    system = physdyn.systems.get(name, **traj.system_params)
    flat = traj.states.flatten(0, 1)
    expected = system.vector_field(traj.t[0], flat).reshape(traj.states.shape)
    torch.testing.assert_close(traj.derivatives, expected, rtol=1e-12, atol=1e-12)


def test_bundled_invariants_hold():
    pendulum = load(DATASETS / "pendulum.h5")
    energy = physdyn.systems.get("pendulum").energy(pendulum.states)
    assert float(((energy - energy[:, :1]) / energy[:, :1]).abs().max()) < 1e-6
    robertson = load(DATASETS / "robertson.h5").states
    assert float((robertson.sum(-1) - robertson[:, :1].sum(-1)).abs().max()) < 1e-10
    assert float(robertson.min()) > -1e-14
