"""Fuzzing the two parsers that read what callers write, with Hypothesis.

RQL (mockserver.query.rql, mockserver.query.params): query strings made from the grammar (nested
`and`/`or`/`not`/`any`/`all`, every operator, bare and quoted values, `null()`, `empty()`,
`field=value`, `order`, `select`, paging, `render()`), well formed or mangled (characters
dropped, junk put in, cut short, percent-encoded), and plain random text. Each goes the way a
request's does: `decode` → `filtering` → `ordering` → `page` → a search of a real store
(equality indexes, values read from the stored bytes) over sample records, and must find what
the same filter finds in plain dicts. `parse` and `compile_filter` also run on their own, with
the predicate tried on every sample. Only the documented errors may escape: `RQLError` from
`parse`/`compile_filter`, a 400 `Problem` from the query functions.

Fault rules (mockserver.faults): dicts that fit the control API's `Rule`
schema, dicts near it, and junk, the way POST /_mock/faults takes them
(`RuleBook.shape_errors`, `check`, then `Faults.add` and a few requests through `decide`);
rule paths (matched as the regex of the template used to match, in linear time); `Prefer`
headers; scenario files (YAML or JSON text) through `load_scenario`, then their rules as a
session adds them. Only a 400 `Problem` (from `check`) or `ScenarioError` may escape.

No input may take 100 ms: each is measured in CPU time of the test's thread
(`time.thread_time()`, not wall time: the machine is shared; the garbage collector paused),
with Hypothesis' deadline off. The worst cases are explicit examples (10 000-deep nesting, a
100 000-value `in()`, `like` patterns against a 100 000-character value, alias bombs and deep
nesting in scenario files). Every property runs a few hundred examples, derandomized: the same
inputs on every run. The last section holds a plain test for each bug the fuzzers found.
"""

from __future__ import annotations

import gc
import itertools
import json
import re
import string
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import quote

import hypothesis
import pytest
import yaml
from hypothesis import example, given
from hypothesis import strategies as st

from mockserver import codec
from mockserver.contract.router import Router
from mockserver.contract.schemas import fields, item_schema
from mockserver.contract.spec import load_spec
from mockserver.faults.checking import RuleBook
from mockserver.faults.kinds import CONNECTION_FAULTS
from mockserver.faults.matching import Seen, path_pattern
from mockserver.faults.rules import Faults, preferred
from mockserver.faults.scenario import ScenarioError, load_scenario
from mockserver.problems import Problem
from mockserver.query import rql
from mockserver.query.params import Query, decode, filtering, ordering, page
from mockserver.query.predicates import Predicate, compile_filter, getter, predicate
from mockserver.query.rql import Call, Group, RQLError, Value, parse
from mockserver.resources.event_types import COLLECTION as EVENT_TYPES
from mockserver.resources.event_types import EventTypeBehaviour
from mockserver.resources.handlers import Resources
from mockserver.resources.records import COLLECTION as RECORDS
from mockserver.resources.records import RecordBehaviour
from mockserver.settings import CONTROL_SPEC, DEFAULT_SPEC
from mockserver.storage.backend import Search
from mockserver.storage.encoding import decode as decode_item
from mockserver.storage.evaluate import sort
from mockserver.storage.memory import MemoryBackend

CPU_LIMIT = 0.1  # seconds of CPU time for one input
ATTEMPTS = 3  # runs of an input over the limit before it fails
EXAMPLES = 300
SETTINGS = hypothesis.settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[
        hypothesis.HealthCheck.too_slow,
        hypothesis.HealthCheck.data_too_large,
        hypothesis.HealthCheck.large_base_example,
    ],
)


@dataclass
class Outcome[T]:
    """What one run gave: its value or the exception it raised, and the CPU time it took."""

    spent: float
    value: T | None = None
    error: BaseException | None = None

    def result(self) -> T:
        if self.error is not None:
            raise self.error
        return self.value  # type: ignore[return-value]


def measured[T](run: Callable[[], T]) -> Outcome[T]:
    """One run in this thread's CPU time. The garbage collector is paused meanwhile: how long
    its passes take depends on all the test process holds."""
    gc.disable()
    try:
        started = time.thread_time()
        try:
            value = run()
        except BaseException as error:  # given back by Outcome.result
            return Outcome(time.thread_time() - started, error=error)
        return Outcome(time.thread_time() - started, value)
    finally:
        gc.enable()


def cpu_bound[T](what: Any, run: Callable[[], T]) -> T:
    """`run()` must take less than CPU_LIMIT of this thread's CPU time; its value (or its
    exception) is given back. A run over the limit is repeated, ATTEMPTS times at most, and the
    input judged by its fastest run: neighbours on a shared machine (an xdist worker per core,
    other suites) slow one run by sharing the core's caches, a slow input slows every run."""
    fastest = float("inf")
    for _ in range(ATTEMPTS):
        outcome = measured(run)
        if outcome.spent < CPU_LIMIT:
            return outcome.result()
        fastest = min(fastest, outcome.spent)
    shown = repr(what)
    shown = shown if len(shown) < 300 else f"{shown[:200]}... ({len(shown)} characters)"
    raise AssertionError(f"{fastest * 1000:.0f} ms of CPU time for {shown}")


def refused(problem: Problem) -> None:
    """The documented refusal: a 400 problem naming what is wrong."""
    assert problem.status == 400
    assert problem.errors, problem


# ================================================================ RQL

SPEC = load_spec(DEFAULT_SPEC)
ROUTER = Router(SPEC.document)
STORES = MemoryBackend(10_000)
BEHAVIOURS = {RECORDS: RecordBehaviour, EVENT_TYPES: EventTypeBehaviour}
Resources(ROUTER.operations, SPEC, STORES, BEHAVIOURS)  # gives the collections their shapes
KNOWN = fields(
    item_schema([op for op in ROUTER.operations if op.collection == RECORDS], SPEC.schema),
    SPEC.schema,
)
LONG = "a" * 100_000

