"""Resource Query Language: parsing filter expressions and turning them into predicates.

Grammar (after the query-string part is percent-decoded):
    expr   := NAME '(' [arg (',' arg)*] ')'
    arg    := expr | group | 'quoted' | "quoted" | bare
    group  := '(' [arg (',' arg)*] ')'
Values are typed by the field they are compared with: numbers with numbers, dates with dates
(`timestamp`), strings with strings. `null()` and `empty()` are values.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, NamedTuple, Protocol, runtime_checkable

from mockserver.pattern import glob

MAX_NESTING = 32
MAX_LENGTH = 65_536  # characters: no longer than a request line the server reads
MAX_EXPRESSIONS = 100  # operators in one query's filter: each is a test of every candidate item
Predicate = Callable[[Any], bool]
MISSING: Any = object()  # a member that is not there (null is None)
_NOTHING: Any = object()  # no item read yet


class RQLError(ValueError):
    """A malformed or unsupported expression; `part` is what to point the caller at."""

    def __init__(self, message: str, part: str) -> None:
        super().__init__(message)
        self.part = part


@dataclass(frozen=True)
class Call:
    name: str
    args: tuple[Node, ...]


@dataclass(frozen=True)
class Value:
    text: str
    quoted: bool = False


@dataclass(frozen=True)
class Group:
    items: tuple[Node, ...]


Node = Call | Value | Group


def parse(text: str) -> Call:
    """Parse one expression such as `and(eq(event,'a'),gt(timestamp,2025-01-01))`."""
    if len(text) > MAX_LENGTH:
        raise RQLError(f"The expression is longer than {MAX_LENGTH} characters.", text[:100])
    node, end = _Parser(text).node(0, 0)
    if end != len(text):
        raise RQLError(f"Unexpected '{text[end]}' at position {end + 1}.", text)
    if not isinstance(node, Call):
        raise RQLError("An RQL expression must be an operator call such as eq(field,value).", text)
    return node


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text

    def node(self, at: int, depth: int) -> tuple[Node, int]:
        if depth > MAX_NESTING:
            raise RQLError(f"Expressions are nested deeper than {MAX_NESTING} levels.", self.text)
        text = self.text
        at = self._blank(at)
        if at < len(text) and text[at] in "'\"":
            close = text.find(text[at], at + 1)
            if close < 0:
                raise RQLError(f"Unterminated string starting at position {at + 1}.", self.text)
            return Value(text[at + 1 : close], True), self._blank(close + 1)
        if at < len(text) and text[at] == "(":
            items, end = self.args(at + 1, depth + 1)
            return Group(items), self._blank(end)
        end = at
        while end < len(text) and text[end] not in ",()":
            end += 1
        token = text[at:end].strip()
        if end < len(text) and text[end] == "(":  # never with an empty name: see _blank
            args, after = self.args(end + 1, depth + 1)
            return Call(token, args), self._blank(after)
        return Value(token), end

    def _blank(self, at: int) -> int:
        """Skip spaces around an item: `eq(event, 'a')` is `eq(event,'a')`."""
        while at < len(self.text) and self.text[at].isspace():
            at += 1
        return at

    def args(self, at: int, depth: int) -> tuple[tuple[Node, ...], int]:
        """Arguments up to the closing parenthesis; returns the position after it."""
        text, items = self.text, []
        if at < len(text) and text[at] == ")":
            return (), at + 1
        bare = _BARE_VALUES.match(text, at) if depth <= MAX_NESTING else None
        if bare is not None:  # the common case, and a long `in()` list: 3x faster
            end = bare.end()
            return tuple(Value(part.strip()) for part in text[at : end - 1].split(",")), end
        while True:
            item, at = self.node(at, depth)
            items.append(item)
            if at >= len(text):
                raise RQLError(f"Missing ')' at the end of '{text}'.", text)
            if text[at] == ")":
                return tuple(items), at + 1
            if text[at] != ",":
                raise RQLError(f"Unexpected '{text[at]}' at position {at + 1}.", text)
            at += 1


# Arguments that are all bare values, up to the closing parenthesis (`a,b, c)`): read in one
# go, as the item by item reading would read them (possessive: no backtracking).
_BARE_VALUES = re.compile(r"(?:[^,()'\"]*+,)*+[^,()'\"]*+\)")


# ---------------------------------------------------------------- compiling to predicates

FieldCheck = Callable[[str], bool]


Access = Callable[[str], Callable[[Any], Any]]


def compile_filter(
    calls: Iterable[Call], known: FieldCheck, access: Access | None = None
) -> Predicate | None:
    """One predicate for all top-level expressions (they are ANDed); None when there are none.
    `access` reads a dotted path of an item (plain dicts by default; a store passes its own)."""
    compiler = _Compiler(known, access or getter)
    count, predicates = 0, []
    for call in calls:
        count += _expressions(call)
        if count > MAX_EXPRESSIONS:
            message = f"The filter has more than {MAX_EXPRESSIONS} expressions."
            raise RQLError(message, _show(call))
        predicates.append(compiler.call(call))
    if not predicates:
        return None
    if len(predicates) == 1:
        return predicates[0]
    return lambda item: all(p(item) for p in predicates)


class _Compiler:
    def __init__(self, known: FieldCheck, access: Access | None = None) -> None:
        self.known = known
        self.access = access or getter
        self._fields: dict[str, Callable[[Any], Any] | None] = {}

    def call(self, call: Call) -> Predicate:
        name = call.name.lower()
        if name in ("and", "or"):
            parts = [self.call(self._expect_call(a, call)) for a in call.args]
            if not parts:
                raise RQLError(f"'{name}' needs at least one expression.", _show(call))
            return _all(parts) if name == "and" else _any(parts)
        if name == "not":
            inner = self.call(self._expect_call(self._single(call), call))
            return lambda item: not inner(item)
        if name in _COMPARISONS:
            field, value = self._pair(call)
            operand = _operand(value, call)
            if (operand.null or operand.empty) and name not in ("eq", "ne"):
                raise RQLError(f"'{operand.text}' can only be compared with eq or ne.", _show(call))
            return _comparison(name, self.field(field, call), operand)
        if name in ("like", "ilike"):
            field, pattern = self._pair(call)
            return _like(self.field(field, call), _literal(pattern, call), name == "ilike")
        if name in ("in", "out"):
            return self._membership(call, name == "out")
        if name in ("any", "all"):
            field, condition = self._pair(call)
            sub = _Compiler(_anything).call(self._expect_call(condition, call))
            return _quantifier(self.field(field, call), sub, name == "all")
        raise RQLError(f"Unknown operator '{call.name}'.", _show(call))

    def field(self, node: Node, call: Call) -> Callable[[Any], Any]:
        if not isinstance(node, Value) or node.quoted or not node.text:
            raise RQLError(f"'{call.name}' needs a field name first.", _show(call))
        path = node.text
        if not self.known(path):
            raise RQLError("Unknown expression group.", path)
        if path not in self._fields:  # the first test of a field reads it itself
            self._fields[path] = None
            return self.access(path)
        shared = self._fields[path]  # the others share one read per item
        if shared is None:
            shared = self._fields[path] = _last_read(self.access(path))
        return shared

    def _membership(self, call: Call, negate: bool) -> Predicate:
        if len(call.args) < 2:
            raise RQLError(f"'{call.name}' needs a field and a list of values.", _show(call))
        values = call.args[1].items if isinstance(call.args[1], Group) else call.args[1:]
        operands = [_operand(v, call) for v in values]
        test = _member(self.field(call.args[0], call), operands)
        return (lambda item: not test(item)) if negate else test

    def _pair(self, call: Call) -> tuple[Node, Node]:
        if len(call.args) != 2:
            raise RQLError(f"'{call.name}' takes 2 arguments, got {len(call.args)}.", _show(call))
        return call.args[0], call.args[1]

    def _single(self, call: Call) -> Node:
        if len(call.args) != 1:
            raise RQLError(f"'{call.name}' takes 1 argument, got {len(call.args)}.", _show(call))
        return call.args[0]

    @staticmethod
    def _expect_call(node: Node, parent: Call) -> Call:
        if not isinstance(node, Call):
            raise RQLError(f"'{parent.name}' expects expressions as arguments.", _show(parent))
        return node


def equalities(calls: Iterable[Call]) -> list[tuple[str, list[str]]]:
    """The `eq`/`in` conditions on plain strings that every match must meet (top-level
    conjuncts): what an index can answer. Dates are left out (they compare as dates)."""
    found: list[tuple[str, list[str]]] = []
    for call in calls:
        name, args = call.name.lower(), call.args
        if name == "and":
            found.extend(equalities(a for a in args if isinstance(a, Call)))
            continue
        if name not in ("eq", "in") or len(args) < 2 or not isinstance(args[0], Value):
            continue
        values = args[1].items if name == "in" and isinstance(args[1], Group) else args[1:]
        if name == "eq" and len(args) != 2:
            continue
        if all(isinstance(v, Value) and parse_when(v.text) is None for v in values):
            found.append((args[0].text, [v.text for v in values if isinstance(v, Value)]))
    return found


def _expressions(call: Call) -> int:
    """How many operators an expression holds (`null()` and `empty()` are values)."""
    stack: list[Node] = [call]
    count = 0
    while stack:
        node = stack.pop()
        if isinstance(node, Call):
            count += node.name not in ("null", "empty")
            stack.extend(a for a in node.args if not isinstance(a, Value))
        elif isinstance(node, Group):
            stack.extend(a for a in node.items if not isinstance(a, Value))
    return count


def _last_read(get: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """`get`, remembering the value of the last item: tests of one field read it once."""
    last: list[Any] = [_NOTHING, None]  # a filter runs in one thread

    def read(item: Any) -> Any:
        if item is not last[0]:
            last[0], last[1] = item, get(item)
        return last[1]

    return read


def _anything(path: str) -> bool:
    """Inside `any()`/`all()` the fields are the elements' own: any name is accepted."""
    return bool(path)


