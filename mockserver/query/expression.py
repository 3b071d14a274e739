"""A filter as a checked, typed expression: what a storage backend is asked to evaluate.

`expression()` reads the parsed RQL tree (`query.rql`) once: it checks each operator's
arguments and that each field is one the collection's items have, and types each literal every
way it may be compared (numbers with numbers, dates with dates, strings with strings). A
backend evaluates the result natively where it can (an index answers `equalities()`); the
shared helper `query.predicates` evaluates any of it in Python.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import NamedTuple

from mockserver.query.rql import Call, Group, Node, RQLError, Value, show

MAX_EXPRESSIONS = 100  # operators in one query's filter: each is a test of every candidate item
FieldCheck = Callable[[str], bool]
COMPARISONS = ("eq", "ne", "gt", "ge", "lt", "le")


class Operand(NamedTuple):
    """A literal, pre-typed every way it may be compared (a tuple: an `in()` makes thousands)."""

    text: str
    null: bool = False
    empty: bool = False
    number: float | None = None
    boolean: bool | None = None
    when: datetime | None = None


@dataclass(frozen=True)
class AllOf:
    parts: tuple[Expression, ...]


@dataclass(frozen=True)
class AnyOf:
    parts: tuple[Expression, ...]


@dataclass(frozen=True)
class Not:
    part: Expression


@dataclass(frozen=True)
class Compare:
    """`eq`, `ne`, `gt`, `ge`, `lt`, `le` of a field and a literal (or `null()`, `empty()`)."""

    operator: str
    field: str
    operand: Operand


@dataclass(frozen=True)
class Like:
    """`like` (`fold`: `ilike`) of a field and a pattern with `*` wildcards."""

    field: str
    pattern: str
    fold: bool


@dataclass(frozen=True)
class Member:
    """`in` (`negate`: `out`) of a field and a list of literals."""

    field: str
    operands: tuple[Operand, ...]
    negate: bool = False


@dataclass(frozen=True)
class Quantified:
    """`any` (`every`: `all`) element of an array field that meets a condition on its own
    fields."""

    field: str
    condition: Expression
    every: bool


Expression = AllOf | AnyOf | Not | Compare | Like | Member | Quantified


def expression(calls: Iterable[Call], known: FieldCheck) -> Expression | None:
    """The checked expression of a query's top-level calls (they are ANDed); None when there
    are none. RQLError naming the part at fault otherwise."""
    count, parts = 0, []
    for call in calls:
        count += _operators(call)
        if count > MAX_EXPRESSIONS:
            message = f"The filter has more than {MAX_EXPRESSIONS} expressions."
            raise RQLError(message, show(call))
        parts.append(_Checker(known).call(call))
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else AllOf(tuple(parts))


class _Checker:
    def __init__(self, known: FieldCheck) -> None:
        self.known = known

    def call(self, call: Call) -> Expression:
        """The checked expression of one operator call (its name in any case)."""
        name = call.name.lower()
        check = _OPERATORS.get(name)
        if check is None:
            raise RQLError(f"Unknown operator '{call.name}'.", show(call))
        return check(self, call, name)

    def field(self, node: Node, call: Call) -> str:
        if not isinstance(node, Value) or node.quoted or not node.text:
            raise RQLError(f"'{call.name}' needs a field name first.", show(call))
        if not self.known(node.text):
            raise RQLError("Unknown expression group.", node.text)
        return node.text

    def _logical(self, call: Call, name: str) -> Expression:
        """`and`, `or` of one expression or more."""
        parts = tuple(self.call(_expect_call(a, call)) for a in call.args)
        if not parts:
            raise RQLError(f"'{name}' needs at least one expression.", show(call))
        return AllOf(parts) if name == "and" else AnyOf(parts)

    def _not(self, call: Call, name: str) -> Expression:
        return Not(self.call(_expect_call(_single(call), call)))

    def _compare(self, call: Call, name: str) -> Expression:
        field, value = _pair(call)
        found = operand(value, call)
        if (found.null or found.empty) and name not in ("eq", "ne"):
            raise RQLError(f"'{found.text}' can only be compared with eq or ne.", show(call))
        return Compare(name, self.field(field, call), found)

    def _like(self, call: Call, name: str) -> Expression:
        field, pattern = _pair(call)
        return Like(self.field(field, call), _literal(pattern, call), name == "ilike")

    def _membership(self, call: Call, name: str) -> Expression:
        if len(call.args) < 2:
            raise RQLError(f"'{call.name}' needs a field and a list of values.", show(call))
        values = call.args[1].items if isinstance(call.args[1], Group) else call.args[1:]
        # each value once (a list is a set here): a 64 KiB list of the same value costs one
        operands = tuple(operand(v, call) for v in dict.fromkeys(values))
        return Member(self.field(call.args[0], call), operands, name == "out")

    def _quantified(self, call: Call, name: str) -> Expression:
        """`any`, `all` elements of an array field: the condition is on their own fields."""
        field, condition = _pair(call)
        inner = _Checker(_anything).call(_expect_call(condition, call))
        return Quantified(self.field(field, call), inner, name == "all")


# The operators (lower case) and the checker of each: (checker, call, name) -> expression.
_OPERATORS: dict[str, Callable[[_Checker, Call, str], Expression]] = {
    "and": _Checker._logical,
    "or": _Checker._logical,
    "not": _Checker._not,
    **dict.fromkeys(COMPARISONS, _Checker._compare),
    "like": _Checker._like,
    "ilike": _Checker._like,
    "in": _Checker._membership,
    "out": _Checker._membership,
    "any": _Checker._quantified,
    "all": _Checker._quantified,
}


def _pair(call: Call) -> tuple[Node, Node]:
    if len(call.args) != 2:
        raise RQLError(f"'{call.name}' takes 2 arguments, got {len(call.args)}.", show(call))
    return call.args[0], call.args[1]


def _single(call: Call) -> Node:
    if len(call.args) != 1:
        raise RQLError(f"'{call.name}' takes 1 argument, got {len(call.args)}.", show(call))
    return call.args[0]


def _expect_call(node: Node, parent: Call) -> Call:
    if not isinstance(node, Call):
        raise RQLError(f"'{parent.name}' expects expressions as arguments.", show(parent))
    return node


def _literal(node: Node, call: Call) -> str:
    if not isinstance(node, Value):
        raise RQLError(f"'{call.name}' needs a value as its second argument.", show(call))
    return node.text


def _anything(path: str) -> bool:
    """Inside `any()`/`all()` the fields are the elements' own: any name is accepted."""
    return bool(path)


