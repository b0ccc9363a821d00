"""python-socketio's AsyncServer with a short path for the relay's hot events.

At 100 rooms x 2 players x 30 Hz the server relays 6,000 inputs a second in and out. The
generic Socket.IO path costs per event: a task, a packet object that walks the payload for
binary attachments on the way in and again on the way out, and the client manager's room
lookup. For the events named in ``inline_events`` (fire-and-forget, no ack id, default
namespace, one JSON argument) this server decodes the Engine.IO message once and awaits the
registered handler in the socket's own reader, in arrival order; ``send_to`` writes an event
to one local socket as one pre-encoded Engine.IO message. Anything else (acks, binary,
namespaces, several arguments, a socket not yet connected) takes python-socketio's own path,
so validation and refusals are the same either way. Measured in bench/load.py."""

from __future__ import annotations

from typing import Any

import socketio

from server.transport import fastjson

_EVENT_PREFIX = '2["'  # Socket.IO EVENT, default namespace, no ack id, first argument a string


class SocketServer(socketio.AsyncServer):
    def __init__(self, *args: Any, inline_events: frozenset[str] = frozenset(), **kwargs: Any):
        super().__init__(*args, json=fastjson, **kwargs)
        self.inline_events = inline_events

    async def _handle_eio_message(self, eio_sid: str, data: Any) -> None:
        if data.__class__ is str and data.startswith(_EVENT_PREFIX) and eio_sid not in self._binary_packet:
            end = data.find('"', 3)
            if data[3:end] in self.inline_events:
                try:
                    packet = fastjson.loads(data[1:])
                except ValueError:
                    packet = None
                sid = self.manager.sid_from_eio_sid(eio_sid, "/")
                if packet.__class__ is list and len(packet) == 2 and sid is not None \
                        and self.manager.is_connected(sid, "/"):
                    handler = self.handlers["/"].get(packet[0])
                    if handler is not None:
                        await handler(sid, packet[1])
                        return
        await super()._handle_eio_message(eio_sid, data)

    async def send_to(self, sid: str, event: str, data: Any) -> bool:
        """Emit ``event`` to one socket connected to this process; False if it is not here
        (then the caller emits through the client manager)."""
        eio_sid = self.manager.eio_sid_from_sid(sid, "/")
        if eio_sid is None or not self.manager.is_connected(sid, "/"):
            return False
        await self.eio.send(eio_sid, "2" + fastjson.dumps([event, data]))
        return True
