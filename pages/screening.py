"""Entry screening on the page: gather what the browser runs on (user agent, window size,
the features the game needs, the median of a few pings) and let the server decide
(server/study/screening.py). Runs before the first scene."""

import js

from pages.jsbridge import js_get
from pages.ping import median_ping_ms, shaped_ping_ms

FEATURES = ("WebAssembly", "Worker", "SharedArrayBuffer", "crossOriginIsolated")


async def screen(rules, socket, ui):
    """None when admitted; else the server's answer (message, completion code, redirect)."""
    ui.message("Checking your browser and connection…")
    features = {}
    for name in FEATURES:
        value = js_get(js.window, name)
        features[name] = bool(value) if name == "crossOriginIsolated" else value is not None
    ping = await median_ping_ms(socket, rules["pings"], shaped_ping_ms())
    facts = {"user_agent": str(js.navigator.userAgent), "features": features,
             "window": [int(js.window.innerWidth), int(js.window.innerHeight)], "ping_ms": ping}
    ack = await socket.call("screen", facts)
    if not ack.get("ok") or ack.get("admitted"):
        return None  # a server that cannot decide lets the participant in
    return ack