def _show(node: Node) -> str:
    if isinstance(node, Call):
        return f"{node.name}(" + ",".join(_show(a) for a in node.args) + ")"
    if isinstance(node, Group):
        return "(" + ",".join(_show(a) for a in node.items) + ")"
    if not node.quoted:
        return node.text
    quote = '"' if "'" in node.text else "'"
    return f"{quote}{node.text}{quote}"


def _all(parts: list[Predicate]) -> Predicate:
    return lambda item: all(p(item) for p in parts)


def _any(parts: list[Predicate]) -> Predicate:
    return lambda item: any(p(item) for p in parts)


# ---------------------------------------------------------------- field access


def getter(path: str) -> Callable[[Any], Any]:
    """Read a dotted path; through arrays it yields the list of values found in the elements."""
    parts = path.split(".")

    def get(item: Any) -> Any:
        value = item
        for index, part in enumerate(parts):
            if isinstance(value, dict):
                value = value.get(part, MISSING)
            elif isinstance(value, list):
                rest = ".".join(parts[index:])
                inner = getter(rest)
                return [v for v in (inner(e) for e in value) if v is not MISSING]
            else:
                return MISSING
        return value

    return get


# ---------------------------------------------------------------- values and comparisons


class Operand(NamedTuple):
    """A literal, pre-typed every way it may be compared (a tuple: an `in()` makes thousands)."""

    text: str
    null: bool = False
    empty: bool = False
    number: float | None = None
    boolean: bool | None = None
    when: datetime | None = None


