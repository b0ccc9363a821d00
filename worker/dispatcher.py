"""Answers channel requests. Transport-agnostic: it is given a ``post(text)`` function,
a ``post_frames(text, pixel_buffers)`` function for replies carrying RGB frames, and a
millisecond ``clock()``, so the same code serves the PyScript worker, the ``?worker=0``
main-thread baseline and CPython tests."""

import sys
import traceback

from protocol import messages as m
from worker.env_host import EnvHost

ASYNC_TYPES = (m.INIT, m.INSTALL_PACKAGES)


class Dispatcher:
    def __init__(self, post, clock, installer=None, runtime="cpython", post_frames=None):
        self.post = post
        # CPython callers that draw nothing may leave it out: the pixels are dropped
        self.post_frames = post_frames or (lambda text, frames: post(text))
        self.clock = clock
        self.installer = installer
        self.runtime = runtime
        self.host = EnvHost()
        self.options = {}

    def send(self, msg):
        self.post(m.encode(msg))

    def announce_ready(self):
        self.send(m.make(m.READY_ID, m.READY, {
            "runtime": self.runtime, "python": sys.version.split()[0], "t_worker": self.clock(),
        }))

    def progress(self, stage, message, fraction):
        self.send(m.progress(stage, message, fraction))

    def handle_text(self, text):
        """Handle one raw message. Returns a coroutine for requests that must await
        (INIT, INSTALL_PACKAGES) — the caller schedules it — else None."""
        started = self.clock()
        try:
            msg = m.decode(text)
        except m.ProtocolError as exc:
            self.send(m.error(m.READY_ID, "ProtocolError", str(exc)))
            return None
        if msg["type"] not in m.REQUESTS:
            self.send(m.error(msg["id"], "ProtocolError", "not a request: " + msg["type"]))
            return None
        if msg["type"] in ASYNC_TYPES:
            return self._run_async(msg, started)
        self.host.take_frames()  # nothing left over from a request that failed
        try:
            result = self._handle_sync(msg)
        except Exception as exc:
            self._send_error(msg, exc)
            return None
        self._reply(msg, result, started)
        return None

    async def _run_async(self, msg, started):
        try:
            if msg["type"] == m.INIT:
                result = self._init(msg)
            else:
                result = await self._install(msg)
        except Exception as exc:
            self._send_error(msg, exc)
            return
        self._reply(msg, result, started)

    def _reply(self, msg, result, started):
        result["t_sent"] = msg.get("t_sent")
        result["t_worker_start"] = started
        result["t_worker_end"] = self.clock()
        result["request"] = msg["type"]
        reply = m.make(msg["id"], m.RESULT_FOR[msg["type"]], result)
        frames = self.host.take_frames()
        if frames:
            self.post_frames(m.encode(reply), frames)
        else:
            self.send(reply)

    def _send_error(self, msg, exc):
        self.send(m.error(
            msg["id"], type(exc).__name__, str(exc),
            "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
            stage=msg["type"],
        ))

    def _init(self, msg):
        self.options = dict(msg.get("options") or {})
        self.host.ring_size = int(self.options.get("ring_size", self.host.ring_size))
        return {"runtime": self.runtime, "python": sys.version.split()[0]}

    async def _install(self, msg):
        packages = msg["packages"]
        if not packages:
            return {"installed": []}
        if self.installer is None:
            raise RuntimeError("this runtime cannot install packages")
        installed = await self.installer(packages, self.options, self.progress)
        return {"installed": installed}

    def _handle_sync(self, msg):
        kind = msg["type"]
        if kind == m.SET_GLOBALS:
            self.host.set_globals(msg["globals"])
            return {"names": sorted(msg["globals"])}
        if kind == m.RUN_INIT_CODE:
            self.progress("loading_env", "Loading environment…", 0.9)
            self.host.load(msg["code"], msg.get("filename", "env.py"))
            return {"loaded": True}
        if kind == m.RESET:
            return self.host.reset(msg.get("seed"), render=msg.get("render", True))
        if kind == m.STEP:
            return self.host.step(msg["actions"], render=msg.get("render", True),
                                  include_obs=bool(msg.get("include_obs")))
        if kind == m.BATCH:
            return {"results": self.host.run_batch(msg["ops"])}
        raise m.ProtocolError("unhandled request " + kind)
