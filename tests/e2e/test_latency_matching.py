"""Latency-aware matching from real pages: with ``match_rtt_ms`` set, each page pings the
server just before ``mp_join`` and sends the median; a page behind the relay's network
shaping (?delay=100: 200 ms round trips) does not fit with a fast one, so the two are grouped
only by the fallback, after ``match_fallback_s``, and then play."""

from __future__ import annotations

import json

from tests.e2e.browser import body, wait_stage
from tests.e2e.test_multiplayer import kitchen

FALLBACK_S = 6


def test_a_shaped_page_and_a_fast_one_are_paired_by_the_fallback_with_their_rtts(tmp_path, servers, new_page):
    multiplayer = {
        "network_from_url": True,
        "match_rtt_ms": 150,
        "match_fallback_s": FALLBACK_S,
        "wait_timeout": 60,
    }
    server = servers(experiments_dir=kitchen(tmp_path, max_steps=60, multiplayer=multiplayer))
    pages = []
    for query in ("?delay=100", ""):
        page, watch = new_page()
        page.goto(server.url + "/x/kitchen" + query, wait_until="commit")
        pages.append((page, watch))
    for page, watch in pages:
        assert wait_stage(page, "ready", "error", timeout=90) == "ready", watch.dump()
    for page, _ in pages:
        page.keyboard.press("Enter")
    for page, watch in pages:
        assert wait_stage(page, "playing", "error", timeout=FALLBACK_S + 30) == "playing", watch.dump()
    (slow, _), (fast, _) = pages
    slow_rtt, fast_rtt = float(body(slow, "join-rtt")), float(body(fast, "join-rtt"))
    assert slow_rtt >= 200 and fast_rtt < 100, (slow_rtt, fast_rtt)
    assert body(slow, "room") == body(fast, "room")
    (event,) = [json.loads(p) for (p,) in server.query("SELECT payload FROM events WHERE kind = 'match'")]
    assert event["room"] == body(slow, "room") and event["by"] == "fallback"
    assert sorted(event["rtt_ms"].values()) == [fast_rtt, slow_rtt]  # what the pages measured
    assert max(event["waited_s"].values()) >= FALLBACK_S