def _literal(node: Node, call: Call) -> str:
    if not isinstance(node, Value):
        raise RQLError(f"'{call.name}' needs a value as its second argument.", _show(call))
    return node.text


def _operand(node: Node, call: Call) -> Operand:
    if isinstance(node, Value):  # the common case first: an `in()` may hold thousands
        text = node.text
        boolean = _BOOLEANS.get(text.lower())
        return Operand(text, False, False, _number(text), boolean, parse_when(text))
    if isinstance(node, Call) and not node.args and node.name in ("null", "empty"):
        return Operand(node.name + "()", null=node.name == "null", empty=node.name == "empty")
    raise RQLError(f"'{call.name}' needs a value as its second argument.", _show(call))


_BOOLEANS = {"true": True, "false": False}


def _number(text: str) -> float | None:
    """A literal as a number: ASCII digits (`1`, `-2.5e3`) or `inf`; not NaN, which is equal
    to nothing (and neither below nor above anything)."""
    if not text or text[0] not in "0123456789+-.iI":  # most literals: no exception to raise
        return None
    try:
        number = float(text)
    except ValueError:
        return None
    return None if number != number else number


def parse_when(text: str) -> datetime | None:
    """A date or date-time literal as an aware UTC datetime (naive values are taken as UTC)."""
    if len(text) < 10 or not (text[:4].isdigit() and text[4] == "-"):
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        try:
            day = date.fromisoformat(text)
        except ValueError:
            return None
        when = datetime(day.year, day.month, day.day)
    return when if when.tzinfo else when.replace(tzinfo=UTC)


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


