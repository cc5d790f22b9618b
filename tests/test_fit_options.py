"""fit's time budget (training.max_time, --max-time), its progress display and its optional loggers."""

import importlib.util
from datetime import timedelta

import pytest
from test_training import config, epochs_logged, linear_data

from physdyn.data import save
from physdyn.training import fit
from physdyn.training._progress import estimate_left, format_seconds, parse_duration


@pytest.fixture
def linear_file(tmp_path):
    path = tmp_path / "linear.h5"
    save(linear_data(n=10, n_t=40), path)
    return path


@pytest.mark.parametrize("text, seconds", [("00:00:30", 30), ("01:02:03", 3723), ("2:00:00:01", 172801)])
def test_durations_read_as_lightning_writes_them(text, seconds):
    assert parse_duration(text) == timedelta(seconds=seconds)
    assert parse_duration(None) is None


@pytest.mark.parametrize("bad", ["10m", "1:30", "00:00:00", "a:b:c", "00:-1:00", 90])
def test_bad_durations_are_refused_by_name(bad):
    with pytest.raises(ValueError, match=r"training\.max_time"):
        parse_duration(bad)


def test_time_left_is_the_mean_pace_times_the_epochs_left_capped_by_the_budget():
    assert estimate_left(elapsed=10.0, epochs_done=2, epochs_left=8) == pytest.approx(40.0)
    assert estimate_left(elapsed=10.0, epochs_done=2, epochs_left=8, budget_left=5.0) == pytest.approx(5.0)
    assert estimate_left(elapsed=3.0, epochs_done=0, epochs_left=8) is None  # no pace yet
    assert [format_seconds(s) for s in (9.4, 760, 11100)] == ["9s", "12m40s", "3h05m"]


def test_max_time_stops_a_run_that_max_epochs_would_not(tmp_path, linear_file):
    run = fit(config(linear_file, max_epochs=100_000, max_time="00:00:02"), tmp_path / "run")
    epochs = epochs_logged(run)
    assert 0 < len(epochs) < 100_000
    assert (run / "checkpoints" / "last.ckpt").is_file()


def test_the_progress_display_shows_epochs_and_the_time_left(tmp_path, linear_file, capfd):
    fit(config(linear_file, max_epochs=3, progress_bar=True), tmp_path / "run")
    shown = "".join(capfd.readouterr())  # Lightning's bar writes to stdout
    assert "Epoch 3/3" in shown and "left=" in shown


@pytest.mark.skipif(importlib.util.find_spec("tensorboard") is None, reason="tensorboard not installed")
def test_tensorboard_logs_beside_the_csv_record(tmp_path, linear_file):
    run = fit(config(linear_file, logger="tensorboard"), tmp_path / "run")
    assert list((run / "logs" / "tensorboard").glob("events.out.tfevents.*"))
    assert epochs_logged(run) == [0, 1]  # the CSV record is kept


def test_missing_tensorboard_and_unknown_loggers_are_one_line_errors(tmp_path, linear_file, monkeypatch):
    with pytest.raises(ValueError, match="training.logger must be csv or tensorboard, got 'wandb'"):
        fit(config(linear_file, logger="wandb"), tmp_path / "a")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name.startswith("tensorboard") else real(name, *a))
    with pytest.raises(ValueError, match=r"needs the tensorboard package: pip install .*\[tensorboard\]"):
        fit(config(linear_file, logger="tensorboard"), tmp_path / "b")
    assert not (tmp_path / "b").exists()  # refused before anything is written


def test_cli_refuses_a_bad_max_time_in_one_line(cli, tmp_path, linear_file):
    status, _, err = cli("fit", linear_file, "--model", "node", "--out", tmp_path / "run",
                         "--max-time", "5min")
    assert status == 2
    assert err.strip().splitlines() == [
        "physdyn fit: error: training.max_time must be HH:MM:SS or DD:HH:MM:SS, got '5min'"]
    assert not (tmp_path / "run").exists()
