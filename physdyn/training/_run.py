"""Training runs on disk: ``fit(config)`` trains a model and writes a RUN_DIR (layout in docs/training.md).

A run is prepared first (config resolved, data loaded, split, normaliser fitted, model and Trainer built,
one batch's loss computed), which writes nothing, so bad input fails before the folder is touched; then
its files are written and Lightning trains.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.fabric.utilities.rank_zero import rank_zero_only
from lightning.pytorch.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, Logger, TensorBoardLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from torch.utils.data import default_collate

from .. import models
from ..data import Normalizer, load
from ..data._datamodule import TrajectoryDataModule
from ._config import check_keys, default_config, load_config, merge, save_config
from ._learned import read_checkpoint, state_dict_problem
from ._module import DynamicsModule
from ._objectives import objective_class
from ._progress import RunProgressBar, parse_duration
from ._recipe import choose as choose_recipe
from ._source import source_system

PRECISIONS = {"32-true": torch.float32, "64-true": torch.float64}
SECTIONS = ("data", "model", "objective", "training")
#: The largest seed Lightning's seed_everything (numpy's generator) accepts; the smallest is 0.
MAX_SEED = 2**32 - 1


def fit(config: dict[str, Any], run_dir: str | os.PathLike | None = None, *, resume: bool = False) -> Path:
    """Train the model a config describes and write the run to ``run_dir``; returns the RUN_DIR.

    Args:
        config: a dict with sections ``data``, ``model``, ``objective``, ``training`` (docs/training.md
            lists every key and its default; at least ``data.path`` and ``model.name``). The resolved
            config, defaults filled in, is written to RUN_DIR/config.yaml.
        run_dir: the run folder; defaults to the config's top-level ``run_dir``. It must not exist or be
            empty, unless ``resume``.
        resume: continue the run in ``run_dir`` from checkpoints/last.ckpt; ``config`` then overrides the
            stored RUN_DIR/config.yaml (e.g. a larger ``training.max_epochs``), and the stored split and
            normalisation are reused.

    Under a multi-process strategy the same call runs in every process (``"ddp"`` re-launches the calling
    script, which must therefore guard its entry point with ``if __name__ == "__main__":``); only the first
    process writes files.

    Raises:
        ValueError: bad config, data (``physdyn.data.DataFormatError``) or run folder; nothing is written.
    """
    return prepare(config, run_dir, resume=resume).run()


@dataclass
class FitPlan:
    """A run checked and built, nothing written yet; :meth:`run` writes it and trains."""

    config: dict[str, Any]
    run_dir: Path
    resume: bool
    rank: int
    datamodule: TrajectoryDataModule
    module: DynamicsModule
    trainer: L.Trainer
    notes: list[str]  # what was chosen and formed, and why: the lines `physdyn fit` prints first

    def run(self) -> Path:
        run_dir = self.run_dir
        if self.rank == 0:  # re-launched DDP processes find the files already there
            (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
            save_config(self.config, run_dir / "config.yaml")
            self.datamodule.normalizer.save(run_dir / "normalization.json")
            _write_json(self.datamodule.split, run_dir / "split.json")
        ckpt = run_dir / "checkpoints" / "last.ckpt" if self.resume else None
        with warnings.catch_warnings():
            # Advice that does not apply here: in-memory windows need no loader workers, and tiny datasets
            # have fewer batches than the logging interval.
            warnings.filterwarnings("ignore", message=".*does not have many workers.*")
            warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")
            warnings.filterwarnings("ignore", message="Checkpoint directory .* exists and is not empty")
            warnings.filterwarnings("ignore", message=".*isinstance\\(treespec, LeafSpec\\)` is deprecated")
            sigint = signal.getsignal(signal.SIGINT)
            try:
                self.trainer.fit(self.module, datamodule=self.datamodule, ckpt_path=ckpt)
            except SystemExit:
                # Lightning answers Ctrl-C with exit(1) and ignores Ctrl-C from then on: give the caller
                # the KeyboardInterrupt it was (the CLI's exit status 130) and Ctrl-C back.
                if not self.trainer.interrupted:
                    raise
                if sigint is not None and threading.current_thread() is threading.main_thread():
                    signal.signal(signal.SIGINT, sigint)
                raise KeyboardInterrupt from None
        return run_dir


def prepare(config: dict[str, Any], run_dir: str | os.PathLike | None = None, *,
            resume: bool = False) -> FitPlan:
    """Check and build everything :func:`fit` needs, writing nothing; ValueError (one line) on bad input."""
    rank = int(getattr(rank_zero_only, "rank", 0) or 0)
    check_keys(config)
    if run_dir is None:
        run_dir = config.get("run_dir")
    if run_dir is None:
        raise ValueError("no run folder given (pass run_dir, or set run_dir in the config)")
    run_dir = Path(run_dir).absolute()
    if resume:
        last = run_dir / "checkpoints" / "last.ckpt"
        if not last.is_file():
            raise ValueError(f"{run_dir}: nothing to resume ({last.relative_to(run_dir)} not found)")
        config = merge(load_config(run_dir / "config.yaml"), config)
    elif rank == 0 and run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
        raise ValueError(f"{run_dir}: exists and is not empty "
                         "(resume to continue that run, or choose a new folder)")

    cfg = merge(default_config(), {k: v for k, v in config.items() if k in SECTIONS})
    data_cfg, train_cfg = cfg["data"], cfg["training"]
    name = cfg["model"]["name"]
    if name is None:
        raise ValueError(f"model.name is required (available: {', '.join(models.names())})")
    known_hparams = models.defaults(name)  # ValueError for an unknown model
    model_cls = models.model_class(name)
    objective_name = cfg["objective"]["name"] or model_cls.objective
    objective_cls = objective_class(objective_name)
    check_keys(config, known_hparams, objective_cls.defaults())
    if data_cfg["path"] is None:
        raise ValueError("data.path is required (the HDF5 file to train on)")
    if train_cfg["precision"] not in PRECISIONS:
        raise ValueError(f"training.precision must be one of {', '.join(PRECISIONS)}, "
                         f"got {train_cfg['precision']!r}")
    seed = train_cfg["seed"]
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ValueError(f"training.seed (--seed) must be an integer from 0 to {MAX_SEED}, got {seed!r}")

    data_path = Path(data_cfg["path"]).absolute()
    data_cfg["path"] = str(data_path)
    traj = load(data_path, states=data_cfg["states"], times=data_cfg["times"], layout=data_cfg["layout"],
                mask=data_cfg["mask"], missing=data_cfg["missing"])
    source_system(traj)  # a file that names a bundled system must fit it
    recipe, reasons = choose_recipe(traj, objective_name, config, known_hparams)
    for section, values in recipe.items():  # only what the config leaves open
        cfg[section].update(values)
    L.seed_everything(seed, verbose=False)  # before the model, whose initial weights it fixes
    hparams = known_hparams | {k: v for k, v in cfg["model"].items() if k != "name"}
    model = models.get(name, traj.state_shape, **hparams)
    cfg["model"] = {"name": name, **hparams}

    if data_cfg["normalization"] == "auto":
        data_cfg["normalization"] = model.normalization
    split = normalizer = state = None
    if resume:
        split, normalizer, state = _resume_files(run_dir)
    dm = TrajectoryDataModule(
        traj, kind=model.data, window=data_cfg["window"], stride=data_cfg["stride"], split=data_cfg["split"],
        split_by=data_cfg["split_by"], max_gap=data_cfg["max_gap"], seed=seed,
        normalization=data_cfg["normalization"], batch_size=data_cfg["batch_size"],
        num_workers=data_cfg["num_workers"], dtype=PRECISIONS[train_cfg["precision"]], split_indices=split,
        normalizer=normalizer)
    dm.setup("fit")
    options = objective_cls.defaults() | {k: v for k, v in cfg["objective"].items() if k != "name"}
    objective = objective_cls(model, dm.datasets["train"], **options)
    cfg["objective"] = {"name": objective_name, **options}
    has_val = len(dm.datasets["val"]) > 0
    monitor = "val_loss" if has_val else "train_loss"
    module = DynamicsModule(model, objective, optimizer=train_cfg["optimizer"], lr=train_cfg["lr"],
                            weight_decay=train_cfg["weight_decay"], schedule=train_cfg["schedule"],
                            monitor=monitor)
    if resume:
        _check_checkpoint_fits(module, state, run_dir)
    _dry_run(module, dm, PRECISIONS[train_cfg["precision"]])

    cfg["source"] = {"system": traj.system, "system_params": traj.system_params,
                     "state_names": list(traj.state_names), "state_shape": list(traj.state_shape)}
    cfg["run_dir"] = str(run_dir)
    trainer = _trainer(train_cfg, run_dir, monitor, has_val)
    if reasons:
        cfg["recipe"] = reasons
    notes = [f"recipe: {reason}" for reason in reasons] + [f"data: {line}" for line in dm.describe()]
    return FitPlan(cfg, run_dir, resume, rank, dm, module, trainer, notes)


def _resume_files(run_dir: Path) -> tuple[dict[str, list[int]], Normalizer, dict[str, torch.Tensor]]:
    """The split, normalisation and checkpoint weights a resume continues from, each checked.

    Checked before anything is written, so that a resume refused (ValueError, one line naming the file)
    leaves the run as it was.
    """
    split_file = run_dir / "split.json"
    try:
        split = json.loads(split_file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{split_file}: cannot resume, the run's split is missing or unreadable "
                         f"({type(err).__name__})") from None

    def indices(name: str) -> bool:
        value = split.get(name)
        return isinstance(value, list) and all(type(i) is int and i >= 0 for i in value)

    if not isinstance(split, dict) or not all(indices(name) for name in ("train", "val", "test")):
        raise ValueError(f"{split_file}: cannot resume, expected lists 'train', 'val' and 'test' of "
                         "trajectory indices")
    normalizer = Normalizer.load(run_dir / "normalization.json")
    state = read_checkpoint(run_dir / "checkpoints" / "last.ckpt")
    return split, normalizer, state


def _check_checkpoint_fits(module: DynamicsModule, state: dict[str, torch.Tensor], run_dir: Path) -> None:
    """ValueError (one line) unless the checkpoint's weights load into ``module`` exactly."""
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ValueError(f"{run_dir / 'checkpoints' / 'last.ckpt'}: does not fit the model asked for "
                         f"({state_dict_problem(err)}); resume with the run's own model settings") from None


