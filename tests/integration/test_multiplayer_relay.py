"""The multiplayer relay (server/multiplayer/relay.py) in the real server process, driven by
python-socketio clients over 127.0.0.1: matchmaking, input relay and its isolation,
the recorded input stream, desync reports, the end of a room checked against a
CPython replay, a dropped partner, the waiting timeout and network shaping.

One server per module; every test uses its own experiment, so no queue is shared."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import runpy
import time
from typing import Any

import pytest
import socketio

from server.multiplayer.replay import replay
from tests.servers import ROOT, RunningServer, start_server, write_experiment

pytestmark = pytest.mark.asyncio

KITCHEN_DIR = ROOT / "experiments" / "kitchen"
KITCHEN_SOURCE = (KITCHEN_DIR / "env.py").read_text()
KITCHEN_CONFIG = runpy.run_path(str(KITCHEN_DIR / "experiment.py"))["EXPERIMENT"]["env_config"]
PLAYERS = ["p0", "p1"]

# one experiment per test: (multiplayer overrides)
EXPERIMENTS: dict[str, dict] = {
    "mp-match": {},
    "mp-isolation": {},
    "mp-order": {},
    "mp-no-ack": {},
    "mp-end": {},
    "mp-desync": {},
    "mp-drop": {"reconnect_timeout": 0},  # no reconnect window: a drop ends the room at once
    "mp-leave": {},
    "mp-wait": {"wait_timeout": 1.0, "wait_timeout_message": "nobody came",
                "wait_timeout_redirect": "https://example.org/done"},
    "mp-shaped": {"network_from_url": True},
    "mp-plain": {},
    "mp-atomic": {},
}

SERVER_EVENTS = ("waiting", "room_start", "wait_timeout", "input", "desync", "partner_left",
                 "room_result", "server_error", "partner_away", "partner_back", "partner_replaced")
_ids = itertools.count(1)


def kitchen_server(workdir, experiments: dict[str, dict]) -> RunningServer:
    """A real server with one two-player kitchen experiment per entry (its multiplayer settings)
    and the single-player catch."""
    directory = workdir / "experiments"
    write_experiment(directory, "catch")
    for name, multiplayer in experiments.items():
        write_experiment(directory, name, env_source=KITCHEN_SOURCE, players=PLAYERS,
                         default_action="noop", env_config=KITCHEN_CONFIG, multiplayer=multiplayer)
    return start_server(workdir, experiments_dir=directory)


@pytest.fixture(scope="module")
def mp_server(tmp_path_factory) -> RunningServer:
    running = kitchen_server(tmp_path_factory.mktemp("mp-server"), EXPERIMENTS)
    try:
        yield running
    finally:
        running.stop()


class Client:
    """A participant's socket that records every server event with its arrival time."""

    def __init__(self, url: str, experiment: str):
        self.url = url
        self.participant_id = f"mp-{next(_ids)}"
        self.auth = {"participant_id": self.participant_id, "experiment": experiment}
        self.sio = socketio.AsyncClient(reconnection=False, handle_sigint=False)
        self.received: list[tuple[str, Any, float]] = []
        for name in SERVER_EVENTS:
            self.sio.on(name, self._recorder(name))

    def _recorder(self, name: str):
        async def record(data=None):
            self.received.append((name, data, time.monotonic()))

        return record

    async def connect(self) -> None:
        await self.sio.connect(self.url, auth=self.auth, transports=["websocket"], wait_timeout=10)

    async def close(self) -> None:
        if self.sio.connected:
            await self.sio.disconnect()

    async def call(self, event: str, data: Any, timeout: float = 10) -> Any:
        return await self.sio.call(event, data, timeout=timeout)

    def got(self, name: str) -> list:
        return [data for event, data, _ in self.received if event == name]

    def times(self, name: str) -> list[float]:
        return [t for event, _, t in self.received if event == name]

    async def wait_for(self, name: str, count: int = 1, timeout: float = 10) -> list:
        deadline = time.monotonic() + timeout
        while len(self.got(name)) < count and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        found = self.got(name)
        assert len(found) >= count, (f"{self.participant_id}: expected {count} {name!r} within {timeout}s,"
                                     f" got {len(found)}; received {[e for e, _, _ in self.received]}")
        return found


