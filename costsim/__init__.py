"""costsim: forecast production inference cost from the logs of a pilot."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("costsim")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
