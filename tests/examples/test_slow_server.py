"""How-to: a slow platform. The first answer takes longer than the client's timeout; the
official client gives up on it and tries again, and the second answer is quick.
"""

import time

from mpt_api_client import MPTClient
from mpt_api_client.auth import BearerTokenAuthentication

RECORDS = "/public/v1/audit/records"


def test_a_timeout_is_retried(mock):
    mock.delay(1500, method="GET", path=RECORDS, times=1)
    client = MPTClient.from_config(
        BearerTokenAuthentication("idt:TKN-1"), base_url=mock.api_url, timeout=0.5
    )

    started = time.monotonic()
    page = client.audit.records.fetch_page(limit=10)
    took = time.monotonic() - started

    assert page.to_list() == []
    assert 0.5 <= took < 3.0  # one timeout, then a quick answer
    assert len(mock.requests(method="GET", path=RECORDS)) == 2
