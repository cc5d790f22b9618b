"""physdyn: learn physical dynamical systems you can trust over long horizons."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("physdyn")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
