"""`physdyn evaluate`, `physdyn models` and `physdyn example`: fit -> evaluate end to end, and bad input."""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import replace

import numpy as np
import pytest
import torch

from physdyn import models
from physdyn.data import Trajectories, load, save, write_example_file
from physdyn.evaluation import EXAMPLES, run_example

TINY = ("--max-epochs", "1", "--set", "model.width=8", "--set", "model.depth=1", "--set", "data.window=4",
        "--set", "training.progress_bar=false")
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A training file, a separate test file (same kind of data, other seed) and a tiny run of each model."""
    from physdyn.cli import main

    root = tmp_path_factory.mktemp("eval")
    train, test = root / "train.h5", root / "test.h5"
    write_example_file(train, n_trajectories=10, n_times=30, seed=0)
    write_example_file(test, n_trajectories=3, n_times=30, seed=1)
    runs = {}
    for name in ("node", "hnn"):
        runs[name] = root / f"run-{name}"
        assert main(["fit", str(train), "--model", name, "--out", str(runs[name]), *TINY]) == 0
    return {"train": train, "test": test, "root": root, **runs}


def one_line_error(status: int, out: str, err: str, *fragments: str) -> None:
    assert status == 2, err
    assert err.startswith("physdyn ") and err.count("\n") == 1, err
    for fragment in fragments:
        assert fragment in err, err


def test_fit_then_evaluate(cli, files, tmp_path):
    out = tmp_path / "report"
    run, test = files["node"], files["test"]
    status, stdout, err = cli("evaluate", run, "--data", test, "--horizon", 20, "--out", out)
    assert status == 0, err
    assert f"report: {out}" in stdout and "valid prediction time" in stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model"] == "node" and metrics["horizon"] == 20 and metrics["n_trajectories"] == 3
    assert len(metrics["times"]) == len(metrics["rmse"]) == len(metrics["nrmse"]) == 21
    assert metrics["vpt"] is not None and metrics["rmse"][0] == 0.0
    for name in ("error_vs_horizon.png", "trajectories.png", "phase_portrait.png"):
        assert (out / name).read_bytes()[:8] == PNG
    pred, truth = load(out / "predictions.h5"), load(files["test"])
    assert pred.states.shape == (3, 21, 2)
    np.testing.assert_array_equal(pred.t.numpy(), truth.t[:21].numpy())
    np.testing.assert_array_equal(pred.states[:, 0].numpy(), truth.states[:, 0].numpy())
    # metrics.json's rmse is the rmse of predictions.h5 against the data
    rmse = np.sqrt(((pred.states.numpy() - truth.states[:, :21].numpy()) ** 2).mean(axis=(0, 2)))
    np.testing.assert_allclose(metrics["rmse"], rmse, rtol=1e-5, atol=1e-7)


def test_the_training_file_is_evaluated_on_the_test_split(cli, files):
    status, _, err = cli("evaluate", files["hnn"], "--data", files["train"], "--horizon", 29)
    assert status == 0, err
    assert "test trajectories (split.json)" in err
    split = json.loads((files["hnn"] / "split.json").read_text())
    metrics = json.loads((files["hnn"] / "report" / "metrics.json").read_text())
    assert metrics["n_trajectories"] == len(split["test"])
    assert metrics["energy_source"] == "learned"  # custom data: no true energy, the HNN's own
    assert set(metrics["energy_drift"]) == {"max", "final", "worst"}
    pred = load(files["hnn"] / "report" / "predictions.h5")
    assert pred.params["source_index"].tolist() == split["test"]
    # a second run does not overwrite the report without --force
    status, out, err = cli("evaluate", files["hnn"], "--data", files["train"], "--horizon", 29)
    one_line_error(status, out, err, "not empty")
    status, _, err = cli("evaluate", files["hnn"], "--data", files["train"], "--horizon", 5, "--force")
    assert status == 0, err
    assert json.loads((files["hnn"] / "report" / "metrics.json").read_text())["horizon"] == 5


def test_bad_input_exits_2_with_one_line(cli, files, tmp_path):
    run, test = files["node"], files["test"]
    status, out, err = cli("evaluate", tmp_path / "nope", "--data", test, "--horizon", 5)
    one_line_error(status, out, err, "no such run folder")
    (tmp_path / "empty").mkdir()
    status, out, err = cli("evaluate", tmp_path / "empty", "--data", test, "--horizon", 5)
    one_line_error(status, out, err, "no checkpoint")

    report = tmp_path / "r"
    bad = tmp_path / "bad.h5"
    bad.write_text("not hdf5")
    status, out, err = cli("evaluate", run, "--data", bad, "--horizon", 5, "--out", report)
    one_line_error(status, out, err, "bad.h5", "not an HDF5 file")
    status, out, err = cli("evaluate", run, "--data", test, "--states", "nope", "--horizon", 5,
                           "--out", report)
    one_line_error(status, out, err, "'nope' not found")
    status, out, err = cli("evaluate", run, "--data", test, "--horizon", 0, "--out", report)
    one_line_error(status, out, err, "--horizon 0")
    status, out, err = cli("evaluate", run, "--data", test, "--horizon", 30, "--out", report)
    one_line_error(status, out, err, "--horizon 30", "30 times", "29 steps")
    status, out, err = cli("evaluate", run, "--data", test, "--horizon", 5, "--samples", 0, "--out", report)
    one_line_error(status, out, err, "--samples 0")
    wide = tmp_path / "wide.h5"
    write_example_file(wide, n_trajectories=2, n_times=10, state_dim=3)
    status, out, err = cli("evaluate", run, "--data", wide, "--horizon", 5, "--out", report)
    one_line_error(status, out, err, "(3,)", "(2,)")
    mislabelled = tmp_path / "mislabelled.h5"  # two components, as the model has, but lorenz has three
    save(Trajectories(t=torch.linspace(0, 1, 10), states=torch.randn(2, 10, 2), system="lorenz"), mislabelled)
    status, out, err = cli("evaluate", run, "--data", mislabelled, "--horizon", 5, "--out", report)
    one_line_error(status, out, err, "attribute 'system' is 'lorenz', whose states have shape (3,)")
    assert not report.exists()  # nothing written by any of them
    report.mkdir()
    (report / "keep.txt").write_text("x")
    status, out, err = cli("evaluate", run, "--data", test, "--horizon", 5, "--out", report)
    one_line_error(status, out, err, "not empty", "--force")
    assert [p.name for p in report.iterdir()] == ["keep.txt"]


def tree(folder):
    return sorted((p.relative_to(folder).as_posix(), p.read_bytes() if p.is_file() else None)
                  for p in folder.rglob("*"))


def test_force_replaces_only_an_earlier_report(cli, files, tmp_path, monkeypatch):
    run = tmp_path / "run"
    shutil.copytree(files["node"], run)
    inner = tmp_path / "inner"
    inner.mkdir()
    shutil.copy(files["test"], inner / "test.h5")
    (inner / "notes.txt").write_text("mine")
    before = tree(tmp_path)
    for data, out, problem in [(files["test"], run, "an input of this evaluation"),
                               (inner / "test.h5", inner, "an input of this evaluation"),
                               (files["test"], tmp_path, "an input of this evaluation"),  # holds the run
                               (files["test"], run / "checkpoints", "is not a physdyn report (best.ckpt")]:
        status, stdout, err = cli("evaluate", run, "--data", data, "--horizon", 5, "--out", out, "--force")
        one_line_error(status, stdout, err, f"--out {out}: ", problem)
    monkeypatch.chdir(inner)
    one_line_error(*cli("evaluate", run, "--data", files["test"], "--horizon", 5, "--out", ".", "--force"),
                   "--out .: is the current folder")
    assert tree(tmp_path) == before  # every file as it was
    assert cli("evaluate", run, "--data", files["test"], "--horizon", 5)[0] == 0  # the run still works


def test_a_run_whose_training_file_changed_or_a_bad_checkpoint_is_refused(cli, files, tmp_path):
    import yaml

    run = tmp_path / "run"
    shutil.copytree(files["node"], run)
    test = json.loads((run / "split.json").read_text())["test"]
    n = max(test)  # the training file, re-simulated with too few trajectories for the run's test split
    fewer = tmp_path / "train.h5"
    write_example_file(fewer, n_trajectories=n, n_times=30, seed=0)
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["data"]["path"] = str(fewer)
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    one_line_error(*cli("evaluate", run, "--data", fewer, "--horizon", 5, "--out", tmp_path / "r"),
                   f"{run / 'split.json'}: its test split does not fit {fewer}",
                   f"trajectory {n} of the split is not among the {n} trajectories")
    not_a_checkpoint = tmp_path / "notes.ckpt"
    not_a_checkpoint.write_text("my notes")
    one_line_error(*cli("evaluate", run, "--data", files["test"], "--horizon", 5, "--out", tmp_path / "r",
                        "--checkpoint", not_a_checkpoint), f"{not_a_checkpoint}: not a readable checkpoint")
    assert not (tmp_path / "r").exists()


def test_models_lists_the_registry(cli):
    status, out, _ = cli("models")
    assert status == 0
    for name in models.names():
        assert any(line.startswith(name + " ") for line in out.splitlines())
    assert "width=128" in out  # the neural ODE's default width
    status, out, _ = cli("models", "--json")
    records = json.loads(out)
    assert [r["name"] for r in records] == models.names()
    assert records[0]["defaults"] == models.defaults(records[0]["name"])


def test_example_command_lists_and_refuses(cli, tmp_path):
    status, out, _ = cli("example", "--list")
    assert status == 0 and [line.split()[0] for line in out.splitlines()] == list(EXAMPLES)
    one_line_error(*cli("example", "nope"), "unknown example 'nope'", "pendulum-hnn")
    one_line_error(*cli("example"), "--list")
    (tmp_path / "run").mkdir()
    one_line_error(*cli("example", "lorenz-node", "--out", tmp_path), "already holds run", "--force")


@pytest.fixture
def small_example(monkeypatch, tmp_path):
    """pendulum-hnn on a few short trajectories simulated on the spot (as where datasets/ is absent)."""
    import physdyn.evaluation._examples as examples
    import physdyn.evaluation._plots as plots

    small = {"n_trajectories": 6, "t_end": 2.0, "dt": 0.1, "seed": 0}
    monkeypatch.setitem(EXAMPLES, "pendulum-hnn", replace(EXAMPLES["pendulum-hnn"], simulate=small))
    monkeypatch.setattr(examples, "DATASETS", tmp_path / "no-datasets")
    monkeypatch.setattr(plots, "write_plots", lambda report, folder: ["no plots (a test)"])  # seconds each
    return "pendulum-hnn"


def test_example_force_replaces_its_own_outputs_and_a_failure_keeps_them(small_example, tmp_path,
                                                                          monkeypatch):
    import physdyn.training

    out = tmp_path / "out"
    run_example(small_example, out, max_epochs=1, log=lambda line: None)
    assert sorted(p.name for p in out.iterdir()) == ["data.h5", "report", "run"]
    (out / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="already holds data.h5, run, report"):
        run_example(small_example, out, max_epochs=1, log=lambda line: None)
    before = tree(out)
    with pytest.raises(FileExistsError, match=re.escape(f"--data {out / 'data.h5'}: is one of the outputs")):
        run_example(small_example, out, data=out / "data.h5", force=True, log=lambda line: None)
    assert tree(out) == before

    fit = physdyn.training.fit

    def fails_after_writing(config, run_dir, **kwargs):
        fit({**config, "training": {**config["training"], "max_epochs": 1}}, run_dir, **kwargs)
        raise RuntimeError("out of memory")

    monkeypatch.setattr(physdyn.training, "fit", fails_after_writing)
    with pytest.raises(RuntimeError, match="out of memory"):
        run_example(small_example, out, force=True, max_epochs=2, log=lambda line: None)
    assert tree(out) == before  # the earlier outputs as they were, nothing of the failed run
    monkeypatch.setattr(physdyn.training, "fit", fit)

    run_example(small_example, out, force=True, max_epochs=2, log=lambda line: None)
    assert (out / "notes.txt").read_text() == "mine"  # left alone
    assert sorted(p.name for p in out.iterdir()) == ["data.h5", "notes.txt", "report", "run"]
    assert "max_epochs: 2" in (out / "run" / "config.yaml").read_text()


def _user_run(out):
    (out / "run").mkdir(parents=True)
    (out / "run" / "thesis.tex").write_text("mine")


def _run_with_extra_file(out):
    (out / "run" / "checkpoints").mkdir(parents=True)
    (out / "run" / "config.yaml").write_text("model: {name: node}\n")
    (out / "run" / "checkpoints" / "mine.ckpt").write_text("mine")


def _user_report(out):
    (out / "report").mkdir(parents=True)
    (out / "report" / "figure.png").write_bytes(PNG)


def _user_data(out):
    out.mkdir()
    write_example_file(out / "data.h5")


@pytest.mark.parametrize(("setup", "problem"), [
    (_user_run, "run: not what physdyn example wrote (no config.yaml of a run)"),
    (_run_with_extra_file, "run: not what physdyn example wrote (checkpoints/mine.ckpt)"),
    (_user_report, "report: not what physdyn example wrote (figure.png, and no metrics.json"),
    (_user_data, "data.h5: not what physdyn example wrote (not data simulated by an example)"),
])
def test_example_force_refuses_what_physdyn_did_not_write(cli, tmp_path, setup, problem):
    out = tmp_path / "out"
    setup(out)
    before = tree(out)
    one_line_error(*cli("example", "pendulum-hnn", "--out", out, "--force"), f"{out}/{problem}", "--force")
    assert tree(out) == before


@pytest.mark.slow
@pytest.mark.parametrize("name", list(EXAMPLES))
def test_examples_run_end_to_end(cli, tmp_path, name):
    status, out, err = cli("example", name, "--out", tmp_path / name, "--max-epochs", "2")
    assert status == 0, err
    metrics = json.loads((tmp_path / name / "report" / "metrics.json").read_text())
    assert metrics["vpt"] is not None and metrics["system"] == EXAMPLES[name].system
    assert f"report: {tmp_path / name / 'report'}" in out
