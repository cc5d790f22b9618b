"""The command as a whole: exit statuses shared by every subcommand."""

import os
import subprocess
import sys


def test_a_closed_pipe_ends_quietly_with_status_141():
    # `physdyn models --json | head`: the reader has gone before physdyn writes. The read end of the pipe
    # is closed before the command starts, so every write fails (EPIPE), deterministically.
    read, write = os.pipe()
    os.close(read)
    try:
        done = subprocess.run([sys.executable, "-m", "physdyn.cli", "models", "--json"], stdout=write,
                              stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write)
    assert done.returncode == 141
    assert done.stderr == ""  # no traceback, no "Exception ignored" at exit


def test_a_pipe_into_head_shows_the_first_lines(tmp_path):
    done = subprocess.run(f"{sys.executable} -m physdyn.cli models --json | head -n 2", shell=True,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and len(done.stdout.splitlines()) == 2
    assert "Traceback" not in done.stderr