def _operators(call: Call) -> int:
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


# ---------------------------------------------------------------- literals


def operand(node: Node, call: Call) -> Operand:
    """A literal typed every way it may be compared; `null()` and `empty()` as such."""
    if isinstance(node, Value):  # the common case first: an `in()` may hold thousands
        text = node.text
        if text[:1] not in _TYPED_FIRST:  # a word or an id: no number, boolean or date starts so
            return _new(Operand, (text, False, False, None, None, None))  # 2x Operand(text)
        boolean = _BOOLEANS.get(text.lower())
        return Operand(text, False, False, _number(text), boolean, parse_when(text))
    if isinstance(node, Call) and not node.args and node.name in ("null", "empty"):
        return Operand(node.name + "()", null=node.name == "null", empty=node.name == "empty")
    raise RQLError(f"'{call.name}' needs a value as its second argument.", show(call))


_BOOLEANS = {"true": True, "false": False}
# the first characters of a literal that may be a number (digits, sign, point, `inf`), a
# boolean (`true`, `false`, any case) or a date (digits); the empty text is a plain one
_TYPED_FIRST = frozenset("0123456789+-.iItTfF")
_new = tuple.__new__


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


# ---------------------------------------------------------------- what an index can answer


def equalities(found: Expression | None) -> list[tuple[str, list[str]]]:
    """The `eq`/`in` conditions on plain strings that every match must meet (top-level
    conjuncts): what an index can answer. Dates are left out (they compare as dates). An `or`
    whose every part has such a condition on one same field counts as an `in` of all their
    values (a superset of the matches: the filter still decides)."""
    match found:
        case AllOf(parts):
            return [pair for part in parts for pair in equalities(part)]
        case AnyOf(parts):
            return _either(parts)
        case Compare(operator="eq", field=field, operand=literal) if _plain(literal):
            return [(field, [literal.text])]
        case Member(field=field, operands=literals, negate=False) if all(map(_plain, literals)):
            return [(field, [o.text for o in literals])]
    return []


def _either(parts: tuple[Expression, ...]) -> list[tuple[str, list[str]]]:
    """One field every part of an `or` holds to values, with all of them; else nothing."""
    found = [equalities(part) for part in parts]
    if not found:
        return []
    shared = set.intersection(*({field for field, _ in pairs} for pairs in found))
    if not shared:
        return []
    field = next(f for f, _ in found[0] if f in shared)
    return [(field, [v for pairs in found for f, values in pairs if f == field for v in values])]


def _plain(literal: Operand) -> bool:
    return not (literal.null or literal.empty) and literal.when is None
