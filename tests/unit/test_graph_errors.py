"""Meta's error classification, row by row from Meta's own pages (not from our table).

Sources: developers.facebook.com/docs/graph-api/guides/error-handling ("Error Codes": what to do for
each code) and marketing-api/overview/rate-limiting (business use case codes). An HTTP 5xx is a
server-side failure whatever its code, unless the code says the token or the permissions are wrong.
"""

from __future__ import annotations

import pytest

from forwarder.graph_client import ErrorClass, classify

T, R, K, P, I = (  # noqa: E741 - a table reads best with one letter per class
    ErrorClass.TRANSIENT,
    ErrorClass.RATE_LIMITED,
    ErrorClass.TOKEN,
    ErrorClass.PERMISSION,
    ErrorClass.INVALID,
)

CASES = [
    # (HTTP status, code, is_transient, expected, Meta's words)
    (500, 5000, False, T, "HTTP 500 'Unknown Error' with an undocumented code is a server failure"),
    (503, 9999, False, T, "any 5xx without a token or permission code"),
    (500, None, False, T, "5xx without a Graph error"),
    (400, 1, False, T, "1 API Unknown: possibly a temporary issue due to downtime, wait and retry"),
    (400, 2, False, T, "2 API Service: temporary issue due to downtime, wait and retry"),
    (400, 368, False, T, "368 temporarily blocked for policies violations: wait and retry"),
    (400, 4, False, R, "4 API Too Many Calls: throttling, wait and retry"),
    (400, 17, False, R, "17 API User Too Many Calls"),
    (400, 341, False, R, "341 application limit reached"),
    (400, 32, False, R, "32 page-level throttling (rate-limiting page)"),
    (400, 613, False, R, "613 calls within one hour exceeded"),
    (400, 80000, False, R, "80000 business use case limit, first code"),
    (400, 80014, False, R, "80014 business use case limit, last code"),
    (500, 17, False, R, "a rate-limit code on a 5xx is still a rate limit"),
    (429, None, False, R, "HTTP 429 without a Graph error"),
    (400, 190, False, K, "190 access token has expired: get a new access token"),
    (500, 190, False, K, "a token error is the token's, whatever the status"),
    (400, 102, False, K, "102 API Session: the login status or access token has expired"),
    (400, 10, False, P, "10 API Permission Denied"),
    (400, 200, False, P, "200-299 API Permission, first"),
    (400, 299, False, P, "200-299 API Permission, last"),
    (503, 200, False, P, "a permission error is the operator's, whatever the status"),
    (400, 3, False, P, "3 API Method: capability or permissions issue"),
    (400, 100, False, I, "100 invalid parameter: the request itself is wrong"),
    (400, 100, True, T, "is_transient true: Meta says retrying may succeed"),
    (400, 2635, False, I, "2635 deprecated API version"),
    (400, 199, False, I, "just below the permission range"),
    (400, 300, False, I, "just above the permission range"),
    (400, 80015, False, I, "just above the business use case range"),
    (400, None, False, I, "4xx without a Graph error"),
    (404, None, False, I, "404 from a proxy or a wrong path"),
]


@pytest.mark.parametrize(
    ("status", "code", "is_transient", "expected"),
    [pytest.param(status, code, transient, want, id=why) for status, code, transient, want, why in CASES],
)
def test_each_error_is_classified_as_meta_says(status, code, is_transient, expected):
    assert classify(status, code, is_transient) is expected
