"""Hostile input against the real server (server/transport/limits.py, server/transport/sockets.py,
server/multiplayer/relay.py): per-connection rate limits, disconnection of a flooder only, the
per-address connection cap, and each hostile case of issue 6 refused and counted by
reason on GET /stats.

One server per module, started with small limits so the tests are quick."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
import urllib.request
from typing import Any

import aiohttp
import pytest
import socketio

from tests.servers import RunningServer, start_server, write_kitchen

pytestmark = pytest.mark.asyncio

RATE, BURST, ABUSE, MAX_PER_IP = 20, 40, 60, 6
MAX_STEPS = 100  # kitchen rooms here: the relay takes no frame past 100 + horizon (100)
_ids = itertools.count(1)


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> RunningServer:
    workdir = tmp_path_factory.mktemp("limits")
    write_kitchen(workdir / "experiments", max_steps=MAX_STEPS)
    running = start_server(workdir, experiments_dir=workdir / "experiments", extra_args=[
        "--rate-limit", str(RATE), "--rate-burst", str(BURST), "--abuse-limit", str(ABUSE),
        "--abuse-window", "5", "--max-connections-per-ip", str(MAX_PER_IP)])
    try:
        yield running
    finally:
        running.stop()


def stats(server: RunningServer) -> dict:
    with urllib.request.urlopen(server.url + "/stats", timeout=5) as resp:
        return json.loads(resp.read())


def grew(before: dict, after: dict) -> dict:
    """Rejections by reason that grew between two /stats snapshots."""
    reasons = set(before["rejections"]) | set(after["rejections"])
    return {r: after["rejections"].get(r, 0) - before["rejections"].get(r, 0) for r in reasons
            if after["rejections"].get(r, 0) != before["rejections"].get(r, 0)}


class Client:
    def __init__(self, url: str):
        self.url = url
        self.participant_id = f"lim-{next(_ids)}"
        self.sio = socketio.AsyncClient(reconnection=False, handle_sigint=False)
        self.events: dict[str, list] = {}
        for name in ("server_error", "room_start", "input", "partner_left", "room_result", "connect_error"):
            self.sio.on(name, lambda data=None, name=name: self.events.setdefault(name, []).append(data))

    def got(self, name: str) -> list:
        return self.events.get(name, [])

    async def connect(self) -> None:
        auth = {"participant_id": self.participant_id, "experiment": "kitchen"}
        await self.sio.connect(self.url, auth=auth, transports=["websocket"], wait_timeout=10)

    async def call(self, event: Any, *data: Any, timeout: float = 5) -> Any:
        return await self.sio.call(event, data[0] if len(data) == 1 else data, timeout=timeout)

    async def burst(self, n: int, event: str = "rtt", data: Any = None) -> list:
        """`n` events back to back (no waiting between them), then all their acks."""
        loop = asyncio.get_running_loop()
        acks = []
        for i in range(n):
            fut = loop.create_future()
            acks.append(fut)
            payload = data if data is not None else {"t": float(i)}
            await self.sio.emit(event, payload,
                                callback=lambda *a, fut=fut: fut.done() or fut.set_result(a[0]))
        return await asyncio.wait_for(asyncio.gather(*acks), timeout=20)


@contextlib.asynccontextmanager
async def clients(server: RunningServer, n: int):
    made = [Client(server.url) for _ in range(n)]
    try:
        for c in made:
            await c.connect()
        yield made
    finally:
        for c in made:
            if c.sio.connected:
                await c.sio.disconnect()


async def until(condition, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        await asyncio.sleep(0.02)
    return condition()


# -- rate limit --------------------------------------------------------------------------------

async def test_rate_limit_refuses_beyond_the_burst_and_recovers(server):
    before = stats(server)
    async with clients(server, 2) as (fast, other):
        acks = await fast.burst(BURST + 20)
        ok = [a for a in acks if a.get("ok")]
        limited = [a for a in acks if a == {"ok": False, "error": "rate limited"}]
        assert len(ok) + len(limited) == len(acks)
        # the burst, plus what refilled while the events were on their way
        assert BURST <= len(ok) <= BURST + 8, len(ok)
        assert acks[:BURST] == [{"ok": True, "t": float(i)} for i in range(BURST)]
        assert await until(lambda: len(fast.got("server_error")) == len(limited))
        assert all(e == {"event": "rtt", "error": "rate limited"} for e in fast.got("server_error"))

        assert await other.call("rtt", {"t": 1.0}) == {"ok": True, "t": 1.0}  # its own bucket
        await asyncio.sleep(10 / RATE)  # ten tokens back
        again = await fast.burst(5)
        assert again == [{"ok": True, "t": float(i)} for i in range(5)]
        assert fast.sio.connected  # a burst is not abuse
    assert grew(before, stats(server)) == {"rate_limited": len(limited)}


async def test_unknown_events_also_spend_tokens(server):
    async with clients(server, 1) as (c,):
        acks = await c.burst(BURST + 10, event="no_such_event", data={"x": 1})
        assert {a["error"] for a in acks} == {"unknown event 'no_such_event'", "rate limited"}
        assert sum(a["error"] == "rate limited" for a in acks) >= 5


async def test_a_sustained_flood_disconnects_only_the_flooder(server):
    before = stats(server)
    async with clients(server, 2) as (flooder, bystander):
        stop = asyncio.Event()

        async def steady() -> list:
            answers = []
            while not stop.is_set():
                answers.append(await bystander.call("rtt", {"t": 2.0}))
                await asyncio.sleep(0.1)  # 10 events/s: well within the limit
            return answers

        steady_task = asyncio.create_task(steady())
        loop = asyncio.get_running_loop()
        acks: list[asyncio.Future] = []
        for i in range(BURST + ABUSE + 200):
            if not flooder.sio.connected:
                break
            fut = loop.create_future()
            acks.append(fut)
            with contextlib.suppress(socketio.exceptions.BadNamespaceError):
                await flooder.sio.emit("rtt", {"t": float(i)},
                                       callback=lambda *a, fut=fut: fut.done() or fut.set_result(a[0]))
            await asyncio.sleep(0.001)
        assert await until(lambda: not flooder.sio.connected, timeout=10), "the flooder is still connected"
        await asyncio.sleep(0.5)
        stop.set()
        answers = await steady_task

        assert answers and all(a == {"ok": True, "t": 2.0} for a in answers)
        assert bystander.sio.connected and bystander.got("server_error") == []
        assert {"event": "disconnect", "error": "too many refused events; disconnected"} in flooder.got(
            "server_error")
        answered = [f.result() for f in acks if f.done()]
        assert sum(a == {"ok": False, "error": "rate limited"} for a in answered) > ABUSE
    after = stats(server)
    assert after["abuse_disconnects"] == before["abuse_disconnects"] + 1
    assert set(grew(before, after)) == {"rate_limited"}


# -- connections per address -------------------------------------------------------------------

async def test_connections_beyond_the_per_address_cap_are_refused_with_a_clear_message(server):
    before = stats(server)
    assert before["connections"] == 0
    async with clients(server, MAX_PER_IP) as held:
        extra = Client(server.url)
        with pytest.raises(socketio.exceptions.ConnectionError):
            await extra.connect()
        message = extra.got("connect_error")[0]["message"]
        assert "too many connections from your address" in message and f"at most {MAX_PER_IP}" in message
        assert stats(server)["connections"] == MAX_PER_IP
        assert all(c.sio.connected for c in held)
        assert await held[0].call("rtt", {"t": 3.0}) == {"ok": True, "t": 3.0}

        await held[-1].sio.disconnect()
        assert await until(lambda: stats(server)["connections"] == MAX_PER_IP - 1)
        late = Client(server.url)
        await late.connect()  # a freed place is usable again
        assert await late.call("rtt", {"t": 4.0}) == {"ok": True, "t": 4.0}
        await late.sio.disconnect()
    assert await until(lambda: stats(server)["connections"] == 0)
    after = stats(server)
    assert grew(before, after) == {"ip_limit": 1}
    assert "127.0.0.1" not in json.dumps(after)  # counts only, no addresses


# -- the hostile cases of issue 6 ----------------------------------------------------------------

async def pair(c0: Client, c1: Client) -> dict:
    assert (await c0.call("mp_join", {"episode_id": f"ep-{c0.participant_id}"}))["status"] == "waiting"
    assert (await c1.call("mp_join", {"episode_id": f"ep-{c1.participant_id}"}))["status"] == "matched"
    assert await until(lambda: c0.got("room_start") and c1.got("room_start"))
    return c0.got("room_start")[0]


def inputs(*frames: int, value: Any = "up") -> dict:
    return {"frame": frames[-1], "inputs": [[f, value] for f in frames], "adv": 0}


async def refused(client: Client, event: Any, *data: Any, needle: str) -> dict:
    ack = await client.call(event, *data)
    assert isinstance(ack, dict) and ack["ok"] is False and needle in ack["error"], ack
    return ack


async def test_each_hostile_case_is_refused_counted_and_harms_no_other_room(server):
    before = stats(server)
    async with clients(server, 5) as (a0, a1, b0, b1, outsider):
        room_a, room_b = (await pair(a0, a1))["room"], (await pair(b0, b1))["room"]
        assert room_a != room_b
        assert await a0.call("input", inputs(2, 3)) == {"ok": True}

        # not in a room
        await refused(outsider, "input", inputs(2), needle="not in a room")
        await refused(outsider, "state_hash", {"frame": 30, "hash": "0" * 16}, needle="not in a room")
        await refused(outsider, "fetch_inputs", {"from_frame": 0}, needle="not in a room")
        # choosing a player, a room or a participant: no payload field can
        await refused(b0, "input", {**inputs(4), "player": "p1"}, needle="player")
        await refused(b0, "input", {**inputs(4), "room": room_a}, needle="room")
        await refused(b0, "state_hash", {"frame": 30, "hash": "0" * 16, "player": "p0"}, needle="player")
        # acting as another participant: their episode
        assert (await a0.call("episode_start", {"episode_id": "ep-a0-game", "seed": 1}))["ok"]
        await refused(outsider, "steps", {"episode_id": "ep-a0-game", "records": []},
                      needle="another participant")
        await refused(outsider, "episode_start", {"episode_id": "ep-a0-game"}, needle="already used")
        # replayed frames with other values; far-future frames (past the horizon, past the game)
        await refused(a0, "input", inputs(3, value="down"), needle="different input")
        await refused(a0, "input", inputs(500), needle="out of range")
        assert await a0.call("input", inputs(90)) == {"ok": True}  # within the horizon
        assert await a0.call("input", inputs(180)) == {"ok": True}
        await refused(a0, "input", inputs(250), needle="past the game's end")  # 250 > 100 + 100
        await refused(a0, "state_hash", {"frame": 10_000_000, "hash": "0" * 16, "final": True},
                      needle="past the game's end")  # no replay of ten million frames
        await refused(a0, "input", inputs(4, value="x" * 300), needle="too large")
        # wrong shapes: non-dict, binary, many arguments, huge nesting, oversized free-form payload
        await refused(a1, "input", [1, 2, 3], needle="payload")
        await refused(a1, "input", b"\x00\x01binary", needle="payload")
        await refused(a1, "input", inputs(5), {"extra": 1}, "third", needle="expected one payload, got 3")
        deep: Any = "x"
        for _ in range(400):
            deep = [deep]
        await refused(a1, "input", inputs(5, value=deep), needle="too large")
        await refused(a1, "client_event", {"kind": "page_error", "detail": {"m": "x" * 100_000}},
                      needle="larger than")
        await refused(a1, "no_such_event", {}, needle="unknown event")
        # the reserved events: a client cannot fake its own (dis)connection
        await refused(a1, "disconnect", needle="reserved event")
        await refused(a1, "connect", {"participant_id": "someone-else", "experiment": "kitchen"},
                      needle="reserved event")
        await asyncio.sleep(0.3)
        assert a0.got("partner_left") == []  # the fake disconnect did not end room A
        assert await a1.call("input", inputs(2, value="left")) == {"ok": True}  # a1 is still p1 of room A

        # room B saw nothing of all this, and still works
        assert b0.got("input") == [] and b1.got("input") == []
        assert await b1.call("input", inputs(2)) == {"ok": True}
        assert await until(lambda: len(b0.got("input")) == 1)
        assert await b0.call("fetch_inputs", {"from_frame": 0}) == {"ok": True, "inputs": {"p1": [[2, "up"]]}}
        # room A recorded only what was accepted
        assert await a1.call("fetch_inputs", {"from_frame": 0}) == {
            "ok": True, "inputs": {"p0": [[2, "up"], [3, "up"], [90, "up"], [180, "up"]]}}

    counted = grew(before, stats(server))
    assert counted == {"not_in_room": 3, "validation": 6, "spoof": 4, "replayed": 1, "out_of_range": 3,
                       "oversized": 3, "unknown_event": 1}, counted


async def test_malformed_socketio_packets_are_counted_and_the_connection_keeps_working(server):
    """Frames a python-socketio client cannot produce, sent over a raw WebSocket."""
    before = stats(server)
    ws_url = server.url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket"
    async with aiohttp.ClientSession() as session, session.ws_connect(ws_url) as ws:
        assert (await ws.receive_str()).startswith("0{")  # engine.io open
        await ws.send_str('40{"participant_id":"raw-1","experiment":"kitchen"}')
        assert (await ws.receive_str()).startswith("40{")
        garbage = ['42[]', '42{}', '42"input"', '42[1,{}]', '42[["input"],{}]', '42', '42[', '42[' * 3000,
                   '42["rtt",{"t":NaN}]', '42["rtt",' + "9" * 5000 + "]", '49', '4x']
        for frame in garbage:
            await ws.send_str(frame)
        await ws.send_str('4277["rtt",{"t":5.5}]')  # and a good event after all of it
        while True:
            msg = await ws.receive_str(timeout=5)
            if msg.startswith("4377"):
                break
        assert json.loads(msg[4:]) == [{"ok": True, "t": 5.5}]
    counted = grew(before, stats(server))
    assert counted == {"malformed": len(garbage)}, counted
    with urllib.request.urlopen(server.url + "/healthz", timeout=5) as resp:
        assert resp.status == 200


async def test_games_beyond_the_per_address_cap_are_refused_until_one_ends(tmp_path):
    write_kitchen(tmp_path / "experiments", max_steps=MAX_STEPS)
    own = start_server(tmp_path, experiments_dir=tmp_path / "experiments",
                       extra_args=["--max-rooms-per-ip", "3"])
    try:
        async with clients(own, 5) as (c0, c1, c2, c3, c4):
            await pair(c0, c1)  # two seats from 127.0.0.1
            assert (await c2.call("mp_join", {"episode_id": "ep-third"}))["status"] == "waiting"  # a third
            ack = await refused(c3, "mp_join", {"episode_id": "ep-fourth"}, needle="too many games")
            assert "at most 3" in ack["error"]
            assert grew({"rejections": {}}, stats(own))["ip_limit"] == 1
            assert await c0.call("mp_leave", {"reason": "left"}) == {"ok": True}  # that room ends
            assert (await c3.call("mp_join", {"episode_id": "ep-fourth"}))["status"] == "matched"
            assert c4.got("server_error") == []
    finally:
        own.stop()