# Records as the store may hold them: fixtures (POST /_mock/records) can hold any shape the
# schema allows, and some it only allows leniently. Strings hold what JSON escapes, and text
# that looks like JSON, to try the reader of the stored bytes.
SAMPLES: list[dict[str, Any]] = [
    {
        "id": "AUD-0000-0000-0000-0001",
        "event": "platform.commerce.order.created",
        "summary": "Order created",
        "details": "Order {{order.id}} created",
        "timestamp": "2025-01-01T10:00:00.000Z",
        "type": "Public",
        "object": {"id": "ORD-1111-2222-3333", "name": "Order 1", "objectType": "Order"},
        "actor": {
            "id": "USR-1111-2222",
            "name": "Ann",
            "account": {"id": "ACC-1111-2222", "name": "Acme", "accountType": "Vendor"},
        },
        "request": {"api": {"ip": "10.0.0.1", "method": "POST"}},
        "documents": {"order": {"id": "ORD-1111-2222-3333", "status": "Draft", "total": 5}},
        "viewers": [{"id": "ACC-1111-2222", "name": "Acme", "type": "Vendor"}],
    },
    {"id": "AUD-0000-0000-0000-0002", "event": "platform.commerce.order.deleted"},
    {
        "id": "AUD-0000-0000-0000-0003",
        "event": None,
        "details": None,
        "object": None,
        "documents": None,
        "timestamp": "2025-01-01",
    },
    {
        "id": "AUD-0000-0000-0000-0004",
        "summary": '","details":"fake", "event":"x',
        "details": 'quote " backslash \\ \\" é \u2028 \x00 end',
        "event": "platform.x.y.z",
        "timestamp": "2025-01-01T00:00:00+05:00",
        "object": {"id": ["ORD-1", "ORD-2"], "name": 5},
        "actor": {"id": 17, "account": {"id": True}},
    },
    {
        "id": "AUD-0000-0000-0000-0005",
        "event": "",
        "details": "",
        "timestamp": "not a date",
        "documents": {"order": {"status": ["Draft", "Done"], "total": 5.5}, "": {"": None}},
        "viewers": [{"id": "ACC-1"}, "x", None, [1, 2], {"id": None}],
    },
    {
        "id": "AUD-0000-0000-0000-0006",
        "event": "platform.commerce.order.created",
        "details": LONG,
        "summary": "ß" * 1000 + "ǅ",
        "timestamp": "2026-06-30T23:59:59.999999",
        "object": {"id": "ORD-1111-2222-3333"},
        "documents": {"order": {"status": "Done", "total": -1e300, "ok": False}},
    },
    {
        "id": "AUD-0000-0000-0000-0007",
        "event": "PLATFORM.COMMERCE.ORDER.CREATED",
        "details": "1e3",
        "summary": "inf",
        "type": "Private",
        "timestamp": "2024-02-29T12:00:00Z",
        "object": {"id": "2025-01-01", "objectType": "Order"},
        "actor": {"id": "USR-1111-2222", "account": {"id": "ACC-1111-2222"}},
        "documents": {"order": {"status": "", "total": 1000}},
        "viewers": [],
    },
]
STORE = STORES.open(RECORDS)
for record in SAMPLES:
    STORE.insert(record)
STORED = [decode_item(raw) for raw in STORE]  # the records as the store gives them back


@dataclass
class Served:
    """What a collection read made of its query: the decoded query, its order, the ids found."""

    query: Query
    order: list[tuple[str, bool]]
    ids: list[str]


def serve_query(query_string: str) -> Served | None:
    """A collection read's query, as the request path runs it; None when it is refused."""
    query = decode(query_string)
    try:
        chosen = filtering(query, KNOWN)
        order = ordering(query.params.get("order"), KNOWN)
        paging = page(query.params)
    except Problem as problem:
        refused(problem)
        return None
    assert 0 <= paging.limit <= 100
    assert paging.offset >= 0
    found = STORE.search(Search(chosen, tuple(order), 0, len(SAMPLES)))
    for raw in found.items:
        codec.dumps(query.selection.apply(decode_item(raw)))
    assert found.total == len(found.items)
    return Served(query, order, [decode_item(raw)["id"] for raw in found.items])


def plain_filter(query: Query) -> Predicate | None:
    """The query's filter on plain dicts."""
    found = filtering(query, KNOWN)
    return None if found is None else predicate(found, getter)


def check_query(query_string: str) -> None:
    """`serve_query` within the CPU limit, finding what the same filter finds in plain dicts
    (no indexes, no reading from the stored bytes)."""
    served = cpu_bound(query_string, lambda: serve_query(query_string))
    if served is None:
        return
    where = plain_filter(served.query)
    expected = sort([r for r in STORED if where is None or where(r)], served.order, getter)
    assert served.ids == [r["id"] for r in expected]


def run_expression(text: str) -> None:
    """`parse` and `compile_filter` on their own; the predicate on every sample."""
    try:
        call = parse(text)
        where = compile_filter([call], KNOWN)
    except RQLError as error:
        assert isinstance(error.part, str)  # noqa: PT017
        assert str(error)  # noqa: PT017
        return
    assert where is not None
    for item in STORED:
        assert where(item) in (True, False)


# ---------------------------------------------------------------- strategies

