"""Fixtures shared by the test files."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from physdyn.cli import main


@pytest.fixture
def cli(capsys) -> Callable[..., tuple[int, str, str]]:
    """Run ``physdyn ARGS...`` in this process; returns (exit status, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()  # drop anything printed before
        status = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return status, out, err

    return run
