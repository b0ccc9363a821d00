"""Issue 14, rooms spread over processes: three real server processes and a real Redis. Each
room is owned by one process, chosen at matchmaking (the one holding most of its people's
sockets, ties to the first arrival's); its inputs stay there, or cross Redis only for a
member connected elsewhere; players on other processes still play in sync with the replay.
A process killed mid-game (SIGKILL: no drain) takes no room of the others with it: its rooms
end ``interrupted`` with their inputs saved, the others complete, new rooms go to the living.

Which process owns a room is read from the seat token each page gets (it names the owner)
and from GET /stats (each process's id and its events forwarded to and served for others)."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request

import pytest

from tests.integration.test_multiplayer_relay import (
    KITCHEN_CONFIG,
    KITCHEN_SOURCE,
    PLAYERS,
    Client,
    expected_hash,
    room_row,
    send_inputs,
)
from tests.redis_server import start_redis
from tests.servers import RunningServer, start_server, write_experiment

pytestmark = pytest.mark.asyncio

RECONNECT_S = 1.0


def stats(server: RunningServer) -> dict:
    with urllib.request.urlopen(server.url + "/stats", timeout=5) as resp:
        return json.loads(resp.read())["cluster"]


@pytest.fixture
def three_processes(tmp_path):
    redis = start_redis()
    experiments = tmp_path / "experiments"
    write_experiment(experiments, "spread", env_source=KITCHEN_SOURCE, players=PLAYERS, default_action="noop",
                     env_config=KITCHEN_CONFIG, multiplayer={"reconnect_timeout": RECONNECT_S})
    servers = []
    try:  # one database, as processes behind one load balancer
        servers = [start_server(tmp_path, experiments_dir=experiments, env={"COPLAY_REDIS_URL": redis.url})
                   for _ in range(3)]
        ids = [stats(s)["process"] for s in servers]
        deadline = time.monotonic() + 10
        while not all(stats(s)["matchmaker"] in ids for s in servers) and time.monotonic() < deadline:
            time.sleep(0.1)
        yield servers, ids
    finally:
        for server in servers:
            server.stop()
        redis.stop()


async def room_of(first: RunningServer, second: RunningServer) -> tuple[Client, Client, dict]:
    """p0 connected to `first`, p1 to `second` (p0 arrives first), matched into one room."""
    c0, c1 = Client(first.url, "spread"), Client(second.url, "spread")
    await c0.connect()
    await c1.connect()
    assert (await c0.call("mp_join", {"episode_id": f"ep-{c0.participant_id}"}))["status"] == "waiting"
    assert (await c1.call("mp_join", {"episode_id": f"ep-{c1.participant_id}"}))["status"] == "matched"
    start0, start1 = (await c0.wait_for("room_start"))[0], (await c1.wait_for("room_start"))[0]
    assert start0["room"] == start1["room"]
    owners = {start0["token"].split(".")[0], start1["token"].split(".")[0]}
    assert len(owners) == 1, owners
    return c0, c1, {**start0, "owner": owners.pop()}


async def play(pair, frames) -> None:
    c0, c1, _ = pair
    await asyncio.gather(send_inputs(c0, frames, "right"), send_inputs(c1, frames, "left"))


async def finish(pair, frames, server: RunningServer) -> None:
    """Both report the replay's final hash: the room must end ``completed``."""
    c0, c1, start = pair
    good = expected_hash(start["seed"], {"p0": dict.fromkeys(frames, "right"),
                                         "p1": dict.fromkeys(frames, "left")}, frames[-1])
    for client in (c0, c1):
        assert await client.call("state_hash", {"frame": frames[-1] + 1, "hash": good, "final": True}) == {
            "ok": True}
    for client in (c0, c1):
        result = (await client.wait_for("room_result"))[0]
        assert result["status"] == "completed" and result["replay_hash"] == good, result
    assert room_row(server, start["room"])["status"] == "completed"
    for client in (c0, c1):
        assert client.got("server_error") == [], client.got("server_error")