# Fields of the record schema (`documents` is free-form), and names that are not
FIELDS = [
    "id",
    "event",
    "summary",
    "details",
    "timestamp",
    "type",
    "object",
    "object.id",
    "object.name",
    "object.objectType",
    "actor.id",
    "actor.name",
    "actor.account.id",
    "actor.account.accountType",
    "request.api.ip",
    "documents",
    "documents.order.status",
    "documents.order.total",
    "documents.order.ok",
    "documents..",
    "viewers",
    "viewers.id",
    "viewers.type",
]
NOT_FIELDS = ["unknown", "object.unknown", "", ".", "id.", "Event", " event", "actor..id"]
COMPARISONS = ["eq", "ne", "gt", "ge", "lt", "le", "EQ", "Ne"]
OPERATORS = [*COMPARISONS, "like", "ilike", "in", "out", "and", "or", "not", "any", "all"]
NAMES = [*OPERATORS, "null", "empty", "render", "bogus", "", " eq", "eq "]
# values the samples hold (so that filters pick some records and not others), and odd ones
HELD = [
    "platform.commerce.order.created",
    "PLATFORM.COMMERCE.ORDER.CREATED",
    "platform.x.y.z",
    "ORD-1111-2222-3333",
    "ORD-1",
    "USR-1111-2222",
    "ACC-1111-2222",
    "ACC-1",
    "Draft",
    "Done",
    "Public",
    "Private",
    "Vendor",
    "Order",
    "5",
    "5.5",
    "1000",
    "1e3",
    "17",
    "-1e300",
    "true",
    "FALSE",
    "2025-01-01",
    "2025-01-01T10:00:00.000Z",
    "2025-01-01T05:00:00+00:00",
    "2024-02-29T12:00:00",
    "2026-06-30",
    "*",
    "*order*",
    "*ORDER*",
    "platform.*",
    "*created",
    "*ß*",
    "quote*",
    "",
]
ODD = [
    "-2.5e3",
    "1e999",
    "inf",
    "-Infinity",
    "nan",
    "NaN",
    "1_000",
    "\u0663",  # an Arabic-Indic digit
    "0x10",
    "2025-02-01T12:30:15.123000",
    "2025-13-45",
    "\uff12\uff10\uff12\uff15-01-01",  # fullwidth digits
    "9999-12-31T23:59:59-23:59",
    "0001-01-01",
    "**",
    "*a*b*",
    " ",
    "null",
    "empty",
]
SPECIAL = ",()'\"&=%*\\ +-.!~"

held = st.sampled_from(HELD)
good_value = st.one_of(
    held,
    held,
    held.map(lambda v: f"'{v}'"),
    held.map(lambda v: f'"{v}"'),
    st.sampled_from(["null()", "empty()"]),
)
good_field = st.sampled_from(FIELDS)


def _quoted(quote_char: str) -> st.SearchStrategy[str]:
    return st.text(max_size=12).map(lambda s: quote_char + s.replace(quote_char, "") + quote_char)


value = st.one_of(
    good_value,
    st.sampled_from(ODD),
    st.text(st.characters(blacklist_characters=",()'\"", codec="utf-8"), max_size=12),
    _quoted("'"),
    _quoted('"'),
    st.text(max_size=10).map(lambda s: "'" + s.replace("'", "\\'") + "'"),  # escapes: none exist
    st.sampled_from(["null(x)", "empty( )", "()", "(a,b)"]),
)
field = st.one_of(
    good_field,
    good_field,
    st.sampled_from(NOT_FIELDS),
    st.text(string.ascii_letters + "._", max_size=12),
)


def _call(name: str, args: list[str]) -> str:
    return f"{name}({','.join(args)})"


def _leaves(fields: st.SearchStrategy[str], values: st.SearchStrategy[str]) -> list[Any]:
    """Comparisons, `like`, and `in`/`out` with or without the parentheses of a list."""
    return [
        st.builds(lambda op, f, v: _call(op, [f, v]), st.sampled_from(COMPARISONS), fields, values),
        st.builds(
            lambda op, f, v: _call(op, [f, v]), st.sampled_from(["like", "ilike"]), fields, values
        ),
        st.builds(
            lambda op, f, vs: _call(op, [f, "(" + ",".join(vs) + ")"]),
            st.sampled_from(["in", "out", "IN"]),
            fields,
            st.lists(values, max_size=5),
        ),
        st.builds(
            lambda op, f, vs: _call(op, [f, *vs]),
            st.sampled_from(["in", "out"]),
            fields,
            st.lists(values, min_size=1, max_size=3),
        ),
    ]


def _combined(inner: st.SearchStrategy[str]) -> list[Any]:
    return [
        st.builds(_call, st.sampled_from(["and", "or", "AND", "Or"]), st.lists(inner, max_size=4)),
        st.builds(lambda x: _call("not", [x]), inner),
        st.builds(
            lambda q, f, x: _call(q, [f, x]),
            st.sampled_from(["any", "all"]),
            st.sampled_from(["viewers", "documents", "object", "details"]),
            inner,
        ),
        st.builds(lambda x, pad: pad + x + pad, inner, st.sampled_from([" ", "\t", "\u00a0"])),
    ]


# well formed: known fields, values the samples hold, the right number of arguments
good_expression = st.recursive(
    st.one_of(*_leaves(good_field, good_value)),
    lambda inner: st.one_of(*_combined(inner)),
    max_leaves=8,
)
# anything the grammar can say, and a little more
expression = st.recursive(
    st.one_of(
        *_leaves(field, value),
        st.builds(_call, st.sampled_from(NAMES), st.lists(st.one_of(value, field), max_size=3)),
    ),
    lambda inner: st.one_of(
        *_combined(inner), st.builds(lambda xs: "(" + ",".join(xs) + ")", st.lists(inner))
    ),
    max_leaves=16,
)


@st.composite
def mangled(draw: st.DrawFn, base: st.SearchStrategy[str]) -> str:
    """A string with a few edits: characters dropped, junk put in, cut short, a part repeated."""
    text = draw(base)
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(text)))
        edit = draw(st.sampled_from(["insert", "delete", "cut", "repeat"]))
        if edit == "insert":
            text = text[:at] + draw(st.text(SPECIAL, min_size=1, max_size=3)) + text[at:]
        elif edit == "delete":
            text = text[:at] + text[at + 1 :]
        elif edit == "cut":
            text = text[:at]
        else:
            text = text[:at] + text[at : at + 8] * draw(st.integers(2, 20)) + text[at:]
    return text


def _param(name: str, text: str) -> str:
    return f"{name}={text}"


def _keys(signs: list[str]) -> st.SearchStrategy[str]:
    return st.lists(
        st.builds(lambda s, f: s + f, st.sampled_from(signs), st.one_of(good_field, field)),
        max_size=4,
    ).map(",".join)


