"""Issue 6, scale out: two real server processes share rooms through a real Redis
(python-socketio's Redis manager + server/multiplayer/cluster.py). Two players who landed on
different processes are matched, relay inputs to each other, and their room ends with
final hashes equal to the server's replay; data uploaded to either process is stored."""

from __future__ import annotations

import asyncio
import contextlib
import json

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
from tests.servers import start_server, write_experiment

pytestmark = pytest.mark.asyncio


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    redis = start_redis()
    workdir = tmp_path_factory.mktemp("cluster")
    experiments = workdir / "experiments"
    write_experiment(experiments, "duo", env_source=KITCHEN_SOURCE, players=PLAYERS, default_action="noop",
                     env_config=KITCHEN_CONFIG, multiplayer={"reconnect_timeout": 5})
    # in-play screening: one slow ping warns, the next excludes (server/study/inplay.py)
    write_experiment(experiments, "watched", env_source=KITCHEN_SOURCE, players=PLAYERS,
                     default_action="noop", env_config=KITCHEN_CONFIG,
                     screening={"during_play": {"max_rtt_ms": 100, "rtt_window": 1}, "message": "out"},
                     multiplayer={"dropout_message": "partner out"})
    env = {"COPLAY_REDIS_URL": redis.url}
    servers = []
    try:
        # same working directory: the same database, as processes behind one load balancer
        servers = [start_server(workdir, experiments_dir=experiments, env=env) for _ in range(2)]
        yield servers
    finally:
        for server in servers:
            server.stop()
        redis.stop()


@contextlib.asynccontextmanager
async def room_across(two_processes, tag: str, experiment: str = "duo"):
    """p0 connected to the first process, p1 to the second, matched into one room."""
    a, b = two_processes
    c0, c1 = Client(a.url, experiment), Client(b.url, experiment)
    await c0.connect()
    await c1.connect()
    try:
        await c0.call("mp_join", {"episode_id": f"ep-{tag}-0"})
        await c1.call("mp_join", {"episode_id": f"ep-{tag}-1"})
        await c0.wait_for("room_start")
        await c1.wait_for("room_start")
        yield c0, c1
    finally:
        await c0.close()
        await c1.close()


async def test_players_on_different_processes_share_a_room_that_ends_in_sync(two_processes):
    a, b = two_processes
    c0, c1 = Client(a.url, "duo"), Client(b.url, "duo")
    await c0.connect()
    await c1.connect()
    try:
        first = await c0.call("mp_join", {"episode_id": "ep-duo-0"})
        assert first["status"] == "waiting", first
        assert (await c0.wait_for("waiting"))[0] == {"count": 1, "size": 2}
        second = await c1.call("mp_join", {"episode_id": "ep-duo-1"})
        assert second["status"] == "matched", second
        start0 = (await c0.wait_for("room_start"))[0]
        start1 = (await c1.wait_for("room_start"))[0]
        assert start0["room"] == start1["room"] and (start0["player"], start1["player"]) == ("p0", "p1")

        frames = range(2, 31)
        await asyncio.gather(send_inputs(c0, frames, "right"), send_inputs(c1, frames, "left"))
        # each player's inputs crossed to the other process's socket (a forwarded input is
        # acknowledged when queued for the coordinator, so the relay may still be under way)
        def relayed(client):
            return {f for m in client.got("input") for f, _ in m["inputs"]}

        for _ in range(100):
            if set(frames) <= relayed(c0) and set(frames) <= relayed(c1):
                break
            await asyncio.sleep(0.05)
        assert set(frames) <= relayed(c0) and set(frames) <= relayed(c1)
        fetched = await c1.call("fetch_inputs", {"from_frame": 25})
        assert fetched == {"ok": True, "inputs": {"p0": [[f, "right"] for f in range(25, 31)]}}

        good = expected_hash(start0["seed"], {"p0": dict.fromkeys(frames, "right"),
                                              "p1": dict.fromkeys(frames, "left")}, 30)
        assert await c0.call("state_hash", {"frame": 31, "hash": good, "final": True}) == {"ok": True}
        assert await c1.call("state_hash", {"frame": 31, "hash": good, "final": True}) == {"ok": True}
        for client in (c0, c1):
            result = (await client.wait_for("room_result"))[0]
            assert result["status"] == "completed" and result["replay_hash"] == good
        row = room_row(a, start0["room"])
        assert row["status"] == "completed" and row["players"] == {"p0": c0.participant_id,
                                                                    "p1": c1.participant_id}

        # data uploads go to whichever process the page reached: both land in the store
        for client, episode in ((c0, "ep-duo-0"), (c1, "ep-duo-1")):
            assert (await client.call("episode_start", {"episode_id": episode, "seed": 1}))["ok"]
            records = [{"frame": f, "actions": {"p0": "noop"}} for f in range(5)]
            assert (await client.call("steps", json.dumps({"episode_id": episode, "records": records})))[
                "stored"] == 5
        assert a.query("SELECT episode_id, count(*) FROM steps GROUP BY episode_id ORDER BY episode_id") == [
            ("ep-duo-0", 5), ("ep-duo-1", 5)]
        assert c0.got("server_error") == [] and c1.got("server_error") == []
    finally:
        await c0.close()
        await c1.close()


