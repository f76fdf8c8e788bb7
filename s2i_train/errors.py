"""Exception hierarchy of ``s2i_train``: every message names the dataset and what was asked.

Mirrors ``s2i_prep.errors``: one root, and each class also derives from the built-in exception
that fits, so callers catching ``ValueError``/``KeyError``/``OSError`` keep working.
"""

from __future__ import annotations

__all__ = [
    "CheckpointMismatchError",
    "DatasetFormatError",
    "DatasetRequestError",
    "NonFiniteLossError",
    "S2ITrainError",
    "SampleReadError",
]


class S2ITrainError(Exception):
    """Root of every error ``s2i_train`` raises on purpose."""


class DatasetRequestError(S2ITrainError, ValueError):
    """A request the dataset cannot serve: unknown split, subset or stream, bad label fraction."""


class DatasetFormatError(S2ITrainError, ValueError):
    """The path is not a readable s2i dataset of the layout version this package reads."""


class SampleReadError(S2ITrainError, OSError):
    """Stored samples cannot be read back exactly: missing shard, checksum mismatch, bad index."""


class CheckpointMismatchError(S2ITrainError, ValueError):
    """A checkpoint or init file does not fit the model that was asked for."""


class NonFiniteLossError(S2ITrainError, FloatingPointError):
    """Training produced a NaN/inf loss; the message names the epoch and step."""
