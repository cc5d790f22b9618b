"""The Fourier neural operator baseline, from the ``neuraloperator`` package, as a next-frame model.

Next frame = last frame + FNO(last ``history`` frames), the FNO of ``neuralop.models.FNO`` (Li et al.,
ICLR 2021; Kossaifi et al.), with PDEBench's settings as defaults (``modes`` 12, ``width`` 20, 4 layers;
PDEBench reads 10 context frames, ``history=10``). The package is an optional extra
(``pip install -e ".[operators]"``: it pulls wandb, tensorly and more); without it, building the model
raises a one-line error saying so. Its Fourier layers are periodic, the data's walls are not: PDEBench's
FNO has the same mismatch, which ``domain_padding`` (a fraction of the grid, zero-padded) softens.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from ._fields import StepModel
from ._mlp import check_positive_int

INSTALL = 'pip install -e ".[operators]" (or pip install neuraloperator)'


class FNO(StepModel):
    """PDEBench's FNO baseline on fields (C, W) or (C, H, W); ``modes`` are clipped to the grid."""

    requires = ("neuralop",)

    def __init__(self, state_shape: int | Sequence[int], modes: int = 12, width: int = 20, layers: int = 4,
                 domain_padding: float = 0.0, history: int = 1) -> None:
        super().__init__(state_shape, history=history, modes=modes, width=width, layers=layers,
                         domain_padding=domain_padding)
        for name, value in (("modes", modes), ("width", width), ("layers", layers)):
            check_positive_int(name, value)
        if isinstance(domain_padding, bool) or not isinstance(domain_padding, int | float) \
                or not 0 <= domain_padding < 1:
            raise ValueError(f"domain_padding must be a fraction from 0 to 1, got {domain_padding!r}")
        try:
            from neuralop.models import FNO as NeuralOperatorFNO
        except ImportError:
            raise ValueError(f"the model fno needs the neuraloperator package: {INSTALL}") from None
        grid = self.state_shape[1:]
        n_modes = tuple(min(modes, max(1, n // 2)) for n in grid)
        self.net = NeuralOperatorFNO(n_modes=n_modes, in_channels=history * self.channels,
                                     out_channels=self.channels, hidden_channels=width, n_layers=layers,
                                     domain_padding=float(domain_padding) or None)

    def step(self, frames: Tensor) -> Tensor:
        return frames[:, -1] + self.net(frames.flatten(1, 2))

    def state_dict(self, *args, **kwargs):
        # neuralop adds its constructor's arguments (functions among them) under "_metadata" to the whole
        # state dict; they are no weights, and torch.load(weights_only=True) cannot read them back.
        state = super().state_dict(*args, **kwargs)
        state.pop("_metadata", None)
        return state
