"""Strings that match a schema's `pattern`: a sample drawn from the regular expression itself.

The pattern is parsed with Python's own regular-expression parser and walked: literals are
kept, classes give one of their characters, repeats their least count (at least one, capped),
alternatives one branch. The sample is checked with `re.search`; None when the pattern holds
what this walk does not follow (look-arounds, back-references) or the sample does not match.
"""

from __future__ import annotations

import functools
import random
import re
import string
from re import _constants as sre  # type: ignore[attr-defined]
from re import _parser as parser  # type: ignore[attr-defined]
from typing import Any

_CATEGORIES = {
    sre.CATEGORY_DIGIT: string.digits,
    sre.CATEGORY_NOT_DIGIT: string.ascii_letters,
    sre.CATEGORY_WORD: string.ascii_letters + string.digits,
    sre.CATEGORY_NOT_WORD: "-.",
    sre.CATEGORY_SPACE: " ",
    sre.CATEGORY_NOT_SPACE: string.ascii_letters,
}
_ANY = string.ascii_letters + string.digits
_MOST = 8  # repeats with no upper bound stop here


class _Unsupported(Exception):
    pass


def sample(pattern: str, rng: random.Random) -> str | None:
    """A string matching `pattern`, or None when none can be made."""
    tree = _parsed(pattern)
    if tree is None:
        return None
    try:
        text = "".join(_emit(tree, rng))
    except _Unsupported:
        return None
    return text if re.search(pattern, text) else None


@functools.lru_cache(maxsize=256)
def _parsed(pattern: str) -> Any:
    try:
        return parser.parse(pattern)
    except (re.error, RecursionError, OverflowError):
        return None


def _emit(items: Any, rng: random.Random) -> list[str]:
    out: list[str] = []
    for op, arg in items:
        out.extend(_one(op, arg, rng))
    return out


def _one(op: Any, arg: Any, rng: random.Random) -> list[str]:
    if op is sre.LITERAL:
        return [chr(arg)]
    if op is sre.NOT_LITERAL:
        return [rng.choice([c for c in _ANY if ord(c) != arg])]
    if op is sre.ANY:
        return [rng.choice(_ANY)]
    if op is sre.IN:
        return [_in(arg, rng)]
    if op in (sre.MAX_REPEAT, sre.MIN_REPEAT, getattr(sre, "POSSESSIVE_REPEAT", None)):
        low, high, items = arg
        count = max(low, 1) if high == sre.MAXREPEAT else min(max(low, 1), high)
        count = min(count, max(low, _MOST))
        return [piece for _ in range(count) for piece in _emit(items, rng)]
    if op is sre.SUBPATTERN:
        return _emit(arg[-1], rng)
    if op is sre.BRANCH:
        return _emit(rng.choice(arg[1]), rng)
    if op is sre.AT:
        return []
    if op is sre.ATOMIC_GROUP:
        return _emit(arg, rng)
    raise _Unsupported(str(op))


def _in(items: Any, rng: random.Random) -> str:
    """One character of a class (`[A-Z0-9_]`, `\\d`); a negated class gives a letter not in it."""
    choices: list[str] = []
    negated = False
    for op, arg in items:
        if op is sre.NEGATE:
            negated = True
        elif op is sre.LITERAL:
            choices.append(chr(arg))
        elif op is sre.RANGE:
            low, high = arg
            choices.extend(chr(c) for c in range(low, min(high, low + 96) + 1))
        elif op is sre.CATEGORY:
            choices.extend(_CATEGORIES.get(arg, ""))
        else:
            raise _Unsupported(str(op))
    if negated:
        left = [c for c in _ANY if c not in choices]
        if not left:
            raise _Unsupported("negated class")
        return rng.choice(left)
    if not choices:
        raise _Unsupported("empty class")
    return rng.choice(choices)