@contextlib.asynccontextmanager
async def clients(server: RunningServer, experiment: str, n: int):
    """``n`` connected clients of ``experiment``; all disconnected at the end."""
    made = [Client(server.url, experiment) for _ in range(n)]
    try:
        for c in made:
            await c.connect()
        yield made
    finally:
        for c in made:
            await c.close()


async def join(client: Client, **extra) -> dict:
    return await client.call("mp_join", {"episode_id": f"ep-{client.participant_id}", **extra})


async def pair_up(first: Client, second: Client) -> dict:
    """Join ``first`` then ``second``: they share a room (first is p0). Returns p0's room_start."""
    assert (await join(first))["status"] == "waiting"
    ack = await join(second)
    assert ack["ok"] is True and ack["status"] == "matched", ack
    start0 = (await first.wait_for("room_start"))[0]
    start1 = (await second.wait_for("room_start"))[0]
    assert (start0["player"], start1["player"]) == ("p0", "p1")
    assert start0["room"] == start1["room"] == ack["room"]
    return start0


def input_msg(frame: int, value: Any) -> dict:
    return {"frame": frame, "inputs": [[frame, value]], "adv": 0}


async def send_inputs(client: Client, frames, value: Any) -> None:
    """One input message per frame, sent back to back (as a page does), then all acks awaited."""
    acks: list[asyncio.Future] = []
    loop = asyncio.get_running_loop()
    for f in frames:
        fut = loop.create_future()
        acks.append(fut)
        await client.sio.emit("input", input_msg(f, value),
                              callback=lambda *a, fut=fut: fut.done() or fut.set_result(a[0] if a else None))
    results = await asyncio.wait_for(asyncio.gather(*acks), timeout=20)
    assert results == [{"ok": True}] * len(acks), results


async def expect_rejected(client: Client, event: str, data: Any, needle: str | None = None) -> dict:
    before = len(client.got("server_error"))
    ack = await client.call(event, data)
    assert isinstance(ack, dict) and ack.get("ok") is False, ack
    assert isinstance(ack.get("error"), str) and ack["error"]
    if needle is not None:
        assert needle in ack["error"], ack
    errors = await client.wait_for("server_error", before + 1, timeout=5)
    assert errors[-1] == {"event": event, "error": ack["error"]}
    return ack


def room_row(server: RunningServer, room_id: str) -> dict:
    keys = ("id", "experiment", "seed", "players", "ended", "status", "end_frame", "final_hashes",
            "replay_hash", "desyncs", "inputs", "end_reason")
    rows = server.query(f"SELECT {', '.join(keys)} FROM rooms WHERE id=?", room_id)
    assert len(rows) == 1, rows
    row = dict(zip(keys, rows[0], strict=True))
    for key in ("players", "final_hashes", "desyncs", "inputs"):
        row[key] = json.loads(row[key]) if row[key] is not None else None
    return row


# -- 1. matchmaking ---------------------------------------------------------------------------

async def test_matchmaking_fills_rooms_in_arrival_order(mp_server):
    async with clients(mp_server, "mp-match", 4) as (c1, c2, c3, c4):
        first = await join(c1)
        assert first == {"ok": True, "status": "waiting", "count": 1, "size": 2}
        assert (await c1.wait_for("waiting"))[0] == {"count": 1, "size": 2}

        second = await join(c2)
        assert second["ok"] is True and second["status"] == "matched"
        third = await join(c3)
        assert third == {"ok": True, "status": "waiting", "count": 1, "size": 2}
        fourth = await join(c4)
        assert fourth["ok"] is True and fourth["status"] == "matched"

        starts = [(await c.wait_for("room_start"))[0] for c in (c1, c2, c3, c4)]
        room_a, room_b = second["room"], fourth["room"]
        assert room_a != room_b
        assert [s["room"] for s in starts] == [room_a, room_a, room_b, room_b]
        assert [s["player"] for s in starts] == ["p0", "p1", "p0", "p1"]
        assert all(s["players"] == PLAYERS for s in starts)
        assert isinstance(starts[0]["seed"], int)
        assert starts[0]["seed"] == starts[1]["seed"]
        assert starts[2]["seed"] == starts[3]["seed"]
        for c in (c1, c2, c3, c4):
            assert len(c.got("room_start")) == 1
            assert c.got("server_error") == []

        # both rooms are on record, with the participants in their seats
        row_a, row_b = room_row(mp_server, room_a), room_row(mp_server, room_b)
        assert (row_a["status"], row_a["experiment"], row_a["seed"]) == ("playing", "mp-match",
                                                                          starts[0]["seed"])
        assert row_a["players"] == {"p0": c1.participant_id, "p1": c2.participant_id}
        assert row_b["players"] == {"p0": c3.participant_id, "p1": c4.participant_id}
        assert row_b["seed"] == starts[2]["seed"]


