"""The `like`/`ilike` patterns of RQL: `*` matches any run of characters.

Matching is linear in the text for any pattern (no backtracking). A pattern is matched against
text (`str`) or, by the store, straight against the UTF-8 bytes of a stored value: for an exact
match the bytes and the text agree, and for a case-insensitive one they agree on ASCII bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import AnyStr


def glob(pattern: str, fold: bool = False) -> Callable[[str], bool]:
    """A test of text against `pattern`; `fold` ignores case (Unicode case folding)."""
    if not fold:
        return plain(pattern)
    match = plain(pattern.casefold())
    # for ASCII text, lower() is casefold() and much faster
    return lambda text: match(text.lower() if text.isascii() else text.casefold())


def plain(pattern: str) -> Callable[[str], bool]:
    """The exact test of `pattern`."""
    return _matcher(pattern.split("*"))


def plain_bytes(pattern: str) -> Callable[[bytes], bool]:
    """The exact test of `pattern` on UTF-8 bytes."""
    return _matcher([piece.encode("utf-8", "surrogatepass") for piece in pattern.split("*")])


def _matcher[AnyStr: (bytes, str)](pieces: list[AnyStr]) -> Callable[[AnyStr], bool]:
    simple = _simple(pieces)
    if simple is not None:
        return simple
    head, tail, middle = pieces[0], pieces[-1], [p for p in pieces[1:-1] if p]

    def match(text: AnyStr) -> bool:
        if len(text) < len(head) + len(tail) or not (text.startswith(head) and text.endswith(tail)):
            return False
        at, stop = len(head), len(text) - len(tail)
        for piece in middle:
            found = text.find(piece, at, stop)
            if found < 0:
                return False
            at = found + len(piece)
        return True

    return match


def _simple[AnyStr: (bytes, str)](pieces: list[AnyStr]) -> Callable[[AnyStr], bool] | None:
    """The common patterns as one operation: `a`, `a*`, `*a`, `*a*`, only stars."""
    if len(pieces) == 1:
        return pieces[0].__eq__
    head, tail = pieces[0], pieces[-1]
    if len(pieces) == 2 and not tail:
        return lambda text: text.startswith(head)
    if len(pieces) == 2 and not head:
        return lambda text: text.endswith(tail)
    if head or tail or any(pieces[2:-1]):
        return None
    piece = pieces[1]
    return lambda text: piece in text  # `*a*`, or only stars (`piece` is empty: always true)
