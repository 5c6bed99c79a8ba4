"""Errors that carry a message meant for the user.

The CLI prints any ``KapaoEdgeError`` as one line and exits with its ``exit_code``; anything else is a
bug and keeps its traceback.
"""

from __future__ import annotations


class KapaoEdgeError(Exception):
    """Base class: a problem with the user's input or environment, not a bug."""

    exit_code = 2


class CheckpointError(KapaoEdgeError):
    """A weights file that is missing, truncated, unsafe or not a KAPAO checkpoint."""


class UnsafeCheckpointError(CheckpointError):
    """A pickle that asks to import or call something outside the allow-list."""


class InputError(KapaoEdgeError):
    """Images, arrays, shapes or options that cannot be used as given."""


class EngineError(KapaoEdgeError):
    """An engine file that cannot be loaded or run."""