async def close(*pairs) -> None:
    for c0, c1, _ in pairs:
        await c0.close()
        await c1.close()


def inputs_sent(counts: dict) -> int:
    return counts.get("input", 0)


async def test_rooms_are_owned_where_their_people_are_and_inputs_stay_there(three_processes):
    servers, ids = three_processes
    a, b, c = servers
    before = [stats(s) for s in servers]
    pairs = {"aa": await room_of(a, a), "bb": await room_of(b, b), "cc": await room_of(c, c),
             "ab": await room_of(a, b), "ca": await room_of(c, a)}
    owner = {name: ids.index(pair[2]["owner"]) for name, pair in pairs.items()}
    # most of its people; a tie goes to the first arrival's process: every process owns rooms
    assert owner == {"aa": 0, "bb": 1, "cc": 2, "ab": 0, "ca": 2}
    frames = range(2, 41)
    try:
        await asyncio.gather(*(play(pair, frames) for pair in pairs.values()))
        await asyncio.gather(*(finish(pair, list(frames), a) for pair in pairs.values()))
        after = [stats(s) for s in servers]
        pairs_of = list(zip(after, before, strict=True))
        forwarded = [inputs_sent(x["forwarded"]) - inputs_sent(y["forwarded"]) for x, y in pairs_of]
        served = [inputs_sent(x["served"]) - inputs_sent(y["served"]) for x, y in pairs_of]
        # only the members connected away from their room's owner send inputs across: p1 of
        # "ab" (on b, owned by a) and p1 of "ca" (on a, owned by c), one message per frame
        assert forwarded == [len(frames), len(frames), 0]
        assert served == [len(frames), 0, len(frames)]
        assert [s["rooms_owned"] for s in after] == [0, 0, 0]  # all ended
    finally:
        await close(*pairs.values())


