"""Subcommands of the ``physdyn`` command.

Each module here has ``add_parser(subparsers)``, which adds its parser and sets ``run`` as the default
``func``-style attribute: ``parser.set_defaults(run=run)``. ``run(args)`` returns the exit status and raises
:class:`UsageError` for bad input, which the CLI turns into one line on stderr and exit status 2.
"""

from __future__ import annotations

# Order of appearance in `physdyn --help`.
COMMANDS = ("simulate", "fit", "evaluate", "example", "systems", "models")


class UsageError(Exception):
    """Bad input from the user: the message names the file, key or value and what is wrong."""
