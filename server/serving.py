"""The ASGI server under the app, in this process's event loop, until a shutdown trigger.

Granian (default) does HTTP and WebSocket framing and socket I/O in Rust threads, so the one
Python thread spends its time on Socket.IO and the relay: at 100 rooms x 30 Hz the relay's
p99 fell from about 42 ms on hypercorn to about 12 ms (bench/load.py measures both).
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

    server = Server(app, address=host, port=port, interface=Interfaces.ASGI, websockets=True,
                    backlog=1024, log_level=LogLevels.warning)

    async def stop_when_triggered() -> None:
        await shutdown_trigger()
        server.stop()

    watcher = asyncio.create_task(stop_when_triggered())
    try:
        await server.serve()
    finally:
        watcher.cancel()


async def _hypercorn(app: Any, host: str, port: int, shutdown_trigger: Callable[[], Awaitable[None]]) -> None:
    from hypercorn.asyncio import serve as hypercorn_serve
    from hypercorn.config import Config

    config = Config()
    config.bind = [f"{host}:{port}"]
    config.accesslog = None
    config.graceful_timeout = 1.0  # the app has drained its connections already (server/lifecycle.py)
    await hypercorn_serve(app, config, shutdown_trigger=shutdown_trigger)


def run(main: Coroutine[Any, Any, int]) -> int:
    """Run the server's main coroutine on uvloop if it is installed (less CPU per message
    than asyncio's own loop), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)
