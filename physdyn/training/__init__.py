"""Training: the LightningModule, runs on disk (``fit``) and trained models in physical units (``load_run``).

``fit(config, run_dir)`` trains and writes a RUN_DIR; ``load_run(run_dir)`` gives back a
:class:`LearnedModel`, which has the interface of a reference system (``vector_field``, ``rollout``,
``energy`` for Hamiltonian models) in physical units. docs/training.md documents the config and RUN_DIR.
"""

from ._config import DEFAULTS, default_config, load_config, merge, parse_assignments, save_config
from ._learned import LearnedModel, load_run
from ._module import DynamicsModule, masked_mse
from ._run import FitPlan, fit, prepare

__all__ = [
    "DEFAULTS",
    "DynamicsModule",
    "FitPlan",
    "LearnedModel",
    "default_config",
    "fit",
    "load_config",
    "load_run",
    "masked_mse",
    "merge",
    "parse_assignments",
    "prepare",
    "save_config",
]
