"""Several server processes, one set of rooms (a Redis URL in the settings).

python-socketio's Redis manager delivers every emit to the participant's socket on
whichever process holds it. This module routes the multiplayer events (join, inputs,
hashes, rejoin, leave, disconnect) to one process, the *coordinator*, elected through a
Redis lock, which holds the matchmaking queues and the rooms. Pages, data uploads and
scenes are served by whichever process a participant reaches; only room traffic crosses.

Requests travel through a Redis list (the coordinator pops them in bulk; nothing is lost
while it is busy); replies come back on the asking process's own pub/sub channel, and so do
the coordinator's emits to sockets held there, batched (one message per process per flush,
read by that process only; python-socketio's manager would send each emit to every
process). Inputs are not waited for (pages send them without an acknowledgement): a refused one reaches the
page as a ``server_error`` event, as on a single process. Events of one socket are handled
in the order they arrived, whichever process received them. If the coordinator goes away,
another process takes the lock within LOCK_MS and starts with no rooms (the rooms that
were open are lost, as on a restart)."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from redis import asyncio as aioredis

from server.transport import fastjson
from server.transport.sockets import Rejected
from server.transport.validation import dump, validate

log = logging.getLogger("coplay.cluster")

LOCK_KEY = "coplay:coordinator"
REQUESTS = "coplay:relay:requests"
LOCK_MS = 6000
REFRESH_S = 2.0
REPLY_TIMEOUT_S = 10
POP_MAX = 200  # requests taken from the list per round trip
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
        # how the coordinator tells a page its forwarded, unacknowledged event was refused
        self.refuse: Callable[[str, str, str, str], Awaitable[Any]] | None = None
        self._locks: dict[str, asyncio.Lock] = {}
        self._tasks: list[asyncio.Task] = []
        self._work: set[asyncio.Task] = set()
        self._waiting: dict[int, asyncio.Future] = {}
        self._ids = 0
        self._outgoing: list[str] = []  # requests not yet pushed: one RPUSH carries them all
        self._pushing: asyncio.Task | None = None
        # coordinator: the process holding each socket it heard from, and emits queued for them
        self.home: dict[str, str] = {}
        self._emits: dict[str, list[list]] = {}
        self._publishing: asyncio.Task | None = None
        # emit (event, data, sid) to a socket on this process: how emits from the coordinator arrive
        self.deliver: Callable[[str, Any, str], Awaitable[Any]] | None = None

    # -- wiring -------------------------------------------------------------------------
    def route(self, event: str, model: type, handler: Handler, wait: bool = True) -> Handler:
        """`handler` runs on the coordinator; elsewhere the validated event is forwarded
        (and, with ``wait=False``, acknowledged at once: its refusal comes as server_error)."""
        self.handlers[event] = (model, handler)

        async def routed(sid: str, session: dict, payload: Any) -> dict:
            if self.is_coordinator:
                return await self._in_order(sid, handler(sid, session, payload))
            return await self._forward(event, sid, session, dump(payload), wait)

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
        # a bounded pool that waits for a free connection rather than failing under load
        pool = aioredis.BlockingConnectionPool.from_url(self.url, decode_responses=True, max_connections=16,
                                                        timeout=REPLY_TIMEOUT_S)
        self.redis = aioredis.Redis(connection_pool=pool)
        await self.redis.ping()  # a wrong URL fails the start, not the first participant
        self._pubsub = self.redis.pubsub()
        await self._pubsub.subscribe(f"coplay:reply:{self.me}")
        await self._elect()
        self._tasks = [asyncio.create_task(self._keep_lock()), asyncio.create_task(self._serve()),
                       asyncio.create_task(self._replies())]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.redis is not None:
            if self.is_coordinator:  # let another process take over at once
                await self.redis.eval("if redis.call('get', KEYS[1]) == ARGV[1] then "
                                      "return redis.call('del', KEYS[1]) end return 0", 1, LOCK_KEY, self.me)
            await self._pubsub.aclose()
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
    async def _forward(self, event: str, sid: str, session: dict, payload: Any, wait: bool = True) -> dict:
        request = {"event": event, "sid": sid, "session": session, "payload": payload, "from": self.me}
        future = None
        if wait:
            self._ids += 1
            request["reply"] = [self.me, self._ids]
            future = self._waiting[self._ids] = asyncio.get_running_loop().create_future()
        self._outgoing.append(fastjson.dumps(request))
        if self._pushing is None:
            self._pushing = asyncio.create_task(self._push())
        if future is None:
            return {"ok": True}
        try:
            reply = await asyncio.wait_for(future, REPLY_TIMEOUT_S)
        except aioredis.RedisError as exc:
            raise Rejected(f"the room service is unavailable ({type(exc).__name__})", "internal") from None
        except TimeoutError:
            raise Rejected("the room service did not answer", "internal") from None
        finally:
            if future is not None:
                self._waiting.pop(request["reply"][1], None)
        if "rejected" in reply:
            raise Rejected(reply["rejected"], reply.get("reason", "refused"))
        return reply

    async def _push(self) -> None:
        """Push every queued request, many per round trip, until none are left."""
        try:
            while self._outgoing:
                batch, self._outgoing = self._outgoing, []
                try:
                    await self.redis.rpush(REQUESTS, *batch)
                except aioredis.RedisError as exc:
                    log.error("could not forward %d room event(s): %s", len(batch), exc)
                    for raw in batch:  # whoever waits for these hears of it now
                        reply = fastjson.loads(raw).get("reply")
                        future = self._waiting.get(reply[1]) if reply else None
                        if future is not None and not future.done():
                            future.set_exception(exc)
        finally:
            self._pushing = None

    # -- the coordinator's emits to sockets on other processes ---------------------------------
    def emit_remote(self, sid: str, event: str, data: Any) -> bool:
        """Queue an emit to a socket held by another process; False if no process is known
        for it (the caller then emits through python-socketio's manager)."""
        process = self.home.get(sid)
        if process is None or self.redis is None:
            return False
        self._emits.setdefault(process, []).append([sid, event, data])
        if self._publishing is None:
            self._publishing = asyncio.create_task(self._publish_emits())
        return True

    async def _publish_emits(self) -> None:
        """Publish the queued emits, one message per process, until none are left."""
        try:
            while self._emits:
                batches, self._emits = self._emits, {}
                try:
                    async with self.redis.pipeline(transaction=False) as pipe:
                        for process, emits in batches.items():
                            pipe.publish(f"coplay:reply:{process}", fastjson.dumps({"emits": emits}))
                        await pipe.execute()
                except aioredis.RedisError as exc:
                    log.error("could not deliver %d emit(s) to other processes: %s",
                              sum(map(len, batches.values())), exc)
        finally:
            self._publishing = None

    async def _replies(self) -> None:
        async for message in self._pubsub.listen():
            if message.get("type") != "message":
                continue
            answer = fastjson.loads(message["data"])
            if "emits" in answer:
                for sid, event, data in answer["emits"]:
                    await self.deliver(event, data, sid)
                continue
            future = self._waiting.get(answer["id"])
            if future is not None and not future.done():
                future.set_result(answer["reply"])

    async def _serve(self) -> None:
        """The coordinator's loop: take forwarded events, run them, answer."""
        while True:
            if not self.is_coordinator:
                await asyncio.sleep(0.2)
                continue
            try:
                popped = await self.redis.blpop([REQUESTS], timeout=1)
                more = await self.redis.lpop(REQUESTS, POP_MAX) if popped is not None else None
            except aioredis.RedisError:
                log.exception("redis unavailable while serving room requests")
                await asyncio.sleep(0.5)
                continue
            if popped is None:
                continue
            for raw in [popped[1], *(more or [])]:
                task = asyncio.create_task(self._handle(fastjson.loads(raw)))
                self._work.add(task)
                task.add_done_callback(self._work.discard)

    async def _handle(self, request: dict) -> None:
        model, handler = self.handlers.get(request["event"], (None, None))
        sid = request["sid"]
        if request["event"] != DISCONNECT:
            self.home[sid] = request["from"]
        try:
            if handler is None:
                raise Rejected(f"unknown room event {request['event']!r}", "unknown_event")
            payload = validate(model, request["payload"]) if model is not None else None
            reply = await self._in_order(sid, handler(sid, request["session"], payload))
        except Rejected as exc:
            reply = {"rejected": str(exc), "reason": exc.reason}
        except Exception:
            log.exception("forwarded %s from %s failed", request["event"], sid)
            reply = {"rejected": "internal error", "reason": "internal"}
        if request["event"] == DISCONNECT:
            self.home.pop(sid, None)
        if "reply" in request:
            process, number = request["reply"]
            answer = fastjson.dumps({"id": number, "reply": reply})
            await self.redis.publish(f"coplay:reply:{process}", answer)
        elif "rejected" in reply and self.refuse is not None:  # nobody waits: tell the page
            await self.refuse(sid, request["event"], reply["rejected"], reply["reason"])

    async def _in_order(self, sid: str, work: Awaitable[dict]) -> dict:
        # one socket's events run one at a time, in arrival order (asyncio.Lock is FIFO)
        lock = self._locks.setdefault(sid, asyncio.Lock())
        try:
            async with lock:
                return await work
        finally:
            if not lock.locked() and not getattr(lock, "_waiters", None):
                self._locks.pop(sid, None)