good_part = st.one_of(
    good_expression,
    good_expression,
    st.builds(_param, good_field, held),  # field=value
    _keys(["", "-", "+"]).map(lambda keys: _param("order", keys)),
    _keys(["-", "+"]).map(lambda keys: _param("select", keys)),
    st.builds(_param, st.sampled_from(["limit", "offset"]), st.integers(0, 200).map(str)),
    st.just("render()"),
)
query_part = st.one_of(
    good_part,
    good_part,
    mangled(expression),
    st.builds(_param, field, value),
    _keys(["", "-", "+", " -", "-."]).map(lambda keys: _param("order", keys)),
    _keys(["", "-", "+", " -", "-."]).map(lambda keys: _param("select", keys)),
    st.builds(
        _param,
        st.sampled_from(["limit", "offset"]),
        st.one_of(
            st.integers(-5, 10**6).map(str),
            st.sampled_from(["", " 7 ", "+3", "1_0", "\u0663", "1e2", "9" * 5000, "0x10", "-0"]),
        ),
    ),
    st.sampled_from(["render()=", "render( )", "=", "%", "%zz", "%C3%28", "a=b=c"]),
)


@st.composite
def query_strings(draw: st.DrawFn) -> str:
    parts = st.lists(good_part, max_size=4) if draw(st.booleans()) else st.lists(query_part)
    text = "&".join(draw(parts))
    if draw(st.booleans()):  # as a client percent-encodes it (the separators kept)
        text = quote(text, safe="&=" + draw(st.sampled_from(["", "(),'", "()"])))
    return text


# ---------------------------------------------------------------- worst cases

DEEP_AND = "and(" * 10_000 + "eq(event,a)" + ")" * 10_000
DEEP_NOT = "not(" * 10_000 + "eq(event,a)" + ")" * 10_000
DEEP_GROUP = "in(event," + "(" * 10_000 + "a" + ")" * 10_000 + ")"
DEEP_ANY = "any(documents," * 10_000 + "eq(id,a)" + ")" * 10_000
OPEN_ONLY = "eq(" * 10_000
BIG_IN = "in(event,(" + ",".join(f"platform.x.y.v{i}" for i in range(100_000)) + "))"
# the largest `in()` that fits in a request line (uWSGI's buffer is 64 KiB)
FULL_LINE_IN = "in(object.id,(" + ",".join("a" * 32_000) + "))"
MANY_AND = "and(" + ",".join(["eq(event,a)"] * 100) + ")"  # the limit of expressions
TOO_MANY = "&".join(["eq(event,a)"] * 20_000)
STARS = "like(details,'" + "*a" * 5_000 + "*b')"  # never matches the 100 000 a's
STARS_FOLD = "ilike(details,'" + "*A" * 5_000 + "*')"
STARS_SUMMARY = "ilike(summary,'*" + "ß*" * 2_000 + "x')"
MANY_LIKES = "or(" + ",".join(["like(details,'*a*a*a*b')"] * 99) + ")"
LONG_QUOTE = "eq(details,'" + "x" * 60_000
LONG_VALUE = "eq(details," + "x" * 60_000 + ")"
COMMAS = "eq(" + "," * 60_000 + ")"
SPACES = "eq(" + " " * 60_000 + "details,a)"
PARENS = "(" * 30_000 + ")" * 30_000
CLOSERS = ")" * 60_000


@SETTINGS
@given(st.one_of(good_expression, mangled(expression)))
@example(DEEP_AND)
@example(DEEP_NOT)
@example(DEEP_GROUP)
@example(DEEP_ANY)
@example(OPEN_ONLY)
@example(BIG_IN)
@example(FULL_LINE_IN)
@example(MANY_AND)
@example(STARS)
@example(STARS_FOLD)
@example(STARS_SUMMARY)
@example(MANY_LIKES)
@example(LONG_QUOTE)
@example(LONG_VALUE)
@example(COMMAS)
@example(SPACES)
@example(PARENS)
@example(CLOSERS)
def test_rql_expressions(text: str) -> None:
    cpu_bound(text, lambda: run_expression(text))


@SETTINGS
@given(st.one_of(st.text(), st.text(SPECIAL + string.ascii_letters)))
def test_rql_random_text(text: str) -> None:
    cpu_bound(text, lambda: run_expression(text))


@SETTINGS
@given(query_strings())
@example(quote(DEEP_AND))
@example(BIG_IN)
@example(FULL_LINE_IN)
@example(TOO_MANY)
@example(STARS + "&" + STARS_FOLD + "&order=-details,summary&select=-details")
@example(MANY_LIKES)
@example("&".join(["eq(event,platform.commerce.order.created)"] * 100))
@example("&".join(["event=a"] * 1000))
@example("select=" + ",".join(["-a.b.c"] * 10_000))
@example("select=" + ",".join(f"-a{i}.b.c" for i in range(10_000)))
@example("order=" + ",".join(["-timestamp"] * 10_000))
@example("limit=" + "9" * 60_000)
@example("%" * 60_000)
@example("=" * 60_000)
@example("&" * 60_000)
def test_rql_query_strings(query_string: str) -> None:
    check_query(query_string)


@SETTINGS
@given(st.one_of(st.text(), st.binary().map(lambda b: b.decode("latin-1"))))
def test_rql_random_query_strings(query_string: str) -> None:
    # as the request path reads QUERY_STRING: latin-1 bytes, decoded as UTF-8
    check_query(query_string.encode("latin-1", "replace").decode("utf-8", "replace"))


def _parsed(text: str) -> Any:
    try:
        return parse(text)
    except RQLError as error:
        return ("RQLError", str(error), error.part)


NEVER = re.compile(r"(?!)")


