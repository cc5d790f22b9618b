"""Every registered model, whatever its family, is built from its defaults and the data's sizes, trains
for a step through ``fit`` and predicts through ``evaluate`` (the pdearena registry test, end to end)."""

from __future__ import annotations

import math

import pytest
import torch

from physdyn import models
from physdyn.data import Trajectories, save
from physdyn.evaluation import evaluate
from physdyn.training import fit, load_run


def _data(state_rank: int | None, seed: int = 0) -> Trajectories:
    """Smooth decaying oscillations with exact derivatives, on vectors (4,) or fields (2, 8, 8)."""
    g = torch.Generator().manual_seed(seed)
    t = torch.linspace(0.0, 2.0, 12, dtype=torch.float64)
    shape = (2, 8, 8) if state_rank == 3 else (2, 16) if state_rank == 2 else (4,)
    amplitude = 1 + torch.rand(6, 1, *shape, generator=g, dtype=torch.float64)
    phase = 2 * math.pi * torch.rand(6, 1, *shape, generator=g, dtype=torch.float64)
    tt = t.reshape(1, -1, *[1] * len(shape))
    states = amplitude * torch.exp(-0.2 * tt) * torch.cos(tt + phase)
    derivatives = amplitude * torch.exp(-0.2 * tt) * (-0.2 * torch.cos(tt + phase) - torch.sin(tt + phase))
    mask = torch.rand(states.shape, generator=g) > 0.1
    mask[:, 0] = True  # every family can start from the first state
    return Trajectories(t=t, states=states, derivatives=derivatives, mask=mask)


@pytest.mark.parametrize("name", models.names())
def test_every_registered_model_trains_and_predicts_from_its_defaults(name, tmp_path):
    cls = models.model_class(name)
    for package in cls.requires:  # an optional extra (e.g. neuraloperator for fno)
        pytest.importorskip(package)
    data = _data(cls.state_rank)
    path = save(data, tmp_path / "data.h5")
    run = fit({"data": {"path": str(path), "split": [0.5, 0.5, 0.0], "window": 4},
               "model": {"name": name},
               "training": {"max_epochs": 1, "progress_bar": False}}, tmp_path / "run")
    learned = load_run(run)
    assert learned.state_shape == data.state_shape and learned.capabilities == cls.capabilities
    context = 3 if cls.context == "sequence" else 1
    report = evaluate(learned, data, 10, context=context, samples=2, lyapunov=False, attractor_steps=0)
    k = 2 if learned.stochastic else 1
    assert report.predictions.states.shape == (6 * k, 11, *data.state_shape)
    assert torch.isfinite(report.predictions.states).all()
    assert len(report.metrics["rmse"]) == 11
