"""Socket.IO endpoint: participants' pages report episodes and steps here.
Every event is validated; a bad one gets an error ack (and a ``server_error`` event)
and changes nothing."""

from __future__ import annotations

import json
import logging
from typing import Any

import socketio
from pydantic import BaseModel, ValidationError

from server.events import ClientEvent, ConnectAuth, EpisodeEnd, EpisodeStart, StepBatch
from server.experiment import Experiment
from server.lifecycle import Lifecycle
from server.storage import Store

log = logging.getLogger("coplay.sockets")


class Rejected(Exception):
    pass


def _problem(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'payload'}: {e['msg']}" for e in exc.errors()[:5])


class SocketHandlers:
    def __init__(self, sio: socketio.AsyncServer, store: Store, experiments: dict[str, Experiment]):
        self.sio = sio
        self.lifecycle = Lifecycle(sio)  # draining state, in-flight handlers (graceful shutdown)
        self.store = store
        self.experiments = experiments
        self.rejected = 0
        self.disconnect_hooks: list = []
        sio.on("connect", self.connect)
        sio.on("disconnect", self.disconnect)
        self.register("episode_start", EpisodeStart, self.episode_start)
        self.register("steps", StepBatch, self.steps)
        self.register("episode_end", EpisodeEnd, self.episode_end)
        self.register("client_event", ClientEvent, self.client_event)
        sio.on("*", self.unknown)

    def register(self, event: str, model: type[BaseModel], handler) -> None:
        """Route `event` to ``handler(sid, session, payload)`` after validating against `model`."""
        self.sio.on(event, self._guarded(event, model, handler))

    async def connect(self, sid: str, environ: dict, auth: Any) -> None:
        self.lifecycle.check_connect()  # refused while the server drains
        try:
            info = ConnectAuth.model_validate(auth or {})
        except ValidationError as exc:
            self.rejected += 1
            raise socketio.exceptions.ConnectionRefusedError(f"bad auth: {_problem(exc)}") from None
        if info.experiment not in self.experiments:
            self.rejected += 1
            raise socketio.exceptions.ConnectionRefusedError(f"unknown experiment {info.experiment!r}")
        await self.sio.save_session(sid, {"participant_id": info.participant_id,
                                          "experiment": info.experiment})
        await self.store.upsert_participant(info.participant_id, info.experiment, info.url_params)

    async def disconnect(self, sid: str, reason: Any = None) -> None:
        log.info("disconnect %s (%s)", sid, reason)
        for hook in self.disconnect_hooks:
            try:
                await hook(sid)
            except Exception:
                log.exception("disconnect hook failed for %s", sid)

    async def _reject(self, sid: str, event: str, message: str) -> dict:
        self.rejected += 1
        log.warning("rejected %s from %s: %s", event, sid, message)
        await self.sio.emit("server_error", {"event": event, "error": message}, to=sid)
        return {"ok": False, "error": message}

    def _guarded(self, event: str, model: type[BaseModel], handler):
        async def run(sid: str, data: Any = None) -> dict:
            try:
                payload = model.model_validate(data if isinstance(data, dict) else
                                               json.loads(data) if isinstance(data, str) else data)
            except (ValidationError, ValueError) as exc:
                message = _problem(exc) if isinstance(exc, ValidationError) else f"not JSON: {exc}"
                return await self._reject(sid, event, message)
            session = await self.sio.get_session(sid)
            try:
                return await handler(sid, session, payload)
            except Rejected as exc:
                return await self._reject(sid, event, str(exc))
            except Exception:  # a bug or a storage failure: answer, log, keep serving
                log.exception("handling %s from %s failed", event, sid)
                return await self._reject(sid, event, "internal error; the event was not stored")

        return self.lifecycle.tracked(event, run)

    async def unknown(self, event: str, sid: str, *args: Any) -> dict:
        return await self._reject(sid, event, f"unknown event {event!r}")

    async def _own_episode(self, session: dict, episode_id: str) -> None:
        owner = await self.store.episode_owner(episode_id)
        if owner is None:
            raise Rejected(f"unknown episode {episode_id!r}")
        if owner != session["participant_id"]:
            raise Rejected("episode belongs to another participant")

    async def episode_start(self, sid: str, session: dict, payload: EpisodeStart) -> dict:
        owner = await self.store.episode_owner(payload.episode_id)
        if owner is not None and owner != session["participant_id"]:
            raise Rejected("episode id already used")
        await self.store.start_episode(payload.episode_id, session["participant_id"],
                                       session["experiment"], payload.seed, payload.client)
        return {"ok": True, "episode_id": payload.episode_id}

    async def steps(self, sid: str, session: dict, payload: StepBatch) -> dict:
        await self._own_episode(session, payload.episode_id)
        # the validated models' attributes are plain values already: no model_dump() copy
        stored = await self.store.add_steps(payload.episode_id, [vars(r) for r in payload.records])
        return {"ok": True, "stored": stored, "received": len(payload.records)}

    async def episode_end(self, sid: str, session: dict, payload: EpisodeEnd) -> dict:
        await self._own_episode(session, payload.episode_id)
        await self.store.end_episode(payload.episode_id, payload.status, payload.frames,
                                     payload.total_reward)
        return {"ok": True}

    async def client_event(self, sid: str, session: dict, payload: ClientEvent) -> dict:
        await self.store.add_event(session["participant_id"], payload.episode_id, payload.kind,
                                   payload.detail)
        if payload.kind != "stage":
            log.warning("client %s reported %s: %s", session["participant_id"], payload.kind,
                        payload.detail)
        return {"ok": True}
