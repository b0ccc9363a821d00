"""The page's round trip to the server: the median of a few ``rtt`` pings. Entry screening
(pages/screening.py) checks it against ``max_ping_ms``; latency-aware matching
(pages/multiplayer.py) sends it with ``mp_join``."""

import js

from pages.jsbridge import now_ms


def shaped_ping_ms():
    """A round trip's share of ?delay= (network shaping, when the experiment allows it)."""
    value = js.URLSearchParams.new(js.window.location.search).get("delay")
    return 2 * float(value) if value is not None else 0.0


async def median_ping_ms(socket, count, shape_ms=0.0):
    """The median of ``count`` round trips in ms (rounded to 0.1), or None when no ping came
    back. ``shape_ms``: the server holds each ack this long (when the experiment allows
    shaping), so the pings see the shaped connection."""
    pings = []
    for _ in range(count):
        sent = now_ms()
        ack = await socket.call("rtt", {"t": sent, "shape_ms": shape_ms}, timeout_ms=5000)
        if ack.get("ok"):
            pings.append(now_ms() - sent)
    if not pings:
        return None
    pings.sort()
    return round(pings[len(pings) // 2], 1)
