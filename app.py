"""Coplay server: Quart serves the pages and the vendored runtime, python-socketio
carries participants' data (and, later, multiplayer relay). It never runs the game.

    python app.py [--port 8000] [--experiments-dir experiments] [--database data/coplay.sqlite]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import signal
import sys
import threading
from pathlib import Path

import socketio
from pydantic import ValidationError
from quart import Quart

from server.admin.routes import register_admin
from server.data.storage import Store
from server.monitor.doors import StudyDoors
from server.monitor.live import Monitor, register_monitor
from server.monitor.presence import Presence
from server.multiplayer.cluster import Cluster
from server.multiplayer.relay import Relay
from server.multiplayer.replay_pool import Replays
from server.replay_viewer.routes import register_replay_viewer
from server.settings import ROOT, ServerSettings
from server.study.experiment import ExperimentError, load_experiments
from server.study.flow import Flow
from server.study.packages import PackageConfigError, PackageSource
from server.transport import serving
from server.transport.limits import Limits
from server.transport.socket_server import SocketServer
from server.transport.sockets import SocketHandlers
from server.transport.web import register_routes
from server.vendor import STAMP

log = logging.getLogger("coplay")


# the relay's per-frame events, dispatched without a task each (server/transport/socket_server.py); they
# never wait on storage, so running them in the socket's reader holds nothing up
INLINE_EVENTS = frozenset({"input"})


class ConfigError(RuntimeError):
    """The server cannot start; the message says which file and field to fix."""


def _vendor_version(vendor_dir: Path) -> str:
    stamp = vendor_dir / STAMP
    if not stamp.exists():
        raise ConfigError(f"{vendor_dir}: browser runtime not vendored; run `python -m server.vendor`")
    return stamp.read_text().strip()[:12]


def create_app(settings: ServerSettings | None = None) -> socketio.ASGIApp:
    settings = settings or ServerSettings()
    try:
        experiments = load_experiments(settings.experiments_dir)
        packages = PackageSource(settings.pyscript_toml, settings.vendor_dir)
        packages.current()  # fail at startup, not on the first participant
        for exp in experiments.values():  # and each experiment's own pyscript.toml
            packages.for_experiment(exp)
    except (ExperimentError, PackageConfigError) as exc:
        raise ConfigError(str(exc)) from None
    default = settings.default_experiment or sorted(experiments)[0]
    if default not in experiments:
        raise ConfigError(f"default_experiment {default!r} is not one of {sorted(experiments)}")

    quart = Quart(__name__, template_folder=str(ROOT / "pages"))
    quart.config["MAX_CONTENT_LENGTH"] = settings.max_payload_bytes
    store = Store(settings.database)
    sio = SocketServer(
        async_mode="asgi",
        inline_events=INLINE_EVENTS,
        ping_interval=settings.ping_interval,
        ping_timeout=settings.ping_timeout,
        max_http_buffer_size=settings.max_payload_bytes,
        # several processes: emits reach a participant on whichever process holds the socket
        client_manager=socketio.AsyncRedisManager(settings.redis_url) if settings.redis_url else None,
    )
    handlers = SocketHandlers(sio, store, experiments, Limits.from_settings(settings))
    cluster = Cluster(settings.redis_url) if settings.redis_url else None
    replays = Replays(settings.replay_workers, packages, settings.wheel_cache())
    replays.warn_unusable(experiments)  # browser-only wheels, named before anyone plays
    presence = Presence()  # who is where right now: the live monitor's view
    relay = Relay(sio, handlers, store, experiments, cluster, settings.max_rooms_per_ip, replays, presence)
    lifecycle = handlers.lifecycle
    lifecycle.flush_hooks.append(relay.shutdown)  # on SIGTERM: open rooms saved as interrupted
    doors = StudyDoors()  # studies the researcher closed to new arrivals
    Flow(handlers, store, experiments, packages, presence, doors)
    register_routes(quart, experiments, default, packages, settings.vendor_dir,
                    _vendor_version(settings.vendor_dir))
    access = register_admin(quart, experiments, settings.database, settings.admin_token,
                            password_hash=settings.admin_password_hash, secret_key=settings.secret_key)
    monitor = Monitor(sio, access, relay, presence, doors, store, experiments, settings.monitor_rtt_ms)
    register_monitor(quart, monitor, access)
    register_replay_viewer(quart, experiments, packages, settings.database,
                           _vendor_version(settings.vendor_dir))

    @quart.before_serving
    async def open_store() -> None:
        await store.open()
        await monitor.start()
        if cluster is not None:
            await cluster.start()

    @quart.after_serving
    async def close_store() -> None:
        if cluster is not None:
            await cluster.stop()
        await monitor.stop()
        await replays.close()  # after the drain: its rooms' replays had their chance
        await store.close()

    quart.extensions["coplay"] = {"settings": settings, "store": store, "sockets": handlers, "relay": relay,
                                  "replays": replays, "experiments": experiments, "lifecycle": lifecycle,
                                  "presence": presence, "monitor": monitor}
    return socketio.ASGIApp(sio, other_asgi_app=quart)


def parse_args(argv: list[str] | None = None) -> ServerSettings:
    parser = argparse.ArgumentParser(description="Run the Coplay experiment server.")
    for name, field in ServerSettings.model_fields.items():
        parser.add_argument("--" + name.replace("_", "-"), dest=name, default=None,
                            help=f"(default: {field.default}; env COPLAY_{name.upper()})")
    args = {k: v for k, v in vars(parser.parse_args(argv)).items() if v is not None}
    return ServerSettings(**args)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    from server.vendor import VendorError, vendor

    try:
        settings = parse_args(argv)
    except ValidationError as exc:
        problems = "\n".join(f"  {'.'.join(map(str, e['loc']))}: {e['msg']}"
                             for e in exc.errors(include_input=False))
        print(f"coplay: cannot start: bad setting(s):\n{problems}", file=sys.stderr)
        return 2
    try:
        vendor(settings.vendor_dir)
        app = create_app(settings)
    except (ConfigError, VendorError) as exc:
        print(f"coplay: cannot start:\n{exc}", file=sys.stderr)
        return 2
    # Everything loaded so far lives as long as the process: keep it out of the cyclic
    # collector, whose full passes over it stalled the relay (p99) under load.
    gc.freeze()
    # The relay's thread waits for the GIL whenever a helper thread runs Python (the replay
    # pool's result handler, the database driver's thread): hand it back after 1 ms rather
    # than CPython's default 5 ms.
    sys.setswitchinterval(0.001)
    print(f"coplay: serving http://{settings.host}:{settings.port}/ on {settings.asgi_server} "
          f"(experiments: {', '.join(sorted(app.other_asgi_app.extensions['coplay']['experiments']))})",
          flush=True)
    return serving.run(serve_until_signal(app, settings))


async def serve_until_signal(app: socketio.ASGIApp, settings: ServerSettings) -> int:
    """Serve until SIGTERM/SIGINT, then shut down gracefully within ``shutdown_grace`` seconds
    (server/transport/lifecycle.py): stop taking participants, tell pages to reconnect, save open rooms,
    finish running handlers, close the store. A shutdown that overruns exits with 1."""
    grace = settings.shutdown_grace
    lifecycle = app.other_asgi_app.extensions["coplay"]["lifecycle"]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal(name: str) -> None:
        if stop.is_set():
            log.warning("%s: already shutting down", name)
            return
        log.info("%s: shutting down within %.1f s", name, grace)
        watchdog = threading.Timer(grace + 2.0, _overran, (grace,))
        watchdog.daemon = True
        watchdog.start()
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig.name)

    async def drained() -> None:
        await stop.wait()
        # what is left after the drain: the ASGI server's stop, then the store closes
        await lifecycle.drain(grace - 1.5)

    await serving.serve(app, settings.host, settings.port, settings.asgi_server, drained)
    log.info("stopped")
    return 0


def _overran(grace: float) -> None:
    log.error("shutdown took longer than %.1f s: exiting anyway", grace + 2.0)
    logging.shutdown()
    os._exit(1)


if __name__ == "__main__":
    sys.exit(main())