# -- 2. isolation and validation ---------------------------------------------------------------

async def test_inputs_stay_in_their_room_and_bad_inputs_are_rejected(mp_server):
    async with clients(mp_server, "mp-isolation", 6) as (a0, a1, b0, b1, lone, waiting):
        await pair_up(a0, a1)
        await pair_up(b0, b1)

        assert await a0.call("input", input_msg(2, "up")) == {"ok": True}
        relayed = (await a1.wait_for("input"))[0]
        assert relayed == {"player": "p0", "frame": 2, "inputs": [[2, "up"]], "adv": 0}
        assert await a1.call("input", input_msg(2, "down")) == {"ok": True}
        assert (await a0.wait_for("input"))[0] == {"player": "p1", "frame": 2, "inputs": [[2, "down"]],
                                                   "adv": 0}
        await asyncio.sleep(0.5)
        assert b0.got("input") == [] and b1.got("input") == []  # room B hears nothing of room A
        assert len(a0.got("input")) == 1 and len(a1.got("input")) == 1  # no echo to the sender

        # speaking as someone else: the payload may not carry a player id
        await expect_rejected(a1, "input", {**input_msg(3, "left"), "player": "p0"}, "player")
        # not in a room: never joined, or still waiting
        await expect_rejected(lone, "input", input_msg(2, "up"), "not in a room")
        assert (await join(waiting))["status"] == "waiting"
        await expect_rejected(waiting, "input", input_msg(2, "up"), "not in a room")
        # a rewrite of a recorded frame
        await expect_rejected(a0, "input", input_msg(2, "down"), "different")
        # a far-future frame in a room where nothing was recorded yet
        await expect_rejected(b0, "input", input_msg(10_000, "up"), "out of range")

        await asyncio.sleep(0.5)
        assert len(a0.got("input")) == 1 and len(a1.got("input")) == 1  # nothing rejected was relayed
        assert b0.got("input") == [] and b1.got("input") == []
        # and nothing rejected was recorded
        assert await a0.call("fetch_inputs", {"from_frame": 0}) == {"ok": True,
                                                                    "inputs": {"p1": [[2, "down"]]}}
        assert await a1.call("fetch_inputs", {"from_frame": 0}) == {"ok": True, "inputs": {"p0": [[2, "up"]]}}
        assert await b1.call("fetch_inputs", {"from_frame": 0}) == {"ok": True, "inputs": {"p0": []}}

        # the rejected clients are still served
        assert await a0.call("input", input_msg(3, "up")) == {"ok": True}
        assert (await a1.wait_for("input", 2))[1]["frame"] == 3

    async with clients(mp_server, "catch", 1) as (single,):
        await expect_rejected(single, "mp_join", {"episode_id": "ep-single"}, "single-player")


# -- 3. relay order and the record ---------------------------------------------------------------

async def test_inputs_are_relayed_in_order_once_and_recorded(mp_server):
    async with clients(mp_server, "mp-order", 2) as (c0, c1):
        await pair_up(c0, c1)
        frames = list(range(2, 62))
        await send_inputs(c0, frames, "up")

        await c1.wait_for("input", len(frames), timeout=20)
        await asyncio.sleep(0.5)  # late duplicates would show up here
        got = c1.got("input")
        assert [m["frame"] for m in got] == frames
        assert got == [{"player": "p0", "frame": f, "inputs": [[f, "up"]], "adv": 0} for f in frames]
        assert c0.got("input") == []

        fetched = await c1.call("fetch_inputs", {"from_frame": 10})
        assert fetched == {"ok": True, "inputs": {"p0": [[f, "up"] for f in range(10, 62)]}}
        assert await c0.call("fetch_inputs", {"from_frame": 10}) == {"ok": True, "inputs": {"p1": []}}
        assert await c1.call("fetch_inputs", {"from_frame": 62}) == {"ok": True, "inputs": {"p0": []}}


