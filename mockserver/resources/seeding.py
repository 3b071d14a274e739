"""Realistic audit records for seeding, made with Faker and reproducible with a seed.

Faker is slow per call, so it fills pools of accounts, users, places and addresses once; each
record is then a cheap combination drawn with a seeded `random.Random`.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from faker import Faker

from mockserver.resources.event_types import Catalogue, ObjectKind, catalogue
from mockserver.resources.ids import IdFormat

RECORD_IDS = IdFormat("AUD", 4)
ACCOUNT_TYPES = ("Vendor", "Client", "Operations")
SPREAD_DAYS = 180
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class _Account:
    id: str
    name: str
    type: str
    actors: tuple[tuple[str, str], ...]  # (USR-/TKN- id, name)


@dataclass(frozen=True)
class _Place:
    country_code: str
    country_name: str
    region: str


class Seeder:
    """Makes records; the same seed (on the same day) gives the same records."""

    def __init__(self, seed: int | None = None, book: Catalogue | None = None) -> None:
        self.book = book or catalogue()
        self.rng = random.Random(seed)
        faker = Faker(list(self.book.locales))
        faker.seed_instance(seed)
        self.accounts = self._accounts(faker)
        self.places = self._places(faker)
        self.ipv4 = [faker.ipv4_public() for _ in range(400)]
        self.ipv6 = [faker.ipv6() for _ in range(100)]
        self.names = {
            kind: [self._object_name(faker, kind.type) for _ in range(40)]
            for kind in self.book.objects.values()
        }
        self.workers = [
            "commerce-worker",
            "billing-worker",
            "accounts-sync",
            "notifications-worker",
        ]

    def _accounts(self, faker: Faker) -> list[_Account]:
        accounts = []
        for index in range(40):
            kind = ACCOUNT_TYPES[0 if index % 4 == 0 else 1] if index else ACCOUNT_TYPES[2]
            users = tuple((self._id("USR", 2), faker.name()) for _ in range(self.rng.randint(2, 8)))
            token = (self._id("TKN", 2), f"{faker.word().title()} integration token")
            accounts.append(_Account(self._id("ACC", 2), faker.company(), kind, (*users, token)))
        return accounts

    def _places(self, faker: Faker) -> list[_Place]:
        places = []
        for locale in self.book.locales:
            local = faker[locale]
            for _ in range(6):
                places.append(
                    _Place(
                        local.current_country_code(),
                        local.current_country(),
                        local.administrative_unit(),
                    )
                )
        return places

    def _object_name(self, faker: Faker, object_type: str) -> str:
        if object_type in ("Account", "Buyer", "Seller", "Licensee"):
            return str(faker.company())
        if object_type == "User":
            return str(faker.name())
        return f"{faker.catch_phrase()}"

    def _id(self, prefix: str, groups: int) -> str:
        return IdFormat(prefix, groups).make(self.rng)

    def records(self, count: int, progress: Progress | None = None) -> Iterator[dict[str, Any]]:
        """`count` records, oldest first, spread over the last months up to today (UTC)."""
        end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        span = SPREAD_DAYS * 86_400_000
        offsets = sorted(self.rng.randrange(span) for _ in range(count))
        start = end - timedelta(milliseconds=span)
        seen: set[str] = set()
        step = max(count // 10, 1)
        for done, offset in enumerate(offsets, 1):
            record_id = RECORD_IDS.make(self.rng)
            while record_id in seen:
                record_id = RECORD_IDS.make(self.rng)
            seen.add(record_id)
            yield self.record(record_id, start + timedelta(milliseconds=offset))
            if progress and (done % step == 0 or done == count):
                progress(done, count)

    def record(self, record_id: str, when: datetime) -> dict[str, Any]:
        rng = self.rng
        event = rng.choice(self.book.event_types)
        key = event["key"]
        kind = self.book.kind_of(key) or self.book.objects["order"]
        account = rng.choice(self.accounts)
        actor_id, actor_name = rng.choice(account.actors)
        obj = {
            "id": kind.ids.make(rng),
            "name": rng.choice(self.names[kind]),
            "objectType": kind.type,
        }
        return {
            "id": record_id,
            "timestamp": when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z",
            "event": key,
            "summary": event["name"],
            "details": f"{kind.type} {obj['id']} ({obj['name']}): {event['description']}",
            "object": obj,
            "actor": {
                "id": actor_id,
                "name": actor_name,
                "account": {"id": account.id, "name": account.name, "accountType": account.type},
            },
            "type": "Public" if rng.random() < 0.8 else "Private",
            "request": self._request(actor_id, kind),
            "documents": {kind.name: self._document(obj, kind, account)},
            "viewers": [{"id": account.id, "name": account.name, "type": account.type}],
        }

    def _request(self, actor_id: str, kind: ObjectKind) -> dict[str, Any]:
        rng = self.rng
        log = {
            "requestId": f"{rng.getrandbits(128):032x}",
            "operationId": f"{rng.getrandbits(64):016x}",
        }
        if actor_id.startswith("TKN") and rng.random() < 0.5:
            return {"worker": {"workerName": rng.choice(self.workers)}, "log": log}
        place = rng.choice(self.places)
        address = rng.choice(self.ipv6) if rng.random() < 0.2 else rng.choice(self.ipv4)
        return {
            "api": {
                "ip": address,
                "geolocation": {
                    "countryCode": place.country_code,
                    "countryName": place.country_name,
                    "region": place.region,
                },
                "userAgent": rng.choice(self.book.user_agents),
            },
            "log": log,
        }

    def _document(self, obj: dict[str, Any], kind: ObjectKind, account: _Account) -> dict[str, Any]:
        status = self.rng.choice(("Draft", "Active", "Processing", "Completed", "Terminated"))
        return {
            **obj,
            "status": status,
            "owner": {"id": account.id, "name": account.name},
            "revision": self.rng.randint(1, 9),
        }
