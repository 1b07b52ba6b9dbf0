"""Probes of what an operator reads: the summary log line and the answer when many events are rejected.

Found by a fresh tester's attack; each kept as a regression test.
"""

from __future__ import annotations

import pytest

from tests.support import api_event, commerce_event, make_batch

# CloudWatch Logs' largest log event: 1 MB today (the SDKs' InputLogEvent docs), 256 KB until 2025. Measured here:
# about 272 KB for 1000 rejected Conversions API events, 543 KB for 2000 Offline Conversions events.
LOG_EVENT_LIMIT = 1024 * 1024


@pytest.mark.parametrize(("api", "count"), [("conversions_api", 1000), ("offline_conversions", 2000)])
def test_the_summary_line_of_a_batch_whose_every_event_is_rejected_fits_one_log_event(
    api, count, aws, function_env, invoke, graph, captured
):
    function_env(FACEBOOK_API=api)
    graph.reject_marked, graph.blame = "BAD", True
    batch = make_batch(
        [
            commerce_event("add_to_cart", source_message_id=f"BAD-{i}", product_action={"transaction_id": f"BAD-{i}"})
            for i in range(count)
        ]
    )
    answer = invoke(api_event(batch), timeout=300)
    lines = [line for line in captured().splitlines() if '"batch processed"' in line and line.startswith("{")]
    assert answer.status in (422, 503)
    assert len(lines[-1].encode()) <= LOG_EVENT_LIMIT
