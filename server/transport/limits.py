"""Limits on what one client can make the server do: a token bucket per connection
(events per second, with a burst), disconnection of a connection that keeps sending
refused events, and a cap on concurrent connections per client IP.

Pure bookkeeping with an injectable clock (unit-testable without sleeps); server/transport/sockets.py
calls it for every event, connection and disconnection."""

from __future__ import annotations

import json
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from socketio import packet

RATE_LIMITED = "rate limited"
# Events whose schema has free-form dicts and that a page sends rarely: capped in size
# (the whole Socket.IO message is capped by max_payload_bytes).
MAX_EVENT_BYTES = {"episode_start": 65_536, "client_event": 65_536}


class TokenBucket:
    """``burst`` tokens, refilled at ``rate`` per second; each event takes one."""

    __slots__ = ("rate", "burst", "tokens", "stamp")

    def __init__(self, rate: float, burst: float, now: float):
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.stamp = now

    def take(self, now: float, cost: float = 1.0) -> bool:
        elapsed = now - self.stamp
        if elapsed > 0:
            self.tokens = min(self.burst, self.tokens + elapsed * self.rate)
            self.stamp = now
        if self.tokens >= cost:
            self.tokens -= cost
            return True
        return False


@dataclass
class Connection:
    ip: str
    bucket: TokenBucket
    refused: deque = field(default_factory=deque)  # times of recent refused events
    closing: bool = False  # already judged abusive: being disconnected


def client_ip(environ: dict, trust_forwarded_for: bool = False) -> str:
    """The peer address of the ASGI connection (engine.io's REMOTE_ADDR is a constant).
    With ``trust_forwarded_for`` (only behind one reverse proxy that appends the address
    it saw), the last X-Forwarded-For entry."""
    if trust_forwarded_for:
        forwarded = environ.get("HTTP_X_FORWARDED_FOR", "")
        last = forwarded.rsplit(",", 1)[-1].strip()
        if last:
            return last
    scope = environ.get("asgi.scope") or {}
    client = scope.get("client")
    if client:
        return str(client[0])
    return str(environ.get("REMOTE_ADDR") or "unknown")


class Limits:
    def __init__(self, rate: float = 120.0, burst: int = 240, abuse_limit: int = 600,
                 abuse_window: float = 10.0, max_per_ip: int = 200, trust_forwarded_for: bool = False,
                 clock: Callable[[], float] = time.monotonic):
        self.rate = rate
        self.burst = burst
        self.abuse_limit = abuse_limit
        self.abuse_window = abuse_window
        self.max_per_ip = max_per_ip
        self.trust_forwarded_for = trust_forwarded_for
        self.clock = clock
        self.connections: dict[str, Connection] = {}
        self.per_ip: Counter[str] = Counter()
        self.abuse_disconnects = 0

    @classmethod
    def from_settings(cls, settings) -> Limits:
        return cls(rate=settings.rate_limit, burst=settings.rate_burst, abuse_limit=settings.abuse_limit,
                   abuse_window=settings.abuse_window, max_per_ip=settings.max_connections_per_ip,
                   trust_forwarded_for=settings.trust_forwarded_for)

    # -- connections --------------------------------------------------------------------------
    def known(self, sid: str) -> bool:
        return sid in self.connections

    def open(self, sid: str, environ: dict) -> str | None:
        """Admit a connection; returns the reason for refusing it, or None."""
        ip = client_ip(environ, self.trust_forwarded_for)
        if self.per_ip[ip] >= self.max_per_ip:
            return (f"too many connections from your address (at most {self.max_per_ip} at once); "
                    "close another tab or try again later")
        self.per_ip[ip] += 1
        self.connections[sid] = Connection(ip, TokenBucket(self.rate, self.burst, self.clock()))
        return None

    def close(self, sid: str) -> None:
        conn = self.connections.pop(sid, None)
        if conn is None:
            return
        self.per_ip[conn.ip] -= 1
        if self.per_ip[conn.ip] <= 0:
            del self.per_ip[conn.ip]

    # -- events -------------------------------------------------------------------------------
    def allow(self, sid: str) -> bool:
        """Take a token for one event of `sid` (unknown sids are not limited here)."""
        conn = self.connections.get(sid)
        return conn is None or conn.bucket.take(self.clock())

    def refused(self, sid: str) -> bool:
        """Note a refused event of `sid`; True once (the first time) its refusals within the
        abuse window exceed the abuse limit: the caller then disconnects it."""
        conn = self.connections.get(sid)
        if conn is None or conn.closing:
            return False
        now = self.clock()
        conn.refused.append(now)
        while conn.refused and conn.refused[0] <= now - self.abuse_window:
            conn.refused.popleft()
        if len(conn.refused) > self.abuse_limit:
            conn.closing = True
            self.abuse_disconnects += 1
            return True
        return False

    def stats(self) -> dict:
        """Counts only: no addresses."""
        return {"connections": len(self.connections), "client_addresses": len(self.per_ip),
                "abuse_disconnects": self.abuse_disconnects}


def oversized(event: str, args: tuple) -> str | None:
    """Why the payload of `event` is too large, or None."""
    cap = MAX_EVENT_BYTES.get(event)
    if cap is None or not args:
        return None
    try:
        size = len(json.dumps(args[0], default=_binary_size))
    except (ValueError, RecursionError):
        return "payload nested too deeply"
    return f"payload of {size} bytes is larger than {cap}" if size > cap else None


def _binary_size(value: Any) -> str:
    return "." * len(value) if isinstance(value, bytes | bytearray) else str(value)


_PACKET_TYPES = frozenset(range(len(packet.packet_names)))


def counting_packets(base: type[packet.Packet], on_malformed: Callable[[], None]) -> type[packet.Packet]:
    """`base` (the server's Socket.IO packet class), but a packet that does not decode, an
    event packet that is not ``[name: str, ...]`` (or names the catch-all "*"), or a packet
    type a client may not send, is counted before it is dropped (no answer is possible:
    the packet may have no usable ack id)."""

    class CountedPacket(base):
        def decode(self, encoded_packet):
            try:
                attachments = super().decode(encoded_packet)
            except Exception:
                on_malformed()
                raise
            if self.packet_type in (packet.EVENT, packet.BINARY_EVENT) and not (
                    isinstance(self.data, list) and self.data and isinstance(self.data[0], str)
                    and self.data[0] != "*"):  # "*" would reach the catch-all handler with shifted arguments
                on_malformed()
                raise ValueError("malformed event packet: not [name, ...]")
            if self.packet_type not in _PACKET_TYPES or self.packet_type == packet.CONNECT_ERROR:
                on_malformed()  # the server would refuse it next ("Unknown packet type")
                raise ValueError(f"unexpected packet type {self.packet_type}")
            return attachments

    return CountedPacket
