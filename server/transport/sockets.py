"""Socket.IO endpoint: participants' pages report episodes and steps here.
Every event is validated; a bad one gets an error ack (and a ``server_error`` event)
and changes nothing."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from typing import Any

import socketio
from msgspec.structs import asdict
from pydantic import ValidationError

from server.data.storage import Store
from server.study.experiment import Experiment
from server.transport.events import (
    ClientEvent,
    ConnectAuth,
    EpisodeEnd,
    EpisodeResume,
    EpisodeStart,
    StepBatch,
)
from server.transport.lifecycle import Lifecycle
from server.transport.limits import RATE_LIMITED, Limits, counting_packets, oversized
from server.transport.validation import Invalid, pydantic_problem, validate

log = logging.getLogger("coplay.sockets")


class Rejected(Exception):
    """A handler refuses an event; `reason` is the key it is counted under (GET /stats)."""

    def __init__(self, message: str, reason: str = "refused"):
        super().__init__(message)
        self.reason = reason


def _receipt(session: dict, payload: Any) -> tuple[str, str, int] | None:
    """(participant, stream, seq) of a sequenced data message, else None."""
    seq = getattr(payload, "seq", None)
    stream = getattr(payload, "stream", None)
    if seq is None or stream is None:
        return None
    return session["participant_id"], stream, seq


class SocketHandlers:
    def __init__(self, sio: socketio.AsyncServer, store: Store, experiments: dict[str, Experiment],
                 limits: Limits | None = None):
        self.sio = sio
        self.lifecycle = Lifecycle(sio)  # draining state, in-flight handlers (graceful shutdown)
        self.store = store
        self.experiments = experiments
        self.rejected = 0
        self.rejections: Counter[str] = Counter()  # by reason; sums to `rejected`
        self.limits = limits or Limits()
        self._tasks: set[asyncio.Task] = set()
        sio.packet_class = counting_packets(sio.packet_class, lambda: self._count("malformed"))
        self.disconnect_hooks: list = []
        sio.on("connect", self._admit)
        sio.on("disconnect", self._leave)
        self.register("episode_start", EpisodeStart, self.episode_start)
        self.register("steps", StepBatch, self.steps)
        self.register("episode_end", EpisodeEnd, self.episode_end)
        self.register("client_event", ClientEvent, self.client_event)
        self.register("episode_resume", EpisodeResume, self.episode_resume)
        sio.on("*", self.unknown)

    def register(self, event: str, model: type, handler) -> None:
        """Route `event` to ``handler(sid, session, payload)`` after validating against `model`."""
        self.sio.on(event, self._gate(event, self._guarded(event, model, handler)))

    async def connect(self, sid: str, environ: dict, auth: Any) -> None:
        self.lifecycle.check_connect()  # refused while the server drains
        try:
            info = ConnectAuth.model_validate(auth or {})
        except ValidationError as exc:
            self._count("bad_auth")
            raise socketio.exceptions.ConnectionRefusedError(f"bad auth: {pydantic_problem(exc)}") from None
        if info.experiment not in self.experiments:
            self._count("bad_auth")
            raise socketio.exceptions.ConnectionRefusedError(f"unknown experiment {info.experiment!r}")
        conn = self.limits.connections.get(sid)
        await self.sio.save_session(sid, {"participant_id": info.participant_id,
                                          "experiment": info.experiment,
                                          "ip": conn.ip if conn is not None else "unknown"})
        await self.store.upsert_participant(info.participant_id, info.experiment, info.url_params)

    async def disconnect(self, sid: str, reason: Any = None) -> None:
        log.info("disconnect %s (%s)", sid, reason)
        for hook in self.disconnect_hooks:
            try:
                await hook(sid)
            except Exception:
                log.exception("disconnect hook failed for %s", sid)

    async def _reject(self, sid: str, event: str, message: str, reason: str = "validation") -> dict:
        self._count(reason)
        if reason != "rate_limited":  # a flood is counted (GET /stats), not logged line by line
            log.warning("rejected %s from %s: %s", event, sid, message)
        await self.sio.emit("server_error", {"event": event, "error": message}, to=sid)
        if self.limits.refused(sid):
            self._spawn(self._drop_abuser(sid))
        return {"ok": False, "error": message}

    async def refuse(self, sid: str, event: str, message: str, reason: str) -> None:
        """Refuse an event handled elsewhere (the cluster's coordinator): count it and tell
        the page, as if it had been refused here."""
        await self._reject(sid, event, message, reason)

    def _guarded(self, event: str, model: type, handler):
        async def run(sid: str, data: Any = None) -> dict:
            try:
                payload = validate(model, data)
            except Invalid as exc:
                return await self._reject(sid, event, str(exc))
            session = await self.sio.get_session(sid)
            receipt = _receipt(session, payload)
            try:
                if receipt is not None and await self.store.has_receipt(*receipt):
                    return {"ok": True, "duplicate": True}  # a resend of something stored
                reply = await handler(sid, session, payload)
                if receipt is not None and reply.get("ok"):
                    await self.store.add_receipt(*receipt)
                return reply
            except Rejected as exc:
                return await self._reject(sid, event, str(exc), exc.reason)
            except Exception:  # a bug or a storage failure: answer, log, keep serving
                log.exception("handling %s from %s failed", event, sid)
                reply = await self._reject(sid, event, "internal error; the event was not stored", "internal")
                return {**reply, "retry": True}  # not the page's fault: it should send it again

        return self.lifecycle.tracked(event, run)

    async def unknown(self, event: str, sid: str, *args: Any) -> dict:
        if not self.limits.allow(sid):
            return await self._reject(sid, event, RATE_LIMITED, "rate_limited")
        return await self._reject(sid, event, f"unknown event {event!r}", "unknown_event")

    # -- limits (server/transport/limits.py): every event, connection and disconnection passes here -----
    def _count(self, reason: str) -> None:
        self.rejected += 1
        self.rejections[reason] += 1

    def _gate(self, event: str, run):
        """Rate limit, then exactly one payload argument, then the guarded handler."""
        async def gated(sid: str, *args: Any) -> dict:
            if not self.limits.allow(sid):
                return await self._reject(sid, event, RATE_LIMITED, "rate_limited")
            if len(args) > 1:
                return await self._reject(sid, event, f"expected one payload, got {len(args)}")
            too_big = oversized(event, args)
            if too_big is not None:
                return await self._reject(sid, event, too_big, "oversized")
            return await run(sid, *args)

        return gated

    async def _admit(self, sid: str, environ: Any = None, *args: Any) -> Any:
        if self.limits.known(sid):  # a connected client emitted the reserved event "connect"
            return await self._reject(sid, "connect", "reserved event", "spoof")
        refusal = self.limits.open(sid, environ if isinstance(environ, dict) else {})
        if refusal is not None:
            self._count("ip_limit")
            log.warning("refused a connection: %s", refusal)
            raise socketio.exceptions.ConnectionRefusedError(refusal)
        try:
            return await self.connect(sid, environ, *args[:1])
        except BaseException:
            self.limits.close(sid)
            raise

    async def _leave(self, sid: str, *args: Any) -> Any:
        if self.sio.manager.is_connected(sid, "/"):  # a connected client emitted "disconnect"
            return await self._reject(sid, "disconnect", "reserved event", "spoof")
        self.limits.close(sid)
        return await self.disconnect(sid, *args[:1])

    def _spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _drop_abuser(self, sid: str) -> None:
        await asyncio.sleep(0.05)  # the refused event's ack goes out first
        log.warning("disconnecting %s: more than %d refused events within %.0f s", sid,
                    self.limits.abuse_limit, self.limits.abuse_window)
        await self.sio.emit("server_error", {"event": "disconnect",
                                             "error": "too many refused events; disconnected"}, to=sid)
        await self.sio.disconnect(sid)

    def stats(self) -> dict:
        """Counts for GET /stats: refused events by reason, connection counts; no personal data."""
        return {"rejected": self.rejected, "rejections": dict(sorted(self.rejections.items())),
                **self.limits.stats()}

    async def _own_episode(self, session: dict, episode_id: str) -> None:
        owner = await self.store.episode_owner(episode_id)
        if owner is None:
            raise Rejected(f"unknown episode {episode_id!r}")
        if owner != session["participant_id"]:
            raise Rejected("episode belongs to another participant", "spoof")

    async def episode_start(self, sid: str, session: dict, payload: EpisodeStart) -> dict:
        owner = await self.store.episode_owner(payload.episode_id)
        if owner is not None and owner != session["participant_id"]:
            raise Rejected("episode id already used", "spoof")
        await self.store.start_episode(payload.episode_id, session["participant_id"],
                                       session["experiment"], payload.seed, payload.client,
                                       payload.scene_id, payload.episode_index)
        return {"ok": True, "episode_id": payload.episode_id}

    async def steps(self, sid: str, session: dict, payload: StepBatch) -> dict:
        await self._own_episode(session, payload.episode_id)
        stored = await self.store.add_steps(payload.episode_id, [asdict(r) for r in payload.records])
        return {"ok": True, "stored": stored, "received": len(payload.records)}

    async def episode_end(self, sid: str, session: dict, payload: EpisodeEnd) -> dict:
        await self._own_episode(session, payload.episode_id)
        await self.store.end_episode(payload.episode_id, payload.status, payload.frames,
                                     payload.total_reward)
        return {"ok": True}

    async def episode_resume(self, sid: str, session: dict, payload: EpisodeResume) -> dict:
        """A single-player episode the page was reloaded in: its seed and every step stored,
        so the page replays them and plays on from there (the resume is recorded)."""
        await self._own_episode(session, payload.episode_id)
        found = await self.store.episode_for_resume(payload.episode_id)
        if found is None or found[1] != "running":
            raise Rejected("that episode is over", "not_running")
        seed, _, steps = found
        frames = [f for f, _, _ in steps]
        if frames != list(range(1, len(frames) + 1)):
            raise Rejected("that episode's record has gaps; it cannot be resumed", "gaps")
        await self.store.add_event(session["participant_id"], payload.episode_id, "resume",
                                   {"frame": len(frames)})
        return {"ok": True, "seed": seed, "steps": [[f, a, r] for f, a, r in steps]}

    async def client_event(self, sid: str, session: dict, payload: ClientEvent) -> dict:
        await self.store.add_event(session["participant_id"], payload.episode_id, payload.kind,
                                   payload.detail)
        if payload.kind != "stage":
            log.warning("client %s reported %s: %s", session["participant_id"], payload.kind,
                        payload.detail)
        return {"ok": True}
