"""Exception types shared by the whole package.

Every error caused by what a user gave (a file, a value on the command line) is an
:class:`InputError`; the CLI turns it into a one-line message and exit code 2.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["InputError", "ModelError", "SkinoctError"]


class SkinoctError(Exception):
    """Base class of skinoct's own errors."""


class InputError(SkinoctError, ValueError):
    """Invalid user input: a file that cannot be read or holds the wrong thing.

    Parameters
    ----------
    message : str
        What is wrong, in one line.
    path : str or Path, optional
        The offending file; it is prefixed to the message.
    """

    def __init__(self, message: str, *, path: str | Path | None = None) -> None:
        self.path = None if path is None else Path(path)
        self.reason = message
        super().__init__(f"{self.path}: {message}" if self.path is not None else message)


class ModelError(InputError):
    """A model directory or file that is not a valid skinoct model."""