async def expect_refused_without_ack(client: Client, data: Any, needle: str) -> None:
    """Emit ``input`` as a page does (no ack): the refusal comes as a server_error event."""
    before = len(client.got("server_error"))
    await client.sio.emit("input", data)
    errors = await client.wait_for("server_error", before + 1, timeout=5)
    assert errors[-1]["event"] == "input" and needle in errors[-1]["error"], errors[-1]


async def test_inputs_without_ack_are_checked_and_relayed_like_acknowledged_ones(mp_server):
    """Pages send inputs without an ack: the server's short path for them (server/transport/socket_server.py)
    relays, records and refuses exactly as the acknowledged path above."""
    async with clients(mp_server, "mp-no-ack", 3) as (c0, c1, lone):
        await pair_up(c0, c1)
        frames = list(range(2, 32))
        for f in frames:
            await c0.sio.emit("input", input_msg(f, "up"))
        got = await c1.wait_for("input", len(frames))
        assert got == [{"player": "p0", "frame": f, "inputs": [[f, "up"]], "adv": 0} for f in frames]

        await expect_refused_without_ack(c0, {**input_msg(40, "up"), "player": "p1"}, "player")
        await expect_refused_without_ack(lone, input_msg(2, "up"), "not in a room")
        await expect_refused_without_ack(c0, input_msg(2, "down"), "different")
        await expect_refused_without_ack(c0, input_msg(10_000_000, "up"), "out of range")
        await expect_refused_without_ack(c0, {"frame": "3", "inputs": [[3, "up"]]}, "frame")
        await expect_refused_without_ack(c0, (input_msg(41, "up"), input_msg(42, "up")), "one payload")
        await expect_refused_without_ack(c0, b"\x00binary", "")
        await asyncio.sleep(0.3)
        assert len(c1.got("input")) == len(frames)  # nothing refused was relayed
        assert await c1.call("fetch_inputs", {"from_frame": 0}) == {
            "ok": True, "inputs": {"p0": [[f, "up"] for f in frames]}}  # nor recorded


# -- 4. end of a room ------------------------------------------------------------------------------

def expected_hash(seed: int, inputs: dict[str, dict[int, Any]], end_frame: int) -> str:
    return replay(KITCHEN_SOURCE, KITCHEN_CONFIG, PLAYERS, seed, inputs, end_frame=end_frame,
                  default_action="noop")["hash"]


async def test_room_end_is_checked_against_the_replay(mp_server):
    frames = range(2, 41)
    inputs = {"p0": {f: "right" for f in frames}, "p1": {f: "left" for f in frames}}

    async with clients(mp_server, "mp-end", 2) as (c0, c1):
        start = await pair_up(c0, c1)
        room = start["room"]
        await asyncio.gather(send_inputs(c0, frames, "right"), send_inputs(c1, frames, "left"))

        good = expected_hash(start["seed"], inputs, 40)
        assert good != expected_hash(start["seed"], {}, 40)  # the inputs matter to the state
        assert await c0.call("state_hash", {"frame": 41, "hash": good, "final": True}) == {"ok": True}
        assert await c1.call("state_hash", {"frame": 41, "hash": good, "final": True}) == {"ok": True}

        result = {"status": "completed", "final_hashes": {"p0": good, "p1": good}, "replay_hash": good,
                  "end_frame": 40}
        assert (await c0.wait_for("room_result"))[0] == result
        assert (await c1.wait_for("room_result"))[0] == result
        assert c0.got("server_error") == [] and c1.got("server_error") == []

        row = room_row(mp_server, room)
        assert row["status"] == "completed"
        assert row["end_frame"] == 40
        assert row["final_hashes"] == {"p0": good, "p1": good}
        assert row["replay_hash"] == good
        assert row["seed"] == start["seed"]
        assert row["ended"] is not None
        assert row["inputs"] == {p: {str(f): v for f, v in rec.items()} for p, rec in inputs.items()}
        assert row["players"] == {"p0": c0.participant_id, "p1": c1.participant_id}

    # a second room: one client's final hash is wrong
    async with clients(mp_server, "mp-end", 2) as (d0, d1):
        start = await pair_up(d0, d1)
        assert start["room"] != room
        short = range(2, 11)
        await asyncio.gather(send_inputs(d0, short, "down"), send_inputs(d1, short, "interact"))
        good = expected_hash(start["seed"], {"p0": dict.fromkeys(short, "down"),
                                             "p1": dict.fromkeys(short, "interact")}, 10)
        bad = "0123456789abcdef"
        assert good != bad
        assert await d0.call("state_hash", {"frame": 11, "hash": good, "final": True}) == {"ok": True}
        assert await d1.call("state_hash", {"frame": 11, "hash": bad, "final": True}) == {"ok": True}

        result = {"status": "desync", "final_hashes": {"p0": good, "p1": bad}, "replay_hash": good,
                  "end_frame": 10}
        assert (await d0.wait_for("room_result"))[0] == result
        assert (await d1.wait_for("room_result"))[0] == result
        row = room_row(mp_server, start["room"])
        assert (row["status"], row["end_frame"], row["replay_hash"]) == ("desync", 10, good)
        assert row["final_hashes"] == {"p0": good, "p1": bad}


