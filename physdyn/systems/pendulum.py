"""Placeholder: being written."""

from ._base import System


class Pendulum(System):
    name = "pendulum"