async def test_a_partner_on_the_other_process_hears_of_a_drop_and_the_return(two_processes):
    async with room_across(two_processes, "drop") as (c0, c1):
        token = c1.got("room_start")[0]["token"]
        await c1.sio.disconnect()  # p1's socket on process B closes
        assert (await c0.wait_for("partner_away"))[0]["player"] == "p1"
        back = Client(two_processes[0].url, "duo")  # p1 comes back through the other process
        back.participant_id, back.auth = c1.participant_id, dict(c1.auth)
        await back.connect()
        try:
            assert (await back.call("mp_rejoin", {"token": token}))["ok"]
            assert await c0.wait_for("partner_back") == [{"player": "p1"}]
        finally:
            await back.close()


async def test_a_refused_input_forwarded_to_the_coordinator_comes_back_as_server_error(two_processes):
    async with room_across(two_processes, "refused") as (c0, c1):
        for client in (c0, c1):  # one of them is on the coordinator, the other forwarded
            await client.call("input", {"frame": 2, "inputs": [[2, "up"]], "adv": 0})
            await client.call("input", {"frame": 2, "inputs": [[2, "down"]], "adv": 0})  # rewrites frame 2
            errors = await client.wait_for("server_error")
            assert errors == [{"event": "input", "error": "frame 2 already has a different input"}]


@pytest.mark.parametrize("excluded", [0, 1])
async def test_a_player_excluded_in_play_on_either_process_ends_the_room_for_the_partner(two_processes,
                                                                                         excluded):
    """The exclusion is decided where the slow player's socket is and acted on where the room
    is: the partner, on the other process, hears of it with the dropout message."""
    async with room_across(two_processes, f"watched-{excluded}", "watched") as pair:
        slow, partner = pair[excluded], pair[1 - excluded]
        episode = f"ep-watched-{excluded}-{excluded}"
        assert (await slow.call("episode_start", {"episode_id": episode, "seed": 1}))["ok"]
        vitals = {"rtt_ms": 450.0, "hidden": False, "scene": "game-0", "episode_id": episode, "frame": 12}
        warned = await slow.call("rtt", {"t": 1.0, "vitals": vitals})
        assert warned["inplay"]["action"] == "warn" and warned["inplay"]["rule"] == "rtt"
        assert partner.got("partner_left") == []
        out = await slow.call("rtt", {"t": 2.0, "vitals": {**vitals, "frame": 40}})
        assert out["inplay"]["action"] == "exclude" and out["inplay"]["message"] == "out"
        left = (await partner.wait_for("partner_left"))[0]
        assert left["reason"] == "excluded" and left["message"] == "partner out"
        server = two_processes[0]
        room = (await partner.wait_for("room_start"))[0]["room"]
        row = room_row(server, room)
        assert row["status"] == "abandoned" and row["end_reason"].startswith(f"p{excluded}: excluded (rtt:")
        assert server.query("SELECT status, frames FROM episodes WHERE id = ?", episode) == [("excluded", 40)]
        kinds = server.query("SELECT kind FROM events WHERE episode_id = ? ORDER BY id", episode)
        assert kinds == [("inplay_warning",), ("inplay_excluded",)]
