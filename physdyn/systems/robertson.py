"""Placeholder: being written."""

from ._base import System


class Robertson(System):
    name = "robertson"
