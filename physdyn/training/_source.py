"""The reference system a data set says it comes from, checked against the data."""

from __future__ import annotations

from ..data import DataFormatError, Trajectories


def source_system(traj: Trajectories):
    """The bundled system that made ``traj`` (its ``system`` and ``system_params`` attributes), or None.

    None for "custom" data, for parameters the registry does not accept, and for data whose system
    parameters vary across trajectories (no one system produced them all).

    Raises:
        DataFormatError: ``traj`` names a bundled system whose states have another shape than its own, so
            whatever is computed with that system (its energy, its vector field) would fail or mislead.
    """
    from .. import systems  # lazily: systems import data, and most of training never needs them

    if traj.system not in systems.names():
        return None
    known = systems.facts(traj.system)["params"]
    if any(name in known and bool((v != v[0]).any()) for name, v in traj.params.items()):
        return None
    try:
        system = systems.get(traj.system, **traj.system_params)
    except ValueError:
        return None
    if tuple(system.state_shape) != traj.state_shape:
        source = traj.meta.get("source", "data")
        raise DataFormatError(f"{source}: attribute 'system' is {traj.system!r}, whose states have shape "
                              f"{tuple(system.state_shape)}, but key 'states' holds states of shape "
                              f"{traj.state_shape}")
    return system
