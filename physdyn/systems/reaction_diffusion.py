"""Placeholder: being written."""

from ._base import System


class ReactionDiffusion(System):
    name = "reaction_diffusion"