def _dry_run(module: DynamicsModule, dm: TrajectoryDataModule, dtype: torch.dtype) -> None:
    """The loss of a few training windows, so a bad method or model fails now, not in the first epoch."""
    dataset = dm.datasets["train"]
    batch = default_collate([dataset[i] for i in range(min(4, len(dataset)))])
    # Not module.to(dtype), which would drop the imaginary part of complex weights (Fourier layers): real
    # tensors take the precision, complex ones its complex counterpart.
    complex_dtype = torch.complex128 if dtype == torch.float64 else torch.complex64
    module._apply(lambda t: t.to(dtype) if t.is_floating_point() else t.to(complex_dtype) if t.is_complex()
                  else t)
    with torch.no_grad():
        loss = module.losses(batch)["loss"]
    if not torch.isfinite(loss):
        raise ValueError(f"the initial loss is {float(loss)}: check the data scale and the normalization")


def _trainer(cfg: dict[str, Any], run_dir: Path, monitor: str, has_val: bool) -> L.Trainer:
    for key in ("max_epochs", "log_every_n_steps"):
        value = cfg[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"training.{key} must be an integer >= 1, got {value!r}")
    patience, clip = cfg["early_stopping_patience"], cfg["grad_clip"]
    if patience is not None and (isinstance(patience, bool) or not isinstance(patience, int) or patience < 1):
        raise ValueError(f"training.early_stopping_patience must be null or an integer >= 1: {patience!r}")
    if clip is not None and (isinstance(clip, bool) or not isinstance(clip, int | float) or not clip > 0):
        raise ValueError(f"training.grad_clip must be null or a number > 0, got {clip!r}")
    max_time = parse_duration(cfg["max_time"])
    loggers = [_AppendingCSVLogger(run_dir, name="logs", version=""), *_extra_loggers(cfg["logger"], run_dir)]
    # Two checkpoints, two callbacks: Lightning's save_last writes last.ckpt only when a best checkpoint is
    # saved, so last.ckpt would hold the best epoch, and a resume would restart from there.
    callbacks: list[L.Callback] = [
        ModelCheckpoint(dirpath=run_dir / "checkpoints", filename="best", monitor=monitor, mode="min",
                        save_top_k=1, enable_version_counter=False),
        ModelCheckpoint(dirpath=run_dir / "checkpoints", filename="last", enable_version_counter=False),
        LearningRateMonitor(logging_interval="epoch"),
    ]
    if patience is not None:
        callbacks.append(EarlyStopping(monitor=monitor, patience=patience, mode="min"))
    if cfg["progress_bar"]:
        callbacks.append(RunProgressBar())
    try:
        return L.Trainer(
            max_epochs=cfg["max_epochs"], max_time=max_time, accelerator=cfg["accelerator"],
            devices=cfg["devices"], strategy=cfg["strategy"], precision=cfg["precision"],
            gradient_clip_val=clip, callbacks=callbacks, logger=loggers,
            enable_progress_bar=bool(cfg["progress_bar"]), log_every_n_steps=cfg["log_every_n_steps"],
            default_root_dir=run_dir, num_sanity_val_steps=0, limit_val_batches=None if has_val else 0,
            # The windows' sampler already shards by process (TrajectoryDataModule); Hamiltonian models
            # differentiate their energy during validation too, which inference mode forbids.
            use_distributed_sampler=False, inference_mode=False,
        )
    except ImportError as err:  # an accelerator or strategy whose package is missing (tpu: torch_xla)
        raise ValueError(f"training.accelerator={cfg['accelerator']}, training.strategy={cfg['strategy']}: "
                         f"not available here ({' '.join(str(err).split())})") from None
    except Exception as err:  # Lightning's MisconfigurationException and friends: a bad training setting
        if isinstance(err, ValueError | TypeError) or type(err).__name__ == "MisconfigurationException":
            raise ValueError(f"training settings rejected: {' '.join(str(err).split())}") from None
        raise


def _extra_loggers(name: object, run_dir: Path) -> list[Logger]:
    """Loggers besides the CSV file every run keeps (logs/metrics.csv is the run's own record)."""
    if name == "csv":
        return []
    if name != "tensorboard":
        raise ValueError(f"training.logger must be csv or tensorboard, got {name!r}")
    if importlib.util.find_spec("tensorboard") is None and importlib.util.find_spec("tensorboardX") is None:
        raise ValueError("training.logger=tensorboard needs the tensorboard package: "
                         "pip install -c constraints.txt -e \".[tensorboard]\"")
    return [TensorBoardLogger(run_dir / "logs", name="tensorboard", version="", default_hp_metric=False)]


class _AppendingWriter(ExperimentWriter):
    """Lightning's CSV writer deletes an existing metrics.csv; a resumed run appends to it instead."""

    def _check_log_dir_exists(self) -> None:
        if os.path.isfile(self.metrics_file_path):
            with open(self.metrics_file_path, newline="") as f:
                self.metrics_keys = [key for key in f.readline().strip().split(",") if key]


class _AppendingCSVLogger(CSVLogger):
    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AppendingWriter(log_dir=self.log_dir)
        return self._experiment


def _write_json(obj: Any, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    os.replace(tmp, path)
