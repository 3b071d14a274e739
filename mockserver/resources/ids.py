"""Platform object ids: `{PREFIX}-{four-digit groups}`, e.g. `AUD-0391-8050-9033-9920`."""

from __future__ import annotations

import hashlib
import os
import random
import re
from dataclasses import dataclass
from typing import Any

# a group of four digits as a pattern spells it: \d{4}, \d\d\d\d, [0-9]{4}
_GROUP = r"(?:\\d\{4\}|(?:\\d){4}|\[0-9\]\{4\})"
_PATTERN = re.compile(rf"^\^?([A-Z]{{2,5}})-{_GROUP}((?:-{_GROUP})*)\$?$")


@dataclass(frozen=True)
class IdFormat:
    prefix: str
    groups: int

    def make(self, rng: random.Random | None = None) -> str:
        size = 4 * self.groups
        drawn = (rng or _RNG).randrange(10**size)  # one draw: the groups at once
        digits = f"{drawn:0{size}d}"
        return self.prefix + "".join(f"-{digits[i : i + 4]}" for i in range(0, size, 4))

    def stable(self, key: str) -> str:
        """An id derived from a key: the same key gives the same id in every run."""
        digits = str(int(hashlib.sha256(key.encode()).hexdigest(), 16))
        return self.prefix + "".join(f"-{digits[i * 4 : i * 4 + 4]}" for i in range(self.groups))


_RNG = random.Random()  # seeded from the OS; ids need to be unique, not secret


def reseed() -> None:
    """Seed the ids' generator again from the OS, in a forked process (uWSGI's workers,
    `--processes N`): two workers never draw the same sequence of ids. `os.fork` calls it by
    itself; uWSGI's fork runs no such handler, so its workers call it (`serving.after_fork`)."""
    _RNG.seed()


os.register_at_fork(after_in_child=reseed)


def from_schema(schema: Any) -> IdFormat | None:
    """Read the format off an `id` pattern such as `^AUD-\\d{4}-\\d{4}-\\d{4}-\\d{4}$` (or
    `^UGR-\\d\\d\\d\\d-\\d\\d\\d\\d$`)."""
    if not isinstance(schema, dict):
        return None
    found = _PATTERN.match(str(schema.get("pattern", "")))
    if not found:
        return None
    return IdFormat(found.group(1), 1 + found.group(2).count("-"))


def guess(collection_name: str) -> IdFormat:
    """A plausible format for a collection the mock knows nothing about (`orders` → ORD)."""
    letters = re.sub(r"[^A-Za-z]", "", collection_name).upper() or "OBJ"
    return IdFormat((letters + "XXX")[:3], 3)
