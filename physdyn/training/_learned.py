"""A trained model in physical units: the same interface as a reference system."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..data import Normalizer
from ..models import Model


class LearnedModel(nn.Module):
    """A model trained on normalised states, seen in physical units: the same interface as a reference system.

    With z = (x − mean) / std (the run's :class:`physdyn.data.Normalizer`), :meth:`predict` takes context
    observations and returns predictions in physical units, for every model family. Where the model has a
    vector field g(z) ≈ dz/dt, the physical field is f(x) = std · g((x − mean) / std), so
    :meth:`vector_field`, :meth:`rollout` and (for Hamiltonian models) :meth:`energy` apply to states x of
    shape (B, *state_shape) exactly as a :class:`physdyn.systems.System`'s do, and every metric, including
    ``physdyn.metrics.largest_lyapunov_exponent``, takes a LearnedModel where it takes a system. What the
    model lacks (``capabilities``) raises AttributeError naming the model.

    Inputs may be of any floating type; they are computed in the model's type and returned in theirs.

    Attributes:
        model: the trained :class:`physdyn.models.Model` (normalised states).
        normalizer: the run's normalisation.
        state_shape: the data's state shape.
        config: the run's resolved config (a dict with sections data / model / objective / training).
        name: the model's registry name.
        params: the model's hyperparameters.
        capabilities, stochastic, context: the model's (see :class:`physdyn.models.Model`).
        system, system_params, state_names: what the training data says about its source.
        invariants: ("energy",) for models with a learned energy, and those the model declares.
        run_dir: the run folder it was loaded from (:func:`load_run`), or None.
    """

    def __init__(self, model: Model, normalizer: Normalizer, config: dict[str, Any] | None = None,
                 meta: dict[str, Any] | None = None, run_dir: str | os.PathLike | None = None) -> None:
        super().__init__()
        self.run_dir = None if run_dir is None else Path(run_dir)
        self.model = model
        self.normalizer = normalizer
        self.state_shape = tuple(normalizer.state_shape)
        self.config = dict(config or {})
        self.name = str(self.config.get("model", {}).get("name", type(model).__name__))
        self.params = dict(getattr(model, "hparams", {}))
        self.capabilities = frozenset(model.capabilities)
        self.stochastic = bool(model.stochastic)
        self.context = model.context
        meta = dict(meta or {})
        self.system = str(meta.get("system", "custom"))
        self.system_params = dict(meta.get("system_params", {}))
        self.state_names = tuple(meta.get("state_names", ()))
        # A model may know invariants of its own (kinetics: the total concentration, positivity).
        self.invariants: tuple[str, ...] = (("energy",) if "energy" in self.capabilities else ()) + tuple(
            getattr(model, "invariants", ()))

    @property
    def _like(self) -> Tensor:
        return next(self.model.parameters())

    def _require(self, capability: str) -> None:
        if capability not in self.capabilities:
            raise AttributeError(f"model {self.name!r} has no {capability.replace('_', ' ')} "
                                 f"(it offers: {', '.join(sorted(self.capabilities)) or 'predictions only'})")

    def _z(self, x: Tensor) -> Tensor:
        """Physical states (B, *state_shape) -> normalised, in the model's dtype and device."""
        x = torch.as_tensor(x)
        if tuple(x.shape[1:]) != self.state_shape:
            raise ValueError(f"states must have shape (B, {', '.join(map(str, self.state_shape))}), "
                             f"got {tuple(x.shape)}")
        like = self._like
        return self.normalizer.transform(x.to(dtype=self._wide(x), device=like.device)).to(like.dtype)

    def _wide(self, x: Tensor) -> torch.dtype:
        """The wider of the states' and the model's floating types: where (de)normalisation happens, so that
        states of 1e-300 or 1e300 in float64 survive a float32 model (its inputs and outputs are O(1))."""
        return torch.promote_types(x.dtype, self._like.dtype)

    def predict(self, t_context: Tensor, x_context: Tensor, mask_context: Tensor | None, t: Tensor, *,
                samples: int = 1, generator: torch.Generator | None = None) -> Tensor:
        """Predictions (N, K, Q, *state_shape) in physical units at the query times ``t`` ((Q,) or (N, Q)),
        from context observations ``x_context`` (N, C, *state_shape) at ``t_context`` with ``mask_context``
        (see :meth:`physdyn.models.Model.predict`)."""
        x_context = torch.as_tensor(x_context)
        like, wide = self._like, self._wide(x_context)
        z = self.normalizer.transform(x_context.to(dtype=wide, device=like.device)).to(like.dtype)
        mask = None if mask_context is None else torch.as_tensor(mask_context, device=like.device)
        out = self.model.predict(torch.as_tensor(t_context), z, mask, torch.as_tensor(t), samples=samples,
                                 generator=generator)
        return self.normalizer.inverse(out.to(wide)).to(dtype=x_context.dtype, device=x_context.device)

    def vector_field(self, t: Tensor | float, x: Tensor) -> Tensor:
        """dx/dt for states x (B, *state_shape) in physical units; returns the same shape and dtype."""
        self._require("vector_field")
        dxdt = self.normalizer.inverse_derivative(self.model.vector_field(t, self._z(x)).to(self._wide(x)))
        return dxdt.reshape(x.shape).to(dtype=x.dtype, device=x.device)

    def forward(self, t: Tensor | float, x: Tensor) -> Tensor:
        return self.vector_field(t, x)

    def rollout(self, x0: Tensor, t: Tensor, **options) -> Tensor:
        """Integrate from x0 (N, *state_shape) on t, (T,) shared or (N, T) per trajectory; returns
        (N, T, *state_shape) in physical units, starting with x0. ``options`` go to the model's rollout
        (``method``, ``substeps``, ...)."""
        self._require("vector_field")
        x0 = torch.as_tensor(x0)
        z = self.model.rollout(self._z(x0), torch.as_tensor(t), **options)
        return self.normalizer.inverse(z.to(self._wide(x0))).to(dtype=x0.dtype, device=x0.device)

    def energy(self, x: Tensor) -> Tensor:
        """The learned energy of states x (B, *state_shape) in physical units; returns (B,).

        With x = (q, p) and z = (x − mean) / std, the learned flow dz/dt = J∇_z H_θ(z) is, in x, the
        Hamiltonian flow of c · H_θ((x − mean) / std) when std_{q_i} · std_{p_i} = c for every i (always
        true for "scale" and "none", and for one degree of freedom). Defined up to an additive constant.
        """
        self._require("energy")
        std = self.normalizer.std
        d = std.numel() // 2
        c = std[:d] * std[d:]
        if not torch.allclose(c, c[0].expand_as(c), rtol=1e-9, atol=0.0):
            raise ValueError("the learned energy has no physical form: the normalisation scales q and p "
                             "differently across degrees of freedom (use normalization 'scale')")
        h = self.model.energy(self._z(x)) * float(c[0])
        return h.to(dtype=x.dtype, device=x.device)

    def drift(self, t: Tensor | float, x: Tensor) -> Tensor:
        """The learned SDE's drift f(x) for states x (B, *state_shape) in physical units, like the ``f`` of a
        system's stochastic form (``system.sde(noise).f``): f(x) = std · f_z((x − mean) / std)."""
        self._require("sde")
        z = self._z(x).flatten(1)
        f = self.normalizer.inverse_derivative(self.model.drift(z).to(self._wide(x)))
        return f.reshape(x.shape).to(dtype=x.dtype, device=x.device)

    def diffusion(self, t: Tensor | float, x: Tensor) -> Tensor:
        """The learned diffusion G(x) in physical units, like the ``g`` of a system's stochastic form: (B, D)
        for diagonal noise, (B, D, m) for general noise (D the flattened state size), each row i scaled by
        the normalisation's std_i, since dX_i = std_i dZ_i."""
        self._require("sde")
        g = self.model.diffusion(self._z(x).flatten(1)).to(self._wide(x))
        std = self.normalizer.std.to(g)
        g = g * (std if g.ndim == 2 else std[:, None])
        return g.to(dtype=x.dtype, device=x.device)

    def diffusion_covariance(self, t: Tensor | float, x: Tensor) -> Tensor:
        """G Gᵀ (B, D, D) in physical units: what the data determines of the noise (any G times a rotation
        gives the same process), so learned and reference SDEs compare through it."""
        g = self.diffusion(t, x)
        return torch.diag_embed(g**2) if g.ndim == 2 else g @ g.transpose(1, 2)

    def sde(self) -> nn.Module:
        """The learned SDE in physical units in torchsde's contract (f, g, noise_type, sde_type,
        brownian_size), as a system's ``sde(noise)`` is: ``physdyn.solvers.sdeint`` solves either."""
        self._require("sde")
        return _PhysicalSDE(self)

    def __repr__(self) -> str:
        return f"LearnedModel({self.name!r}, shape={self.state_shape}, normalizer={self.normalizer.kind!r})"


class _PhysicalSDE(nn.Module):
    """A LearnedModel's SDE on flattened physical states (B, D), for torchsde."""

    sde_type = "ito"

    def __init__(self, learned: LearnedModel) -> None:
        super().__init__()
        self.learned = learned
        self.noise_type = learned.model.noise_type
        self.brownian_size = learned.model.brownian_size

    def f(self, t: Tensor, y: Tensor) -> Tensor:
        return self.learned.drift(t, y.view(len(y), *self.learned.state_shape)).flatten(1)

    def g(self, t: Tensor, y: Tensor) -> Tensor:
        return self.learned.diffusion(t, y.view(len(y), *self.learned.state_shape))


def load_run(run_dir: str | os.PathLike, checkpoint: str = "best") -> LearnedModel:
    """The trained model of a run folder written by :func:`physdyn.training.fit`, in eval mode on the CPU.

    Args:
        run_dir: the RUN_DIR (config.yaml, normalization.json, checkpoints/).
        checkpoint: "best" (lowest monitored loss; falls back to "last" if absent), "last", or a path.

    Raises:
        ValueError: a missing or incomplete run folder (one line naming the file).
    """
    from .. import models
    from ._config import load_config

    run_dir = Path(run_dir)
    for name in ("config.yaml", "normalization.json"):
        if not (run_dir / name).is_file():
            raise ValueError(f"{run_dir}: not a run folder ({name} missing)")
    config = load_config(run_dir / "config.yaml")
    if checkpoint in ("best", "last"):
        path = run_dir / "checkpoints" / f"{checkpoint}.ckpt"
        if checkpoint == "best" and not path.is_file():
            path = run_dir / "checkpoints" / "last.ckpt"
    else:
        path = Path(checkpoint)
    if not path.is_file():
        raise ValueError(f"{path}: checkpoint not found")
    normalizer = Normalizer.load(run_dir / "normalization.json")
    hparams = {k: v for k, v in config["model"].items() if k != "name"}
    model = models.get(config["model"]["name"], normalizer.state_shape, **hparams)
    if config.get("training", {}).get("precision") == "64-true":
        model = model.double()
    state = read_checkpoint(path)
    weights = {k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")}
    try:
        model.load_state_dict(weights)
    except RuntimeError as err:
        raise ValueError(f"{path}: does not fit the model of {run_dir} ({state_dict_problem(err)})") from None
    return LearnedModel(model, normalizer, config, config.get("source", {}), run_dir).eval()


def read_checkpoint(path: str | os.PathLike) -> dict[str, Tensor]:
    """The ``state_dict`` of a Lightning checkpoint file; ValueError (one line) if the file is not one."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's advice about pickle protocols in foreign files
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises OSError, KeyError, UnpicklingError, RuntimeError... for bad files
        raise ValueError(f"{path}: not a readable checkpoint (truncated, corrupt, or not written by "
                         f"physdyn fit: {type(err).__name__})") from None
    state = checkpoint.get("state_dict") if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise ValueError(f"{path}: not a Lightning checkpoint (it has no state_dict)")
    return state


def state_dict_problem(err: RuntimeError) -> str:
    """The first problem torch's load_state_dict names, on one line ("size mismatch for ...: ...")."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return " ".join(lines[1 if len(lines) > 1 else 0].split())[:200]
