"""Exception hierarchy: every error a user sees names where it happened and what was expected.

Each class also derives from the built-in exception that fits, so callers catching
``ValueError``/``KeyError``/``OSError`` keep working.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "SourceLocation",
    "S2IError",
    "SpecError",
    "UnknownFormatError",
    "ReadError",
    "ParseError",
    "TruncatedError",
    "EmptySampleError",
    "StoreError",
]


@dataclass(frozen=True)
class SourceLocation:
    """Where in a raw input a problem was found (all parts optional, 1-based line numbers)."""

    path: str
    line: int | None = None
    column: int | None = None
    frame: int | None = None
    body: int | None = None

    def __str__(self) -> str:
        text = self.path
        if self.line is not None:
            text += f":{self.line}"
            if self.column is not None:
                text += f":{self.column}"
        return text

    def detail(self) -> str:
        """The frame/body suffix, e.g. ``" (frame 57, body 2)"``, or ``""``."""
        parts = []
        if self.frame is not None:
            parts.append(f"frame {self.frame}")
        if self.body is not None:
            parts.append(f"body {self.body}")
        return f" ({', '.join(parts)})" if parts else ""


class S2IError(Exception):
    """Root of every error s2i raises on purpose; the CLI catches only this."""


class SpecError(S2IError, ValueError):
    """A joint spec is invalid: names the spec file, the key path and the problem."""

    def __init__(self, source: str, key: str, problem: str) -> None:
        self.source = source
        self.key = key
        self.problem = problem
        super().__init__(f"{source}: {key}: {problem}")


class UnknownFormatError(S2IError, KeyError):
    """A format or reader name that is not registered."""

    def __init__(self, kind: str, name: str, known: list[str]) -> None:
        import difflib

        close = difflib.get_close_matches(name, known, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        self.message = f"unknown {kind} {name!r}; known: {', '.join(sorted(known))}.{hint}"
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message


class ReadError(S2IError, ValueError):
    """A raw input file could not be turned into a skeleton."""

    def __init__(self, location: SourceLocation, message: str) -> None:
        self.location = location
        self.message = message
        super().__init__(f"{location}: {message}{location.detail()}")


class ParseError(ReadError):
    """The file breaks its grammar, e.g. ``expected 12 fields, found 11``."""


class TruncatedError(ReadError):
    """The file ended before what its header promised."""


class EmptySampleError(ReadError):
    """The file is well formed but holds no usable body in any frame."""


class StoreError(S2IError, OSError):
    """Output problems: existing output, layout version mismatch, shard I/O, a held lock."""
