"""Errors a user can cause, each with a message that says what was wrong and what to do."""

from __future__ import annotations


class DuckmarketError(Exception):
    """Base class: the CLI prints these as one clear line and exits non-zero."""

    exit_code = 1


class InvalidSymbolError(DuckmarketError, ValueError):
    """A symbol that cannot be stored safely (empty, control characters, path tricks)."""


class InvalidInputError(DuckmarketError, ValueError):
    """Input data that does not have the shape or the values a dataset requires."""


class LakeLockedError(DuckmarketError):
    """Another process is writing to the same lake."""

    exit_code = 3


class SourceError(DuckmarketError):
    """A source failed to deliver (network, rate limit, unknown symbol, empty answer)."""

    #: requests made to the source before it failed (retries included)
    attempts: int = 0


class SourceUnreachableError(SourceError):
    """The source's host cannot be reached at all (no name resolution, connection refused):
    every other symbol would fail the same way, so the whole run stops at once."""

    exit_code = 4


class SymbolNotFoundError(SourceError):
    """The source answered with nothing for a symbol it should know: bad or delisted."""


class RateLimitedError(SourceError):
    """The source refused because too many requests were made; retried with backoff."""


class UnsupportedRequestError(SourceError, ValueError):
    """A timeframe or a date range the source cannot serve."""


class ManifestError(DuckmarketError):
    """The manifest and the files disagree in a way verify cannot repair."""
