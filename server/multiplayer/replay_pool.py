"""End-of-room replays off the event loop. A replay is pure CPU (hundreds of env steps);
on a thread of the server process it holds the GIL against the relay, so 20 rooms
finishing together stalled every room still playing. Here they run in worker processes
(``replay_workers``), at the lowest CPU priority, so the relay comes first.

They are started by ``forkserver``, never forked from the server: the server embeds
granian's Rust threads, and forking a threaded process is unsafe. The fork server is a
fresh single-threaded interpreter that imports the server's modules once; each worker is
then a cheap fork of it (with ``spawn`` every worker re-imported app.py, 0.75 s of CPU
taken from the relay while it ran).

``replay_workers = 0`` keeps the old way (a thread of the server process) for
comparison and for platforms without process support."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import tempfile
import threading
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from server.multiplayer.replay import ReplayFailed, run_job
from server.multiplayer.wheels import warn_unusable
from server.study.games import GameSpec, env_search_path
from server.study.packages import PackageConfigError, PackageSource

log = logging.getLogger("coplay.replay")

# Replays are background work: the relay comes first on a busy machine. SCHED_IDLE (Linux)
# runs them only on CPU time the server does not want; elsewhere the lowest niceness.
WORKER_NICENESS = 19


def _worker_started() -> None:
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        return
    except (AttributeError, OSError):
        pass
    try:
        os.nice(WORKER_NICENESS)
    except OSError:  # not permitted here: same priority as the server, still off its GIL
        pass


def _context() -> multiprocessing.context.BaseContext:
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    # the fork server imports these once; its forks (the workers) start with them loaded
    ctx.set_forkserver_preload(["__main__", "server.multiplayer.replay"])
    return ctx


class Replays:
    """Runs room replays in a lazily created process pool, with the env's folders and the
    experiment's pure-Python wheels (unpacked under ``cache_dir``) importable."""

    def __init__(self, workers: int = 0, packages: PackageSource | None = None,
                 cache_dir: Path | None = None):
        self.workers = workers
        self.packages = packages
        self.cache_dir = Path(cache_dir) if cache_dir else Path(tempfile.mkdtemp(prefix="coplay-wheels-"))
        self._pool: ProcessPoolExecutor | None = None
        self.running = 0
        self.closed = False
        # threads share sys.path and sys.modules: two replays at once could import each
        # other's modules, so the thread way runs one replay at a time
        self._one_thread = asyncio.Lock()
        self._submitting = threading.Lock()

    # -- what a replay of one game needs ---------------------------------------------------
    def wheels(self, exp: Any) -> list[Path]:
        if self.packages is None:
            return []
        return list(self.packages.for_experiment(exp).wheels.values())

    def warn_unusable(self, experiments: dict[str, Any]) -> dict[str, list[str]]:
        """At startup: name every listed wheel the CPython replay cannot import."""
        return {name: reasons for name, exp in sorted(experiments.items())
                if (reasons := warn_unusable(f"experiment {name}", self.wheels(exp)))}

    def job(self, exp: Any, game: GameSpec, players: list[str], seed: int,
            inputs: dict[str, dict[int, Any]], end_frame: int) -> dict[str, Any]:
        try:
            wheels = [str(w) for w in self.wheels(exp)]
        except PackageConfigError as exc:  # edited into a broken state since startup
            raise ReplayFailed(f"package list unreadable: {exc}") from None
        return {"env_source": game.env_source, "env_config": game.env_config, "players": players,
                "seed": seed, "inputs": inputs, "end_frame": end_frame,
                "default_action": game.default_action, "filename": str(game.env_path),
                "search_path": env_search_path(game, exp.directory), "wheels": wheels,
                "cache_dir": str(self.cache_dir)}

    # -- running ----------------------------------------------------------------------------
    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(max_workers=self.workers,
                                             mp_context=_context(),
                                             initializer=_worker_started)
        return self._pool

    def _submit(self, job: dict[str, Any]) -> Future:
        with self._submitting:  # one pool, created once, even with submits from several threads
            return self._executor().submit(run_job, job)

    async def run(self, exp: Any, game: GameSpec, players: list[str], seed: int,
                  inputs: dict[str, dict[int, Any]], end_frame: int) -> dict[str, Any]:
        """{"hash", "end_frame"} of the replay; ReplayFailed with the reason if it could not run."""
        if self.closed:
            raise ReplayFailed("server shutting down: replay not run")
        job = self.job(exp, game, players, seed, inputs, end_frame)
        self.running += 1
        try:
            if self.workers <= 0:
                async with self._one_thread:
                    result = await asyncio.to_thread(run_job, job)
            else:
                try:
                    # submit() may start a worker, which waits for the fork server (1 s
                    # the first time, while it imports the server's modules): not on the loop
                    future = await asyncio.to_thread(self._submit, job)
                    result = await asyncio.wrap_future(future)
                except BrokenProcessPool as exc:  # a worker died (the env crashed the interpreter)
                    self._discard_pool()
                    raise ReplayFailed(f"replay worker died: {exc}") from None
        finally:
            self.running -= 1
        if "error" in result:
            raise ReplayFailed(result["error"])
        return result

    def _discard_pool(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    async def close(self, timeout: float = 2.0) -> None:
        """On server shutdown: no new replays; running ones get ``timeout`` seconds, then
        their workers are stopped (an env stuck in a loop must not hold up the exit)."""
        self.closed = True
        pool, self._pool = self._pool, None
        if pool is None:
            return
        processes = list(getattr(pool, "_processes", {}).values())  # to stop stragglers
        pool.shutdown(wait=False, cancel_futures=True)
        deadline = asyncio.get_running_loop().time() + timeout
        while any(p.is_alive() for p in processes) and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        for p in processes:
            if p.is_alive():
                log.warning("replay worker %s still busy at shutdown: stopped", p.pid)
                p.terminate()
        await asyncio.to_thread(pool.shutdown, wait=True)
