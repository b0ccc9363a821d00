"""The ASGI server under the app, in this process's event loop, until a shutdown trigger.

Granian (default) does HTTP and WebSocket framing and socket I/O in Rust threads, so the one
Python thread spends its time on Socket.IO and the relay: at 100 rooms x 30 Hz on one core the
relay's p99 was 73.8 ms on hypercorn and 6.4 ms on granian (bench/load.py measures both).
Hypercorn (pure Python, Quart's default) stays selectable (``asgi_server``) for a platform
without granian's binary wheels. Both run on uvloop where it is installed."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Literal

log = logging.getLogger("coplay.serving")

AsgiServer = Literal["granian", "hypercorn"]


async def serve(app: Any, host: str, port: int, server: AsgiServer,
                shutdown_trigger: Callable[[], Awaitable[None]]) -> None:
    """Serve ``app`` on host:port; returns once ``shutdown_trigger()`` has returned and the
    server has stopped (ASGI lifespan shutdown included)."""
    if server == "granian":
        await _granian(app, host, port, shutdown_trigger)
    else:
        await _hypercorn(app, host, port, shutdown_trigger)


async def _granian(app: Any, host: str, port: int, shutdown_trigger: Callable[[], Awaitable[None]]) -> None:
    from granian.constants import Interfaces
    from granian.log import LogLevels
    from granian.server.embed import Server

    calls = _OpenCalls(app)
    server = Server(calls, address=host, port=port, interface=Interfaces.ASGI, websockets=True,
                    backlog=1024, log_level=LogLevels.warning)
    # granian flags its embedded mode as experimental on every start; the version is pinned and
    # our tests cover serving, WebSockets and shutdown through it, so researchers need not see it
    logging.getLogger("_granian").addFilter(lambda record: "experimental" not in record.getMessage())

    async def stop_when_triggered() -> None:
        await shutdown_trigger()
        # pages answer the Engine.IO close the drain sent by closing their side: let them, so
        # no connection is cut mid-close when granian's runtime stops
        await calls.wait_ended(CLOSE_WAIT_S)
        server.stop()

    watcher = asyncio.create_task(stop_when_triggered())
    try:
        await server.serve()
    finally:
        watcher.cancel()


CLOSE_WAIT_S = 1.0


class _OpenCalls:
    """ASGI wrapper counting the HTTP requests and WebSockets in progress."""

    def __init__(self, app: Any):
        self.app = app
        self.open = 0

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            return await self.app(scope, receive, send)
        self.open += 1
        try:
            return await self.app(scope, receive, send)
        finally:
            self.open -= 1

    async def wait_ended(self, timeout: float) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while self.open and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)


async def _hypercorn(app: Any, host: str, port: int, shutdown_trigger: Callable[[], Awaitable[None]]) -> None:
    from hypercorn.asyncio import serve as hypercorn_serve
    from hypercorn.config import Config

    config = Config()
    config.bind = [f"{host}:{port}"]
    config.accesslog = None
    config.graceful_timeout = 1.0  # the app has drained its connections already (transport/lifecycle.py)
    await hypercorn_serve(app, config, shutdown_trigger=shutdown_trigger)


def run(main: Coroutine[Any, Any, int]) -> int:
    """Run the server's main coroutine on uvloop if it is installed (less CPU per message
    than asyncio's own loop), else asyncio's, and tear the loop down in bounded time."""
    try:
        import uvloop
        loop = uvloop.new_event_loop()
    except ImportError:
        loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(main)
    finally:
        try:
            _cancel_leftovers(loop)
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            asyncio.set_event_loop(None)
            loop.close()


def _cancel_leftovers(loop: asyncio.AbstractEventLoop, timeout: float = 1.0) -> None:
    """Cancel what is still running once the server has stopped. Unlike asyncio.run, do not
    wait forever: a connection's reader may await a future of the ASGI server's (granian's
    Rust runtime, already stopped) that never ends, and would hang the exit."""
    tasks = asyncio.all_tasks(loop)
    for task in tasks:
        task.cancel()
    if tasks:
        _, pending = loop.run_until_complete(asyncio.wait(tasks, timeout=timeout))
        if pending:
            log.info("left %d task(s) of closed connections behind at exit", len(pending))
