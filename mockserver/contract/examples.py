"""Values made from a schema: what an answer holds when the spec gives no example.

`Maker.value(schema, rng)` walks the schema (`$ref`s, `allOf` folded, the first fitting
`oneOf`/`anyOf` branch, OpenAPI 3.0 `nullable` and 3.1 type lists) and makes a value that
conforms to it: every declared member (only the required ones below a schema met again on the
way down, so recursive schemas end), enums, patterns (sampled by `contract.strings`), formats,
lengths and bounds. Where a member's name or format says what it holds (an email, a date, a
country, a company name...), Faker makes a realistic value; an `id` without a pattern gets a
platform-style id (`ORD-1234-5678-9012`) whose prefix comes from the schema's name.

Everything comes from the `random.Random` passed in, so the same seed makes the same value.
"""

from __future__ import annotations

import random
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from mockserver.contract.schemas import Resolve, folder
from mockserver.contract.strings import sample

if TYPE_CHECKING:
    from faker import Faker

MAX_DEPTH = 3  # below this, only required members are made (and arrays hold nothing)
WRITING = "writing"  # a request body: no readOnly members
READING = "reading"  # an answer: no writeOnly members
_EPOCH = datetime(2025, 1, 1, tzinfo=UTC)


@dataclass
class _Walk:
    """One value being made: the random source, the direction, the `$ref`s on the way down."""

    rng: random.Random
    direction: str
    refs: list[str] = field(default_factory=list)
    depth: int = 0