@SETTINGS
@given(st.one_of(good_expression, mangled(expression), st.text(SPECIAL + "ab \t")))
@example("and(" * 32 + "eq(a,b)" + ")" * 32)
@example("and(" * 31 + "eq(a, b )" + ")" * 31)
@example("in(a,( x ,,y\t))")
def test_bare_values_read_in_one_go_as_item_by_item(text: str) -> None:
    """The parser's fast path for a list of bare values gives what the general path gives."""
    fast = _parsed(text)
    with mock.patch.object(rql, "_BARE_VALUES", NEVER):
        assert _parsed(text) == fast


# A record whose top-level strings are anything: the store reads them from its bytes.
scalar_text = st.one_of(
    st.text(max_size=30),
    st.text('"\\,:{}[] ab', max_size=20),
    st.sampled_from(['"', "\\", '\\"', '","details":"x', "}", "\u2028", "\x00", "é"]),
)


@SETTINGS
@given(
    st.fixed_dictionaries(
        {},
        optional={
            name: st.one_of(scalar_text, st.none(), st.integers(), st.booleans())
            for name in ("event", "summary", "details", "timestamp", "type")
        },
    ),
    st.sampled_from(["event", "summary", "details", "timestamp", "type"]),
    st.sampled_from(["eq", "ne", "like", "ilike", "gt", "in"]),
    scalar_text,
)
def test_stored_values_read_as_the_dicts_hold_them(
    record: dict[str, Any], name: str, operator: str, text: str
) -> None:
    """A filter on a top-level string finds the same records in the store's bytes as in dicts."""
    stores = MemoryBackend(10)
    Resources(ROUTER.operations, SPEC, stores, BEHAVIOURS)
    store = stores.open(RECORDS)
    store.insert({"id": "AUD-0000-0000-0000-0001", **record})
    literal = "'" + text.replace("'", "") + "'"
    argument = f"({literal})" if operator == "in" else literal
    query = decode(quote(f"{operator}({name},{argument})", safe="(),'"))
    try:
        chosen = filtering(query, KNOWN)
    except Problem:
        return
    found = store.search(Search(chosen))
    where = plain_filter(query)
    assert where is not None
    assert found.total == int(where(decode_item(next(iter(store))))), (record, query)


# ================================================================ fault rules

CONTROL = load_spec(CONTROL_SPEC)
BOOKS = [RuleBook(SPEC, CONTROL, ROUTER, strict) for strict in (False, True)]
SCENARIOS = Path(tempfile.mkdtemp(prefix="scenario-fuzz-"))
FILE_NUMBERS = itertools.count()
REQUESTS = [
    Seen("GET", "/public/v1/audit/records", {}, {}),
    Seen("POST", "/public/v1/audit/records", {}, {"content-type": "application/json"}, {"a": 1}),
    Seen("GET", "/public/v1/audit/records/AUD-1", {"select": "-a"}, {"x-a": "1"}),
    Seen("PUT", "/public/v1/audit/event-types/AET-1", {}, {}, [1, {"a": None}]),
    Seen("DELETE", "/", {}, {}, "text"),
]
PATHS = [
    "/public/v1/audit/records",
    "/public/v1/audit/records/{id}",
    "/public/v1/audit/records/AUD-1",
    "/public/v1/audit/event-types/{id}",
    "/PUBLIC/v1/audit/records/",
    "/",
    "",
    "x",
    "/{",
    "/}{a}{",
    "/(.*)+$",
    "/[",
    "/_mock/health",
    "/" + "{x}" * 2_000,
]

json_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=10),
)
json_value = st.recursive(
    json_scalar,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)
anything = st.one_of(json_value, st.floats(), st.integers(-(2**70), 2**70))
number = st.one_of(
    st.integers(-10, 700_000), st.floats(-1, 700_000), st.sampled_from([0, 1, 600_000, 600_001])
)
problem_body = st.fixed_dictionaries(
    {"type": st.text(max_size=5), "title": st.text(max_size=5), "status": st.integers(100, 599)},
    optional={"traceId": st.text(max_size=5), "errors": json_value, "extra": json_value},
)
rule = st.fixed_dictionaries(
    {},
    optional={
        "method": st.one_of(
            st.sampled_from(["GET", "post", "PUT", "DELETE", "PATCH", "", "G E T"]), anything
        ),
        "path": st.one_of(st.sampled_from(PATHS), st.text(max_size=20), anything),
        "when": st.one_of(
            st.fixed_dictionaries(
                {},
                optional={
                    "headers": st.dictionaries(st.text(max_size=5), st.text(max_size=5)),
                    "query": st.dictionaries(st.text(max_size=5), st.text(max_size=5)),
                    "body": json_value,
                    "bogus": json_value,
                },
            ),
            anything,
        ),
        "status": st.one_of(st.integers(90, 610), st.sampled_from([500.0, True, "500"])),
        "body": st.one_of(json_value, problem_body),
        "headers": st.one_of(
            st.dictionaries(
                st.one_of(st.sampled_from(["Retry-After", "Content-Type"]), st.text(max_size=8)),
                st.one_of(st.text(max_size=8), st.integers()),
                max_size=3,
            ),
            anything,
        ),
        "fault": st.one_of(st.sampled_from([*CONNECTION_FAULTS, "bogus", ""]), anything),
        "delay_ms": st.one_of(
            number,
            st.fixed_dictionaries({"uniform": st.lists(number, max_size=3)}),
            st.fixed_dictionaries({"median": number}, optional={"sigma": st.floats(-1, 6)}).map(
                lambda shape: {"lognormal": shape}
            ),
            anything,
        ),
        "stream": st.one_of(
            st.fixed_dictionaries(
                {},
                optional={
                    name: st.one_of(st.integers(-1, 700_000), anything)
                    for name in ("cut_after", "item_count", "keepalive_ms")
                },
            ),
            anything,
        ),
        "times": st.one_of(st.integers(-1, 5), anything),
        "after": st.one_of(st.integers(-1, 5), anything),
        "probability": st.one_of(st.floats(-0.5, 1.5), anything),
        "session": st.one_of(st.sampled_from(["a", "default", "bad name", ""]), anything),
        "bogus": anything,
    },
)


