"""Errors of s2i_train; the CLI turns :class:`S2ITrainError` into ``error: <message>`` and exit code 1."""

from __future__ import annotations

__all__ = ["CheckpointMismatchError", "NonFiniteLossError", "S2ITrainError"]


class S2ITrainError(Exception):
    """Root of the errors a user can act on (bad option, file, dataset or checkpoint)."""


class CheckpointMismatchError(S2ITrainError, ValueError):
    """A checkpoint or init file does not fit the model that was asked for."""


class NonFiniteLossError(S2ITrainError, FloatingPointError):
    """Training produced a NaN/inf loss; the message names the epoch and step."""
