"""How-to: tests that share one mock server (in-process, or a container given with
`--mockserver-url`) and still never see each other's data, also under `pytest -n 4`.

Each test's `mock` is a session of its own; `mock.api_url` names it, so the client under test
needs nothing else.
"""

import pytest
from mpt_api_client import MPTClient
from mpt_api_client.auth import BearerTokenAuthentication


@pytest.mark.parametrize("user", ["USR-0000-0001", "USR-0000-0002", "USR-0000-0003"])
def test_each_test_sees_only_its_records(mock, user):
    client = MPTClient.from_config(BearerTokenAuthentication("idt:TKN-1"), base_url=mock.api_url)
    client.audit.records.create(
        {"event": "platform.account.user.created", "object": {"id": user}, "summary": user}
    )

    assert [record["object"]["id"] for record in mock.records()] == [user]


@pytest.mark.mockserver(seed_records=20, faker_seed=1)
def test_a_seeded_session(mock):
    client = MPTClient.from_config(BearerTokenAuthentication("idt:TKN-1"), base_url=mock.api_url)
    assert len(list(client.audit.records.iterate())) == 20
