"""Typed errors and the one place that maps outcomes to exit codes.

Every error a user can cause derives from :class:`GuardInputError` and carries a one-line
message that names the problem; the CLI turns it into exit code 2 without a traceback.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes, computed only in :func:`guard.cli.main`."""

    OK = 0
    FINDINGS = 1
    USAGE = 2
    INTERNAL = 3


class GuardError(Exception):
    """Base class of every error Guard raises on purpose."""


class IntegrityFailure(GuardError):
    """Data that cannot be trusted: a wrong key, a tampered or truncated file, a bad
    signature. Exit code 1: the check ran and said no."""


class GuardInputError(GuardError):
    """Bad input from the user: a file, a model, data or an option. Exit code 2."""


class ConfigError(GuardInputError):
    """A malformed spec file or option value."""


class ModelLoadError(GuardInputError):
    """A model file that is missing, unreadable, unsafe or of an unknown format."""


class UnsafeModelError(ModelLoadError):
    """A model file that could execute code when loaded, refused without an opt-in."""


class DataError(GuardInputError):
    """Evaluation or training data that is missing, malformed or inconsistent."""


class TargetMismatchError(GuardInputError):
    """A model and its data that do not fit each other (shape, classes, range)."""


class MissingCapabilityError(GuardInputError):
    """A probe needs something the target does not offer (gradients, train data, ...)."""


class InputFileError(GuardInputError):
    """An input file that cannot be read as one: missing, a FIFO or folder, over its size
    limit, or not text where text is expected."""
