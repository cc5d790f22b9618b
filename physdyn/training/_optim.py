"""Adam and AdamW that update some parameters lazily, row by row (fitted initial states).

A fitted initial state is a row of one (windows, *S) parameter, and a batch touches only its own windows'
rows. Dense Adam would keep moving every other row on its stale momentum; torch's ``SparseAdam`` has the
right update (the moments of the rows present only) but needs sparse gradients and an
optimiser of its own, which Lightning's automatic optimisation cannot combine with the model's. So the
parameter groups flagged ``lazy_rows=True`` get that update here, written by hand, and everything else
torch's own step.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


class _LazyRows:
    """The row-wise Adam update (SparseAdam's) for the parameter groups flagged ``lazy_rows``."""

    def step(self, closure=None):
        loss = None
        if closure is not None:  # Lightning passes the training step as a closure
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            if group.get("lazy_rows"):
                for p in group["params"]:
                    if p.grad is not None:
                        self._update_rows(p, group)
                        p.grad = None  # so that torch's step below leaves it alone
        super().step()
        return loss

    @torch.no_grad()
    def _update_rows(self, p: Tensor, group: dict) -> None:
        """SparseAdam's step (torch/optim/sparse_adam.py) on the rows this batch touched."""
        rows = p.grad.flatten(1).ne(0).any(1).nonzero().squeeze(1)
        state = self.state[p]
        if not state:
            state["step"] = torch.zeros((), dtype=torch.float64)
            state["exp_avg"] = torch.zeros_like(p)
            state["exp_avg_sq"] = torch.zeros_like(p)
        state["step"] += 1
        (beta1, beta2), step = group["betas"], float(state["step"])
        grad = p.grad[rows]
        m = state["exp_avg"][rows].mul_(beta1).add_(grad, alpha=1 - beta1)
        v = state["exp_avg_sq"][rows].mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        state["exp_avg"][rows], state["exp_avg_sq"][rows] = m, v
        step_size = group["lr"] * math.sqrt(1 - beta2**step) / (1 - beta1**step)
        p[rows] -= step_size * m / (v.sqrt() + group["eps"])


class Adam(_LazyRows, torch.optim.Adam):
    """torch.optim.Adam, plus lazy row updates for parameter groups flagged ``lazy_rows``."""


class AdamW(_LazyRows, torch.optim.AdamW):
    """torch.optim.AdamW, plus lazy row updates for parameter groups flagged ``lazy_rows``."""


OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {"adam": Adam, "adamw": AdamW}
