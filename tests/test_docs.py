"""Every command and snippet README.md and docs/ show runs, page by page, in the order a reader meets them.

Each page runs in a fresh folder: its ``bash`` blocks through bash (``set -euo pipefail``; ``.venv/bin/``
and ``python`` mean this interpreter's environment), the ``$ `` lines of its ``console`` blocks (a command
and its output) as commands, its ``python`` blocks in one namespace per page, so a snippet may use what an
earlier one made. Blocks of other languages (``text``, plain) are output or syntax and are not run. An HTML
comment right before a block adjusts it, visibly to anyone editing the page:

- ``<!-- docs-test: replace "OLD" "NEW" -->``: run the block with OLD replaced by NEW (small sizes);
- ``<!-- docs-test: setup ... -->``: run the Python code between ``setup`` and ``-->`` first, in the page's
  namespace (files the page assumes the reader has, such as "theirs.h5");
- ``<!-- docs-test: slow -->``: run only with ``-m slow`` (the page's later blocks must not need it);
- ``<!-- docs-test: skip REASON -->``: never run, for a reason given (the set-up line, which CI itself runs).

Markers combine, one comment each.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
RUNNABLE = ("bash", "console", "python")  # console: "$ " lines are commands, the rest their output
FENCE = re.compile(r"^```(\w*)\s*$")
MARKER = re.compile(r"<!--\s*docs-test:\s*(\w+)(.*?)-->", re.S)


@dataclass
class Block:
    page: Path
    line: int
    language: str
    code: str
    replace: list[tuple[str, str]] = field(default_factory=list)
    setup: str = ""
    slow: bool = False
    skip: str | None = None

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks(page: Path) -> list[Block]:
    """The fenced blocks of a page with the markers in the comments right before each."""
    text = page.read_text()
    found, pending = [], []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.lstrip().startswith("<!--") and "docs-test:" in line:
            j = i
            while "-->" not in lines[j]:
                j += 1
            pending.append("\n".join(lines[i:j + 1]))
            i = j + 1
            continue
        fence = FENCE.match(line)
        if fence is None:
            if line.strip():
                pending = []  # a marker belongs to the block right after it
            i += 1
            continue
        j = i + 1
        while not lines[j].startswith("```"):
            j += 1
        block = Block(page, i + 1, fence.group(1), "\n".join(lines[i + 1:j]) + "\n")
        for comment in pending:
            for kind, rest in MARKER.findall(comment):
                if kind == "replace":
                    old, new = shlex.split(rest)
                    assert old in block.code, f"{block.where}: replace marker: {old!r} not in the block"
                    block.replace.append((old, new))
                elif kind == "setup":
                    block.setup += textwrap.dedent(rest.strip("\n")).strip() + "\n"
                elif kind == "slow":
                    block.slow = True
                elif kind == "skip":
                    block.skip = rest.strip() or "no reason given"
                else:
                    raise AssertionError(f"{block.where}: unknown docs-test marker {kind!r}")
        found.append(block)
        pending, i = [], j + 1
    return found


def runnable(page: Path) -> list[Block]:
    return [b for b in blocks(page) if b.language in RUNNABLE and b.skip is None]


def make_theirs(path: str) -> None:
    """A foreign file as pages assume the reader has one: time-major states under other names."""
    import h5py
    import numpy as np

    t = np.linspace(0.0, 10.0, 201)
    amplitude = np.linspace(0.5, 1.5, 12)
    x = amplitude * np.cos(t)[:, None], -amplitude * np.sin(t)[:, None]
    with h5py.File(path, "w") as f:
        f["grp/x"] = np.stack(x, axis=-1)  # (T, N, 2)
        f["grp/time"] = t


def make_lorenz_run(run_dir: str, test_file: str) -> None:
    """A small trained Lorenz run and a held-out file of 501 samples, for pages that start from one."""
    import physdyn.systems
    from physdyn.data import save
    from physdyn.training import fit

    lorenz = physdyn.systems.get("lorenz")
    save(lorenz.simulate(n_trajectories=6, t_end=5.0, dt=0.01, seed=0), "lorenz_train.h5")
    save(lorenz.simulate(n_trajectories=2, t_end=5.0, dt=0.01, seed=1), test_file)
    fit({"data": {"path": "lorenz_train.h5"}, "model": {"name": "node", "width": 16},
         "training": {"max_epochs": 1, "progress_bar": False}}, run_dir)


def run_page(page: Path, folder: Path, *, slow: bool) -> None:
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", "MPLBACKEND": "Agg"}
    namespace: dict[str, object] = {"__name__": "__docs__", "make_theirs": make_theirs,
                                    "make_lorenz_run": make_lorenz_run}
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        for block in blocks(page):
            if block.language not in RUNNABLE or block.skip is not None or (block.slow and not slow):
                continue
            code = block.code
            for old, new in block.replace:
                code = code.replace(old, new)
            if block.setup:
                exec(compile(block.setup, f"{block.where} (setup)", "exec"), namespace)
            if block.language == "python":
                exec(compile(code, block.where, "exec"), namespace)
                continue
            if block.language == "console":
                code = "".join(line[2:] + "\n" for line in code.splitlines() if line.startswith("$ "))
            code = code.replace(".venv/bin/", f"{bin_dir}/")
            code = re.sub(r"(?m)^python(3)? ", f"{sys.executable} ", code)
            code = code.replace(" benchmarks/", f" {ROOT}/benchmarks/")
            done = subprocess.run(["bash", "-euo", "pipefail", "-c", code], cwd=folder, env=env,
                                  capture_output=True, text=True, timeout=1800)
            assert done.returncode == 0, (f"{block.where}: exit {done.returncode}\n{code}\n"
                                          f"{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    finally:
        os.chdir(cwd)


def page_id(page: Path) -> str:
    return page.relative_to(ROOT).as_posix()


@pytest.mark.parametrize("page", [p for p in PAGES if any(not b.slow for b in runnable(p))], ids=page_id)
def test_page_runs(page, tmp_path):
    run_page(page, tmp_path, slow=False)


@pytest.mark.slow
@pytest.mark.parametrize("page", [p for p in PAGES if any(b.slow for b in runnable(p))], ids=page_id)
def test_page_runs_whole(page, tmp_path):
    run_page(page, tmp_path, slow=True)


def test_every_shell_command_on_a_page_is_in_a_block_that_runs():
    """A command shown in a block that no test runs (no language, or text) is caught here."""
    hidden = []
    for page in PAGES:
        for block in blocks(page):
            if block.language in RUNNABLE or block.skip is not None:
                continue
            for line in block.code.splitlines():
                if re.match(r"^\s*(\$ )?(\.venv/bin/)?physdyn [a-z-]+(\s|$)", line):
                    hidden.append(f"{block.where}: {line.strip()}")
    # synopsis lines (SYSTEM, RUN_DIR, [options] in capitals or brackets) are syntax, not commands
    hidden = [h for h in hidden if not re.search(r"\[|[A-Z]{3,}", h.split(": ", 1)[1])]
    assert not hidden, "commands outside runnable blocks (label them bash):\n" + "\n".join(hidden)
