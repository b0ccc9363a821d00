"""Socket.IO from MicroPython through the vendored socket.io-client (window.io).
Tracks connection state on <body> (data-socket, data-disconnects)."""

from js import window

from pages.jsbridge import log, to_js, to_py


class GameSocket:
    def __init__(self, auth, ui, namespace=None):
        self.ui = ui
        self.connected = False
        self.disconnects = 0
        self.watchers = []  # (on_down, on_up) pairs: told when the connection drops / returns
        # a connection attempt that hangs is given up after 4 s (socket.io's default is 20 s),
        # so a page that lost its connection is back well inside the room's reconnect window
        options = to_js({"transports": ["websocket"], "auth": auth, "timeout": 4000,
                         "reconnectionDelayMax": 2000})
        # a namespace other than the default one (the admin monitor's /admin)
        self.sock = window.io(namespace, options) if namespace else window.io(options)
        self.sock.on("connect", self._on_connect)
        self.sock.on("disconnect", self._on_disconnect)
        self.sock.on("connect_error", self._on_connect_error)
        self.sock.on("server_error", self._on_server_error)
        # the server is restarting: it will close this connection and we reconnect; the
        # outbox keeps whatever it has not acknowledged
        self.sock.on("server_restart", lambda *args: self.ui.attr("server", "restarting"))

    def _on_connect(self, *args):
        self.connected = True
        self.ui.attr("socket", "connected")
        if self.disconnects:
            for _, on_up in list(self.watchers):
                on_up()

    def _on_disconnect(self, *args):
        self.connected = False
        self.disconnects += 1
        self.ui.attr("socket", "disconnected")
        self.ui.attr("disconnects", self.disconnects)
        for on_down, _ in list(self.watchers):
            on_down()

    def _on_connect_error(self, err, *args):
        self.ui.attr("socket", "error")
        log("socket connect error:", getattr(err, "message", err))

    def _on_server_error(self, payload, *args):
        log("server rejected an event:", to_py(payload))

    def on(self, event, handler):
        """Subscribe with a handler that receives the payload as a plain dict."""
        def relay(payload=None, *rest):
            handler(to_py(payload))
        self.sock.on(event, relay)

    def send(self, event, payload):
        """Fire and forget (no acknowledgement): per-frame traffic."""
        self.sock.emit(event, to_js(payload))

    async def call_text(self, event, text, timeout_ms=10000):
        """Like call(), with the payload already JSON text (the outbox stores it so): no
        conversion on the way out, and the server decodes and checks it in one pass."""
        if not self.connected:
            return {"ok": False, "error": "not connected", "unreachable": True}
        try:
            ack = await self.sock.timeout(timeout_ms).emitWithAck(event, text)
        except Exception as exc:
            return {"ok": False, "error": str(exc), "unreachable": True}
        result = to_py(ack)
        return result if isinstance(result, dict) else {"ok": False, "error": "bad ack"}

    async def call(self, event, payload, timeout_ms=10000):
        """Emit and wait for the server's acknowledgement; returns the ack as a dict,
        or {"ok": False, "error": ...} when it did not come."""
        try:
            ack = await self.sock.timeout(timeout_ms).emitWithAck(event, to_js(payload))
        except Exception as exc:  # timeout or disconnect: worth retrying
            return {"ok": False, "error": str(exc), "unreachable": True}
        result = to_py(ack)
        return result if isinstance(result, dict) else {"ok": False, "error": "bad ack"}