class Maker:
    """Makes values for the schemas of one spec."""

    def __init__(self, resolve: Resolve, locale: str = "en_US") -> None:
        self.resolve = resolve
        self.fold = folder(resolve)
        self.locale = locale
        self._faker: Faker | None = None
        self._seed: int | None = None  # the seed for Faker, set once it is used
        self._allowed: dict[int, tuple[Any, frozenset[str] | None]] = {}

    @property
    def faker(self) -> Faker:
        """Faker, made on first use (importing it and loading its providers is a tenth of
        the server's start-up) and seeded from the value being made."""
        if self._faker is None:
            from faker import Faker

            self._faker = Faker(self.locale)
        if self._seed is not None:
            self._faker.seed_instance(self._seed)
            self._seed = None
        return self._faker

    def value(self, schema: Any, rng: random.Random, direction: str = READING) -> Any:
        """A value that conforms to `schema`."""
        self._seed = rng.getrandbits(32)
        return self._value(schema, _Walk(rng, direction), "")

    def conform(self, value: Any, schema: Any, rng: random.Random) -> Any:
        """`value` (an answer) made to conform to `schema`: members a closed part does not
        allow are left out, and so are nulls where the member's schema takes none (a create
        may take `null` where the answer's schema does not); missing required members are
        made (a stored item answered by an operation whose schema says more, or less, than
        the item holds)."""
        self._seed = rng.getrandbits(32)
        return self._conform(value, schema, _Walk(rng, READING))

    def _conform(self, value: Any, schema: Any, walk: _Walk) -> Any:
        target, _ = self._target(schema)
        if not isinstance(target, dict):
            return value
        effective = self._effective(target)
        if isinstance(value, list) and "items" in effective:
            return [self._conform(item, effective["items"], walk) for item in value]
        if not isinstance(value, dict):
            return value
        properties = effective.get("properties", {})
        allowed = self.allowed(target)
        out = {
            key: self._conform(item, properties[key], walk) if key in properties else item
            for key, item in value.items()
            if (allowed is None or key in allowed)
            and not (item is None and key in properties and not self.takes_null(properties[key]))
        }
        for key in effective.get("required", []):
            if key not in out and key in properties:
                out[key] = self._member(properties[key], walk, key)
        return out

    # ------------------------------------------------------------ the walk

    def _value(self, schema: Any, walk: _Walk, name: str) -> Any:
        schema, ref = self._target(schema)
        if not isinstance(schema, dict):
            return None
        if ref is not None:
            walk.refs.append(ref)
        walk.depth += 1
        try:
            return self._node(self._effective(schema), walk, name)
        finally:
            walk.depth -= 1
            if ref is not None:
                walk.refs.pop()

    def _effective(self, schema: dict[str, Any]) -> dict[str, Any]:
        """The schema with its `allOf` parts folded in, and only the members every closed part
        (`additionalProperties: false`) allows: each part holds the whole object to its own
        members, so a member one of them does not declare would break it."""
        merged = self.fold(schema)
        allowed = self.allowed(schema)
        properties = merged.get("properties")
        if allowed is None or not isinstance(properties, dict) or allowed >= properties.keys():
            return merged
        kept = {k: v for k, v in properties.items() if k in allowed}
        return {**merged, "properties": kept}

    def allowed(self, schema: Any, seen: frozenset[int] = frozenset()) -> frozenset[str] | None:
        """The members an object may hold under a schema's closed parts (None: any)."""
        schema, _ = self._target(schema)
        if not isinstance(schema, dict) or id(schema) in seen:
            return None
        key = id(schema)
        if key in self._allowed:
            return self._allowed[key][1]
        found: frozenset[str] | None = None
        if schema.get("additionalProperties") is False:
            found = frozenset(schema.get("properties", {}))
        for part in schema.get("allOf", []):
            inner = self.allowed(part, seen | {key})
            if inner is not None:
                found = inner if found is None else found & inner
        self._allowed[key] = (schema, found)
        return found

    def takes_null(self, schema: Any, seen: frozenset[int] = frozenset()) -> bool:
        """Whether `null` is a value of the schema, as the response check reads it: a `type`
        takes it with `nullable: true` (each schema object on its own, OpenAPI 3.0) or a `null`
        type (3.1); every `allOf` part must take it, one `anyOf`/`oneOf` branch; an `enum`
        must list it; a schema that says none of these takes anything."""
        target, _ = self._target(schema)
        if not isinstance(target, dict) or id(target) in seen:
            return True
        seen = seen | {id(target)}
        kind = target.get("type")
        if kind is not None and not (
            target.get("nullable") is True
            or kind == "null"
            or (isinstance(kind, list) and "null" in kind)
        ):
            return False
        if isinstance(target.get("enum"), list) and None not in target["enum"]:
            return False
        parts = target.get("allOf")
        if isinstance(parts, list) and not all(self.takes_null(p, seen) for p in parts):
            return False
        for key in ("anyOf", "oneOf"):
            branches = target.get(key)
            if isinstance(branches, list) and not any(self.takes_null(b, seen) for b in branches):
                return False
        return True

    def _target(self, schema: Any) -> tuple[Any, str | None]:
        """The schema a `$ref` points at, and the last ref followed (None: none)."""
        ref = None
        hops = 0
        while isinstance(schema, dict) and isinstance(schema.get("$ref"), str) and hops < 32:
            ref = schema["$ref"]
            schema = self.resolve(ref)
            hops += 1
        return schema, ref

    def _node(self, schema: dict[str, Any], walk: _Walk, name: str) -> Any:
        if "const" in schema:
            return schema["const"]
        if isinstance(schema.get("enum"), list) and schema["enum"]:
            usable = [v for v in schema["enum"] if v is not None] or schema["enum"]
            return walk.rng.choice(usable)
        branches = schema.get("oneOf") or schema.get("anyOf")
        if isinstance(branches, list) and branches:
            return self._branch(schema, branches, walk, name)
        kind = _type(schema)
        if kind == "null":
            return None
        maker = self._makers().get(kind or _implied(schema))
        return maker(schema, walk, name) if maker is not None else {}

    def _makers(self) -> dict[str, Callable[[dict[str, Any], _Walk, str], Any]]:
        return {
            "object": self._object,
            "array": self._array,
            "string": self._string,
            "integer": self._integer,
            "number": self._number,
            "boolean": lambda schema, walk, name: walk.rng.random() < 0.5,
        }

    def _branch(self, schema: dict[str, Any], branches: list[Any], walk: _Walk, name: str) -> Any:
        """One branch of a `oneOf`/`anyOf` (not `null`), with the schema's own members."""
        usable = [b for b in branches if self._target(b)[0] != {"type": "null"}] or branches
        rest = {k: v for k, v in schema.items() if k not in ("oneOf", "anyOf")}
        chosen = usable[0]
        if len(rest) > 1 or "properties" in rest:
            return self._value({"allOf": [rest, chosen]}, walk, name)
        return self._value(chosen, walk, name)

    def _deep(self, walk: _Walk) -> bool:
        """Whether the walk is below a schema met again, or too deep: make as little as fits."""
        return walk.depth > MAX_DEPTH or len(walk.refs) != len(set(walk.refs))

    def _object(self, schema: dict[str, Any], walk: _Walk, name: str) -> Any:
        required = set(schema.get("required", []))
        skip = "readOnly" if walk.direction == WRITING else "writeOnly"
        out: dict[str, Any] = {}
        for member, sub in schema.get("properties", {}).items():
            if member not in required and (self._deep(walk) or self._flag(sub, skip)):
                continue
            if member in required or not self._flag(sub, skip):
                out[member] = self._member(sub, walk, member)
        if not out and walk.refs and name == "" and "properties" not in schema:
            return {}
        return out

    def _member(self, schema: Any, walk: _Walk, member: str) -> Any:
        value = self._value(schema, walk, member)
        if member == "id" and isinstance(value, str) and not _has_pattern(self.fold, schema):
            return self._platform_id(walk, value)
        return value

    def _flag(self, schema: Any, flag: str) -> bool:
        found, _ = self._target(schema)
        return isinstance(found, dict) and self.fold(found).get(flag) is True

    def _array(self, schema: dict[str, Any], walk: _Walk, name: str) -> Any:
        low = int(schema.get("minItems", 0))
        high = int(schema.get("maxItems", max(low, 1)))
        count = low if self._deep(walk) else min(max(low, 1), high)
        items = schema.get("items", {})
        made = [self._value(items, walk, name) for _ in range(count)]
        if schema.get("uniqueItems") and len({repr(v) for v in made}) != len(made):
            made = made[:1]
        return made

    def _string(self, schema: dict[str, Any], walk: _Walk, name: str) -> Any:
        pattern = schema.get("pattern")
        if isinstance(pattern, str):
            found = sample(pattern, walk.rng)
            if found is not None:
                return found
        text = self._formatted(schema.get("format"), walk) or self._named(name, walk)
        return _fit(text or self.faker.word(), schema)

    def _formatted(self, fmt: Any, walk: _Walk) -> str | None:
        """A value for a string format (`date-time`, `uuid`, `email`...)."""
        rng = walk.rng
        if fmt == "date-time":
            when = _EPOCH + timedelta(seconds=rng.randrange(365 * 86400))
            return when.strftime("%Y-%m-%dT%H:%M:%S.000Z")
        if fmt == "date":
            return (_EPOCH + timedelta(days=rng.randrange(365))).strftime("%Y-%m-%d")
        if fmt == "uuid":
            return str(uuid.UUID(int=rng.getrandbits(128), version=4))
        if fmt in ("byte", "binary"):
            return "bW9jaw=="
        simple = _FORMATS.get(str(fmt))
        return str(getattr(self.faker, simple)()) if simple else None

    def _named(self, name: str, walk: _Walk) -> str | None:
        """A realistic value where the member's name says what it holds."""
        words = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name).lower().replace("_", " ").split()
        last = words[-1] if words else ""
        provider = _NAMES.get(last) or _NAMES.get("".join(words[-2:]))
        return str(getattr(self.faker, provider)()) if provider else None

    def _platform_id(self, walk: _Walk, made: str) -> str:
        """`{PREFIX}-dddd-dddd-dddd`, the prefix from the schema's name (`Order` → ORD)."""
        owner = walk.refs[-1].rsplit("/", 1)[-1] if walk.refs else "Object"
        letters = re.sub(r"[^A-Za-z]", "", owner).upper()
        digits = f"{walk.rng.randrange(10**12):012d}"
        return f"{(letters + 'XXX')[:3]}-{digits[:4]}-{digits[4:8]}-{digits[8:]}"

    def _integer(self, schema: dict[str, Any], walk: _Walk, name: str) -> Any:
        low, high = _bounds(schema, 0, 1000)
        low, high = int(low), int(high)
        if schema.get("exclusiveMinimum") is True or _number(schema.get("exclusiveMinimum")):
            low += 1
        if schema.get("exclusiveMaximum") is True or _number(schema.get("exclusiveMaximum")):
            high -= 1
        value = walk.rng.randint(low, max(low, high))
        step = schema.get("multipleOf")
        if isinstance(step, int) and step > 0:
            value = (value // step) * step if value // step * step >= low else low
        return value

    def _number(self, schema: dict[str, Any], walk: _Walk, name: str) -> Any:
        if isinstance(schema.get("multipleOf"), int | float):
            return self._integer(schema, walk, name)
        low, high = _bounds(schema, 0.0, 1000.0)
        return round(walk.rng.uniform(float(low), float(high)), 2)


_FORMATS = {
    "email": "email",
    "uri": "url",
    "url": "url",
    "hostname": "hostname",
    "ipv4": "ipv4",
    "ipv6": "ipv6",
    "time": "time",
}
_NAMES = {
    "email": "email",
    "phone": "phone_number",
    "firstname": "first_name",
    "lastname": "last_name",
    "fullname": "name",
    "username": "user_name",
    "company": "company",
    "city": "city",
    "country": "country",
    "countrycode": "country_code",
    "street": "street_address",
    "addressline": "street_address",
    "postcode": "postcode",
    "zip": "postcode",
    "state": "state",
    "website": "url",
    "url": "url",
    "currency": "currency_code",
    "description": "sentence",
    "notes": "sentence",
    "title": "catch_phrase",
    "name": "company",
    "color": "hex_color",
    "language": "language_code",
}


def _type(schema: dict[str, Any]) -> str | None:
    """The schema's type; of a 3.1 type list, the first that is not `null`."""
    kind = schema.get("type")
    if isinstance(kind, list):
        rest = [k for k in kind if k != "null"]
        return str(rest[0]) if rest else "null"
    return str(kind) if isinstance(kind, str) else None


def _implied(schema: dict[str, Any]) -> str:
    if "properties" in schema or "additionalProperties" in schema:
        return "object"
    if "items" in schema:
        return "array"
    return "object"


def _has_pattern(fold: Callable[[Any], dict[str, Any]], schema: Any) -> bool:
    return isinstance(schema, dict) and "pattern" in fold(schema)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _bounds(schema: dict[str, Any], low: Any, high: Any) -> tuple[Any, Any]:
    minimum = schema.get("minimum", schema.get("exclusiveMinimum"))
    maximum = schema.get("maximum", schema.get("exclusiveMaximum"))
    lower: Any = minimum if _number(minimum) else low
    upper: Any = maximum if _number(maximum) else max(high, lower + high)
    return lower, max(lower, upper)


def _fit(text: str, schema: dict[str, Any]) -> str:
    """The text cut or padded to the schema's lengths."""
    low = int(schema.get("minLength", 0))
    high = schema.get("maxLength")
    if isinstance(high, int) and len(text) > high:
        text = text[:high]
    if len(text) < low:
        text = text + "x" * (low - len(text))
    return text
