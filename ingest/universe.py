"""Universes kept in files: the symbol lists a user maintains outside duckmarket."""

from __future__ import annotations

import csv
import io
import os
import re
from pathlib import Path

from .errors import DuckmarketError, InvalidInputError
from .schema import validate_symbol

__all__ = ["read_symbols_file"]

_HEADER_NAMES = ("symbol", "symbols", "ticker", "tickers")
_COMMENT = re.compile(r"(^|\s)#.*$")


def read_symbols_file(path: str | os.PathLike[str]) -> list[str]:
    """The symbols listed in a text or CSV file, in order, each once.

    * blank lines and ``#`` comments (a whole line, or after a space) are ignored;
    * a CSV with a header naming a ``symbol``/``ticker`` column (an index constituents
      list: ``Symbol,Security,Sector``) gives that column;
    * otherwise every word of every line is a symbol, separated by spaces or commas
      (``AAPL MSFT``, ``AAPL,MSFT``, one per line).

    Raises :class:`InvalidInputError` naming the file and line for a missing or empty file
    or a word that is not a usable symbol.
    """
    p = Path(path)
    if p.is_dir():
        raise InvalidInputError(f"{p}: is a folder; expected a file of symbols")
    try:
        text = p.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InvalidInputError(f"{p}: no such file (expected a file of symbols)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"{p}: cannot be read as text ({exc})") from None
    lines = [(n, _COMMENT.sub("", line).strip()) for n, line in enumerate(text.splitlines(), 1)]
    lines = [(n, line) for n, line in lines if line]
    if not lines:
        raise InvalidInputError(f"{p}: lists no symbols (one per line, # for comments)")

    column = None
    first = next(csv.reader(io.StringIO(lines[0][1])))
    names = [f.strip().lower() for f in first]
    for i, name in enumerate(names):
        if name in _HEADER_NAMES:
            column = i
            break
    words: list[tuple[int, str]] = []
    if column is not None:
        for n, line in lines[1:]:
            fields = next(csv.reader(io.StringIO(line)), [])
            if column < len(fields) and fields[column].strip():
                words.append((n, fields[column].strip()))
    else:
        for n, line in lines:
            words += [(n, w) for w in re.split(r"[\s,;]+", line) if w]

    out: dict[str, None] = {}
    for n, word in words:
        try:
            out[validate_symbol(word)] = None
        except DuckmarketError as exc:
            raise InvalidInputError(f"{p}, line {n}: {word!r} is not a symbol ({exc})") from None
    if not out:
        raise InvalidInputError(f"{p}: lists no symbols under its {first[column]!r} column")
    return list(out)
