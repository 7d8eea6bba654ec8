"""The error and warning hierarchy.

Library code raises these; only the CLI turns them into exit codes and one line on stderr.
Messages name the argument or column, the value found and what is allowed.
"""

from __future__ import annotations


class CostsimError(Exception):
    """Base class of every error costsim reports to a user as bad input (exit code 2)."""


class LogSchemaError(CostsimError):
    """The pilot log cannot be read or does not have the expected columns or values."""


class FitError(CostsimError):
    """The pilot log was read but a model cannot be fitted to it (e.g. too few rows)."""


class ModelFileError(CostsimError):
    """A fitted-model file is missing, malformed or of another schema version."""


class ScenarioError(CostsimError):
    """A scenario file is invalid."""


class ForecastError(CostsimError):
    """A forecast came out that cannot be trusted (a figure not finite, or $0 for priced
    traffic), or would need more memory than it may take."""


class OutputError(CostsimError):
    """An output path cannot be written, or would overwrite an input."""


class PriceError(CostsimError):
    """A model is not in the price catalog, has no per-token price, or its calls cannot be
    priced (e.g. more cached than input tokens)."""


class CostsimWarning(UserWarning):
    """Base class of costsim's warnings."""


class SmallSampleWarning(CostsimWarning):
    """A quantity was fitted from few observations; its tail borrows strength or a default."""


class HeavyTailWarning(CostsimWarning):
    """A fitted tail has infinite variance (xi >= 0.5) or infinite mean (xi >= 1)."""
