"""The live monitor at /admin/monitor: a signed-in researcher's page gets the picture of
every study pushed each second over the Socket.IO namespace /admin, and may act: close a
study to new arrivals and reopen it, end a room with a reason, send a waiting participant
to the fallback.

Who may connect: the page carries a ticket, signed by the server when it served the page
to a signed-in admin (the admin cookie is scoped to /admin, so the Socket.IO handshake
never sees it). The ticket names the admin session; a signed-out or stale session, a
forged or expired ticket, or a participant's socket are refused at connect. Every action
must also carry the session's CSRF token, and is stored as an ``admin_action`` event with
the session and the time.

With several processes (Redis) the picture is merged from every process's part
(server/monitor/spread.py), and an action goes to the process that can carry it out: the
room's owner, the matchmaker for a waiting participant, every process for a study's doors."""

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
from server.monitor.picture import StallWatch, add_records, local_part, merge_parts
from server.monitor.presence import Presence
from server.monitor.records import read_records
from server.monitor.spread import DOORS, SpreadPicture
from server.multiplayer.relay import Relay
from server.study.experiment import Experiment
from server.transport.sockets import Rejected

log = logging.getLogger("coplay.monitor")

NAMESPACE = "/admin"
WATCHERS = "monitors"  # the namespace's room of connected monitor pages
PUSH_EVERY_S = 1.0
RECORDS_EVERY_S = 5.0  # the database is read this often, not at every push
END_ROOM = "__monitor_end_room__"  # to the process owning the room (several processes)
SEND_AWAY = "__monitor_send_away__"  # to the matchmaker


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
        self.cluster = relay.cluster
        self.spread = SpreadPicture(self.cluster) if self.cluster is not None else None
        self.room_process: dict[str, str | None] = {}  # room -> its owner, as last pictured
        if self.cluster is not None:
            self.cluster.on_broadcast[DOORS] = self._doors_changed
            self.cluster.serve(END_ROOM, None, self._end_room_here)
            self.cluster.serve(SEND_AWAY, None, self._send_away_here)
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
    def _part(self) -> dict[str, Any]:
        return local_part(sorted(self.experiments), self.relay.mm, self.presence, set(self.doors.closed),
                          self.stalls, self.rtt_limit_ms, process=self.cluster.me if self.cluster else None)

    async def picture(self) -> dict[str, Any]:
        if time.monotonic() - self.records_at >= RECORDS_EVERY_S:
            self.records_at = time.monotonic()
            self.records = await read_records(self.store, self.experiments)
        part = self._part()
        if self.spread is None:
            return add_records(part, self.records)
        await self.spread.put(part)
        picture = merge_parts(await self.spread.parts() or [part])
        self.room_process = {room["id"]: room["process"]
                             for study in picture["studies"].values() for room in study["rooms"]}
        return add_records(picture, self.records)

    async def run(self) -> None:
        """Push the picture every second while anyone watches (nothing is built otherwise;
        with several processes, each shares its part while a monitor is open anywhere)."""
        while True:
            await asyncio.sleep(PUSH_EVERY_S)
            if self.spread is not None and not self.watchers:
                try:
                    if await self.spread.wanted(False):
                        await self.spread.put(self._part())
                except Exception:
                    log.exception("sharing the monitor's part failed")
            if not self.watchers:
                continue
            if self.spread is not None:
                await self.spread.wanted(True)
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
            closed = action.action == "close_study"
            await self._doors_changed({"experiment": action.experiment, "closed": closed})
            if self.cluster is not None:
                await self.cluster.broadcast(DOORS, {"experiment": action.experiment, "closed": closed})
            return {"ok": True}
        if action.action == "end_room":
            if not action.reason.strip():
                return {"ok": False, "error": "say why the room is ended (it is stored with the room)"}
            request = {"room": action.room or "", "reason": action.reason.strip()}
            done = await self._where(self.room_process.get(action.room or ""), END_ROOM,
                                     self._end_room_here, request)
            return done if done["ok"] else {"ok": False, "error": f"room {action.room!r} is not playing"}
        done = await self._where(self.cluster.leader if self.cluster else None, SEND_AWAY,
                                 self._send_away_here, {"sid": action.sid or ""})
        return done if done["ok"] else {"ok": False, "error": "that participant is not waiting any more"}

    async def _where(self, process: str | None, event: str, here, request: dict) -> dict[str, Any]:
        """Carry out an action on the process that can (here, with one process)."""
        if self.cluster is None or self.cluster.here(process):
            return await here("", {}, request)
        try:
            return await self.cluster.forward(process, event, "", {}, request)
        except Rejected as exc:
            return {"ok": False, "error": str(exc)}

    async def _doors_changed(self, news: dict) -> None:
        if news["closed"]:
            self.doors.close(news["experiment"])
        else:
            self.doors.reopen(news["experiment"])

    async def _end_room_here(self, sid: str, session: dict, request: dict) -> dict[str, Any]:
        return {"ok": await self.relay.end_room_by_researcher(request["room"], request["reason"])}

    async def _send_away_here(self, sid: str, session: dict, request: dict) -> dict[str, Any]:
        return {"ok": await self.relay.send_to_fallback(request["sid"])}


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
