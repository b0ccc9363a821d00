"""The live monitor at /admin/monitor: a signed-in researcher's page gets the picture of
every study pushed each second over the Socket.IO namespace /admin, and may act: close a
study to new arrivals and reopen it, end a room with a reason, send a waiting participant
to the fallback.

Who may connect: the page carries a ticket, signed by the server when it served the page
to a signed-in admin (the admin cookie is scoped to /admin, so the Socket.IO handshake
never sees it). The ticket names the admin session; a signed-out or stale session, a
forged or expired ticket, or a participant's socket are refused at connect. Every action
must also carry the session's CSRF token, and is stored as an ``admin_action`` event with
the session and the time."""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from typing import Any, Literal

import socketio
from itsdangerous import BadSignature, URLSafeTimedSerializer
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from quart import Quart, abort, redirect, render_template

from server.admin.routes import SESSION_LIFETIME, AdminAccess
from server.data.storage import Store
from server.monitor.doors import StudyDoors
from server.monitor.picture import StallWatch, live_picture
from server.monitor.presence import Presence
from server.monitor.records import read_records
from server.multiplayer.relay import Relay
from server.study.experiment import Experiment

log = logging.getLogger("coplay.monitor")

NAMESPACE = "/admin"
WATCHERS = "monitors"  # the namespace's room of connected monitor pages
PUSH_EVERY_S = 1.0
RECORDS_EVERY_S = 5.0  # the database is read this often, not at every push


