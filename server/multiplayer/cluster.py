"""Several server processes sharing one study (a Redis URL in the settings).

python-socketio's Redis manager delivers an emit to a socket on whichever process holds it.
This module adds what rooms need on top, with Redis the only shared part:

* **Membership.** Every process keeps a key alive in Redis. One of them, elected through a
  lock, is the *matchmaker*: it holds the waiting rooms and watches the others; when a
  process's key expires it tells everyone (``on_dead``), so rooms it owned can be ended and
  seats whose socket it held can be treated as disconnected.
* **Routing.** A room event is handled by one process: joins by the matchmaker, the rest of
  a room's events by the process that owns the room (see server/multiplayer/relay.py, which
  says where each event goes). An event for another process travels through that process's
  own Redis list (popped in bulk; nothing is lost while it is busy); replies come back on
  the asking process's pub/sub channel. Events of one socket bound for one process are
  handled in the order they arrived.
* **Emits to sockets elsewhere**, batched: one pub/sub message per process per flush, read
  by that process only (python-socketio's manager would send each emit to every process).
  The same batches carry route claims: an owner tells a socket's process "send this
  socket's room events to me", ahead of the emits that start its room.

Inputs are not waited for (pages send them without an acknowledgement): a refused one reaches
the page as a ``server_error`` event, as on a single process."""

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

LEADER_KEY = "coplay:coordinator"  # who is the matchmaker
PROCESSES = "coplay:processes"  # every process started and not yet found dead
ALIVE = "coplay:alive:"  # + process id: kept alive while the process runs
REQUESTS = "coplay:requests:"  # + process id: room events for it to handle
REPLIES = "coplay:reply:"  # + process id: replies and emits for it
EVENTS = "coplay:cluster"  # broadcast: a process was found dead
LOCK_MS = 6000
REFRESH_S = 2.0
REPLY_TIMEOUT_S = 10
POP_MAX = 200  # requests taken from the list per round trip
ROUTE = "__route__"  # an emit batch entry that sets where a socket's room events go

# refresh the lock only if we still hold it
_REFRESH = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""

Handler = Callable[[str, dict, Any], Awaitable[dict]]
Where = Callable[[str, Any], "str | None"]  # (sid, payload) -> the process to handle it, None: here


