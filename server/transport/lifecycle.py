"""Graceful shutdown. On SIGTERM/SIGINT (app.py) the server drains:

1. it refuses new Socket.IO connections and new multiplayer joins ("server restarting"),
2. tells every connected page ``server_restart`` ({"retry_after_ms", "message"}),
3. runs the flush hooks (the relay saves every open room as ``interrupted`` with its inputs),
4. keeps serving data events of connected pages (so a page can upload what it holds and get
   its acks) until every page has left or the linger time is over,
5. then refuses every event, waits for the handlers still running, and closes the remaining
   transports at the Engine.IO level (browsers' socket.io-client then reconnects by itself).

The caller then lets hypercorn stop and closes the store. A record is acknowledged only after
its commit, and no handler runs once the store is closed, so no acknowledged record is lost."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import socketio

log = logging.getLogger("coplay.lifecycle")

RESTART_MESSAGE = "server restarting; retry in a few seconds"
# events refused as soon as the server drains: they would start something that cannot finish here
REFUSED_WHILE_DRAINING = frozenset({"mp_join"})


class Lifecycle:
    """The server's draining state and the count of Socket.IO handlers running."""

    def __init__(self, sio: socketio.AsyncServer):
        self.sio = sio
        self.draining = False  # no new connections or rooms
        self.closed = False  # no events at all
        self.in_flight = 0
        self.flush_hooks: list[Callable[[], Awaitable[Any]]] = []
        self.stats = {"refused_connects": 0, "refused_events": 0}
        self._changed: asyncio.Event | None = None

    # -- hooks used by server/transport/sockets.py ------------------------------------------------------
    def check_connect(self) -> None:
        if self.draining:
            self.stats["refused_connects"] += 1
            raise socketio.exceptions.ConnectionRefusedError(RESTART_MESSAGE)

    def tracked(self, event: str, run: Callable[..., Awaitable[dict]]) -> Callable[..., Awaitable[dict]]:
        """Wrap a guarded handler: counted while it runs, refused once the server no longer
        takes it (the ack then says so, and nothing is stored)."""

        async def tracked_run(sid: str, data: Any = None) -> dict:
            if self.closed or (self.draining and event in REFUSED_WHILE_DRAINING):
                self.stats["refused_events"] += 1
                return {"ok": False, "error": RESTART_MESSAGE, "retry": True}
            self.in_flight += 1
            try:
                return await run(sid, data)
            finally:
                self.in_flight -= 1
                self._notify()

        return tracked_run

    # -- draining -----------------------------------------------------------------------------
    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()

    def connections(self) -> int:
        return len(self.sio.eio.sockets)

    async def _until(self, done: Callable[[], bool], deadline: float) -> bool:
        """Wait until ``done()`` or the deadline (monotonic); handler ends wake it early."""
        self._changed = self._changed or asyncio.Event()
        while not done():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), min(left, 0.05))
            except TimeoutError:
                pass
        return True

    async def drain(self, timeout: float, retry_after_ms: int | None = None) -> dict:
        """Everything but closing the store, within ``timeout`` seconds. Returns what happened."""
        t0 = time.monotonic()
        deadline = t0 + max(0.1, timeout)
        linger_until = t0 + max(0.05, timeout - 1.0)  # keep >= 1 s for the handlers still running
        self.draining = True
        told = self.connections()
        retry = int(timeout * 1000) if retry_after_ms is None else retry_after_ms
        try:
            await self.sio.emit("server_restart", {"retry_after_ms": retry, "message": RESTART_MESSAGE})
        except Exception:
            log.exception("could not announce the restart")
        flushed = []
        for hook in self.flush_hooks:
            try:
                flushed.append(await asyncio.wait_for(hook(), max(0.01, deadline - time.monotonic())))
            except Exception:
                log.exception("shutdown flush hook %r failed", hook)
        left_alone = await self._until(lambda: self.connections() == 0 and self.in_flight == 0, linger_until)
        self.closed = True
        idle = await self._until(lambda: self.in_flight == 0, deadline)
        remaining = self.connections()
        if remaining:
            try:
                closing = [self.sio.eio.disconnect(eio_sid) for eio_sid in list(self.sio.eio.sockets)]
                await asyncio.wait_for(asyncio.gather(*closing, return_exceptions=True),
                                       max(0.1, deadline - time.monotonic()))
            except Exception:
                log.exception("closing the remaining connections failed")
        report = {"clients_told": told, "flushed": flushed, "clients_left_by_themselves": left_alone,
                  "closed_by_server": remaining, "handlers_unfinished": 0 if idle else self.in_flight,
                  "seconds": round(time.monotonic() - t0, 3), **self.stats}
        log.info("drained: %s", report)
        return report