# rules the schema takes (the checks against the API spec may still refuse some)
good_delay = st.one_of(
    st.integers(0, 600_000),
    st.floats(0, 600_000),
    st.lists(st.integers(0, 600_000), min_size=2, max_size=2).map(lambda u: {"uniform": u}),
    st.fixed_dictionaries(
        {"median": st.floats(0, 600_000)}, optional={"sigma": st.floats(0, 5)}
    ).map(lambda shape: {"lognormal": shape}),
)
token = st.text(string.ascii_letters + string.digits + "!#$%&'*+.^_`|~-", min_size=1, max_size=8)
latin1 = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"))
good_rule = st.fixed_dictionaries(
    {},
    optional={
        "method": st.sampled_from(["GET", "post", "PUT", "DELETE", "Patch"]),
        "path": st.sampled_from([p for p in PATHS if p.startswith("/")]),
        "when": st.fixed_dictionaries(
            {},
            optional={
                "headers": st.dictionaries(token.map(str.lower), st.text(max_size=5), max_size=2),
                "query": st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2),
                "body": json_value,
            },
        ),
        "body": st.one_of(json_value, problem_body),
        "headers": st.dictionaries(
            st.one_of(st.sampled_from(["Retry-After", "Content-Type"]), token),
            latin1,
            max_size=3,
        ),
        "times": st.integers(1, 3),
        "after": st.integers(0, 3),
        "probability": st.floats(0, 1),
        "session": st.sampled_from(["a", "default", "x.y-z_1"]),
    },
).flatmap(
    lambda base: (
        st.fixed_dictionaries(
            {},
            optional={
                "status": st.integers(200, 599),
                "fault": st.sampled_from(list(CONNECTION_FAULTS)),
                "delay_ms": good_delay,
                "stream": st.fixed_dictionaries(
                    {},
                    optional={
                        "cut_after": st.integers(0, 10),
                        "item_count": st.integers(0, 10),
                        "keepalive_ms": st.integers(0, 600_000),
                    },
                ).filter(bool),
            },
        )
        .filter(bool)
        .map(lambda answer: {**base, **answer})
    )
)


def add_rule(book: RuleBook, given: Any) -> None:
    """As POST /_mock/faults and a scenario add a rule: shape, then check, then add and use."""
    if book.shape_errors(given):
        return
    try:
        documented = book.check(given)
    except Problem as problem:
        refused(problem)
        return
    use_rule(given, documented)


def use_rule(given: dict[str, Any], documented: bool) -> None:
    faults = Faults(seed=1)
    added = faults.add(given, documented)
    codec.dumps(added.state())
    for seen in REQUESTS:
        action = faults.decide(seen)
        if action is None:
            continue
        assert 0 <= action.delay_ms <= 600_000, action
        assert action.status is None or 100 <= action.status <= 599, action


@SETTINGS
@given(st.one_of(good_rule, good_rule, rule, anything))
@example({"status": 500, "path": "/" + "x" * 1_000_000})
@example({"status": 500, "path": "/" + "{x}" * 100_000})
@example({"status": 500, "method": "A" * 1_000_000})
@example({"status": 500, "when": {"body": json.loads("[" * 60 + "]" * 60)}})
@example({"status": 500, "headers": {"X-A": "a\r\nb"}})
@example({"status": 500, "headers": {"A B": "x"}})
@example({"status": 500, "headers": {"Content-Length": "5"}})
@example({"status": 204, "body": "x"})
@example({"status": 100})
@example({"delay_ms": float("nan")})
@example({"delay_ms": {"uniform": [float("nan"), 1]}})
@example({"delay_ms": {"lognormal": {"median": 600_000, "sigma": 5}}})
@example({"status": 500, "probability": float("nan")})
@example({"status": 400, "body": {"type": "x", "title": "y", "status": 400, "traceId": "z"}})
def test_fault_rules(given: Any) -> None:
    for book in BOOKS:
        cpu_bound(given, partial(add_rule, book, given))


# ---------------------------------------------------------------- paths and Prefer


def regex_of(template: str) -> re.Pattern[str]:
    """A rule's path as a regex: how `path_pattern` used to match, backtracking and all (and
    with one slip mended: a literal part that begins with `{`, as in `/{`, was a placeholder)."""
    parts = re.split(r"(\{[^{}/]+\})", template.rstrip("/") or "/")
    regex = "".join("[^/]+" if i % 2 else re.escape(p) for i, p in enumerate(parts))
    return re.compile(f"^{regex}/?$", re.IGNORECASE)


path_text = st.text("ab/{}xX.", max_size=14)


@SETTINGS
@given(path_text, path_text)
@example("/{a}{b}", "/xy")
@example("/{a}{b}", "/x")
@example("/a{b}a", "/aXa/")
@example("/{a}.{b}", "/x.y.z")
@example("/", "//")
@example("/{}", "/{}")
@example("{", "X")
def test_paths_match_as_the_regex_of_the_template_did(template: str, path: str) -> None:
    assert path_pattern(template).match(path) == bool(regex_of(template).match(path))


@SETTINGS
@given(path_text)
@example("/" + "{x}" * 40 + "!")
@example("/" + "{x}a" * 40 + "!")
def test_a_path_is_matched_in_linear_time(template: str) -> None:
    pattern = path_pattern(template)
    for path in ("/" + "a" * 60_000, "/" + "aX" * 30_000 + "/", "/a/" * 20_000):
        cpu_bound(template, partial(pattern.match, path))


prefer = st.lists(
    st.one_of(
        st.builds(
            lambda name, space, value: f"{name}{space}={space}{value}",
            st.sampled_from(["code", "delay", "CODE", "Delay", "cod"]),
            st.sampled_from(["", " ", "\t"]),
            st.one_of(
                st.integers(-1, 10**12).map(str),
                st.sampled_from(["0" * 30 + "200", "9" * 5_000, "\u0664\u0660\u0663", ""]),
            ),
        ),
        st.text(max_size=10),
    ),
    max_size=4,
).map(", ".join)


