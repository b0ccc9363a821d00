"""Several server processes, one set of rooms (a Redis URL in the settings).

python-socketio's Redis manager delivers every emit to the participant's socket on
whichever process holds it. This module routes the multiplayer events (join, inputs,
hashes, rejoin, leave, disconnect) to one process, the *coordinator*, elected through a
Redis lock, which holds the matchmaking queues and the rooms. Pages, data uploads and
scenes are served by whichever process a participant reaches; only room traffic crosses.

Requests travel through a Redis list (the coordinator pops them; nothing is lost while it
is busy) and each reply through a list of its own. Events of one socket are handled in
the order they arrived, whichever process received them. If the coordinator goes away,
another process takes the lock within LOCK_MS and starts with no rooms (the rooms that
were open are lost, as on a restart)."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from redis import asyncio as aioredis

from server.sockets import Rejected

log = logging.getLogger("coplay.cluster")

LOCK_KEY = "coplay:coordinator"
REQUESTS = "coplay:relay:requests"
LOCK_MS = 6000
REFRESH_S = 2.0
REPLY_TIMEOUT_S = 10
DISCONNECT = "__disconnect__"

# refresh the lock only if we still hold it
_REFRESH = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""

Handler = Callable[[str, dict, Any], Awaitable[dict]]


class Cluster:
    def __init__(self, url: str):
        self.url = url
        self.me = secrets.token_hex(6)
        self.redis: aioredis.Redis | None = None
        self.is_coordinator = False
        self.handlers: dict[str, tuple[type | None, Handler]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._tasks: list[asyncio.Task] = []
        self._work: set[asyncio.Task] = set()

    # -- wiring -------------------------------------------------------------------------
    def route(self, event: str, model: type, handler: Handler) -> Handler:
        """`handler` runs on the coordinator; elsewhere the validated event is forwarded."""
        self.handlers[event] = (model, handler)

        async def routed(sid: str, session: dict, payload: Any) -> dict:
            if self.is_coordinator:
                return await self._in_order(sid, handler(sid, session, payload))
            return await self._forward(event, sid, session, payload.model_dump())

        return routed

    def route_disconnect(self, hook: Callable[[str], Awaitable[None]]) -> Callable[[str], Awaitable[None]]:
        async def run(sid: str, session: dict, payload: Any) -> dict:
            await hook(sid)
            return {"ok": True}

        self.handlers[DISCONNECT] = (None, run)

        async def routed(sid: str) -> None:
            if self.is_coordinator:
                await self._in_order(sid, hook(sid))
                return
            try:
                await self._forward(DISCONNECT, sid, {}, None)
            except Rejected as exc:
                log.warning("disconnect of %s not delivered to the coordinator: %s", sid, exc)

        return routed

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        self.redis = aioredis.Redis.from_url(self.url, decode_responses=True)
        await self.redis.ping()  # a wrong URL fails the start, not the first participant
        await self._elect()
        self._tasks = [asyncio.create_task(self._keep_lock()), asyncio.create_task(self._serve())]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.redis is not None:
            if self.is_coordinator:  # let another process take over at once
                await self.redis.eval("if redis.call('get', KEYS[1]) == ARGV[1] then "
                                      "return redis.call('del', KEYS[1]) end return 0", 1, LOCK_KEY, self.me)
            await self.redis.aclose()
            self.redis = None
        self.is_coordinator = False

    async def _elect(self) -> None:
        if await self.redis.set(LOCK_KEY, self.me, nx=True, px=LOCK_MS):
            self.is_coordinator = True
            log.info("process %s is the room coordinator", self.me)

    async def _keep_lock(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_S)
            try:
                if self.is_coordinator:
                    self.is_coordinator = bool(await self.redis.eval(_REFRESH, 1, LOCK_KEY, self.me, LOCK_MS))
                    if not self.is_coordinator:
                        log.error("process %s lost the coordinator lock", self.me)
                else:
                    await self._elect()
            except aioredis.RedisError:
                log.exception("redis unavailable while keeping the coordinator lock")

    # -- forwarding -------------------------------------------------------------------------
    async def _forward(self, event: str, sid: str, session: dict, payload: Any) -> dict:
        reply_key = f"coplay:reply:{secrets.token_hex(8)}"
        request = {"event": event, "sid": sid, "session": session, "payload": payload, "reply": reply_key}
        try:
            await self.redis.rpush(REQUESTS, json.dumps(request))
            answer = await self.redis.blpop([reply_key], timeout=REPLY_TIMEOUT_S)
        except aioredis.RedisError as exc:
            raise Rejected(f"the room service is unavailable ({type(exc).__name__})", "internal") from None
        if answer is None:
            raise Rejected("the room service did not answer", "internal")
        reply = json.loads(answer[1])
        if "rejected" in reply:
            raise Rejected(reply["rejected"], reply.get("reason", "refused"))
        return reply

    async def _serve(self) -> None:
        """The coordinator's loop: take forwarded events, run them, answer."""
        while True:
            if not self.is_coordinator:
                await asyncio.sleep(0.2)
                continue
            try:
                popped = await self.redis.blpop([REQUESTS], timeout=1)
            except aioredis.RedisError:
                log.exception("redis unavailable while serving room requests")
                await asyncio.sleep(0.5)
                continue
            if popped is None:
                continue
            request = json.loads(popped[1])
            task = asyncio.create_task(self._handle(request))
            self._work.add(task)
            task.add_done_callback(self._work.discard)

    async def _handle(self, request: dict) -> None:
        model, handler = self.handlers.get(request["event"], (None, None))
        sid = request["sid"]
        try:
            if handler is None:
                raise Rejected(f"unknown room event {request['event']!r}", "unknown_event")
            payload = model.model_validate(request["payload"]) if model is not None else None
            reply = await self._in_order(sid, handler(sid, request["session"], payload))
        except Rejected as exc:
            reply = {"rejected": str(exc), "reason": exc.reason}
        except Exception:
            log.exception("forwarded %s from %s failed", request["event"], sid)
            reply = {"rejected": "internal error", "reason": "internal"}
        await self.redis.rpush(request["reply"], json.dumps(reply))
        await self.redis.expire(request["reply"], 60)

    async def _in_order(self, sid: str, work: Awaitable[dict]) -> dict:
        # one socket's events run one at a time, in arrival order (asyncio.Lock is FIFO)
        lock = self._locks.setdefault(sid, asyncio.Lock())
        try:
            async with lock:
                return await work
        finally:
            if not lock.locked() and not getattr(lock, "_waiters", None):
                self._locks.pop(sid, None)
