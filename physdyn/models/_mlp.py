"""Multilayer perceptrons, the building block of the vector-field and energy networks."""

from __future__ import annotations

from torch import nn

#: Activations by name. "smooth" ones are infinitely differentiable, which an energy network needs because its
#: gradient (not its value) is the vector field.
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "tanh": nn.Tanh,
    "softplus": nn.Softplus,
    "silu": nn.SiLU,
    "gelu": nn.GELU,
    "sigmoid": nn.Sigmoid,
    "elu": nn.ELU,
    "relu": nn.ReLU,
}
SMOOTH_ACTIVATIONS: tuple[str, ...] = ("tanh", "softplus", "silu", "gelu", "sigmoid")


def check_positive_int(name: str, value: object, minimum: int = 1) -> int:
    """``value`` if it is an int >= ``minimum``; otherwise a one-line ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def mlp(in_dim: int, out_dim: int, width: int, depth: int, activation: str = "tanh",
        allowed: tuple[str, ...] | None = None, output_bias: bool = True) -> nn.Sequential:
    """``depth`` hidden layers of ``width`` units with ``activation`` between them, then a linear output.

    ``depth = 0`` is a single affine map ``in_dim -> out_dim``. ``allowed`` restricts the activations
    (e.g. to :data:`SMOOTH_ACTIVATIONS`). ``output_bias=False`` drops the output offset (an energy's
    additive constant does not affect the dynamics, and a parameter without gradient confuses optimisers).
    """
    check_positive_int("width", width)
    check_positive_int("depth", depth, minimum=0)
    names = ACTIVATIONS if allowed is None else allowed
    if activation not in names:
        raise ValueError(f"unknown activation {activation!r} (available: {', '.join(names)})")
    layers: list[nn.Module] = []
    size = in_dim
    for _ in range(depth):
        layers += [nn.Linear(size, width), ACTIVATIONS[activation]()]
        size = width
    layers.append(nn.Linear(size, out_dim, bias=output_bias))
    return nn.Sequential(*layers)
