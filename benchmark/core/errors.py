"""Errors a user can act on.

Every error raised for bad input says what was wrong and how to fix it. The CLI turns a `BenchError` into a
short message on stderr and exit code 2 (`GateFailed` is the one exception: exit code 1).
"""

from __future__ import annotations


class BenchError(Exception):
    """Bad input, a missing file or weight, an unusable device: anything the user must fix. Exit code 2."""

    exit_code = 2

    def __init__(self, message: str, *, fix: str | None = None):
        super().__init__(message)
        self.message = message
        self.fix = fix

    def __str__(self) -> str:
        return self.message if not self.fix else f"{self.message}\n  fix: {self.fix}"


class UnknownNameError(BenchError, KeyError):
    """A name that is not in a registry; the message carries the did-you-mean suggestions."""

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return BenchError.__str__(self)


class ManifestError(BenchError):
    """A manifest that does not parse or does not validate."""


class DataError(BenchError):
    """Input data that is missing, corrupt, of the wrong shape, or whose digest does not match."""


class MissingWeightsError(BenchError):
    """Weights that are not on disk; `fix` names the `fetch` command that brings them."""


class DigestMismatchError(DataError):
    """A file whose sha256 is not the pinned one."""


class DeviceError(BenchError):
    """A suite that needs a device this machine does not have."""


class GateFailed(Exception):
    """A known-answer or regression gate failed (exit code 1 with `--gate`)."""

    exit_code = 1
