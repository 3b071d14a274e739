"""Evaluating a filter in Python: a checked expression (`query.expression`) turned into a
test of one item, reading its fields with the `access` a store gives (plain dicts by default;
the memory backend reads stored bytes). The shared helper of every storage backend, for what
it does not evaluate natively.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol, runtime_checkable

from mockserver.codec import MISSING
from mockserver.query.expression import (
    AllOf,
    AnyOf,
    Compare,
    Expression,
    FieldCheck,
    Like,
    Member,
    Not,
    Operand,
    Quantified,
    expression,
    parse_when,
)
from mockserver.query.patterns import glob
from mockserver.query.rql import Call

Predicate = Callable[[Any], bool]
Read = Callable[[Any], Any]
Access = Callable[[str], Read]
_NOTHING: Any = object()  # no item read yet


def compile_filter(
    calls: Iterable[Call], known: FieldCheck, access: Access | None = None
) -> Predicate | None:
    """One predicate for all top-level expressions (they are ANDed); None when there are none.
    RQLError for an expression that is not valid (see `query.expression`)."""
    found = expression(calls, known)
    return None if found is None else predicate(found, access or getter)


def predicate(found: Expression, access: Access) -> Predicate:
    """A test of one item: `access(path)` reads a dotted path of it."""
    return _Compiler(access).compile(found)


class _Compiler:
    def __init__(self, access: Access) -> None:
        self.access = access
        self._fields: dict[str, Read | None] = {}

    def compile(self, found: Expression) -> Predicate:
        match found:
            case AllOf(parts):
                tests = [self.compile(part) for part in parts]
                return tests[0] if len(tests) == 1 else lambda item: all(t(item) for t in tests)
            case AnyOf(parts):
                tests = [self.compile(part) for part in parts]
                return lambda item: any(t(item) for t in tests)
            case Not(part):
                inner = self.compile(part)
                return lambda item: not inner(item)
            case Compare(operator, field, operand):
                return _comparison(operator, self.field(field), operand)
            case Like(field, pattern, fold):
                return _like(self.field(field), pattern, fold)
            case Member(field, operands, negate):
                test = _member(self.field(field), operands)
                return (lambda item: not test(item)) if negate else test
            case Quantified(field, condition, every):
                inner = _Compiler(getter).compile(condition)
                return _quantifier(self.field(field), inner, every)
        raise TypeError(f"not an expression: {found!r}")

    def field(self, path: str) -> Read:
        """The reader of a field: the first test of it reads it itself, the others share one
        read per item."""
        if path not in self._fields:
            self._fields[path] = None
            return self.access(path)
        shared = self._fields[path]
        if shared is None:
            shared = self._fields[path] = _last_read(self.access(path))
        return shared


def _last_read(get: Read) -> Read:
    """`get`, remembering the value of the last item: tests of one field read it once."""
    last: list[Any] = [_NOTHING, None]  # a filter runs in one thread

    def read(item: Any) -> Any:
        if item is not last[0]:
            last[0], last[1] = item, get(item)
        return last[1]

    return read


# ---------------------------------------------------------------- field access


def getter(path: str) -> Read:
    """Read a dotted path; through arrays it yields the list of values found in the elements.

    A path of up to `SHORT` parts is read by closures made for it, one per part (what a read
    costs a store's indexes on every insert); a longer one by walking its parts."""
    parts = tuple(path.split("."))
    return _reader(parts) if len(parts) <= SHORT else _walker(parts)


SHORT = 8  # parts: a call per part when read (a longer path is walked, with no call per part)


def _reader(parts: tuple[str, ...]) -> Read:
    """`parts` read by nested closures: a dict gives its member to the next part's reader, a
    list gives the values its elements hold (those that hold one), anything else MISSING."""
    head = parts[0]
    if len(parts) == 1:

        def last(value: Any) -> Any:
            if isinstance(value, dict):
                return value.get(head, MISSING)
            if isinstance(value, list):
                return [v for v in map(last, value) if v is not MISSING]
            return MISSING

        return last
    rest = _reader(parts[1:])

    def read(value: Any) -> Any:
        if isinstance(value, dict):
            return rest(value.get(head, MISSING))
        if isinstance(value, list):
            return [v for v in map(read, value) if v is not MISSING]
        return MISSING

    return read


def _walker(parts: tuple[str, ...]) -> Read:
    """`parts` read by one loop; the reader of what follows an array is made once."""
    rests: dict[int, Read] = {}

    def through(index: int, values: list[Any]) -> list[Any]:
        inner = rests.get(index)
        if inner is None:
            inner = rests[index] = getter(".".join(parts[index:]))
        return [v for v in map(inner, values) if v is not MISSING]

    def get(item: Any) -> Any:
        value = item
        for index, part in enumerate(parts):
            if isinstance(value, dict):
                value = value.get(part, MISSING)
            elif isinstance(value, list):
                return through(index, value)
            else:
                return MISSING
        return value

    return get


# ---------------------------------------------------------------- comparisons


def _order(value: Any, operand: Operand) -> int | None:
    """-1/0/1 comparing a stored value with a literal; None when they cannot be compared."""
    if isinstance(value, bool):
        if operand.boolean is None:
            return None
        return (value > operand.boolean) - (value < operand.boolean)
    if isinstance(value, int | float):
        if operand.number is None:
            return None
        return (value > operand.number) - (value < operand.number)
    if isinstance(value, str):
        if operand.when is not None:
            when = parse_when(value)
            if when is not None:
                return (when > operand.when) - (when < operand.when)
        return (value > operand.text) - (value < operand.text)
    return None


_ACCEPT: dict[str, Callable[[int], bool]] = {
    "eq": lambda c: c == 0,
    "ne": lambda c: c != 0,
    "gt": lambda c: c > 0,
    "ge": lambda c: c >= 0,
    "lt": lambda c: c < 0,
    "le": lambda c: c <= 0,
}


def _matches(value: Any, operand: Operand, accept: Callable[[int], bool]) -> bool:
    if operand.null:
        return value is None or value is MISSING
    if operand.empty:
        return value is None or value is MISSING or value in ("", [], {})
    if isinstance(value, list):
        return any(_matches(v, operand, accept) for v in value)
    found = _order(value, operand)
    return found is not None and accept(found)


def _comparison(name: str, get: Read, operand: Operand) -> Predicate:
    accept = _ACCEPT[name]
    if name == "ne":
        # ne is the negation of eq: a missing value is "not equal" to anything but null()
        return lambda item: not _matches(get(item), operand, _ACCEPT["eq"])
    return lambda item: _matches(get(item), operand, accept)


def _member(get: Read, operands: tuple[Operand, ...]) -> Predicate:
    """`in`: whether the value is `eq` to one of the operands (`null()` and `empty()` among
    them)."""
    null = any(o.null for o in operands)
    empty = any(o.empty for o in operands)
    equal = _equal_to_one([o for o in operands if not (o.null or o.empty)])

    def test(item: Any) -> bool:
        value = get(item)
        if value is None or value is MISSING:
            return null or empty
        if empty and value in ("", [], {}):
            return True
        return equal(value)

    return test


def _equal_to_one(literals: list[Operand]) -> Predicate:
    """Whether a value is `eq` to one of the literals, as _order() finds a value and a literal
    equal. The literals are kept in sets by the type they compare as, so a test takes the same
    time for 3 values or 100 000."""
    texts = frozenset(o.text for o in literals)
    numbers = frozenset(o.number for o in literals if o.number is not None)
    flags = frozenset(o.boolean for o in literals if o.boolean is not None)
    whens = frozenset(o.when for o in literals if o.when is not None)

    def equal(value: Any) -> bool:
        if isinstance(value, bool):
            return value in flags
        if isinstance(value, int | float):
            return value in numbers
        if isinstance(value, str):
            if value in texts:
                return True
            when = parse_when(value) if whens else None
            return when is not None and when in whens
        if isinstance(value, list):
            return any(equal(v) for v in value)
        return False

    return equal


@runtime_checkable
class TextField(Protocol):
    """A field reader that tests `like`/`ilike` itself, faster than reading the value."""

    def __call__(self, item: Any) -> Any: ...

    def like(self, pattern: str, fold: bool) -> Predicate: ...


def _like(get: Read, pattern: str, fold: bool) -> Predicate:
    if isinstance(get, TextField):
        return get.like(pattern, fold)
    matcher = glob(pattern, fold)

    def test(item: Any) -> bool:
        value = get(item)
        if isinstance(value, list):
            return any(isinstance(v, str) and matcher(v) for v in value)
        return isinstance(value, str) and matcher(value)

    return test


def _quantifier(get: Read, sub: Predicate, every: bool) -> Predicate:
    def test(item: Any) -> bool:
        value = get(item)
        if isinstance(value, dict):
            value = list(value.values())
        if not isinstance(value, list):
            return False
        return all(sub(v) for v in value) if every else any(sub(v) for v in value)

    return test
