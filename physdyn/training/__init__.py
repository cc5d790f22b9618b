"""Training: objectives, the LightningModule, runs on disk (``fit``) and trained models in physical units.

``fit(config, run_dir)`` trains and writes a RUN_DIR; ``load_run(run_dir)`` gives back a
:class:`LearnedModel`, which predicts in physical units for every model family and, where the model has
them, offers the interface of a reference system (``vector_field``, ``rollout``, ``energy``).
``OBJECTIVES`` holds the training objectives a model family names. docs/training.md documents the config
and RUN_DIR.
"""

from ._config import DEFAULTS, default_config, load_config, merge, parse_assignments, save_config
from ._learned import LearnedModel, load_run
from ._module import DynamicsModule
from ._objectives import (
    ELBO,
    OBJECTIVES,
    Objective,
    SequencePrediction,
    TrajectoryMatching,
    TransitionLikelihood,
    UnrolledSteps,
    kl_weight,
    masked_mse,
    objective_class,
)
from ._run import FitPlan, fit, prepare

__all__ = [
    "DEFAULTS",
    "ELBO",
    "OBJECTIVES",
    "DynamicsModule",
    "FitPlan",
    "LearnedModel",
    "Objective",
    "SequencePrediction",
    "TrajectoryMatching",
    "TransitionLikelihood",
    "UnrolledSteps",
    "default_config",
    "fit",
    "kl_weight",
    "load_config",
    "load_run",
    "masked_mse",
    "merge",
    "objective_class",
    "parse_assignments",
    "prepare",
    "save_config",
]