@SETTINGS
@given(st.one_of(prefer, st.text()))
@example("code=" + "9" * 60_000)
@example("delay=" + "9" * 60_000)
@example("code=101")
@example("code=" + "\u0664\u0660\u0663")  # Arabic-Indic digits
@example("code=delay=" * 6_000)
def test_prefer_headers(header: str) -> None:
    action = cpu_bound(header, lambda: preferred(header))
    if action is not None:
        assert action.status is None or 200 <= action.status <= 599
        assert 0 <= action.delay_ms <= 600_000


# ---------------------------------------------------------------- scenario files


def _alias_bomb(where: str) -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    for n in range(1, 10):
        lines.append(f"a{n}: &a{n} [" + ", ".join([f"*a{n - 1}"] * 9) + "]")
    return "\n".join([*lines, "rules:", f"  - {{status: 500, {where}: *a9}}"]) + "\n"


@st.composite
def scenario_texts(draw: st.DrawFn) -> tuple[str, bytes]:
    rules = draw(st.lists(st.one_of(good_rule, good_rule, rule, anything), max_size=4))
    data: Any = {"rules": rules} if draw(st.booleans()) else rules
    suffix = draw(st.sampled_from([".yaml", ".json"]))
    if suffix == ".json":
        text = json.dumps(data)  # NaN and Infinity as Python writes them
    else:
        text = yaml.safe_dump(data, allow_unicode=draw(st.booleans()))
    return suffix, text.encode()


def names_the_file(message: str, path: Path) -> bool:
    """`FILE: what`, or `FILE:LINE:COL: what` for a syntax error: one line."""
    return "\n" not in message and bool(re.match(rf"{re.escape(str(path))}(:\d+:\d+)?: ", message))


def run_scenario(suffix: str, content: bytes) -> None:
    path = SCENARIOS / f"scenario-{next(FILE_NUMBERS)}{suffix}"
    path.write_bytes(content)
    try:
        for book in BOOKS:
            cpu_bound(content, partial(scenario_once, path, book))
    finally:
        path.unlink()


def scenario_once(path: Path, book: RuleBook) -> None:
    """A scenario file loaded, then its rules added as each new session adds them."""
    try:
        rules = load_scenario(path, book)
    except ScenarioError as error:
        assert names_the_file(str(error), path)  # noqa: PT017
        return
    for rule in rules:
        use_rule(rule, book.check(rule))


@st.composite
def mangled_scenarios(draw: st.DrawFn) -> tuple[str, bytes]:
    suffix, content = draw(scenario_texts())
    text = draw(mangled(st.just(content.decode())))
    return suffix, text.encode()


NESTED = "[" * 10_000 + "]" * 10_000
BOMBS = [_alias_bomb("body"), _alias_bomb("when: {body")[:-1] + "}\n"]


@SETTINGS
@given(st.one_of(scenario_texts(), mangled_scenarios()))
@example((".yaml", b"\xff\xfe- {status: 500}"))
@example((".json", b'[{"status": 500, "body": "\xe9"}]'))
@example((".yaml", NESTED.encode()))
@example((".json", NESTED.encode()))
@example((".yaml", ("- {status: 500, body: " + "[" * 200 + "]" * 200 + "}").encode()))
@example((".json", ('[{"status": 500, "when": {"body": ' + "[" * 900 + "]" * 900 + "}}]").encode()))
@example((".yaml", BOMBS[0].encode()))
@example((".yaml", BOMBS[1].encode()))
@example((".yaml", b"- &a {status: 500, when: {body: [*a]}}"))
@example((".yaml", b"- {status: 500, probability: .nan}"))
@example((".yaml", b"- {delay_ms: .nan}"))
@example((".json", b'[{"delay_ms": NaN}]'))
@example((".json", b'[{"status": 500, "probability": NaN}]'))
@example((".yaml", b"- {status: 500, when: {headers: {1: a}}}"))
@example((".yaml", b"- {status: 500, when: {query: {a: 1}}}"))
@example((".yaml", b"- {status: 500, when: {body: {1: a}}}"))
@example((".yaml", b"- {status: 500, when: {body: 2025-01-01}}"))
@example((".yaml", b"- {status: 500, body: !!binary aGVsbG8=}"))
@example((".yaml", b"- {status: 500, when: {body: !!set {a}}}"))
@example((".yaml", b"- !!python/object:object {}"))
@example((".yaml", b"rules: {status: 500}"))
@example((".yaml", b"\t- {status: 500}"))
@example((".yaml", b""))
@example((".json", b""))
@example((".yaml", b"[" * 60_000))
def test_scenario_files(scenario: tuple[str, bytes]) -> None:
    run_scenario(*scenario)


@pytest.fixture(scope="module", autouse=True)
def _scenario_directory() -> Iterator[None]:
    yield
    for leftover in SCENARIOS.iterdir():
        leftover.unlink()
    SCENARIOS.rmdir()


def test_cpu_bound_sees_a_slow_block() -> None:
    """The CPU measure can see a slow input (a check of `cpu_bound` itself)."""
    slow: Callable[[], int] = lambda: sum(range(10_000_000))  # noqa: E731
    with pytest.raises(AssertionError, match="ms of CPU time"):
        cpu_bound("a busy loop", slow)


# ================================================================ what the fuzzers found


def test_an_expression_longer_than_a_request_line_is_refused_unread() -> None:
    with pytest.raises(RQLError, match="longer than 65536 characters"):
        cpu_bound(BIG_IN, lambda: parse(BIG_IN))


def test_more_filter_parts_than_operators_allowed_are_refused_unread() -> None:
    with pytest.raises(Problem) as refusal:
        cpu_bound(TOO_MANY, lambda: filtering(decode(TOO_MANY), KNOWN))
    assert refusal.value.errors == {"eq(event,a)": ["The filter has more than 100 expressions."]}


