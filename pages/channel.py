"""Main-thread end of the typed channel to the env worker.

Requests get numeric ids and per-type deadlines (protocol.messages.Pending). A reply
resolves the awaiting coroutine; a worker error, a crash or a missed deadline kills
the channel: every pending request fails at once and ``on_fatal`` puts up the error
screen. Nothing waits forever."""

import json

import js

from pages.jsbridge import now_ms, wait_on
from protocol import messages as m

CHECK_EVERY_MS = 100


class WorkerError(Exception):
    """The worker answered a request with ERROR (e.g. the env raised)."""

    def __init__(self, reply):
        self.reply = reply
        super().__init__(reply.get("error_type", "Error") + ": " + reply.get("message", ""))


class ChannelDead(Exception):
    """The worker is gone (crashed, unresponsive or failed to start)."""


class ChannelClient:
    def __init__(self, transport, timeouts_ms, on_progress, on_fatal):
        self.transport = transport
        self.pending = m.Pending(timeouts_ms)
        self.resolvers = {}
        self.replies = {}  # id -> decoded reply, handed to the awaiting request()
        self.on_progress = on_progress
        self.on_fatal = on_fatal
        self.dead = None
        self.ready = None
        self._ready_resolvers = []
        self._ready_deadline = now_ms() + self.pending.timeouts[m.INIT]
        transport.onmessage = self._on_message
        transport.onerror = self._on_worker_error
        self._timer = js.setInterval(self._check_deadlines, CHECK_EVERY_MS)

    # -- incoming ----------------------------------------------------------------
    def _on_message(self, event):
        data = event.data
        pixels = None
        if not isinstance(data, str):
            if not js.Array.isArray(data):
                # PyScript posts the exception object when the worker fails to boot.
                self.fail("the game engine failed to start: " + str(js.String(data)))
                return
            # a reply with RGB frames: [json_text, pixels_0, pixels_1, ...]
            pixels = data
            data = str(data[0])
        if not data.startswith("{"):
            return  # PyScript's own bookkeeping ("polyscript:done")
        try:
            msg = m.decode(data)
            if pixels is not None:
                attach_pixels(msg, pixels)
            if msg["type"] == m.READY:
                self.ready = msg
                for resolve in self._ready_resolvers:
                    resolve(data)
                self._ready_resolvers = []
                return
            if msg["type"] == m.PROGRESS:
                self.on_progress(msg)
                return
            if msg["id"] == m.READY_ID and msg["type"] == m.ERROR:
                self.fail("the game engine rejected a message: " + msg["message"])
                return
            if self.pending.close(msg) is None:
                return  # a reply that arrived after its request was failed
        except m.ProtocolError as exc:
            self.fail("bad message from the game engine: " + str(exc))
            return
        resolve = self.resolvers.pop(msg["id"], None)
        if resolve is not None:
            # decoded once here; the promise only carries the id back to request()
            self.replies[msg["id"]] = msg
            resolve(msg["id"])

    def _on_worker_error(self, event):
        text = js_error_text(event)
        self.fail("the game engine crashed: " + text)

    def _check_deadlines(self, *args):
        now = now_ms()
        if self.ready is None and not self.dead and now > self._ready_deadline:
            self.fail("the game engine did not start within "
                      + str(self.pending.timeouts[m.INIT] // 1000) + " s")
            return
        late = self.pending.expired(now)
        if late:
            kind = self.pending.describe(late[0])
            self.fail("the game engine stopped responding (" + kind + " got no reply within "
                      + str(self.pending.timeouts[kind] / 1000) + " s)")

    # -- failure -------------------------------------------------------------------
    def fail(self, reason):
        if self.dead:
            return
        self.dead = reason
        js.clearInterval(self._timer)
        for mid in self.pending.drain():
            resolve = self.resolvers.pop(mid, None)
            if resolve is not None:
                resolve(mid)  # request() finds no reply and raises ChannelDead
        for resolve in self._ready_resolvers:
            resolve(0)
        self._ready_resolvers = []
        self.on_fatal(reason)

    # -- outgoing ------------------------------------------------------------------
    async def wait_ready(self):
        if self.ready is None and not self.dead:
            await wait_on(self._ready_resolvers)
        if self.dead:
            raise ChannelDead(self.dead)
        return self.ready

    async def request(self, mtype, fields=None):
        if self.dead:
            raise ChannelDead(self.dead)
        sent = now_ms()
        mid = self.pending.open(mtype, sent)
        msg = m.make(mid, mtype, fields)
        msg["t_sent"] = sent

        def executor(resolve, reject):
            self.resolvers[mid] = resolve

        promise = js.Promise.new(executor)
        self.transport.postMessage(json.dumps(msg))  # make() already validated it
        await promise
        received = now_ms()
        reply = self.replies.pop(mid, None)
        if reply is None:
            raise ChannelDead(self.dead or "the game engine is gone")
        reply["t_received"] = received
        if reply["type"] == m.ERROR:
            raise WorkerError(reply)
        return reply


def attach_pixels(msg, pixels):
    """Give each image drawable its Uint8ClampedArray (the renderer draws it from there)."""
    count = pixels.length - 1
    for item in m.image_items(msg):
        index = item.get("buffer")
        if not isinstance(index, int) or not 0 <= index < count:
            raise m.ProtocolError("image drawable names pixel buffer " + repr(index)
                                  + "; the reply carries " + str(count))
        item["pixels"] = pixels[index + 1]


def js_error_text(event):
    for name in ("message", "error"):
        if js.Reflect.has(event, name):
            value = getattr(event, name)
            if value is not None:
                return str(js.String(value))
    return "unknown worker error"