_COMPARISONS: dict[str, Callable[[int], bool]] = {
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


def _comparison(name: str, get: Callable[[Any], Any], operand: Operand) -> Predicate:
    accept = _COMPARISONS[name]
    if name == "ne":
        # ne is the negation of eq: a missing value is "not equal" to anything but null()
        return lambda item: not _matches(get(item), operand, _COMPARISONS["eq"])
    return lambda item: _matches(get(item), operand, accept)


def _member(get: Callable[[Any], Any], operands: list[Operand]) -> Predicate:
    """`in`: whether the value is `eq` to one of the operands. The literals are kept in sets by
    the type they compare as, so a test takes the same time for 3 values or 100 000."""
    null = any(o.null for o in operands)
    empty = any(o.empty for o in operands)
    plain = [o for o in operands if not (o.null or o.empty)]
    texts = frozenset(o.text for o in plain)
    numbers = frozenset(o.number for o in plain if o.number is not None)
    flags = frozenset(o.boolean for o in plain if o.boolean is not None)
    whens = frozenset(o.when for o in plain if o.when is not None)

    def equal(value: Any) -> bool:  # as _order() finds a value and a literal equal
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

    def test(item: Any) -> bool:
        value = get(item)
        if value is None or value is MISSING:
            return null or empty
        if empty and value in ("", [], {}):
            return True
        return equal(value)

    return test


@runtime_checkable
class TextField(Protocol):
    """A field reader that tests `like`/`ilike` itself, faster than reading the value."""

    def __call__(self, item: Any) -> Any: ...

    def like(self, pattern: str, fold: bool) -> Predicate: ...


def _like(get: Callable[[Any], Any], pattern: str, fold: bool) -> Predicate:
    if isinstance(get, TextField):
        return get.like(pattern, fold)
    matcher = glob(pattern, fold)

    def test(item: Any) -> bool:
        value = get(item)
        if isinstance(value, list):
            return any(isinstance(v, str) and matcher(v) for v in value)
        return isinstance(value, str) and matcher(value)

    return test


def _quantifier(get: Callable[[Any], Any], sub: Predicate, every: bool) -> Predicate:
    def test(item: Any) -> bool:
        value = get(item)
        if isinstance(value, dict):
            value = list(value.values())
        if not isinstance(value, list):
            return False
        return all(sub(v) for v in value) if every else any(sub(v) for v in value)

    return test