def test_a_list_of_bare_values_reads_as_the_item_by_item_reading_did() -> None:
    """The fast path for `a,b, c)`; quoted values, groups and calls still go item by item."""
    assert parse("in(a,( x ,,y\t))") == Call(
        "in", (Value("a"), Group((Value("x"), Value(""), Value("y"))))
    )
    assert parse("and(eq(a,b),c(d), e ( ))") == Call(
        "and",
        (Call("eq", (Value("a"), Value("b"))), Call("c", (Value("d"),)), Call("e", (Value(""),))),
    )
    assert parse('in(a,b\'c,"d")') == Call("in", (Value("a"), Value("b'c"), Value("d", True)))


def test_a_rule_path_cannot_make_matching_backtrack() -> None:
    """`/{a}{b}…!` as a regex took seconds (exponential) on every request it was tried on."""
    pattern = path_pattern("/" + "{x}" * 30 + "!")
    assert not cpu_bound("a path with 30 placeholders", lambda: pattern.match("/" + "a" * 60))
    assert pattern.match("/" + "a" * 30 + "!/")
    assert path_pattern("/files/{name}.{ext}").match("/FILES/a.b.json")
    assert not path_pattern("/files/{name}.{ext}").match("/files/.json")


@pytest.mark.parametrize(
    ("header", "status", "delay"),
    [
        ("code=101", None, 0.0),  # a 1xx answer left the client waiting for the real one
        ("code=" + "9" * 5_000, None, 0.0),  # int() refused it: an error in the gate
        ("delay=" + "0" * 30 + "250", None, 250.0),
        ("delay=" + "9" * 5_000, None, 600_000.0),
        ("code=\u0664\u0660\u0663", None, 0.0),  # not ASCII digits: no code
        ("code=503, delay=10", 503, 10.0),
    ],
)
def test_prefer_takes_ascii_numbers_and_final_statuses(
    header: str, status: int | None, delay: float
) -> None:
    action = preferred(header)
    if status is None and delay == 0.0:
        assert action is None or (action.status, action.delay_ms) == (None, 0.0)
    else:
        assert action is not None
        assert (action.status, action.delay_ms) == (status, delay)


@pytest.mark.parametrize(
    ("rule", "errors"),
    [
        ({"status": 500, "headers": {"X-A": "a\r\nX-Injected: 1"}}, ["headers.X-A"]),
        ({"status": 500, "headers": {"X-A": "\u2192"}}, ["headers.X-A"]),
        ({"status": 500, "headers": {"A B": "x"}}, ["headers.A B"]),
        ({"status": 500, "headers": {"X\r\nY": "x"}}, ["headers.X\r\nY"]),
        ({"status": 500, "headers": {"content-length": "5"}}, ["headers.content-length"]),
        (
            {"status": 500, "headers": {"Transfer-Encoding": "chunked"}},
            ["headers.Transfer-Encoding"],
        ),
        ({"status": 100}, ["status"]),
        ({"status": 204, "body": "x"}, ["body"]),
        ({"status": 304, "body": None}, ["body"]),
    ],
)
def test_a_rule_whose_answer_http_cannot_carry_is_a_400(
    make_app: Callable[..., Any], rule: dict[str, Any], errors: list[str]
) -> None:
    """CR/LF in a header went out as it was (another header, or a body, smuggled into the
    answer); a second Content-Length, a 1xx status or a 204 with a body broke the framing."""
    api = make_app().test_client()
    answer = api.post("/_mock/faults", json=rule)
    assert answer.status_code == 400, answer.get_data(as_text=True)
    assert list(answer.json["errors"]) == errors
    assert api.get("/_mock/faults").json["data"] == []


def test_a_rule_that_http_can_carry_is_taken(make_app: Callable[..., Any]) -> None:
    api = make_app().test_client()
    rule = {"status": 503, "headers": {"Retry-After": "1", "X-Note": "caf\u00e9\tok"}}
    assert api.post("/_mock/faults", json=rule).status_code == 201
    assert api.post("/_mock/faults", json={"status": 204}).status_code == 201


@pytest.mark.parametrize("name", ["delay_ms", "probability"])
def test_nan_is_no_delay_or_chance(name: str) -> None:
    """NaN passed the schema's minimum and maximum: a NaN wait, a rule that always fired."""
    with pytest.raises(Problem) as refusal:
        BOOKS[0].check({"status": 500, name: float("nan")})
    assert list(refusal.value.errors or {}) == [name]


@pytest.mark.parametrize(
    ("suffix", "content", "message"),
    [
        (".yaml", b"\xff- {status: 500}", ":1:1: not UTF-8 text"),
        (".yaml", NESTED.encode(), "nested deeper than the maximum of 64 levels"),
        (".json", NESTED.encode(), "nested deeper than the maximum of 64 levels"),
        (".yaml", b"- &a {status: 500, when: {body: [*a]}}", "nested deeper than the maximum"),
        (".yaml", BOMBS[0].encode(), "more than 100000 values"),
        (".yaml", BOMBS[1].encode(), "more than 100000 values"),
        (".yaml", b"- {status: 500, probability: .nan}", "[0].probability is nan"),
        (".json", b'[{"delay_ms": NaN}]', "NaN is not valid JSON"),
        (".yaml", b"- {status: 500, when: {headers: {1: a}}}", "not a string: 1"),
        (".yaml", b"- {status: 500, when: {body: 2025-01-01}}", "a YAML date"),
        (".yaml", b"- {status: 500, when: {body: " + b"9" * 5000 + b"}}", "4300 digits"),
    ],
)
def test_a_scenario_file_that_is_not_json_values_is_refused_by_name(
    suffix: str, content: bytes, message: str
) -> None:
    """Each of these escaped as another error (UnicodeDecodeError, RecursionError), took
    minutes (an alias bomb), or crashed start-up later (`1.lower()`)."""
    path = SCENARIOS / f"refused{suffix}"
    path.write_bytes(content)
    try:
        with pytest.raises(ScenarioError) as refusal:
            cpu_bound(content, lambda: load_scenario(path, BOOKS[0]))
    finally:
        path.unlink()
    assert names_the_file(str(refusal.value), path)
    assert message in str(refusal.value)
