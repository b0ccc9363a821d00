"""The RTT meter of a playing page, single player and multiplayer alike: it pings the server
every RTT_EVERY_MS, and each ping carries the page's vitals (its last RTT, frame, rollbacks,
tab hidden, scene and episode) for the live monitor and in-play screening. The server
decides (server/study/inplay.py); the ping's acknowledgement may say to show a warning, or
that the participant is excluded: the game loop then stops (``excluded``)."""

import js

from pages.jsbridge import now_ms, sleep_ms
from pages.ping import shaped_ping_ms

RTT_EVERY_MS = 1000


class RttMeter:
    def __init__(self, socket, scene=None, session=None, episode_id=None, state=None, ui=None):
        self.socket = socket
        self.rtt_ms = 0.0
        self.running = True
        self.scene = scene
        self.session = session  # multiplayer: the rollback session (frame, rollbacks, stalls)
        self.state = state  # single player: the episode's state (its "frame")
        self.episode_id = episode_id
        self.ui = ui
        self.warnings = 0
        self.excluded = None  # the server's exclusion (message, completion code, redirect)

    def vitals(self):
        out = {"rtt_ms": round(self.rtt_ms, 2), "hidden": bool(js.document.hidden)}
        if self.scene:
            out["scene"] = self.scene
        if self.episode_id:
            out["episode_id"] = self.episode_id
        if self.session is not None:
            out.update(frame=self.session.frame, rollbacks=self.session.stats["rollbacks"],
                       stalls=self.session.stats["stalls"])
        elif self.state is not None:
            out["frame"] = self.state["frame"]
        return out

    def take(self, decision):
        """What in-play screening decided about this participant."""
        if decision["action"] == "exclude":
            self.excluded = decision
            self.running = False
        elif self.ui is not None:
            self.warnings += 1
            self.ui.hud(decision["message"])
            self.ui.attr("play-warning", decision["rule"])
            self.ui.attr("play-warnings", self.warnings)

    async def run(self):
        while self.running:
            sent = now_ms()
            # the page's network shaping (?delay=, when the experiment allows it) holds the ack
            ping = {"t": sent, "vitals": self.vitals(), "shape_ms": shaped_ping_ms()}
            ack = await self.socket.call("rtt", ping, timeout_ms=5000)
            if ack.get("ok"):
                self.rtt_ms = now_ms() - sent
                if ack.get("inplay"):
                    self.take(ack["inplay"])
            if self.running:
                await sleep_ms(RTT_EVERY_MS)


def excluded_result(decision, saved):
    """The scene's result when in-play screening excluded the participant: the screening's
    message, completion code or redirect, shown like entry screening's."""
    return {"outcome": "screened_out", "message": decision["message"], "reason": decision["reason"],
            "completion_code": decision.get("completion_code"), "redirect": decision.get("redirect"),
            "saved": saved}
