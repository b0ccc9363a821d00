"""Entry screening on the page: gather what the browser runs on (user agent, window size,
the features the game needs, the median of a few pings) and let the server decide
(server/study/screening.py). Runs before the first scene."""

import js

from pages.jsbridge import js_get, now_ms

FEATURES = ("WebAssembly", "Worker", "SharedArrayBuffer", "crossOriginIsolated")


def shaped_ping_ms():
    """A round trip's share of ?delay= (network shaping, when the experiment allows it)."""
    value = js.URLSearchParams.new(js.window.location.search).get("delay")
    return 2 * float(value) if value is not None else 0.0


async def screen(rules, socket, ui):
    """None when admitted; else the server's answer (message, completion code, redirect)."""
    ui.message("Checking your browser and connection…")
    features = {}
    for name in FEATURES:
        value = js_get(js.window, name)
        features[name] = bool(value) if name == "crossOriginIsolated" else value is not None
    pings = []
    for _ in range(rules["pings"]):
        sent = now_ms()
        ack = await socket.call("rtt", {"t": sent, "shape_ms": shaped_ping_ms()}, timeout_ms=5000)
        if ack.get("ok"):
            pings.append(now_ms() - sent)
    pings.sort()
    facts = {"user_agent": str(js.navigator.userAgent), "features": features,
             "window": [int(js.window.innerWidth), int(js.window.innerHeight)],
             "ping_ms": round(pings[len(pings) // 2], 1) if pings else None}
    ack = await socket.call("screen", facts)
    if not ack.get("ok") or ack.get("admitted"):
        return None  # a server that cannot decide lets the participant in
    return ack