class Action(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: Literal["close_study", "reopen_study", "end_room", "send_to_fallback"]
    csrf: str = Field(max_length=200)
    experiment: str | None = Field(None, max_length=80)
    room: str | None = Field(None, max_length=64)
    sid: str | None = Field(None, max_length=64)  # a waiting participant's socket
    reason: str = Field("", max_length=500)


class Monitor:
    def __init__(self, sio: socketio.AsyncServer, access: AdminAccess, relay: Relay, presence: Presence,
                 doors: StudyDoors, store: Store, experiments: dict[str, Experiment], rtt_limit_ms: float):
        self.sio, self.access, self.relay, self.presence = sio, access, relay, presence
        self.doors, self.store, self.experiments = doors, store, experiments
        self.rtt_limit_ms = rtt_limit_ms
        self.tickets = URLSafeTimedSerializer(access.secret, salt="coplay-monitor")
        self.watchers: dict[str, dict[str, str]] = {}  # sid -> the ticket's admin session
        self.records: dict[str, Any] = {"counts": {}, "problems": [], "actions": []}
        self.records_at = 0.0
        self.stalls = StallWatch()
        self.pushes = 0
        self._task: asyncio.Task | None = None
        sio.on("connect", self.connect, namespace=NAMESPACE)
        sio.on("disconnect", self.disconnect, namespace=NAMESPACE)
        sio.on("act", self.act, namespace=NAMESPACE)

    # -- tickets and connections ------------------------------------------------------
    def ticket(self, admin_sid: str, csrf: str) -> str:
        return self.tickets.dumps({"sid": admin_sid, "csrf": csrf, "pw": self.access.fingerprint})

    def _admin_of(self, ticket: Any) -> dict[str, str] | None:
        if not isinstance(ticket, str) or len(ticket) > 2000:
            return None
        try:
            who = self.tickets.loads(ticket, max_age=SESSION_LIFETIME.total_seconds())
        except BadSignature:
            return None
        if not isinstance(who, dict):
            return None
        if not self.access.session_holds(str(who.get("sid")), str(who.get("pw"))):
            return None
        return who

    async def connect(self, sid: str, environ: dict, auth: Any = None) -> None:
        who = self._admin_of(auth.get("ticket") if isinstance(auth, dict) else None)
        if who is None:
            log.warning("refused a monitor connection without a valid admin ticket")
            raise socketio.exceptions.ConnectionRefusedError("admin sign-in required")
        self.watchers[sid] = who
        await self.sio.enter_room(sid, WATCHERS, namespace=NAMESPACE)
        await self.sio.emit("picture", await self.picture(), to=sid, namespace=NAMESPACE)

    async def disconnect(self, sid: str, *args: Any) -> None:
        self.watchers.pop(sid, None)

    # -- the picture --------------------------------------------------------------------
    async def picture(self) -> dict[str, Any]:
        if time.monotonic() - self.records_at >= RECORDS_EVERY_S:
            self.records_at = time.monotonic()
            self.records = await read_records(self.store, self.experiments)
        return live_picture(sorted(self.experiments), self.relay.mm, self.presence, set(self.doors.closed),
                            self.records, self.stalls, self.rtt_limit_ms)

    async def run(self) -> None:
        """Push the picture every second while anyone watches (nothing is built otherwise)."""
        while True:
            await asyncio.sleep(PUSH_EVERY_S)
            if not self.watchers:
                continue
            try:
                picture = await self.picture()
                await self.sio.emit("picture", picture, to=WATCHERS, namespace=NAMESPACE)
                self.pushes += 1
            except Exception:  # the monitor must never take the server down
                log.exception("monitor push failed")

    async def start(self) -> None:
        """Once the store is open: which studies are closed, then the pushes."""
        await self.doors.load(self.store)
        self._task = asyncio.get_running_loop().create_task(self.run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    # -- actions ------------------------------------------------------------------------
    async def act(self, sid: str, data: Any = None) -> dict[str, Any]:
        who = self.watchers.get(sid)
        if who is None or not self.access.session_holds(who["sid"], who["pw"]):
            return {"ok": False, "error": "admin sign-in required"}
        try:
            action = Action.model_validate(data)
        except ValidationError as exc:
            return {"ok": False, "error": f"bad action: {exc.errors()[0]['msg']}"}
        if not hmac.compare_digest(action.csrf.encode(), who["csrf"].encode()):
            return {"ok": False, "error": "the page's security token is stale: reload the monitor"}
        done = await self._do(action)
        if not done["ok"]:
            return done
        record = {"action": action.action, "admin": who["sid"][:8], "at": time.time(),
                  **action.model_dump(exclude={"action", "csrf"}, exclude_none=True)}
        await self.store.add_event(None, None, "admin_action", record)
        log.info("admin %s: %s", record["admin"], record)
        self.records_at = 0.0  # the next picture shows it
        await self.sio.emit("picture", await self.picture(), to=WATCHERS, namespace=NAMESPACE)
        return done

    async def _do(self, action: Action) -> dict[str, Any]:
        if action.action in ("close_study", "reopen_study"):
            if action.experiment not in self.experiments:
                return {"ok": False, "error": f"no study {action.experiment!r}"}
            if action.action == "close_study":
                self.doors.close(action.experiment)
            else:
                self.doors.reopen(action.experiment)
            return {"ok": True}
        if action.action == "end_room":
            if not action.reason.strip():
                return {"ok": False, "error": "say why the room is ended (it is stored with the room)"}
            if not await self.relay.end_room_by_researcher(action.room or "", action.reason.strip()):
                return {"ok": False, "error": f"room {action.room!r} is not playing"}
            return {"ok": True}
        if not await self.relay.send_to_fallback(action.sid or ""):
            return {"ok": False, "error": "that participant is not waiting any more"}
        return {"ok": True}


def register_monitor(app: Quart, monitor: Monitor, access: AdminAccess) -> None:
    @app.get("/admin/monitor")
    async def monitor_page():
        if not access.enabled:
            abort(404)
        if not access.logged_in():
            return redirect("/admin/login")
        csrf = access.csrf_token()
        config = {"ticket": monitor.ticket(access.session_id(), csrf), "csrf": csrf, "namespace": NAMESPACE}
        return await render_template("admin/monitor.html", config=config, vendor=app.config["COPLAY_VENDOR"])
