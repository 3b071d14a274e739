"""The Redis store's key layout, and how an indexed value becomes a sorted-set member.

Every key starts with the store prefix (`--store-prefix`, `mockserver` by default), then the
namespace in braces (one per session's storage: `{base.7}`, `{session.default}`; the braces
are a Redis Cluster hash tag, keeping a namespace's keys together):

    PREFIX:namespaces                     counter of namespaces made (INCR)
    PREFIX:{NS}:made                      set when the namespace is complete (its fork done)
    PREFIX:{NS}:collections               hash: collection path -> its spec path (template)
    PREFIX:{NS}:keys                      set: the key suffixes the namespace holds (for fork)
    PREFIX:{NS}:c:PATH:items              hash: item id -> the item's JSON bytes
    PREFIX:{NS}:c:PATH:meta               hash: item id -> its insertion number and index entries
    PREFIX:{NS}:c:PATH:order              sorted set: item id, scored by its insertion number
    PREFIX:{NS}:c:PATH:seq                counter of insertions (INCR: unique across processes)
    PREFIX:{NS}:c:PATH:ix:FIELD           sorted set (one score): `value NUL number NUL id`
    PREFIX:{NS}:c:PATH:ixo:FIELD          sorted set: ids whose FIELD is not a string

An index member sorts by value, then by insertion number (16 hex digits): a value's ids come
out in insertion order, and the index of an ordered field (`timestamp`) is its order too. The
value is escaped (NUL -> SOH SOH, SOH -> SOH STX) so that NUL only ever separates, and the
escaped bytes sort as the text does (Python compares code points, UTF-8 bytes sort alike).
"""

from __future__ import annotations

from dataclasses import dataclass

SEQ_DIGITS = 16  # the insertion number in an index member: fixed width, so it sorts


def escaped(value: str) -> bytes:
    """A value as an index member starts with it."""
    return value.encode().replace(b"\x01", b"\x01\x02").replace(b"\x00", b"\x01\x01")


def member_value(member: bytes) -> bytes:
    """The escaped value an index member starts with."""
    return member[: member.index(b"\x00")]


def member_seq(member: bytes) -> bytes:
    """The insertion number of an index member (16 hex digits)."""
    at = member.index(b"\x00") + 1
    return member[at : at + SEQ_DIGITS]


def member_id(member: bytes) -> str:
    """The item id an index member ends with."""
    return member[member.index(b"\x00") + SEQ_DIGITS + 2 :].decode()


@dataclass(frozen=True)
class Namespace:
    """The keys of one session's storage."""

    prefix: str
    name: str

    @property
    def root(self) -> str:
        return f"{self.prefix}:{{{self.name}}}"

    @property
    def made(self) -> str:
        return f"{self.root}:made"

    @property
    def collections(self) -> str:
        return f"{self.root}:collections"

    @property
    def keys(self) -> str:
        return f"{self.root}:keys"

    def collection(self, path: str, indexed: tuple[str, ...]) -> CollectionKeys:
        return CollectionKeys(self.root, path, indexed)


@dataclass(frozen=True)
class CollectionKeys:
    """The keys of one collection: what every script is handed, in this order."""

    root: str
    path: str
    indexed: tuple[str, ...]  # the fields with an index (equality, or order)

    def suffix(self, name: str) -> str:
        return f"c:{self.path}:{name}"

    def key(self, name: str) -> str:
        return f"{self.root}:{self.suffix(name)}"

    @property
    def items(self) -> str:
        return self.key("items")

    @property
    def meta(self) -> str:
        return self.key("meta")

    @property
    def order(self) -> str:
        return self.key("order")

    @property
    def seq(self) -> str:
        return self.key("seq")

    def index(self, field: str) -> str:
        return self.key(f"ix:{field}")

    def others(self, field: str) -> str:
        return self.key(f"ixo:{field}")

    def suffixes(self) -> list[str]:
        """Every key suffix the collection may hold."""
        names = ["items", "meta", "order", "seq"]
        for field in self.indexed:
            names += [f"ix:{field}", f"ixo:{field}"]
        return [self.suffix(name) for name in names]

    def all(self) -> list[str]:
        """The keys of a change (`scripts.CHANGE`): the four, then each index's two."""
        keys = [self.items, self.meta, self.order, self.seq]
        for field in self.indexed:
            keys += [self.index(field), self.others(field)]
        return keys
