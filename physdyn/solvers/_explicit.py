"""Fixed-step explicit Runge–Kutta integration, batched and differentiable, with little Python per step.

torchdiffeq has fixed-step "euler"/"midpoint"/"rk4" but no fixed-step high-order method and no per-trajectory
time grids, and its per-step bookkeeping costs more than the stages themselves on small states (Lorenz-63:
three numbers per trajectory). So this module carries its own stepper, written so that one RK stage is one
vector-field call plus two tensor operations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor
from tqdm.auto import tqdm

from ._ode import VectorField


@dataclass(frozen=True)
class Tableau:
    """An explicit Butcher tableau.

    Stage i evaluates k_i = f(t + c[i] h, x + h Σ_j a[i][j] k_j); the step is x ← x + h Σ_i b[i] k_i.
    """

    c: tuple[float, ...]
    a: tuple[tuple[float, ...], ...]  # row i holds the i coefficients a[i][0..i-1]
    b: tuple[float, ...]
    order: int


# Hairer's DOP853 (Hairer, Nørsett & Wanner, Solving ODEs I, 2nd ed., Sec. II.10): its 12-stage 8th-order
# solution used at a fixed step (the 13th stage and the embedded error estimates only serve step control).
# The values are those of scipy.integrate's dop853_coefficients, written out so no private module is imported.
_DOP853 = Tableau(
    c=(0.0, 0.05260015195876773, 0.0789002279381516, 0.1183503419072274, 0.2816496580927726,
       0.3333333333333333, 0.25, 0.3076923076923077, 0.6512820512820513, 0.6, 0.8571428571428571, 1.0),
    a=(
        (),
        (0.05260015195876773,),
        (0.0197250569845379, 0.0591751709536137),
        (0.02958758547680685, 0.0, 0.08876275643042054),
        (0.2413651341592667, 0.0, -0.8845494793282861, 0.924834003261792),
        (0.037037037037037035, 0.0, 0.0, 0.17082860872947386, 0.12546768756682242),
        (0.037109375, 0.0, 0.0, 0.17025221101954405, 0.06021653898045596, -0.017578125),
        (0.03709200011850479, 0.0, 0.0, 0.17038392571223998, 0.10726203044637328, -0.015319437748624402,
         0.008273789163814023),
        (0.6241109587160757, 0.0, 0.0, -3.3608926294469414, -0.868219346841726, 27.59209969944671,
         20.154067550477894, -43.48988418106996),
        (0.47766253643826434, 0.0, 0.0, -2.4881146199716677, -0.590290826836843, 21.230051448181193,
         15.279233632882423, -33.28821096898486, -0.020331201708508627),
        (-0.9371424300859873, 0.0, 0.0, 5.186372428844064, 1.0914373489967295, -8.149787010746927,
         -18.52006565999696, 22.739487099350505, 2.4936055526796523, -3.0467644718982196),
        (2.273310147516538, 0.0, 0.0, -10.53449546673725, -2.0008720582248625, -17.9589318631188,
         27.94888452941996, -2.8589982771350235, -8.87285693353063, 12.360567175794303, 0.6433927460157636),
    ),
    b=(0.054293734116568765, 0.0, 0.0, 0.0, 0.0, 4.450312892752409, 1.8915178993145003, -5.801203960010585,
       0.3111643669578199, -0.1521609496625161, 0.20136540080403034, 0.04471061572777259),
    order=8,
)

TABLEAUS: dict[str, Tableau] = {
    "euler": Tableau(c=(0.0,), a=((),), b=(1.0,), order=1),
    "midpoint": Tableau(c=(0.0, 0.5), a=((), (0.5,)), b=(0.0, 1.0), order=2),
    "heun3": Tableau(c=(0.0, 1 / 3, 2 / 3), a=((), (1 / 3,), (0.0, 2 / 3)), b=(0.25, 0.0, 0.75), order=3),
    "rk4": Tableau(c=(0.0, 0.5, 0.5, 1.0), a=((), (0.5,), (0.0, 0.5), (0.0, 0.0, 1.0)),
                   b=(1 / 6, 1 / 3, 1 / 3, 1 / 6), order=4),
    "dop853": _DOP853,
}


def rk_integrate(
    f: VectorField,
    x0: Tensor,
    t: Tensor,
    *,
    method: str = "rk4",
    substeps: int = 1,
    max_step: float | None = None,
    progress: bool = False,
) -> Tensor:
    """Solve dx/dt = f(t, x) with a fixed-step explicit Runge–Kutta method; return the states at ``t``.

    Args:
        f: vector field ``f(t, x) -> dx/dt``, x of shape (N, *S). It receives t as a 0-d tensor for a shared
            grid and as an (N,) tensor (each trajectory's own time) for per-trajectory grids.
        x0: initial states (N, *S), any floating dtype; the computation runs in that dtype.
        t: output times, (T,) shared or (N, T) one grid per trajectory, each strictly increasing;
            ``t[..., 0]`` is the time of ``x0``. Grids need not be uniform.
        method: one of ``TABLEAUS``: "euler" (order 1), "midpoint" (2), "heun3" (3), "rk4" (4),
            "dop853" (8: the DOP853 tableau at a fixed step).
        substeps: each output interval is split into at least this many equal steps.
        max_step: if given, each interval is split into enough equal steps that none is longer than this
            (for per-trajectory grids, the longest trajectory's interval sets the count, so every step in the
            batch is at most ``max_step`` long).
        progress: show a progress bar over the output intervals.

    Returns:
        (N, T, *S): ``x0`` followed by the states at ``t[..., 1:]``.

    Differentiable with respect to ``x0`` and any parameters of ``f`` (not ``t``). Under
    ``torch.no_grad()`` the stages are written into one reused buffer, which is faster.
    """
    if method not in TABLEAUS:
        raise ValueError(f"unknown method {method!r} (available: {', '.join(TABLEAUS)})")
    if isinstance(substeps, bool) or not isinstance(substeps, int) or substeps < 1:
        raise ValueError(f"substeps must be a positive integer, got {substeps!r}")
    if max_step is not None and not (math.isfinite(max_step) and max_step > 0):
        raise ValueError(f"max_step must be a positive number, got {max_step!r}")
    if not (torch.is_tensor(x0) and x0.is_floating_point() and x0.ndim >= 1):
        raise ValueError("x0 must be a floating-point tensor of shape (N, *S)")
    t = torch.as_tensor(t).to(device=x0.device, dtype=torch.float64)
    n = x0.shape[0]
    if t.ndim not in (1, 2) or t.shape[-1] < 1 or (t.ndim == 2 and t.shape[0] != n):
        raise ValueError(f"t must have shape (T,) or (N, T) with N = {n}, got {tuple(t.shape)}")
    widths = t.diff(dim=-1)
    if bool((widths <= 0).any()) or not bool(torch.isfinite(t).all()):
        raise ValueError("t must be finite and strictly increasing along its last axis")

    if t.shape[-1] == 1:
        return x0[:, None]

    step = _Stepper(f, TABLEAUS[method], x0, buffered=not torch.is_grad_enabled())
    c = torch.tensor(step.tableau.c, dtype=torch.float64, device=x0.device)
    n_stages = len(c)
    shared = t.ndim == 1
    longest = widths.reshape(-1, widths.shape[-1]).amax(dim=0).tolist()
    # (the 1e-6 forgives float32 grids such as 0.1 stored as 0.10000000149)
    counts = [max(substeps, math.ceil(w / max_step - 1e-6) if max_step else 1) for w in longest]

    x, out = x0, [x0]
    for i in tqdm(range(len(longest)), disable=not progress, desc="integrating", leave=False):
        m = counts[i]
        if shared:
            h: float | Tensor = longest[i] / m
            starts = t[i] + h * torch.arange(m, dtype=torch.float64, device=x0.device)
            stage_t = (starts[:, None] + h * c).to(x0.dtype).reshape(-1).unbind()
        else:
            hn = widths[:, i] / m  # (N,): each trajectory its own step
            frac = (torch.arange(m, dtype=torch.float64, device=x0.device)[:, None] + c).reshape(-1)
            stage_t = (t[:, i, None] + hn[:, None] * frac).to(x0.dtype).T.unbind()
            h = hn.to(x0.dtype).reshape(n, *([1] * (x0.ndim - 1)))
        for j in range(m):
            x = step(x, h, stage_t[j * n_stages : (j + 1) * n_stages])
        out.append(x)
    return torch.stack(out, dim=1)


class _Stepper:
    """One RK step x ← x + Σ_i b_i (h k_i). The increments h k_i are rows of a (stages, numel) matrix, so each
    stage combination x + Σ_j a_ij (h k_j) is a single matrix product (addmm) whatever the number of stages.

    ``buffered`` (no autograd): that matrix is allocated once and overwritten every step, and each increment
    is written into its row by the multiplication itself, so a stage costs f plus three tensor operations.
    Otherwise the rows are stacked afresh, which autograd can follow.
    """

    def __init__(self, f: VectorField, tableau: Tableau, x0: Tensor, buffered: bool) -> None:
        self.f, self.tableau, self.shape = f, tableau, x0.shape
        opts = {"dtype": x0.dtype, "device": x0.device}
        self.a_rows = [torch.tensor([row], **opts) for row in tableau.a]  # (1, i) each
        self.b_row = torch.tensor([tableau.b], **opts)
        self.buffered = buffered
        if buffered:
            self.hk = torch.empty(len(tableau.c), x0.numel(), **opts)
            self.rows = [row.view(x0.shape) for row in self.hk]
            self.heads = [self.hk[:i] for i in range(len(tableau.c) + 1)]

    def __call__(self, x: Tensor, h: float | Tensor, ts: tuple[Tensor, ...]) -> Tensor:
        f, shape, flat = self.f, self.shape, x.reshape(1, -1)
        if self.buffered:
            rows, heads = self.rows, self.heads
            torch.mul(f(ts[0], x), h, out=rows[0])
            for i in range(1, len(ts)):
                torch.mul(f(ts[i], torch.addmm(flat, self.a_rows[i], heads[i]).view(shape)), h, out=rows[i])
            return torch.addmm(flat, self.b_row, self.hk).view(shape)
        hks = [(f(ts[0], x) * h).reshape(-1)]
        for i in range(1, len(ts)):
            xi = torch.addmm(flat, self.a_rows[i], torch.stack(hks)).view(shape)
            hks.append((f(ts[i], xi) * h).reshape(-1))
        return torch.addmm(flat, self.b_row, torch.stack(hks)).view(shape)
