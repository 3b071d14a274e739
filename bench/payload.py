"""The POST bodies: one realistic ~1.3 KB audit record (valid) and the same with a bad `event`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

TARGET_BYTES = 1300  # compact JSON; the accepted band is 1250-1350
SERVER_SET = ("id", "timestamp", "actor", "type", "viewers")


def compact(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def valid_body() -> dict[str, Any]:
    """A seeded record with `request.api` (ip, geolocation, userAgent) and `request.log`,
    without the server-set fields, its `details` padded so the compact JSON is ~1.3 KB."""
    from faker import Faker

    from mockserver.resources.seeding import Seeder

    seeder = Seeder(1)
    record = next(r for r in seeder.records(200) if "api" in r.get("request", {}))
    for name in SERVER_SET:
        record.pop(name, None)
    faker = Faker("en_US")
    faker.seed_instance(1)
    filler = " Changes:"
    while len(filler) < TARGET_BYTES:
        filler += " " + faker.sentence(nb_words=12)
    missing = TARGET_BYTES - len(compact(record))
    if missing > 0:
        record["details"] = record["details"] + filler[:missing]
    size = len(compact(record))
    if not 1250 <= size <= 1350:
        raise RuntimeError(f"the body is {size} bytes, outside 1250-1350")
    return record


def write_bodies(directory: Path) -> dict[str, Any]:
    """Write valid.json and invalid.json; what was written (paths and sizes)."""
    directory.mkdir(parents=True, exist_ok=True)
    body = valid_body()
    invalid = {**body, "event": 12345}
    valid_path, invalid_path = directory / "valid.json", directory / "invalid.json"
    valid_path.write_bytes(compact(body))
    invalid_path.write_bytes(compact(invalid))
    return {
        "valid": str(valid_path),
        "invalid": str(invalid_path),
        "valid_bytes": valid_path.stat().st_size,
        "invalid_bytes": invalid_path.stat().st_size,
        "object_id": body["object"]["id"],
        "event": body["event"],
    }


if __name__ == "__main__":
    print(json.dumps(valid_body(), indent=2))
