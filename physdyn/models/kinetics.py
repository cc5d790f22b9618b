"""Mass-action kinetics with learned rate constants over a stoichiometry written as a chemist writes it.

Reactions are strings over species names, e.g. ``["A -> B", "2 B -> B + C", "B + C -> A + C"]``
(Robertson's). Reaction j with reactant coefficients a_ij and product coefficients b_ij has the mass-action
rate r_j(y) = k_j Π_i y_i^{a_ij}, and

    dy/dt = S r(y),   S_ij = b_ij − a_ij.

Two properties hold by construction, whatever the learned k_j > 0: every linear invariant w of the
stoichiometry (wᵀS = 0, e.g. the total concentration when each reaction keeps the number of molecules) is
conserved, also by the Rosenbrock solver, which keeps linear invariants up to round-off; and the exact flow
keeps every y_i >= 0, since a species' loss term vanishes with its concentration. The rate constants are
learned in log space (k_j = exp θ_j): positive, and a gradient step moves them by a factor, which is what
rates spanning twelve decades (Robertson: 0.04 to 3e7) need.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ._base import VectorFieldModel

_TERM = re.compile(r"^(?:(\d+)\s*\*?\s*)?([A-Za-z_][A-Za-z0-9_'\[\]().]*)$")


@dataclass(frozen=True)
class Stoichiometry:
    """Reactions over named species: ``reactants`` a_ij and ``products`` b_ij as (R, D) integer tensors."""

    species: tuple[str, ...]
    reactions: tuple[str, ...]
    reactants: Tensor
    products: Tensor

    @property
    def matrix(self) -> Tensor:
        """The stoichiometric matrix S = (b − a)ᵀ, (D, R): column j is the change reaction j makes."""
        return (self.products - self.reactants).T

    def conserves_total(self) -> bool:
        """Whether every reaction keeps the total concentration Σ_i y_i (S has zero column sums)."""
        return bool((self.matrix.sum(0) == 0).all())


def _side(text: str, reaction: str) -> dict[str, int]:
    terms: dict[str, int] = {}
    for term in text.split("+"):
        term = term.strip()
        match = _TERM.match(term)
        if match is None:
            raise ValueError(f"reaction {reaction!r}: cannot read the term {term!r} (expected e.g. 'B' or "
                             "'2 B', species names starting with a letter)")
        coefficient = int(match.group(1) or 1)
        if coefficient < 1:
            raise ValueError(f"reaction {reaction!r}: the coefficient of {match.group(2)!r} must be >= 1")
        terms[match.group(2)] = terms.get(match.group(2), 0) + coefficient
    return terms


def parse_reaction(reaction: str) -> tuple[dict[str, int], dict[str, int]]:
    """``"2 B -> B + C"`` as ({"B": 2}, {"B": 1, "C": 1}); a one-line ValueError naming the reaction."""
    if not isinstance(reaction, str):
        raise ValueError(f"reaction {reaction!r}: a reaction is a string such as 'A + B -> C'")
    sides = reaction.split("->")
    if len(sides) != 2:
        raise ValueError(f"reaction {reaction!r}: expected one '->' between reactants and products")
    left, right = (_side(side, reaction) for side in sides)
    if left == right:
        raise ValueError(f"reaction {reaction!r}: changes nothing (the same on both sides)")
    return left, right


def species_in(reactions: Sequence[str]) -> list[str]:
    """The species the reactions name, in order of first appearance."""
    names: list[str] = []
    for reaction in reactions:
        left, right = parse_reaction(reaction)
        names += [name for name in [*left, *right] if name not in names]
    return names


def stoichiometry(reactions: Sequence[str], species: Sequence[str]) -> Stoichiometry:
    """The reactions parsed over ``species`` (the state's components, in order); ValueError naming a
    reaction with an unknown species, or a species list that is not a list of distinct names."""
    if isinstance(reactions, str) or not isinstance(reactions, Sequence) or not reactions:
        raise ValueError(f"reactions must be a non-empty list of strings such as 'A -> B', got {reactions!r}")
    species = tuple(species)
    if len(set(species)) != len(species) or not all(isinstance(s, str) and s for s in species):
        raise ValueError(f"species must be distinct names, got {list(species)!r}")
    index = {name: i for i, name in enumerate(species)}
    a = torch.zeros(len(reactions), len(species), dtype=torch.long)
    b = torch.zeros_like(a)
    for j, reaction in enumerate(reactions):
        left, right = parse_reaction(reaction)
        for side, matrix in ((left, a), (right, b)):
            for name, coefficient in side.items():
                if name not in index:
                    raise ValueError(f"reaction {reaction!r}: unknown species {name!r} "
                                     f"(species: {', '.join(species)})")
                matrix[j, index[name]] = coefficient
    return Stoichiometry(species, tuple(reactions), a, b)


def first_order_network(species: Sequence[str]) -> list[str]:
    """Every conversion X -> Y between two species: the general linear (first-order) network."""
    return [f"{x} -> {y}" for x in species for y in species if x != y]


class Kinetics(VectorFieldModel):
    """Mass-action kinetics dy/dt = S r(y), r_j = k_j Π_i y_i^{a_ij}, with learned k_j = exp θ_j > 0.

    Works in the data's own units (``normalization = "none"``): the rate constants are then those of the
    data's concentrations and time, and the total concentration the model conserves is the data's. Rollouts
    use the stiff Rosenbrock solver by default (``method``), with the analytic Jacobian of the mass-action
    field, and gradients flow through the solver's steps.

    Hyperparameters:
        reactions: the reactions as strings over species names (``"2 B -> B + C"``); None: every conversion
            X -> Y between two species (a first-order network).
        species: the names of the state's components, in order; None: the data's state names where fit
            knows them (its recipe fills this in), else x0, x1, ...
        rate_constants: initial k_j (positive), one per reaction, or one number for all; None: 1 each,
            and the objective ``kinetics_matching`` starts from its estimate from the data instead (the
            differential method, :func:`estimate_rate_constants`). Training moves them in log space.
        method, rtol, atol: the rollouts' solver (any ``physdyn.solvers.METHODS`` name; stiff ones need
            float64 for tolerances below ~1e-5).

    Reference: the stiff-kinetics setting of S. Kim, W. Ji, S. Deng, Y. Ma, C. Rackauckas, "Stiff neural
    ordinary differential equations", Chaos 31, 093122 (2021), with the rate laws known and their constants
    learned.
    """

    normalization = "none"
    data = "windows"
    objective = "kinetics_matching"
    state_rank = 1

    def __init__(
        self,
        state_shape: int | Sequence[int],
        reactions: Sequence[str] | None = None,
        species: Sequence[str] | None = None,
        rate_constants: float | Sequence[float] | None = None,
        method: str = "rodas5p",
        substeps: int = 1,
        rtol: float = 1e-8,
        atol: float = 1e-12,
        adjoint: bool = False,
    ) -> None:
        super().__init__(state_shape, reactions=None if reactions is None else list(reactions),
                         species=None if species is None else list(species), rate_constants=rate_constants,
                         method=method, substeps=substeps, rtol=rtol, atol=atol, adjoint=adjoint)
        d = self.state_shape[0]
        names = [f"x{i}" for i in range(d)] if species is None else list(species)
        if len(names) != d:
            raise ValueError(f"model.species names {len(names)} species ({', '.join(map(str, names))}), but "
                             f"the states have {d} components")
        self.stoichiometry = stoichiometry(first_order_network(names) if reactions is None else reactions,
                                           names)
        n_reactions = len(self.stoichiometry.reactions)
        k0 = torch.as_tensor(1.0 if rate_constants is None else rate_constants, dtype=torch.float64)
        if k0.ndim > 1 or (k0.ndim == 1 and len(k0) != n_reactions) or not bool(
                (torch.isfinite(k0) & (k0 > 0)).all()):
            raise ValueError(f"model.rate_constants must be one positive number or {n_reactions} of them "
                             f"(one per reaction), got {rate_constants!r}")
        self.log_rate_constants = nn.Parameter(k0.log().expand(n_reactions).clone())
        self.register_buffer("S", self.stoichiometry.matrix.T.to(torch.float64).contiguous())  # (R, D)
        # Reactant slots: reaction j multiplies y at slots[j, :]; index d is a constant 1 (padding).
        order = int(self.stoichiometry.reactants.sum(1).max())
        slots = torch.full((n_reactions, max(order, 1)), d, dtype=torch.long)
        for j, row in enumerate(self.stoichiometry.reactants.tolist()):
            picks = [i for i, c in enumerate(row) for _ in range(c)]
            slots[j, : len(picks)] = torch.tensor(picks, dtype=torch.long)
        self.register_buffer("slots", slots, persistent=False)

    @property
    def rate_constants(self) -> dict[str, float]:
        """The learned rate constants, reaction string -> k_j (in the data's units)."""
        k = self.log_rate_constants.detach().exp().tolist()
        return dict(zip(self.stoichiometry.reactions, k, strict=True))

    @property
    def species(self) -> tuple[str, ...]:
        return self.stoichiometry.species

    @property
    def invariants(self) -> tuple[str, ...]:
        """What the model keeps by construction: positivity, and the total where the reactions keep it."""
        return ("mass", "positivity") if self.stoichiometry.conserves_total() else ("positivity",)

    def learned_parameters(self) -> dict[str, dict[str, float]]:
        """{"rate_constants": {reaction: k}}: what evaluation reports of the learned model."""
        return {"rate_constants": self.rate_constants}

    def _factors(self, x: Tensor) -> Tensor:
        """(B, R, order): the concentrations each reaction's rate multiplies (1 where a slot is empty)."""
        padded = torch.cat([x, x.new_ones(len(x), 1)], dim=-1)
        return padded[:, self.slots]

    def rates(self, x: Tensor) -> Tensor:
        """Mass-action rates r_j(y) for states ``x`` (B, D); returns (B, R)."""
        k = self.log_rate_constants.exp().to(x.dtype)
        return k * self._factors(x).prod(-1)

    def vector_field(self, t: Tensor | float, x: Tensor) -> Tensor:
        return self.rates(x) @ self.S.to(x.dtype)

    def jacobian(self, t: Tensor | float, x: Tensor) -> Tensor:
        """∂f/∂y (B, D, D) in closed form: ∂r_j/∂y_i = k_j Σ_{slots m of i} Π_{m' ≠ m} y_{slot m'}."""
        factors = self._factors(x)  # (B, R, M)
        n_slots = factors.shape[-1]
        k = self.log_rate_constants.exp().to(x.dtype)
        d = self.state_shape[0]
        drdy = x.new_zeros(len(x), len(k), d + 1)
        for m in range(n_slots):
            others = torch.cat([factors[..., :m], factors[..., m + 1 :]], dim=-1).prod(-1)
            drdy = drdy.scatter_add(2, self.slots[None, :, m : m + 1].expand(len(x), -1, 1),
                                    (k * others)[..., None])
        return torch.einsum("rd,brj->bdj", self.S.to(x.dtype), drdy[..., :d])

    def solver_options(self) -> dict:
        return {"jacobian": self.jacobian}

    def rollout(self, x0: Tensor, t: Tensor, **options) -> Tensor:
        """As :meth:`VectorFieldModel.rollout`; where the reactions keep the total concentration, each state
        is then rescaled to the initial total (a projection onto the invariant, Hairer, Lubich & Wanner,
        Geometric Numerical Integration, sec. IV.4).

        The field conserves the total exactly, and a Rosenbrock step would too in exact arithmetic; in
        floating point, solving with W = I/(hγ) − J amplifies round-off by the stiffness h‖J‖, and the
        total drifts by up to ~1e-11 over twelve decades when rates span eight. Rescaling by a factor
        1 ± 1e-11 keeps every concentration's sign and its digits, and the total then holds to round-off.
        """
        out = super().rollout(x0, t, **options)
        if not self.stoichiometry.conserves_total():
            return out
        total0, total = x0.sum(-1, keepdim=True)[:, None], out.sum(-1, keepdim=True)
        return out * torch.where(total != 0, total0 / torch.where(total != 0, total, 1.0), 1.0)

    def extra_repr(self) -> str:
        if not hasattr(self, "log_rate_constants"):  # a repr during construction
            return ""
        return ", ".join(f"{r}: k={k:.4g}" for r, k in self.rate_constants.items())


def is_log_spaced(t: Tensor, decades: float = 2.0) -> bool:
    """Whether the positive times of ``t`` ((T,) or (N, T)) are log-spaced over more than ``decades``:
    successive ratios t_{k+1}/t_k nearly constant (their logs within 10 % of their median)."""
    grid = t.reshape(-1, t.shape[-1]).to(torch.float64)
    for row in grid:
        positive = row[row > 0]
        if len(positive) < 3 or float(positive[-1] / positive[0]) < 10**decades:
            return False
        steps = positive.log().diff()
        if not bool(((steps - steps.median()).abs() <= 0.1 * steps.median()).all()):
            return False
    return True


def estimate_rate_constants(model: Kinetics, t: Tensor, x: Tensor, mask: Tensor | None = None,
                            log_time: bool | None = None) -> Tensor:
    """Rate constants from sampled concentrations by the differential method: (R,) float64, all > 0.

    The mass-action field is linear in k, f(y) = S diag(φ(y)) k with φ_j(y) = Π_i y_i^{a_ij}, so finite-
    difference rates regressed on the terms S_ij φ_j(y) give k by non-negative least squares (scipy's
    ``nnls``). Where the times are log-spaced the rates are taken in log time, dy/d(ln t) = t f(y), whose
    size is that of y itself at every decade, so each decade counts alike; every species' residual is
    scaled by its largest concentration. A reaction the data leave unidentified (k = 0) gets a small
    positive k, so that log k stays finite.

    Args:
        t: (N, T) times of N sampled trajectories (or windows); x: (N, T, D) concentrations; mask: (N, T, D)
            observed entries (a sample is used where it and its two neighbours are fully observed).
        log_time: differentiate in ln t; None: where the times are log-spaced (:func:`is_log_spaced`).
    """
    from scipy.optimize import nnls

    t, x = t.to(torch.float64), x.to(torch.float64)
    observed = torch.ones(x.shape[:2], dtype=torch.bool) if mask is None else mask.flatten(2).all(-1)
    rows, targets = [], []
    scale = torch.where(observed[..., None], x.abs(), 0.0).amax((0, 1)).clamp(min=torch.finfo(x.dtype).tiny)
    log_time = is_log_spaced(t) if log_time is None else log_time
    for ti, xi, oi in zip(t, x, observed, strict=True):
        keep = oi & (ti > 0) if log_time else oi
        ti, xi = ti[keep], xi[keep]
        if len(ti) < 3:
            continue
        u = ti.log() if log_time else ti
        dydu = torch.gradient(xi, spacing=(u,), dim=0)[0][1:-1]  # central differences inside the window
        xi, ti = xi[1:-1], ti[1:-1]
        with torch.no_grad():
            phi = model._factors(xi).prod(-1).to(torch.float64)  # (T', R)
        dtdu = ti[:, None, None] if log_time else 1.0
        rows.append((dtdu * phi[:, None, :] * model.S.T.to(torch.float64)[None]) / scale[None, :, None])
        targets.append(dydu / scale)
    if not rows:
        raise ValueError("no three consecutive fully observed samples to estimate the rate constants from")
    a, b = torch.cat(rows).reshape(-1, rows[0].shape[-1]), torch.cat(targets).reshape(-1)
    columns = a.abs().amax(0)
    columns = torch.where(columns > 0, columns, torch.ones_like(columns))
    k, _ = nnls((a / columns).numpy(), b.numpy(), maxiter=50 * a.shape[1])
    k = torch.as_tensor(k, dtype=torch.float64)
    floor = 1e-6 * (k.max() if bool((k > 0).any()) else torch.tensor(1.0, dtype=torch.float64))
    return k.clamp(min=float(floor)) / columns


def log_rate_error(learned: dict[str, float], truth: dict[str, float]) -> dict[str, float]:
    """Relative errors |k̂/k − 1| of learned rate constants against true ones, reaction by reaction."""
    return {r: abs(learned[r] / k - 1) for r, k in truth.items() if r in learned and math.isfinite(k)}
