"""The game clock, in its own tiny MicroPython worker. Browsers throttle timers on the
main thread of a hidden tab (to 1 Hz or less) but not in dedicated workers, and worker
messages are delivered at once: ticks from here keep a multiplayer game running at full
rate while a participant looks at another tab, so the partner never freezes.

Protocol: the page posts -1 until the worker answers 0 (it is up), then an interval in
ms (0 stops); the worker then posts the tick count every interval."""

import js
from polyscript import xworker

_state = {"timer": None, "ticks": 0}


def _tick(*args):
    _state["ticks"] += 1
    xworker.postMessage(_state["ticks"])


def _on_message(event):
    if event.data < 0:
        xworker.postMessage(0)  # "I am here"
        return
    if _state["timer"] is not None:
        js.clearInterval(_state["timer"])
        _state["timer"] = None
    interval = event.data
    if interval:
        _state["timer"] = js.setInterval(_tick, interval)


xworker.onmessage = _on_message
