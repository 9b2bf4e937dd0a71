"""Errors salesopt raises on purpose. The CLI (`salesopt.cli.main`) turns these into a one-line
reason and a non-zero exit code; anything else is unexpected: one line saying so, exit code 1,
and the traceback in the debug log (`-v`)."""

from __future__ import annotations


class SalesoptError(Exception):
    """Base class: an expected failure with a message meant for the operator."""


class ConfigError(SalesoptError):
    """A setting is misspelt, of the wrong type, out of range, or missing."""


class SetupError(SalesoptError):
    """The environment is not ready (Delta jars missing, secret not set, ...)."""


class InputError(SalesoptError):
    """Input data cannot be used as given (missing folder, wrong format, ...)."""


class QualityGateFailed(SalesoptError):
    """A `fail` expectation found bad rows; nothing downstream was written."""


class StageFailed(SalesoptError):
    """A stage could not complete (for example too many forecast failures)."""


class WarehouseLocked(SalesoptError):
    """Another run holds the local warehouse guard (`salesopt.ops.local_guard`)."""
