"""Run configuration: a plain dict with sections data / model / training, its defaults, merging and files.

docs/training.md lists every key; :data:`DEFAULTS` is the authority.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

#: Every key a config may hold, with its default. ``None`` under data.path / model.name: must be given.
#: The model section also takes the hyperparameters of the chosen model (``physdyn.models.defaults(name)``),
#: the objective section the options of the chosen objective (``OBJECTIVES[name].defaults()``).
DEFAULTS: dict[str, dict[str, Any]] = {
    "data": {
        "path": None,  # HDF5 file: physdyn's format, or any layout physdyn.data.load reads
        "states": "states",  # dataset path of the states
        "times": "t",  # dataset path of the times
        "layout": "NTD",  # axis order: NTD, TND or TD
        "mask": "mask",  # dataset path of the mask (True = observed), read when present
        "missing": "error",  # a NaN in the states: error | nan (an unobserved entry)
        "split": [0.8, 0.1, 0.1],  # train / val / test fractions (of the trajectories, or of time)
        "split_by": "auto",  # trajectory | time | auto (by trajectory where there are enough)
        "max_gap": "auto",  # no window spans a longer step; auto: 5 x the median step; null: no limit
        "window": 10,  # samples per training window
        "stride": 1,  # samples between window starts
        "normalization": "auto",  # standard | channel | scale | species | none | auto (the model's choice)
        "batch_size": 64,
        "num_workers": 0,
    },
    "model": {
        "name": None,  # a name from physdyn.models.names()
    },
    "objective": {
        "name": None,  # a name from physdyn.training.OBJECTIVES; None: the model's own
    },
    "training": {
        "max_epochs": 100,
        "max_time": None,  # stop after this wall time, "HH:MM:SS" or "DD:HH:MM:SS" (None: no limit)
        "seed": 0,  # seeds the split, the weights and the order of the windows
        "optimizer": "adam",  # adam | adamw
        "lr": 1e-3,
        "weight_decay": 0.0,
        "schedule": "none",  # none | cosine | plateau
        "grad_clip": None,  # clip the gradient norm at this value (None: no clipping)
        "early_stopping_patience": None,  # stop after this many epochs without improvement (None: off)
        "accelerator": "auto",  # auto | cpu | gpu
        "devices": 1,  # processes / devices ("auto" allowed)
        "strategy": "auto",  # auto | ddp | ddp_spawn | ddp_fork ...
        "precision": "32-true",  # 32-true | 64-true
        "log_every_n_steps": 10,
        "progress_bar": True,
        "logger": "csv",  # csv (logs/metrics.csv) | tensorboard (also TensorBoard files in logs/tensorboard)
    },
}


class _Loader(yaml.SafeLoader):
    """YAML 1.1 reads ``1e-3`` (no decimal point) as a string; here it is the float everyone means."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def default_config() -> dict[str, dict[str, Any]]:
    """A fresh copy of :data:`DEFAULTS`."""
    return copy.deepcopy(DEFAULTS)


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` updated by ``override``, nested mappings merged key by key; neither input is modified."""
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def check_keys(config: Mapping[str, Any], model_keys: Iterable[str] | None = None,
               objective_keys: Iterable[str] | None = None) -> None:
    """ValueError naming the first unknown section or key.

    Model keys are ``name`` and ``model_keys`` (the model's hyperparameters), objective keys ``name`` and
    ``objective_keys`` (its options); None skips that section.
    """
    if not isinstance(config, Mapping):
        raise ValueError(f"a config must be a mapping with sections {', '.join(DEFAULTS)}, "
                         f"got {type(config).__name__}")
    extra = ("run_dir", "source", "recipe")  # written by fit for information; ignored on input
    for section, values in config.items():
        if section in extra:
            continue
        if section not in DEFAULTS:
            raise ValueError(f"unknown config section {section!r} (known: {', '.join([*DEFAULTS, *extra])})")
        if not isinstance(values, Mapping):
            raise ValueError(f"config section {section!r} must be a mapping, got {values!r}")
        extra_keys = {"model": model_keys, "objective": objective_keys}.get(section, ())
        if extra_keys is None:
            continue
        known = [*DEFAULTS[section], *extra_keys]
        for key in values:
            if key not in known:
                raise ValueError(f"unknown config key '{section}.{key}' (known: {', '.join(known)})")


def parse_assignments(items: Iterable[str]) -> dict[str, Any]:
    """``["section.key=value", ...]`` as a nested dict; values read as YAML (``1e-3``, ``true``)."""
    out: dict[str, Any] = {}
    for item in items:
        path, sep, text = item.partition("=")
        keys = path.strip().split(".")
        if not sep or len(keys) < 2 or not all(keys):
            raise ValueError(f"--set {item!r}: expected section.key=value, e.g. training.lr=1e-3")
        try:
            value = yaml.load(text, Loader=_Loader)
        except yaml.YAMLError:
            value = text
        node = out
        for key in keys[:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise ValueError(f"--set {item!r}: '{key}' is set to a value and used as a section")
        node[keys[-1]] = value
    return out


def load_config(path: str | os.PathLike) -> dict[str, Any]:
    """Read a YAML config file; ValueError (one line) if missing or not a mapping."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: config file not found")
    try:
        config = yaml.load(path.read_text(), Loader=_Loader)
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not a valid YAML file ({' '.join(str(err).split())})") from None
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise ValueError(f"{path}: a config must be a mapping with sections {', '.join(DEFAULTS)}")
    return config


def save_config(config: Mapping[str, Any], path: str | os.PathLike) -> Path:
    """Write ``config`` as YAML to ``path`` (atomically: a temporary file renamed into place)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(yaml.safe_dump(dict(config), sort_keys=False))
    os.replace(tmp, path)
    return path
