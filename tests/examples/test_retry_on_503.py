"""How-to: prove that your code survives a throttled or unavailable platform.

The official client retries 429/502/503/504 (up to 6 tries); the mock fails the first two
POSTs, and the test checks that exactly one record was stored after three requests.
"""

from mpt_api_client import MPTClient
from mpt_api_client.auth import BearerTokenAuthentication

RECORDS = "/public/v1/audit/records"


def record_login(client: MPTClient, user_id: str) -> str:
    """The code under test: writes one audit record, returns its id."""
    record = client.audit.records.create(
        {
            "event": "platform.account.user.logged-in",
            "object": {"id": user_id, "objectType": "User"},
            "summary": f"{user_id} logged in",
        }
    )
    return str(record.id)


def test_two_503s_then_one_record(mock):
    mock.fail(503, method="POST", path=RECORDS, times=2, headers={"Retry-After": "0"})
    client = MPTClient.from_config(BearerTokenAuthentication("idt:TKN-1"), base_url=mock.api_url)

    record_id = record_login(client, "USR-1234-5678")

    calls = mock.assert_called(method="POST", path=RECORDS, times=3)
    assert [call["status"] for call in calls] == [503, 503, 201]
    assert [record["id"] for record in mock.records()] == [record_id]
