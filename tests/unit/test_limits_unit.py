"""server/transport/limits.py used directly, with a hand-driven clock: no sockets, no sleeps."""

from __future__ import annotations

import pytest
from socketio import packet

from server.transport.limits import (
    MAX_EVENT_BYTES,
    Limits,
    TokenBucket,
    client_ip,
    counting_packets,
    oversized,
)


class Clock:
    def __init__(self, t: float = 1000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


def environ(ip: str = "10.0.0.1", forwarded: str | None = None) -> dict:
    env = {"REMOTE_ADDR": "127.0.0.1", "asgi.scope": {"type": "websocket", "client": (ip, 50000)}}
    if forwarded is not None:
        env["HTTP_X_FORWARDED_FOR"] = forwarded
    return env


# -- token bucket -----------------------------------------------------------------------------

def test_bucket_allows_the_burst_then_refuses():
    bucket = TokenBucket(rate=10, burst=5, now=0.0)
    assert [bucket.take(0.0) for _ in range(7)] == [True] * 5 + [False] * 2


def test_bucket_refills_at_its_rate_and_never_beyond_the_burst():
    bucket = TokenBucket(rate=10, burst=5, now=0.0)
    for _ in range(5):
        assert bucket.take(0.0)
    assert not bucket.take(0.05)  # half a token
    assert bucket.take(0.1)  # one token after 0.1 s at 10/s
    assert not bucket.take(0.1)
    # a long pause refills to the burst, not more
    assert [bucket.take(100.0) for _ in range(6)] == [True] * 5 + [False]


def test_bucket_ignores_a_clock_that_goes_backwards():
    bucket = TokenBucket(rate=10, burst=2, now=5.0)
    assert bucket.take(5.0) and bucket.take(5.0)
    assert not bucket.take(4.0)
    assert not bucket.take(5.0)
    assert bucket.take(5.2)


def test_sustained_rate_is_what_the_bucket_lets_through():
    clock = Clock(0.0)
    limits = Limits(rate=120, burst=240, clock=clock)
    assert limits.open("s", environ()) is None
    allowed = 0
    for _ in range(10 * 1000):  # 1000 events/s for 10 s
        clock.advance(0.001)
        allowed += limits.allow("s")
    assert allowed == pytest.approx(240 + 120 * 10, abs=2)


# -- per-connection limits ----------------------------------------------------------------------

def test_each_connection_has_its_own_bucket():
    clock = Clock()
    limits = Limits(rate=1, burst=3, clock=clock)
    limits.open("a", environ())
    limits.open("b", environ())
    assert [limits.allow("a") for _ in range(4)] == [True, True, True, False]
    assert [limits.allow("b") for _ in range(3)] == [True, True, True]
    clock.advance(1.0)
    assert limits.allow("a") and not limits.allow("a")


def test_a_page_at_30_inputs_per_second_plus_uploads_is_never_limited_by_default():
    clock = Clock()
    limits = Limits(clock=clock)
    limits.open("page", environ())
    for frame in range(30 * 60):  # a minute of play
        clock.advance(1 / 30)
        assert limits.allow("page")  # input
        if frame % 30 == 0:
            assert limits.allow("page") and limits.allow("page") and limits.allow("page")  # hash, rtt, steps


def test_too_many_refusals_within_the_window_flag_the_connection_once():
    clock = Clock()
    limits = Limits(abuse_limit=5, abuse_window=10.0, clock=clock)
    limits.open("bad", environ())
    limits.open("good", environ())
    assert [limits.refused("bad") for _ in range(5)] == [False] * 5
    assert limits.refused("bad") is True  # the 6th within 10 s
    assert limits.refused("bad") is False  # flagged once; it is being disconnected
    assert limits.abuse_disconnects == 1
    assert limits.refused("good") is False


def test_refusals_spread_over_time_are_not_abuse():
    clock = Clock()
    limits = Limits(abuse_limit=5, abuse_window=10.0, clock=clock)
    limits.open("slow", environ())
    for _ in range(100):
        assert limits.refused("slow") is False
        clock.advance(2.5)  # 4 per 10 s window
    assert limits.abuse_disconnects == 0


def test_unknown_sids_are_not_limited_or_flagged():
    limits = Limits(rate=1, burst=1, abuse_limit=1, clock=Clock())
    assert all(limits.allow("nobody") for _ in range(10))
    assert not any(limits.refused("nobody") for _ in range(10))


# -- per-address connection limit ----------------------------------------------------------------

def test_connections_per_address_are_capped_and_freed_on_close():
    limits = Limits(max_per_ip=3, clock=Clock())
    for i in range(3):
        assert limits.open(f"s{i}", environ("10.0.0.1")) is None
    refusal = limits.open("s3", environ("10.0.0.1"))
    assert refusal is not None and "too many connections from your address" in refusal and "3" in refusal
    assert not limits.known("s3")
    assert limits.open("other", environ("10.0.0.2")) is None  # another address is unaffected
    limits.close("s0")
    assert limits.open("s3", environ("10.0.0.1")) is None
    assert limits.stats() == {"connections": 4, "client_addresses": 2, "abuse_disconnects": 0}
    for sid in ("s1", "s2", "s3", "other", "never-opened"):
        limits.close(sid)
    assert limits.stats()["connections"] == 0 and limits.per_ip == {}


def test_client_ip_comes_from_the_asgi_peer_not_a_header_unless_trusted():
    spoofed = environ("203.0.113.7", forwarded="1.2.3.4")
    assert client_ip(spoofed) == "203.0.113.7"
    assert client_ip(spoofed, trust_forwarded_for=True) == "1.2.3.4"
    # behind one proxy, the entry it appended is the last one; earlier ones are client-supplied
    assert client_ip(environ("10.0.0.1", forwarded="6.6.6.6, 198.51.100.2"), True) == "198.51.100.2"
    assert client_ip(environ("10.0.0.1", forwarded=""), True) == "10.0.0.1"
    assert client_ip({"REMOTE_ADDR": "192.0.2.1"}) == "192.0.2.1"
    assert client_ip({}) == "unknown"


def test_forwarded_for_is_trusted_only_when_configured():
    limits = Limits(max_per_ip=1, clock=Clock())
    assert limits.open("a", environ("10.0.0.1", forwarded="1.1.1.1")) is None
    assert limits.open("b", environ("10.0.0.1", forwarded="2.2.2.2")) is not None  # header ignored
    trusting = Limits(max_per_ip=1, trust_forwarded_for=True, clock=Clock())
    assert trusting.open("a", environ("10.0.0.1", forwarded="1.1.1.1")) is None
    assert trusting.open("b", environ("10.0.0.1", forwarded="2.2.2.2")) is None


def test_from_settings_reads_the_server_settings():
    from server.settings import ServerSettings

    settings = ServerSettings(rate_limit=5, rate_burst=7, abuse_limit=9, abuse_window=3,
                              max_connections_per_ip=11, trust_forwarded_for=True)
    limits = Limits.from_settings(settings)
    assert (limits.rate, limits.burst, limits.abuse_limit, limits.abuse_window, limits.max_per_ip,
            limits.trust_forwarded_for) == (5, 7, 9, 3, 11, True)
    defaults = Limits.from_settings(ServerSettings())
    assert (defaults.rate, defaults.burst, defaults.max_per_ip) == (120, 240, 200)


# -- sizes and packets ----------------------------------------------------------------------------

def test_rare_free_form_events_are_capped_in_size():
    cap = MAX_EVENT_BYTES["client_event"]
    assert oversized("client_event", ({"kind": "page_error", "detail": {"m": "x" * 100}},)) is None
    assert "larger than" in oversized("client_event", ({"kind": "page_error", "detail": {"m": "x" * cap}},))
    assert "larger than" in oversized("episode_start", ({"episode_id": "e", "client": {"b": b"\0" * cap}},))
    deep: list = []
    for _ in range(5000):
        deep = [deep]
    assert oversized("episode_start", (deep,)) == "payload nested too deeply"
    assert oversized("steps", ({"records": ["x" * 10 * cap]},)) is None  # capped elsewhere
    assert oversized("client_event", ()) is None


# Socket.IO packets as engine.io hands them over (without engine.io's "4" message prefix)
MALFORMED = ['2[]', '2{}', '2"input"', '2[1,{}]', '2[["input"],{}]', '2', '2[', '21[null]', '2["*",{}]',
             'x', '9', '4{"message":"x"}', '2["a",' + "[" * 5000]


@pytest.mark.parametrize("raw", MALFORMED)
def test_malformed_event_packets_are_counted_and_dropped(raw):
    seen = []
    cls = counting_packets(packet.Packet, lambda: seen.append(1))
    with pytest.raises(Exception):  # noqa: B017 - whatever the decoder raises, it is counted
        cls(encoded_packet=raw)
    assert seen == [1]


def test_well_formed_packets_pass_uncounted():
    seen = []
    cls = counting_packets(packet.Packet, lambda: seen.append(1))
    event = cls(encoded_packet='21["input",{"frame":1}]')
    assert (event.packet_type, event.id, event.data) == (packet.EVENT, 1, ["input", {"frame": 1}])
    assert cls(encoded_packet='0{"participant_id":"p"}').data == {"participant_id": "p"}
    assert cls(encoded_packet='31[{"ok":true}]').packet_type == packet.ACK
    assert cls(encoded_packet='51-["input",{"_placeholder":true,"num":0}]').packet_type == packet.BINARY_EVENT
    assert seen == []
