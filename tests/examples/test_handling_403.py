"""How-to: check what your code does when the platform refuses it (403, 404, 500...).

`mock.fail(status)` answers with the problem details the spec declares for that status
(`traceId` included), as the platform would.
"""

from mpt_api_client import MPTClient
from mpt_api_client.auth import BearerTokenAuthentication
from mpt_api_client.exceptions import MPTAPIError

RECORD = "/public/v1/audit/records/{id}"


def find_record(client: MPTClient, record_id: str) -> str:
    """The code under test: a summary, or a readable reason why there is none."""
    try:
        return str(client.audit.records.get(record_id).summary)
    except MPTAPIError as error:
        if error.status == 403:
            return "not allowed to read audit records"
        if error.status == 404:
            return f"no record {record_id}"
        raise


def test_a_403_is_reported_not_raised(mock):
    mock.fail(403, method="GET", path=RECORD)
    client = MPTClient.from_config(BearerTokenAuthentication("idt:TKN-1"), base_url=mock.api_url)

    assert find_record(client, "AUD-0000-0000-0000-0001") == "not allowed to read audit records"
    [call] = mock.assert_called(path=RECORD, status=403)
    assert call["fault"] is not None  # the answer came from the rule


def test_an_unknown_record_is_a_real_404(mock):
    client = MPTClient.from_config(BearerTokenAuthentication("idt:TKN-1"), base_url=mock.api_url)
    assert find_record(client, "AUD-0000-0000-0000-0002") == "no record AUD-0000-0000-0000-0002"
