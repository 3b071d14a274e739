"""Seeded records: realistic, consistent, reproducible, and valid against the spec."""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest
from openapi_core.validation.schemas import oas30_read_schema_validators_factory
from support import RECORDS

from mockserver.contract.spec import load_spec
from mockserver.resources.event_types import catalogue
from mockserver.resources.seeding import SPREAD_DAYS, Seeder
from mockserver.settings import DEFAULT_SPEC


@pytest.fixture(scope="module")
def records():
    return list(Seeder(42).records(2000))


def test_same_seed_same_records_other_seed_other_records(records):
    assert list(Seeder(42).records(2000)) == records
    assert list(Seeder(43).records(2000)) != records


def test_records_conform_to_the_spec(records):
    spec = load_spec(DEFAULT_SPEC)
    schema = spec.openapi.spec / "components" / "schemas" / "AuditRecord"
    validator = oas30_read_schema_validators_factory.create(spec.openapi.spec, schema)
    for record in records[:300]:
        validator.validate(record)


def test_ids_are_unique_and_in_the_platforms_format(records):
    ids = [r["id"] for r in records]
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 23 and i.startswith("AUD-") for i in ids)


def test_object_ids_fit_their_object_type_and_event(records):
    book = catalogue()
    prefixes = {kind.type: kind.ids.prefix for kind in book.objects.values()}
    for record in records:
        obj = record["object"]
        kind = book.kind_of(record["event"])
        assert kind is not None
        assert obj["objectType"] == kind.type
        assert obj["id"].startswith(prefixes[obj["objectType"]] + "-")
        assert obj["id"].count("-") == kind.ids.groups
        assert record["documents"][kind.name]["id"] == obj["id"]  # the document holds the object


def test_events_come_from_the_catalogue_and_vary(records):
    keys = {e["key"] for e in catalogue().event_types}
    events = [r["event"] for r in records]
    assert set(events) <= keys
    assert len(set(events)) > 40


def test_actors_belong_to_accounts_of_a_plausible_type(records):
    accounts_of_actor = defaultdict(set)
    for record in records:
        actor = record["actor"]
        assert actor["id"][:4] in ("USR-", "TKN-")
        assert actor["account"]["id"].startswith("ACC-")
        assert actor["account"]["accountType"] in ("Vendor", "Client", "Operations")
        accounts_of_actor[actor["id"]].add(actor["account"]["id"])
        assert record["viewers"][0]["id"] == actor["account"]["id"]
    assert all(len(a) == 1 for a in accounts_of_actor.values())  # a user is in one account
    assert len({r["actor"]["account"]["accountType"] for r in records}) == 3


def test_requests_have_real_addresses_places_and_agents(records):
    country_of_code = defaultdict(set)
    ip_versions = set()
    agents = set(catalogue().user_agents)
    for record in records:
        api = record["request"].get("api")
        if api is None:
            assert record["request"]["worker"]["workerName"]
            continue
        ip_versions.add(ipaddress.ip_address(api["ip"]).version)
        place = api["geolocation"]
        assert len(place["countryCode"]) == 2
        assert place["region"]
        country_of_code[place["countryCode"]].add(place["countryName"])
        assert api["userAgent"] in agents
    assert ip_versions == {4, 6}
    assert all(len(names) == 1 for names in country_of_code.values())  # code and name agree
    assert country_of_code["DE"] == {"Germany"}
    assert len(country_of_code) >= 10


def test_timestamps_spread_over_recent_months_oldest_first(records):
    stamps = [datetime.fromisoformat(r["timestamp"]) for r in records]
    assert stamps == sorted(stamps)
    now = datetime.now(UTC)
    assert now - timedelta(days=SPREAD_DAYS + 1) <= stamps[0]
    assert stamps[-1] <= now
    assert stamps[-1] - stamps[0] > timedelta(days=SPREAD_DAYS * 0.9)
    assert all(r["timestamp"].endswith("Z") and len(r["timestamp"]) == 24 for r in records)


def test_seed_records_fill_the_store(make_app):
    api = make_app(seed_records=150, faker_seed=5).test_client()
    page = api.get(f"{RECORDS}?limit=100&order=timestamp").json
    assert page["$meta"]["pagination"]["total"] == 150
    again = make_app(seed_records=150, faker_seed=5).test_client()
    assert again.get(f"{RECORDS}?limit=100&order=timestamp").json == page