# -- 5. desync during play -------------------------------------------------------------------------

async def test_differing_checkpoint_hashes_are_reported_as_desync(mp_server):
    async with clients(mp_server, "mp-desync", 2) as (c0, c1):
        room = (await pair_up(c0, c1))["room"]
        same = "00000000000000aa"
        assert await c0.call("state_hash", {"frame": 15, "hash": same}) == {"ok": True}
        assert await c1.call("state_hash", {"frame": 15, "hash": same}) == {"ok": True}  # agreement
        h0, h1 = "1111111111111111", "2222222222222222"
        assert await c0.call("state_hash", {"frame": 30, "hash": h0, "final": False}) == {"ok": True}
        await asyncio.sleep(0.3)
        assert c0.got("desync") == [] and c1.got("desync") == []  # p1 has not reported frame 30 yet
        assert await c1.call("state_hash", {"frame": 30, "hash": h1, "final": False}) == {"ok": True}

        report = {"frame": 30, "hashes": {"p0": h0, "p1": h1}}
        assert await c0.wait_for("desync") == [report]
        assert await c1.wait_for("desync") == [report]
        await asyncio.sleep(0.3)
        assert len(c0.got("desync")) == 1 and len(c1.got("desync")) == 1  # frame 15 agreed: no report

        rows = [json.loads(p) for (p,) in mp_server.query("SELECT payload FROM events WHERE kind='desync'")]
        mine = [p for p in rows if p.get("room") == room]
        assert mine == [{"room": room, **report}]


# -- 6. a partner drops out --------------------------------------------------------------------------

async def test_dropped_partner_abandons_the_room(mp_server):
    async with clients(mp_server, "mp-drop", 2) as (c0, c1):
        room = (await pair_up(c0, c1))["room"]
        await asyncio.gather(send_inputs(c0, range(2, 11), "up"), send_inputs(c1, range(2, 6), "down"))

        await c0.close()
        left = await c1.wait_for("partner_left")
        assert left == [{"player": "p0", "reason": "disconnected"}]

        row = room_row(mp_server, room)
        assert row["status"] == "abandoned"
        assert row["ended"] is not None
        assert row["end_reason"] == "p0: disconnected"
        assert row["inputs"] == {"p0": {str(f): "up" for f in range(2, 11)},
                                 "p1": {str(f): "down" for f in range(2, 6)}}

        # the remaining client is still served; its abandoned room takes no more inputs
        assert await c1.call("rtt", {"t": 12.5}) == {"ok": True, "t": 12.5}
        await expect_rejected(c1, "input", input_msg(6, "down"), "not in a room")
        assert room_row(mp_server, room)["inputs"]["p1"] == {str(f): "down" for f in range(2, 6)}
        assert c1.got("room_result") == []