async def wait_until(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        await asyncio.sleep(0.2)
    raise AssertionError(f"not within {timeout}s: {what}")


async def test_a_killed_process_ends_only_its_rooms_and_keeps_their_inputs(three_processes):
    servers, ids = three_processes
    leader = ids.index(stats(servers[0])["matchmaker"])
    x, y = (i for i in range(3) if i != leader)  # y is killed; the matchmaker lives on
    live, other, doomed = servers[leader], servers[x], servers[y]
    pairs = {"doomed": await room_of(doomed, doomed),  # owned by the killed process
             "doomed_mixed": await room_of(doomed, live),  # owned by it, p1 elsewhere
             "stays": await room_of(live, live),
             "stays_mixed": await room_of(live, other),
             "lost_member": await room_of(live, doomed)}  # owned by a living one, p1 dies
    assert {n: ids.index(p[2]["owner"]) for n, p in pairs.items()} == {
        "doomed": y, "doomed_mixed": y, "stays": leader, "stays_mixed": leader, "lost_member": leader}
    try:
        first = range(2, 21)
        await asyncio.gather(*(play(pair, first) for pair in pairs.values()))
        await asyncio.sleep(2.5)  # the owners' input records reach Redis about once a second
        doomed.process.kill()
        doomed.process.wait(10)

        # its rooms: interrupted, every input they had recorded saved
        def ended(name):
            rows = live.query("SELECT status, end_reason FROM rooms WHERE id = ?", pairs[name][2]["room"])
            return rows[0] if rows and rows[0][0] != "playing" else None

        for name in ("doomed", "doomed_mixed"):
            status, reason = await wait_until(lambda name=name: ended(name), 20, f"room {name} ended")
            assert (status, reason) == ("interrupted", f"server process {ids[y]} stopped")
            row = room_row(live, pairs[name][2]["room"])
            assert row["inputs"] == {"p0": dict.fromkeys(map(str, first), "right"),
                                     "p1": dict.fromkeys(map(str, first), "left")}
        # the member of a doomed room connected to a living process is told
        told = (await pairs["doomed_mixed"][1].wait_for("partner_left", timeout=5))[0]
        assert told["reason"] == "interrupted" and "interrupted" in told["message"]

        # a living room that lost a member's socket with the process: away, then dropped out
        keeper = pairs["lost_member"][0]
        assert (await keeper.wait_for("partner_away", timeout=5))[0]["player"] == "p1"
        left = (await keeper.wait_for("partner_left", timeout=RECONNECT_S + 5))[0]
        assert left["reason"] == "dropped_out"
        assert room_row(live, pairs["lost_member"][2]["room"])["status"] == "abandoned"

        # the other rooms play on to the end, in sync with the replay
        frames = list(range(2, 41))
        rest = range(21, 41)
        await asyncio.gather(play(pairs["stays"], rest), play(pairs["stays_mixed"], rest))
        await finish(pairs["stays"], frames, live)
        await finish(pairs["stays_mixed"], frames, live)

        # new rooms go to the living processes
        fresh = await room_of(other, live)
        try:
            assert fresh[2]["owner"] == ids[x]
            await play(fresh, range(2, 11))
            await finish(fresh, list(range(2, 11)), live)
        finally:
            await close(fresh)
    finally:
        await close(*pairs.values())


async def test_when_the_matchmaker_dies_those_waiting_are_matched_by_the_next_one(three_processes):
    servers, ids = three_processes
    leader = ids.index(stats(servers[0])["matchmaker"])
    x, y = (i for i in range(3) if i != leader)
    playing = await room_of(servers[x], servers[x])  # owned by x: the matchmaker's death leaves it be
    waiter = Client(servers[y].url, "spread")
    await waiter.connect()
    newcomer = Client(servers[x].url, "spread")
    try:
        assert (await waiter.call("mp_join", {"episode_id": "ep-waiter"}))["status"] == "waiting"
        await play(playing, range(2, 11))
        servers[leader].process.kill()
        servers[leader].process.wait(10)
        def new_matchmaker():
            seen = {stats(servers[i])["matchmaker"] for i in (x, y)}
            return seen if len(seen) == 1 and ids[leader] not in seen else None

        assert await wait_until(new_matchmaker, 20, "one new matchmaker") <= {ids[x], ids[y]}
        await newcomer.connect()
        ack = await newcomer.call("mp_join", {"episode_id": "ep-newcomer"})
        assert ack["status"] in ("matched", "waiting"), ack  # the waiter may be joining again just now
        # matched with the one who waited through the change
        start, other = (await waiter.wait_for("room_start"))[0], (await newcomer.wait_for("room_start"))[0]
        assert start["room"] == other["room"] and (start["player"], other["player"]) == ("p0", "p1")
        await play(playing, range(11, 21))
        await finish(playing, list(range(2, 21)), servers[x])
    finally:
        await waiter.close()
        await newcomer.close()
        await close(playing)


async def test_joins_at_once_on_every_process_seat_everyone_exactly_once(three_processes):
    servers, ids = three_processes
    clients = [Client(servers[i % 3].url, "spread") for i in range(12)]
    try:
        for client in clients:
            await client.connect()
        acks = await asyncio.gather(*(c.call("mp_join", {"episode_id": f"ep-{c.participant_id}"})
                                      for c in clients))
        assert all(ack["ok"] for ack in acks), acks
        starts = [(await c.wait_for("room_start"))[0] for c in clients]
        await asyncio.sleep(0.5)  # a second room_start would have come by now
        assert [len(c.got("room_start")) for c in clients] == [1] * 12
        rooms: dict[str, list[str]] = {}
        for start in starts:
            rooms.setdefault(start["room"], []).append(start["player"])
        assert len(rooms) == 6 and all(sorted(players) == ["p0", "p1"] for players in rooms.values())
        assert sum(stats(s)["rooms_owned"] for s in servers) == 6
    finally:
        for client in clients:
            await client.close()