class Cluster:
    def __init__(self, url: str):
        self.url = url
        self.me = secrets.token_hex(6)
        self.redis: aioredis.Redis | None = None
        self.leader: str | None = None  # the matchmaker, as last read
        self.handlers: dict[str, tuple[type | None, Handler]] = {}
        # how a process tells a page its forwarded, unacknowledged event was refused
        self.refuse: Callable[[str, str, str, str], Awaitable[Any]] | None = None
        # emit (event, data, sid) to a socket on this process: how emits from elsewhere arrive
        self.deliver: Callable[[str, Any, str], Awaitable[Any]] | None = None
        # a process was found dead: (process, whether this process is the matchmaker)
        self.on_dead: list[Callable[[str, bool], Awaitable[None]]] = []
        # news every process hears (broadcast): kind -> what to do with it
        self.on_broadcast: dict[str, Callable[[dict], Awaitable[None]]] = {}
        # the matchmaker changed (the one before died or stopped): its waiting rooms are gone
        self.on_new_leader: list[Callable[[], Awaitable[None]]] = []
        self.dead: set[str] = set()
        # sockets of this process -> the process owning their room (set by route claims)
        self.owner_of: dict[str, str] = {}
        # sockets of other processes this one heard from -> the process holding them
        self.home: dict[str, str] = {}
        # how many events this process sent to others, and handled for others, by event
        self.stats: dict[str, dict[str, int]] = {"forwarded": {}, "served": {}}
        self._locks: dict[str, asyncio.Lock] = {}
        self._tasks: list[asyncio.Task] = []
        self._work: set[asyncio.Task] = set()
        self._waiting: dict[int, asyncio.Future] = {}
        self._ids = 0
        self._outgoing: dict[str, list[str]] = {}  # process -> requests not yet pushed
        self._pushing: asyncio.Task | None = None
        self._emits: dict[str, list[list]] = {}
        self._publishing: asyncio.Task | None = None

    @property
    def is_leader(self) -> bool:
        return self.leader == self.me

    def here(self, process: str | None) -> bool:
        return process is None or process == self.me

    # -- wiring -------------------------------------------------------------------------
    def serve(self, event: str, model: type | None, handler: Handler) -> None:
        """`handler` answers `event` when another process sends it here."""
        self.handlers[event] = (model, handler)

    def route(self, event: str, model: type | None, handler: Handler, where: Where | None = None,
              wait: bool = True, claims: bool = False) -> Handler:
        """`handler` runs on the process `where` names (default: the matchmaker); from any
        other process the validated event is forwarded there (with ``wait=False`` it is
        acknowledged at once, its refusal coming as server_error). With `claims`, a success
        there sends the socket's later room events there too (a seat taken back)."""
        self.serve(event, model, handler)
        where = where or (lambda sid, payload: self.leader)

        async def routed(sid: str, session: dict, payload: Any) -> dict:
            target = where(sid, payload)
            if self.here(target):
                return await self.in_order(sid, handler(sid, session, payload))
            reply = await self.forward(target, event, sid, session, dump(payload), wait)
            if claims:  # at once: the owner's own claim may arrive after the page's next event
                self.owner_of[sid] = target
            return reply

        return routed

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        # a bounded pool that waits for a free connection rather than failing under load
        pool = aioredis.BlockingConnectionPool.from_url(self.url, decode_responses=True, max_connections=16,
                                                        timeout=REPLY_TIMEOUT_S)
        self.redis = aioredis.Redis(connection_pool=pool)
        await self.redis.ping()  # a wrong URL fails the start, not the first participant
        await self.redis.set(ALIVE + self.me, "1", px=LOCK_MS)
        await self.redis.sadd(PROCESSES, self.me)
        self._pubsub = self.redis.pubsub()
        await self._pubsub.subscribe(REPLIES + self.me, EVENTS)
        await self._elect()
        self._tasks = [asyncio.create_task(self._keep_alive()), asyncio.create_task(self._serve()),
                       asyncio.create_task(self._replies())]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.redis is not None:
            # gone on purpose: its rooms were saved by the drain; let another process lead at once
            await self.redis.eval("if redis.call('get', KEYS[1]) == ARGV[1] then "
                                  "return redis.call('del', KEYS[1]) end return 0", 1, LEADER_KEY, self.me)
            await self.redis.delete(ALIVE + self.me)
            await self._pubsub.aclose()
            await self.redis.aclose()
            self.redis = None
        self.leader = None

    async def _elect(self) -> None:
        if await self.redis.set(LEADER_KEY, self.me, nx=True, px=LOCK_MS):
            log.info("process %s is the matchmaker", self.me)
        await self._read_leader()

    async def _read_leader(self) -> None:
        before, self.leader = self.leader, await self.redis.get(LEADER_KEY)
        if before is not None and self.leader is not None and self.leader != before:
            log.warning("process %s is the matchmaker now (was %s)", self.leader, before)
            for hook in self.on_new_leader:
                try:
                    await hook()
                except Exception:
                    log.exception("handling the new matchmaker failed")

    async def _keep_alive(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_S)
            try:
                await self.redis.set(ALIVE + self.me, "1", px=LOCK_MS)
                if self.is_leader:
                    if not await self.redis.eval(_REFRESH, 1, LEADER_KEY, self.me, LOCK_MS):
                        log.error("process %s lost the matchmaker lock", self.me)
                        await self._read_leader()
                    else:
                        await self._find_dead()
                else:
                    await self._elect()
            except aioredis.RedisError:
                log.exception("redis unavailable while keeping this process alive")

    async def _find_dead(self) -> None:
        """The matchmaker's watch: a process whose key expired is dead; everyone hears of it."""
        members = [p for p in await self.redis.smembers(PROCESSES) if p != self.me]
        if not members:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for process in members:
                pipe.exists(ALIVE + process)
            alive = await pipe.execute()
        for process, up in zip(members, alive, strict=True):
            if not up:
                log.error("process %s stopped answering: its rooms end as interrupted", process)
                await self.redis.srem(PROCESSES, process)
                await self.redis.publish(EVENTS, fastjson.dumps({"dead": process}))

    async def _buried(self, process: str) -> None:
        self.dead.add(process)
        await self._read_leader()  # the one that found it, if it was the matchmaker
        for sid in [s for s, owner in self.owner_of.items() if owner == process]:
            del self.owner_of[sid]
        for hook in self.on_dead:
            try:
                await hook(process, self.is_leader)
            except Exception:
                log.exception("handling the death of process %s failed", process)

    async def broadcast(self, kind: str, news: dict) -> None:
        """Tell every other process (its ``on_broadcast[kind]`` runs there)."""
        message = fastjson.dumps({**news, "kind": kind, "from": self.me})
        await self.run(lambda r: r.publish(EVENTS, message))

    # -- forwarding -------------------------------------------------------------------------
    async def forward(self, target: str | None, event: str, sid: str, session: dict, payload: Any,
                      wait: bool = True) -> dict:
        """Send an event to process `target` to handle; its reply (or {"ok": True} at once
        without `wait`). Refusals come back as Rejected."""
        if target is None or target in self.dead:
            raise Rejected("the room service is unavailable (its server process stopped)", "internal")
        request = {"event": event, "sid": sid, "session": session, "payload": payload, "from": self.me}
        counts = self.stats["forwarded"]
        counts[event] = counts.get(event, 0) + 1
        future = None
        if wait:
            self._ids += 1
            request["reply"] = [self.me, self._ids]
            future = self._waiting[self._ids] = asyncio.get_running_loop().create_future()
        self._outgoing.setdefault(target, []).append(fastjson.dumps(request))
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
            self._waiting.pop(request["reply"][1], None)
        if "rejected" in reply:
            raise Rejected(reply["rejected"], reply.get("reason", "refused"))
        return reply

    async def _push(self) -> None:
        """Push every queued request, one round trip for all of them, until none are left."""
        try:
            while self._outgoing:
                batches, self._outgoing = self._outgoing, {}
                try:
                    async with self.redis.pipeline(transaction=False) as pipe:
                        for process, batch in batches.items():
                            pipe.rpush(REQUESTS + process, *batch)
                        await pipe.execute()
                except aioredis.RedisError as exc:
                    log.error("could not forward %d room event(s): %s", sum(map(len, batches.values())), exc)
                    for raw in (r for batch in batches.values() for r in batch):  # their waiters hear now
                        reply = fastjson.loads(raw).get("reply")
                        future = self._waiting.get(reply[1]) if reply else None
                        if future is not None and not future.done():
                            future.set_exception(exc)
        finally:
            self._pushing = None

    # -- emits and route claims for sockets on other processes ------------------------------------
    def emit_remote(self, sid: str, event: str, data: Any) -> bool:
        """Queue an emit to a socket held by another process; False if no process is known
        for it (the caller then emits through python-socketio's manager)."""
        process = self.home.get(sid)
        if process is None or self.redis is None:
            return False
        self._queue_emit(process, [sid, event, data])
        return True

    def claim(self, sid: str) -> None:
        """This process owns the room of `sid` now: its process sends its room events here."""
        process = self.home.get(sid)
        if process is not None:
            self._queue_emit(process, [sid, ROUTE, self.me])

    def release(self, sid: str) -> None:
        """The room of `sid` here has ended: its process keeps its events to itself again."""
        process = self.home.get(sid)
        if process is not None:
            self._queue_emit(process, [sid, ROUTE, None])

    def _queue_emit(self, process: str, entry: list) -> None:
        self._emits.setdefault(process, []).append(entry)
        if self._publishing is None:
            self._publishing = asyncio.create_task(self._publish_emits())

    async def _publish_emits(self) -> None:
        """Publish the queued emits, one message per process, until none are left."""
        try:
            while self._emits:
                batches, self._emits = self._emits, {}
                try:
                    async with self.redis.pipeline(transaction=False) as pipe:
                        for process, emits in batches.items():
                            pipe.publish(REPLIES + process, fastjson.dumps({"emits": emits, "from": self.me}))
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
            if message.get("channel") == EVENTS:
                if answer.get("dead") not in (None, self.me):
                    await self._buried(answer["dead"])
                elif answer.get("kind") in self.on_broadcast and answer.get("from") != self.me:
                    try:
                        await self.on_broadcast[answer["kind"]](answer)
                    except Exception:
                        log.exception("handling the %s broadcast failed", answer["kind"])
                continue
            if "emits" in answer:
                for sid, event, data in answer["emits"]:
                    if event != ROUTE:
                        await self.deliver(event, data, sid)
                    elif data is not None:
                        self.owner_of[sid] = data
                    elif self.owner_of.get(sid) == answer["from"]:
                        del self.owner_of[sid]
                continue
            future = self._waiting.get(answer["id"])
            if future is not None and not future.done():
                future.set_result(answer["reply"])

    # -- handling what others sent ----------------------------------------------------------------
    async def _serve(self) -> None:
        """Take the events other processes sent here, run them, answer."""
        key = REQUESTS + self.me
        while True:
            try:
                popped = await self.redis.blpop([key], timeout=1)
                more = await self.redis.lpop(key, POP_MAX) if popped is not None else None
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
        event = request["event"]
        model, handler = self.handlers.get(event, (None, None))
        sid = request["sid"]
        counts = self.stats["served"]
        counts[event] = counts.get(event, 0) + 1
        if sid:
            self.home[sid] = request["from"]
        try:
            if handler is None:
                raise Rejected(f"unknown room event {event!r}", "unknown_event")
            payload = validate(model, request["payload"]) if model is not None else request["payload"]
            reply = await self.in_order(sid, handler(sid, request["session"], payload))
        except Rejected as exc:
            reply = {"rejected": str(exc), "reason": exc.reason}
        except Exception:
            log.exception("forwarded %s from %s failed", event, sid)
            reply = {"rejected": "internal error", "reason": "internal"}
        if "reply" in request:
            process, number = request["reply"]
            answer = fastjson.dumps({"id": number, "reply": reply})
            await self.redis.publish(REPLIES + process, answer)
        elif "rejected" in reply and self.refuse is not None and sid:  # nobody waits: tell the page
            await self.refuse(sid, event, reply["rejected"], reply["reason"])

    async def in_order(self, sid: str, work: Awaitable[dict]) -> dict:
        # one socket's events run one at a time, in arrival order (asyncio.Lock is FIFO)
        lock = self._locks.setdefault(sid, asyncio.Lock())
        try:
            async with lock:
                return await work
        finally:
            if not lock.locked() and not getattr(lock, "_waiters", None):
                self._locks.pop(sid, None)

    # -- shared records of the rooms a process owns (Redis), kept so others can end them ----------
    async def run(self, work: Callable[[aioredis.Redis], Awaitable[Any]]) -> Any:
        """Run `work` with the Redis connection; a Redis failure is logged, not raised (the
        room records are a safety net, the game goes on without them)."""
        if self.redis is None:
            return None
        try:
            return await work(self.redis)
        except aioredis.RedisError as exc:
            log.error("redis unavailable for the room records: %s", exc)
            return None
