"""The ``physdyn`` command. Each subcommand lives in ``physdyn/commands/<name>.py``.

Exit status: 0 success, 2 bad input (one line on stderr, no traceback, nothing half-written), 130 interrupted,
141 output pipe closed early (``physdyn models --json | head``), 1 otherwise.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from .commands import COMMANDS, UsageError


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="physdyn",
        description="Simulate, learn and judge physical dynamical systems.",
        epilog="`physdyn COMMAND --help` shows a command's options and examples.\n"
        "Exit status: 0 success, 2 bad input (one line on stderr), 1 anything else.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"physdyn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f".commands.{name}", __package__).add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # argparse itself exits 2 on a malformed command line
    try:
        status = int(args.run(args) or 0)
        sys.stdout.flush()  # inside the try: a closed pipe is found here, not at interpreter exit
        return status
    except UsageError as err:
        print(f"physdyn {args.command}: error: {err}", file=sys.stderr)
        return 2
    except ValueError as err:
        # Imported here, not at the top: it brings in torch, which `physdyn --help` need not wait for.
        from .data import DataFormatError

        if not isinstance(err, DataFormatError):
            raise
        print(f"physdyn {args.command}: error: {err}", file=sys.stderr)  # a bad input file is bad input
        return 2
    except KeyboardInterrupt:
        print("physdyn: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`physdyn models --json | head`): stop quietly, as a command killed by
        # SIGPIPE does. stdout is pointed at devnull so that flushing it at exit does not raise again
        # (the recipe of Python's signal documentation).
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + 13  # 141: the shell's status for a command ended by SIGPIPE


if __name__ == "__main__":
    sys.exit(main())