async def test_leaving_on_purpose_abandons_the_room_with_its_reason(mp_server):
    async with clients(mp_server, "mp-leave", 2) as (c0, c1):
        room = (await pair_up(c0, c1))["room"]
        await send_inputs(c0, range(2, 5), "up")
        await expect_rejected(c1, "mp_leave", {"reason": "bored"}, "reason")
        assert await c1.call("mp_leave", {"reason": "focus_lost"}) == {"ok": True}
        assert await c0.wait_for("partner_left") == [{"player": "p1", "reason": "focus_lost"}]
        row = room_row(mp_server, room)
        assert (row["status"], row["end_reason"]) == ("abandoned", "p1: focus_lost")
        assert row["inputs"] == {"p0": {"2": "up", "3": "up", "4": "up"}, "p1": {}}
        await asyncio.sleep(0.3)
        assert c1.got("partner_left") == []  # the leaver is not told about itself
        # the room is closed for both
        await expect_rejected(c0, "input", input_msg(5, "up"), "not in a room")
        await expect_rejected(c1, "input", input_msg(5, "up"), "not in a room")


# -- 7. nobody comes ----------------------------------------------------------------------------------

async def test_waiting_times_out_and_the_timed_out_client_is_not_matched(mp_server):
    async with clients(mp_server, "mp-wait", 2) as (lone, late):
        t0 = time.monotonic()
        assert await join(lone) == {"ok": True, "status": "waiting", "count": 1, "size": 2}
        timeout = (await lone.wait_for("wait_timeout", timeout=4))[0]
        assert time.monotonic() - t0 >= 0.9
        assert timeout == {"message": "nobody came", "redirect": "https://example.org/done"}

        assert await join(late) == {"ok": True, "status": "waiting", "count": 1, "size": 2}
        assert (await late.wait_for("waiting"))[-1] == {"count": 1, "size": 2}
        await asyncio.sleep(0.5)
        assert lone.got("room_start") == [] and late.got("room_start") == []
        assert len(lone.got("wait_timeout")) == 1


# -- 8. network shaping -------------------------------------------------------------------------------

async def test_network_shape_from_the_join_delays_relayed_inputs(mp_server):
    net = {"delay_ms": 200, "jitter_ms": 0, "drop": 0}
    async with clients(mp_server, "mp-shaped", 2) as (slow, fast):
        assert (await join(slow, net=net))["status"] == "waiting"
        ack = await join(fast)
        assert ack["status"] == "matched"
        await slow.wait_for("room_start")
        await fast.wait_for("room_start")

        sent = []
        for f in (2, 3, 4):
            sent.append(time.monotonic())
            assert await fast.call("input", input_msg(f, "up")) == {"ok": True}
        await slow.wait_for("input", 3)
        assert [m["frame"] for m in slow.got("input")] == [2, 3, 4]
        delays = [t - s for t, s in zip(slow.times("input"), sent, strict=True)]
        assert min(delays) >= 0.18, delays

    async with clients(mp_server, "mp-plain", 2) as (shaper, other):
        await expect_rejected(shaper, "mp_join", {"episode_id": "ep-shaper", "net": net}, "disabled")
        # the refused join did not queue the client: the next one waits alone
        assert await join(other) == {"ok": True, "status": "waiting", "count": 1, "size": 2}
        await asyncio.sleep(0.3)
        assert shaper.got("room_start") == [] and other.got("room_start") == []


# -- 9. a refused input message changes nothing ---------------------------------------------------------

async def test_refused_input_message_records_and_relays_none_of_its_inputs(mp_server):
    # server/transport/sockets.py: a bad event "gets an error ack ... and changes nothing". A message
    # whose last pair is refused must not leave its earlier pairs recorded (unrelayed, and
    # then frozen: the sender's later, real input for that frame would be refused).
    async with clients(mp_server, "mp-atomic", 2) as (c0, c1):
        await pair_up(c0, c1)
        assert await c0.call("input", input_msg(2, "up")) == {"ok": True}
        await c1.wait_for("input")

        bad = {"frame": 4, "inputs": [[3, "up"], [4, "up"], [10_000, "up"]], "adv": 0}
        await expect_rejected(c0, "input", bad, "out of range")
        await expect_rejected(c0, "input", {"frame": 5, "inputs": [[5, "up"], [6, "x" * 300]], "adv": 0},
                              "too large")
        await asyncio.sleep(0.3)
        assert len(c1.got("input")) == 1
        assert await c1.call("fetch_inputs", {"from_frame": 0}) == {"ok": True, "inputs": {"p0": [[2, "up"]]}}
        assert await c0.call("input", input_msg(3, "down")) == {"ok": True}
