"""Unit tests of query.rql: the parser, the compiled predicates, glob, dates, field access."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import hypothesis
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mockserver.codec import MISSING
from mockserver.query.expression import parse_when
from mockserver.query.patterns import glob
from mockserver.query.predicates import SHORT, _reader, _walker, compile_filter, getter
from mockserver.query.rql import MAX_NESTING, Call, Group, RQLError, Value, parse

# ---------------------------------------------------------------- parse()


def v(text: str, quoted: bool = False) -> Value:
    return Value(text, quoted)


def test_parse_simple_call_with_bare_and_quoted_values() -> None:
    assert parse("eq(event,'platform.commerce.order.created')") == Call(
        "eq", (v("event"), v("platform.commerce.order.created", True))
    )
    assert parse("gt(a,5)") == Call("gt", (v("a"), v("5")))
    assert parse('eq(details,"x")') == Call("eq", (v("details"), v("x", True)))


def test_parse_nested_calls() -> None:
    assert parse("and(eq(event,'a.b'),not(eq(object.id,'ORD-1')))") == Call(
        "and",
        (
            Call("eq", (v("event"), v("a.b", True))),
            Call("not", (Call("eq", (v("object.id"), v("ORD-1", True))),)),
        ),
    )


def test_parse_group_and_null_and_empty() -> None:
    assert parse("in(event,('a.b','c.d'))") == Call(
        "in", (v("event"), Group((v("a.b", True), v("c.d", True))))
    )
    assert parse("in(event,())") == Call("in", (v("event"), Group(())))
    assert parse("eq(details,null())") == Call("eq", (v("details"), Call("null", ())))
    assert parse("ne(object.name,empty())") == Call("ne", (v("object.name"), Call("empty", ())))


def test_parse_any_with_inner_expression() -> None:
    assert parse("any(documents,eq(id,'X'))") == Call(
        "any", (v("documents"), Call("eq", (v("id"), v("X", True))))
    )


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("eq(details,'a,b(c)d&e')", "a,b(c)d&e"),
        ('eq(details,"a&b c+d/e,f(g)h\'i#%")', "a&b c+d/e,f(g)h'i#%"),
        ("eq(details,'say \"hi\"')", 'say "hi"'),
        ("eq(details,'')", ""),
        ("eq(details,'  padded  ')", "  padded  "),
    ],
)
def test_parse_quoted_literals_keep_special_characters(text: str, value: str) -> None:
    assert parse(text) == Call("eq", (v("details"), v(value, True)))


def test_parse_bare_values_are_stripped_and_spaces_around_items_are_ignored() -> None:
    expected = Call("and", (Call("eq", (v("event"), v("a", True))), Call("gt", (v("n"), v("5")))))
    assert parse("and( eq( event , 'a' ) , gt(n, 5 ) )") == expected
    assert parse(" and(eq(event,'a'),gt(n,5)) ") == expected
    assert parse("eq(details,a b)") == Call("eq", (v("details"), v("a b")))


def test_parse_empty_argument_list() -> None:
    assert parse("and()") == Call("and", ())


def test_parse_operator_names_are_kept_as_written() -> None:
    assert parse("EQ(a,b)") == Call("EQ", (v("a"), v("b")))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("eq(details,'abc)", "Unterminated string starting at position 12."),
        ('eq(details,"abc)', "Unterminated string starting at position 12."),
        ("eq(event,'a'", "Missing ')' at the end of 'eq(event,'a''."),
        ("eq(event,a", "Missing ')' at the end of 'eq(event,a'."),
        ("and(eq(a,b)", "Missing ')' at the end of 'and(eq(a,b)'."),
        ("eq(a,b))", "Unexpected ')' at position 8."),
        ("eq(a,b)x", "Unexpected 'x' at position 8."),
        ("eq(a,'b'c)", "Unexpected 'c' at position 9."),
        ("(a,b)", "An RQL expression must be an operator call such as eq(field,value)."),
        ("event", "An RQL expression must be an operator call such as eq(field,value)."),
        ("", "An RQL expression must be an operator call such as eq(field,value)."),
        ("eq(a,(b)", "Missing ')' at the end of 'eq(a,(b)'."),
        ("(eq(a,b))x", "Unexpected 'x' at position 10."),
        ("eq(a,b),eq(c,d)", "Unexpected ',' at position 8."),
        ("(x)", "An RQL expression must be an operator call such as eq(field,value)."),
        ("eq(a,())b)", "Unexpected 'b' at position 9."),
        ("eq(a,(1)(2))", "Unexpected '(' at position 9."),
        ("eq(a,b(", "Missing ')' at the end of 'eq(a,b('."),
    ],
)
def test_parse_errors_name_the_whole_expression(text: str, message: str) -> None:
    with pytest.raises(RQLError) as caught:
        parse(text)
    assert str(caught.value) == message
    assert caught.value.part == text


def test_parse_spaces_before_a_group_or_call_are_not_an_empty_operator_name() -> None:
    assert parse("eq(a, (b))") == Call("eq", (v("a"), Group((v("b"),))))
    assert parse("eq(a,\t(b))") == Call("eq", (v("a"), Group((v("b"),))))
    assert parse("and(\n eq(a,b))") == Call("and", (Call("eq", (v("a"), v("b"))),))


def nested(levels: int, inner: str = "eq(event,'x')") -> str:
    """`levels` operator calls inside each other: and(and(...(eq(event,'x'))...))."""
    return "and(" * (levels - 1) + inner + ")" * (levels - 1)


def test_nesting_up_to_the_limit_is_accepted() -> None:
    node: Any = parse(nested(MAX_NESTING))
    depth = 1
    while node.name == "and":
        (node,) = node.args
        depth += 1
    assert depth == MAX_NESTING == 32
    assert node == Call("eq", (v("event"), v("x", True)))


def test_nesting_beyond_the_limit_is_an_error() -> None:
    text = nested(MAX_NESTING + 1)
    with pytest.raises(RQLError) as caught:
        parse(text)
    assert str(caught.value) == "Expressions are nested deeper than 32 levels."
    assert caught.value.part == text


def test_nested_groups_count_toward_the_limit() -> None:
    text = "in(a," + "(" * 40 + ")" * 40 + ")"
    with pytest.raises(RQLError) as caught:
        parse(text)
    assert str(caught.value) == "Expressions are nested deeper than 32 levels."


def test_very_deep_input_fails_cleanly_without_recursion_error() -> None:
    text = "not(" * 10_000 + "eq(a,b)" + ")" * 10_000  # 40 000 characters: under MAX_LENGTH
    with pytest.raises(RQLError) as caught:
        parse(text)
    assert str(caught.value) == "Expressions are nested deeper than 32 levels."


# ---------------------------------------------------------------- compile_filter()

ITEMS: list[dict[str, Any]] = [
    {
        "id": "A",
        "event": "platform.commerce.order.created",
        "details": "Order ORD-1 created",
        "summary": "first",
        "timestamp": "2025-01-01T00:00:00.000Z",
        "object": {"id": "ORD-1", "name": "Order 1"},
        "actor": {"id": "USR-1", "account": {"id": "ACC-1"}},
        "viewers": [{"id": "ACC-1"}, {"id": "ACC-9"}],
        "documents": {"order": {"id": "ORD-1", "revision": 3, "paid": True, "amount": 1.5}},
    },
    {
        "id": "B",
        "event": "platform.commerce.order.updated",
        "details": "10",
        "timestamp": "2025-01-15T12:30:15.123Z",
        "object": {"id": "ORD-2", "name": ""},
        "actor": {"id": "USR-2", "account": {"id": "ACC-2"}},
        "viewers": [{"id": "ACC-2"}],
        "documents": {"order": {"id": "ORD-2", "revision": 10, "paid": False}},
    },
    {
        "id": "C",
        "event": "platform.accounts.user.invited",
        "details": None,
        "summary": "third",
        "timestamp": "2025-02-01T12:30:15.123Z",
        "object": {"id": "USR-7", "name": None},
        "actor": {"id": "TKN-1", "account": {"id": "ACC-1"}},
        "viewers": [],
        "documents": {"user": {"id": "USR-7"}, "account": {"id": "ACC-1"}},
    },
    {
        "id": "D",
        "event": "extension.billing.invoice.created",
        "details": "",
        "timestamp": "2025-03-01T00:00:00.000Z",
        "object": {"id": "INV-1"},
        "actor": {"id": "USR-1", "account": {"id": "ACC-3"}},
        "viewers": [{"id": "ACC-3", "name": "Third"}],
    },
]


def everything(path: str) -> bool:
    return True


def ids(expression: str, *more: str, items: list[dict[str, Any]] = ITEMS) -> list[str]:
    """The ids of ITEMS that the expressions (ANDed) select."""
    where = compile_filter([parse(e) for e in (expression, *more)], everything)
    assert where is not None
    return [item["id"] for item in items if where(item)]


def test_no_expressions_give_no_predicate() -> None:
    assert compile_filter([], everything) is None


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("eq(event,'platform.commerce.order.created')", ["A"]),
        ("eq(event,platform.commerce.order.created)", ["A"]),
        ('eq(event,"platform.commerce.order.created")', ["A"]),
        ("eq(event,'nope')", []),
        ("ne(event,'platform.commerce.order.created')", ["B", "C", "D"]),
        ("eq(object.id,'ORD-2')", ["B"]),
        ("eq(actor.account.id,'ACC-1')", ["A", "C"]),
        ("ne(actor.account.id,'ACC-1')", ["B", "D"]),
        ("gt(id,B)", ["C", "D"]),
        ("ge(id,B)", ["B", "C", "D"]),
        ("lt(id,B)", ["A"]),
        ("le(id,B)", ["A", "B"]),
        ("EQ(id,'A')", ["A"]),
    ],
)
def test_comparisons(expression: str, expected: list[str]) -> None:
    assert ids(expression) == expected


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        # a missing member and an explicit JSON null are both null()
        ("eq(summary,null())", ["B", "D"]),
        ("eq(details,null())", ["C"]),
        ("ne(details,null())", ["A", "B", "D"]),
        ("eq(object.name,null())", ["C", "D"]),
        # empty(): null, missing, "", [] or {}
        ("eq(details,empty())", ["C", "D"]),
        ("ne(details,empty())", ["A", "B"]),
        ("eq(object.name,empty())", ["B", "C", "D"]),
        ("ne(object.name,empty())", ["A"]),
        ("eq(viewers,empty())", ["C"]),
        ("eq(documents,empty())", ["D"]),
        # a missing value is "not equal" to any value, and matches no ordering
        ("ne(summary,'first')", ["B", "C", "D"]),
        ("gt(summary,'a')", ["A", "C"]),
        ("lt(summary,'zzz')", ["A", "C"]),
    ],
)
def test_null_empty_and_missing(expression: str, expected: list[str]) -> None:
    assert ids(expression) == expected


def test_ne_null_excludes_missing_and_explicit_null() -> None:
    assert ids("ne(summary,null())") == ["A", "C"]


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("like(event,'platform.commerce.*')", ["A", "B"]),
        ("like(event,'*.created')", ["A", "D"]),
        ("like(event,'*commerce*')", ["A", "B"]),
        ("like(event,'platform.*.*.created')", ["A"]),
        ("like(event,'PLATFORM.*')", []),
        ("ilike(event,'PLATFORM.*')", ["A", "B", "C"]),
        ("ilike(details,'*ord-1*')", ["A"]),
        ("like(details,'*')", ["A", "B", "D"]),  # any string, not null or missing
        ("like(details,'')", ["D"]),
        ("like(summary,'*')", ["A", "C"]),
        ("like(viewers.id,'ACC-9')", ["A"]),
        ("like(viewers.name,'Th*')", ["D"]),
        ("like(documents.order.revision,'*')", []),  # numbers are not strings
    ],
)
def test_like_and_ilike(expression: str, expected: list[str]) -> None:
    assert ids(expression) == expected


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("in(id,('A','C'))", ["A", "C"]),
        ("in(id,(A,C,Z))", ["A", "C"]),
        ("in(id,'B','D')", ["B", "D"]),  # values without a group
        ("in(id,())", []),
        ("out(id,('A','C'))", ["B", "D"]),
        ("out(id,())", ["A", "B", "C", "D"]),
        ("in(summary,('first',null()))", ["A", "B", "D"]),
        ("out(summary,('first'))", ["B", "C", "D"]),
        ("in(viewers.id,('ACC-9','ACC-3'))", ["A", "D"]),
        ("out(viewers.id,('ACC-9','ACC-3'))", ["B", "C"]),
        ("in(documents.order.revision,(3,4))", ["A"]),
    ],
)
def test_in_and_out(expression: str, expected: list[str]) -> None:
    assert ids(expression) == expected


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("and(eq(actor.id,'USR-1'),like(event,'platform.*'))", ["A"]),
        ("and(eq(actor.id,'USR-1'))", ["A", "D"]),
        ("or(eq(id,'A'),eq(id,'D'),eq(id,'nope'))", ["A", "D"]),
        ("not(eq(actor.account.id,'ACC-1'))", ["B", "D"]),
        ("not(not(eq(id,'B')))", ["B"]),
        ("and(or(eq(id,A),eq(id,B)),not(eq(object.id,'ORD-1')))", ["B"]),
        ("or(and(eq(id,A),eq(id,B)),and(eq(id,C)))", ["C"]),
    ],
)
def test_logical_operators(expression: str, expected: list[str]) -> None:
    assert ids(expression) == expected


def test_several_top_level_expressions_are_anded() -> None:
    assert ids("like(event,'platform.*')", "eq(actor.account.id,'ACC-1')") == ["A", "C"]
    assert ids("like(event,'platform.*')", "eq(actor.account.id,'ACC-1')", "eq(id,C)") == ["C"]
    assert ids("eq(id,A)", "eq(id,B)") == []


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("eq(viewers.id,'ACC-9')", ["A"]),
        ("eq(viewers.id,'ACC-1')", ["A"]),
        ("ne(viewers.id,'ACC-1')", ["B", "C", "D"]),  # none of the viewers is ACC-1
        ("gt(viewers.id,'ACC-2')", ["A", "D"]),
        ("any(viewers,eq(id,'ACC-2'))", ["B"]),
        ("all(viewers,like(id,'ACC-*'))", ["A", "B", "C", "D"]),  # C has none: vacuously all
        ("all(viewers,eq(id,'ACC-1'))", ["C"]),
        ("any(viewers,eq(name,null()))", ["A", "B"]),
        ("any(documents,eq(id,'USR-7'))", ["C"]),
        ("any(documents,eq(id,'ACC-1'))", ["C"]),
        ("any(documents,eq(id,'X'))", []),
        ("all(documents,like(id,'ORD-*'))", ["A", "B"]),  # D has no documents at all
        ("any(documents,and(eq(paid,true),gt(revision,2)))", ["A"]),
        ("any(documents,not(eq(paid,true)))", ["B", "C"]),
        ("not(any(documents,eq(id,'ORD-1')))", ["B", "C", "D"]),
        ("any(object,eq(id,'x'))", []),  # an object's values are strings, not objects
        ("any(event,eq(id,'x'))", []),
    ],
)
def test_lists_and_quantifiers(expression: str, expected: list[str]) -> None:
    assert ids(expression) == expected


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        # numbers compare as numbers when the field holds a number
        ("eq(documents.order.revision,3)", ["A"]),
        ("eq(documents.order.revision,3.0)", ["A"]),
        ("eq(documents.order.revision,'3')", ["A"]),
        ("gt(documents.order.revision,9)", ["B"]),  # 10 > 9 (as strings it would not be)
        ("lt(documents.order.revision,10)", ["A"]),
        ("le(documents.order.revision,10)", ["A", "B"]),
        ("eq(documents.order.amount,1.50)", ["A"]),
        ("eq(documents.order.revision,abc)", []),
        ("ne(documents.order.revision,3)", ["B", "C", "D"]),
        # strings compare as strings even when the literal looks like a number
        ("gt(details,9)", ["A"]),  # B's "10" < "9"; A's "Order…" > "9"
        ("eq(details,10)", ["B"]),
        ("eq(details,10.0)", []),
        # booleans compare as booleans when the field holds one
        ("eq(documents.order.paid,true)", ["A"]),
        ("eq(documents.order.paid,TRUE)", ["A"]),
        ("eq(documents.order.paid,'true')", ["A"]),
        ("eq(documents.order.paid,false)", ["B"]),
        ("ne(documents.order.paid,true)", ["B", "C", "D"]),
        ("eq(documents.order.paid,1)", []),  # a boolean is not a number
        ("gt(documents.order.paid,false)", ["A"]),
        ("eq(documents.order.revision,true)", []),
    ],
)
def test_values_are_typed_by_the_field(expression: str, expected: list[str]) -> None:
    assert ids(expression) == expected


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        # date only (midnight UTC)
        ("ge(timestamp,2025-01-15)", ["B", "C", "D"]),
        ("gt(timestamp,'2025-01-01')", ["B", "C", "D"]),
        ("eq(timestamp,'2025-01-01')", ["A"]),
        ("lt(timestamp,'2025-02-01')", ["A", "B"]),
        # naive date-time with microseconds (taken as UTC)
        ("eq(timestamp,'2025-02-01T12:30:15.123000')", ["C"]),
        ("lt(timestamp,'2025-02-01T12:30:15.123000')", ["A", "B"]),
        ("le(timestamp,'2025-02-01T12:30:15.123000')", ["A", "B", "C"]),
        ("gt(timestamp,'2025-02-01T12:30:15.122999')", ["C", "D"]),
        # +00:00 offset, Z, and another offset (the same instant as 12:30:15.123Z)
        ("gt(timestamp,'2025-01-01T00:00:00+00:00')", ["B", "C", "D"]),
        ("ge(timestamp,'2025-01-01T00:00:00+00:00')", ["A", "B", "C", "D"]),
        ("gt(timestamp,'2025-01-01T00:00:00Z')", ["B", "C", "D"]),
        ("eq(timestamp,'2025-01-15T12:30:15.123Z')", ["B"]),
        ("eq(timestamp,'2025-01-15T14:30:15.123+02:00')", ["B"]),
        ("eq(timestamp,2025-01-15T12:30:15.123000+00:00)", ["B"]),
        ("ne(timestamp,'2025-01-15T12:30:15.123Z')", ["A", "C", "D"]),
        # the contract's range: ge a date, lt a naive date-time
        ("and(ge(timestamp,'2025-01-01'),lt(timestamp,'2025-02-01T12:30:15.123000'))", ["A", "B"]),
        ("in(timestamp,('2025-01-01','2025-03-01T00:00:00Z'))", ["A", "D"]),
    ],
)
def test_dates(expression: str, expected: list[str]) -> None:
    assert ids(expression) == expected


def test_unknown_fields_are_rejected_with_the_field_as_part() -> None:
    known = {"event", "object.id"}.__contains__
    for expression, field in [
        ("eq(mistake,1)", "mistake"),
        ("and(eq(event,'a'),like(object.nope,'*'))", "object.nope"),
        ("in(bad,(1,2))", "bad"),
        ("any(docs,eq(id,1))", "docs"),
        ("not(ne(x.y.z,1))", "x.y.z"),
    ]:
        with pytest.raises(RQLError) as caught:
            compile_filter([parse(expression)], known)
        assert (str(caught.value), caught.value.part) == ("Unknown expression group.", field)


def test_fields_inside_any_and_all_are_the_elements_own() -> None:
    checked: list[str] = []

    def known(path: str) -> bool:
        checked.append(path)
        return path == "documents"

    where = compile_filter([parse("any(documents,eq(whatever.inside,'x'))")], known)
    assert where is not None
    assert checked == ["documents"]
    assert where({"documents": {"a": {"whatever": {"inside": "x"}}}})
    assert not where({"documents": {"a": {"whatever": {"inside": "y"}}}})


@pytest.mark.parametrize(
    ("expression", "message", "part"),
    [
        ("foo(a,b)", "Unknown operator 'foo'.", "foo(a,b)"),
        ("and(eq(a,1),bar(x))", "Unknown operator 'bar'.", "bar(x)"),
        ("null()", "Unknown operator 'null'.", "null()"),
        ("eq(a)", "'eq' takes 2 arguments, got 1.", "eq(a)"),
        ("eq(a,1,2)", "'eq' takes 2 arguments, got 3.", "eq(a,1,2)"),
        ("gt()", "'gt' takes 2 arguments, got 0.", "gt()"),
        ("like(a)", "'like' takes 2 arguments, got 1.", "like(a)"),
        ("any(documents)", "'any' takes 2 arguments, got 1.", "any(documents)"),
        ("not(eq(a,1),eq(b,2))", "'not' takes 1 argument, got 2.", "not(eq(a,1),eq(b,2))"),
        ("not()", "'not' takes 1 argument, got 0.", "not()"),
        ("in(a)", "'in' needs a field and a list of values.", "in(a)"),
        ("out()", "'out' needs a field and a list of values.", "out()"),
        ("and()", "'and' needs at least one expression.", "and()"),
        ("or()", "'or' needs at least one expression.", "or()"),
        ("and(a,b)", "'and' expects expressions as arguments.", "and(a,b)"),
        ("not('x')", "'not' expects expressions as arguments.", "not('x')"),
        ("any(documents,'x')", "'any' expects expressions as arguments.", "any(documents,'x')"),
        ("eq('event',1)", "'eq' needs a field name first.", "eq('event',1)"),
        ("eq(,1)", "'eq' needs a field name first.", "eq(,1)"),
        ("eq(eq(a,b),1)", "'eq' needs a field name first.", "eq(eq(a,b),1)"),
        ("in((a),(1))", "'in' needs a field name first.", "in((a),(1))"),
        ("eq(a,(1,2))", "'eq' needs a value as its second argument.", "eq(a,(1,2))"),
        ("eq(a,b(c))", "'eq' needs a value as its second argument.", "eq(a,b(c))"),
        ("like(a,null())", "'like' needs a value as its second argument.", "like(a,null())"),
        ("in(a,(1,(2)))", "'in' needs a value as its second argument.", "in(a,(1,(2)))"),
        # the part is shown as sent: a value holding ' keeps its double quotes
        ('foo(details,"it\'s")', "Unknown operator 'foo'.", 'foo(details,"it\'s")'),
        ('foo(details,"plain")', "Unknown operator 'foo'.", "foo(details,'plain')"),
    ],
)
def test_compile_errors_name_the_bad_expression(expression: str, message: str, part: str) -> None:
    with pytest.raises(RQLError) as caught:
        compile_filter([parse(expression)], everything)
    assert (str(caught.value), caught.value.part) == (message, part)


# ---------------------------------------------------------------- glob()


@pytest.mark.parametrize(
    ("pattern", "text", "fold", "expected"),
    [
        ("abc", "abc", False, True),
        ("abc", "abcd", False, False),
        ("abc", "ABC", False, False),
        ("abc", "ABC", True, True),
        ("", "", False, True),
        ("", "a", False, False),
        ("*", "", False, True),
        ("*", "anything at all", False, True),
        ("**", "x", False, True),
        ("a*", "a", False, True),
        ("a*", "ab", False, True),
        ("a*", "ba", False, False),
        ("*a", "ba", False, True),
        ("*a", "ab", False, False),
        ("a*a", "a", False, False),  # head and tail may not overlap
        ("a*a", "aa", False, True),
        ("ab*ba", "aba", False, False),
        ("ab*ba", "abba", False, True),
        ("*b*", "abc", False, True),
        ("*b*", "ac", False, False),
        ("a*b*c", "abc", False, True),
        ("a*b*c", "acb", False, False),
        ("a*b*c", "a_b_b_c", False, True),
        ("a*bc*bc", "abcbc", False, True),
        ("a*bc*bc", "abc", False, False),
        ("*x*y*", "yx", False, False),
        ("*x*y*", "xy", False, True),
        ("*.created", "platform.commerce.order.created", False, True),
        ("platform.*.*.created", "platform.commerce.order.created", False, True),
        ("platform.*.*.created", "platform.created", False, False),
        ("?", "a", False, False),  # only * is a wildcard
        ("?", "?", False, True),
        ("[a]", "a", False, False),
        ("a.c", "abc", False, False),
        ("*Order 1*", "New order 1 placed", False, False),
        ("*Order 1*", "New order 1 placed", True, True),
        ("*STRASSE*", "Hauptstraße 5", True, True),
        ("ÉTÉ*", "été 2025", True, True),
    ],
)
def test_glob(pattern: str, text: str, fold: bool, expected: bool) -> None:
    assert glob(pattern, fold)(text) is expected


def test_glob_is_linear_for_a_pathological_pattern() -> None:
    text = "a" * 10_000
    started = time.perf_counter()
    assert glob("*a*a*a*a*a*a*a*a*b")(text) is False
    assert glob("*a*a*a*a*a*a*a*a*b", fold=True)(text) is False
    assert glob("*a*a*a*a*a*a*a*a*a")(text) is True
    assert glob("a*" * 5000 + "b")(text) is False
    assert glob("*" + "a*" * 20_000)(text) is False  # more pieces than characters
    assert glob("*" + "a*" * 10_000)(text) is True
    assert time.perf_counter() - started < 1.0  # a safety sanity check, not a benchmark


# ---------------------------------------------------------------- parse_when()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-01-01", datetime(2025, 1, 1, tzinfo=UTC)),
        ("2025-02-01T12:30:15.123000", datetime(2025, 2, 1, 12, 30, 15, 123000, tzinfo=UTC)),
        ("2025-02-01T12:30:15", datetime(2025, 2, 1, 12, 30, 15, tzinfo=UTC)),
        ("2025-01-01T00:00:00+00:00", datetime(2025, 1, 1, tzinfo=UTC)),
        ("2025-01-01T00:00:00Z", datetime(2025, 1, 1, tzinfo=UTC)),
        ("2025-01-02T03:04:05.123Z", datetime(2025, 1, 2, 3, 4, 5, 123000, tzinfo=UTC)),
        (
            "2025-01-01T02:00:00+02:00",
            datetime(2025, 1, 1, 2, tzinfo=timezone(timedelta(hours=2))),
        ),
        ("2025-01-01 10:00:00", datetime(2025, 1, 1, 10, tzinfo=UTC)),
    ],
)
def test_parse_when(text: str, expected: datetime) -> None:
    when = parse_when(text)
    assert when == expected
    assert when is not None
    assert when.tzinfo is not None


def test_parse_when_with_an_offset_is_the_same_instant() -> None:
    assert parse_when("2025-01-01T02:00:00+02:00") == datetime(2025, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "2025",
        "2025-01",
        "20250101",
        "2025-13-01",
        "2025-02-30",
        "2025-01-01T25:00:00",
        "2025-01-01Tnope",
        "abcd-01-01",
        "ORD-1111-2222",
        "platform.commerce.order.created",
        "12345-01-01",
        "1.5",
    ],
)
def test_parse_when_rejects_what_is_not_a_date(text: str) -> None:
    assert parse_when(text) is None


# ---------------------------------------------------------------- getter()

RECORD: dict[str, Any] = {
    "id": "AUD-1",
    "details": None,
    "object": {"id": "ORD-1", "name": "Order 1"},
    "actor": {"account": {"id": "ACC-1"}},
    "viewers": [{"id": "ACC-1", "name": "One"}, {"id": "ACC-2"}, "stray"],
    "documents": {"order": {"lines": [{"sku": "a"}, {"sku": "b"}]}},
    "matrix": [[{"x": 1}], [{"x": 2}, {"y": 3}]],
}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("id", "AUD-1"),
        ("details", None),
        ("object", {"id": "ORD-1", "name": "Order 1"}),
        ("object.id", "ORD-1"),
        ("actor.account.id", "ACC-1"),
        ("viewers.id", ["ACC-1", "ACC-2"]),  # elements without the member are left out
        ("viewers.name", ["One"]),
        ("viewers.nope", []),
        ("documents.order.lines.sku", ["a", "b"]),
        ("matrix.x", [[1], [2]]),
    ],
)
def test_getter(path: str, expected: Any) -> None:
    assert getter(path)(RECORD) == expected


@pytest.mark.parametrize(
    "path", ["nope", "object.nope", "id.more", "details.more", "actor.account.id.more", "a.b.c"]
)
def test_getter_missing_is_distinct_from_null(path: str) -> None:
    assert getter(path)(RECORD) is MISSING


def test_getter_on_a_non_object() -> None:
    assert getter("a")("text") is MISSING
    assert getter("a")(None) is MISSING
    assert getter("a")([{"a": 1}, {"b": 2}]) == [1]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.sampled_from(["x", "a"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from("abc"), inner),
    max_leaves=12,
)


@hypothesis.settings(max_examples=500, derandomize=True, database=None)
@given(json_values, st.lists(st.sampled_from("abc"), min_size=1, max_size=SHORT + 2))
def test_a_short_path_is_read_as_a_long_one_is(value: Any, parts: list[str]) -> None:
    """The closures made for a path of up to SHORT parts read what the walking reader reads
    (arrays on the way, nested arrays, a non-object, a missing member)."""
    path = tuple(parts)
    assert _reader(path[:SHORT])(value) == _walker(path[:SHORT])(value)
    assert getter(".".join(path))(value) == _walker(path)(value)


def test_a_path_of_many_parts_is_walked() -> None:
    deep: Any = "end"
    for _ in range(5_000):
        deep = {"a": deep}
    assert getter(".".join(["a"] * 5_000))(deep) == "end"
