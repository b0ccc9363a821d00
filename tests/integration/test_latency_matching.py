"""Latency-aware matchmaking (``multiplayer.match_rtt_ms`` / ``match_fallback_s``) in the real
server process, driven by python-socketio clients that join with the RTT a page measures: the
low-RTT participants are paired first, the others only once the first of them has waited the
fallback time; a participant without an RTT waits for the fallback; without the keys, first
come first served as before. Each matched room's outcome is stored as a ``match`` event."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

import pytest

from tests.integration.test_multiplayer_relay import Client, clients, expect_rejected, kitchen_server
from tests.servers import ROOT, RunningServer, write_experiment

FALLBACK_S = 2.0
MATCHED = {"match_rtt_ms": 100, "match_fallback_s": FALLBACK_S, "wait_timeout": 20, "reconnect_timeout": 10}
EXPERIMENTS = {"lat-pairs": MATCHED, "lat-unknown": MATCHED, "lat-off": {}}


@pytest.fixture(scope="module")
def lat_server(tmp_path_factory) -> RunningServer:
    running = kitchen_server(tmp_path_factory.mktemp("lat-server"), EXPERIMENTS)
    try:
        yield running
    finally:
        running.stop()


async def join(client: Client, rtt_ms: float | None) -> tuple[dict, float]:
    """``mp_join`` with the page's measured RTT (None: left out); returns the ack and when it was sent."""
    extra = {} if rtt_ms is None else {"rtt_ms": rtt_ms}
    sent = time.monotonic()
    ack = await client.call("mp_join", {"episode_id": f"ep-{client.participant_id}", **extra})
    assert ack["ok"] is True, ack
    return ack, sent


def match_events(server: RunningServer) -> list[dict]:
    return [
        json.loads(p) for (p,) in server.query("SELECT payload FROM events WHERE kind = 'match' ORDER BY id")
    ]


def started_at(client: Client) -> float:
    return client.times("room_start")[0]


@pytest.mark.asyncio
async def test_low_rtt_participants_are_paired_first_and_the_others_fall_back_after_the_wait(lat_server):
    async with clients(lat_server, "lat-pairs", 4) as (high1, low1, high2, low2):
        joined = {}
        for client, rtt in ((high1, 85.0), (low1, 20.0), (high2, 90.0)):  # no two of them fit in 100 ms
            ack, joined[client] = await join(client, rtt)
            assert ack["status"] == "waiting", ack
            await asyncio.sleep(0.1)
        ack, joined[low2] = await join(low2, 30.0)
        assert ack["status"] == "matched", ack  # 20 + 30: the two low ones, at once
        low_start = (await low1.wait_for("room_start"))[0]
        assert (await low2.wait_for("room_start"))[0]["room"] == low_start["room"] == ack["room"]
        assert started_at(low1) - joined[low2] < FALLBACK_S / 2  # paired on arrival, nobody fell back
        assert high1.got("room_start") == [] and high2.got("room_start") == []
        # the high ones wait until the first of them has waited FALLBACK_S, then are grouped anyway
        high_start = (await high1.wait_for("room_start", timeout=FALLBACK_S + 5))[0]
        assert (await high2.wait_for("room_start"))[0]["room"] == high_start["room"] != low_start["room"]
        assert started_at(high1) - joined[high1] >= FALLBACK_S
        assert started_at(high2) - joined[high2] < FALLBACK_S  # brought in by high1's fallback
        assert high1.got("wait_timeout") == [] == high2.got("wait_timeout")
        # how each room was matched is stored, with the RTTs and the waits
        latency, fallback = match_events(lat_server)
        assert latency["room"] == low_start["room"] and latency["by"] == "latency"
        assert latency["rtt_ms"] == {"p0": 20.0, "p1": 30.0}
        assert fallback["room"] == high_start["room"] and fallback["by"] == "fallback"
        assert fallback["rtt_ms"] == {"p0": 85.0, "p1": 90.0}
        assert fallback["waited_s"]["p0"] >= FALLBACK_S > fallback["waited_s"]["p1"]
        players = {room: json.loads(p) for room, p in lat_server.query("SELECT id, players FROM rooms")}
        assert players[low_start["room"]] == {"p0": low1.participant_id, "p1": low2.participant_id}
        assert players[high_start["room"]] == {"p0": high1.participant_id, "p1": high2.participant_id}
        # a latency-matched seat is still taken back by its token after a dropped socket
        await low2.close()
        assert (await low1.wait_for("partner_away"))[0]["player"] == "p1"
        again = Client(lat_server.url, "lat-pairs")
        again.participant_id, again.auth = low2.participant_id, dict(low2.auth)
        await again.connect()
        try:
            token = (await low2.wait_for("room_start"))[0]["token"]
            back = await again.call("mp_rejoin", {"token": token, "inputs": [], "from_frame": 0})
            assert back["ok"] is True and back["room"] == low_start["room"] and back["player"] == "p1"
        finally:
            await again.close()


@pytest.mark.asyncio
async def test_a_participant_without_an_rtt_is_matched_only_by_the_fallback(lat_server):
    async with clients(lat_server, "lat-unknown", 2) as (unknown, fast):
        before = len(match_events(lat_server))
        _, t_unknown = await join(unknown, None)
        ack, _ = await join(fast, 5.0)
        assert ack["status"] == "waiting", ack  # 5 ms, but the other's RTT is unknown
        await unknown.wait_for("room_start", timeout=FALLBACK_S + 5)
        assert started_at(unknown) - t_unknown >= FALLBACK_S
        assert (await fast.wait_for("room_start"))[0]["room"] == unknown.got("room_start")[0]["room"]
        (event,) = match_events(lat_server)[before:]
        assert event["by"] == "fallback" and event["rtt_ms"] == {"p0": None, "p1": 5.0}


@pytest.mark.asyncio
async def test_without_the_keys_rooms_fill_first_come_first_served(lat_server):
    async with clients(lat_server, "lat-off", 3) as (a, b, c):
        before = len(match_events(lat_server))
        await expect_rejected(c, "mp_join", {"episode_id": "ep-bad", "rtt_ms": -1}, "rtt_ms")
        await expect_rejected(c, "mp_join", {"episode_id": "ep-bad", "rtt_ms": "20"}, "rtt_ms")
        assert (await join(a, 900.0))[0]["status"] == "waiting"
        ack, sent = await join(b, 800.0)  # 1700 ms: no rule, so no matter
        assert ack["status"] == "matched"
        assert (await a.wait_for("room_start"))[0]["room"] == ack["room"]
        assert started_at(a) - sent < FALLBACK_S / 2
        assert match_events(lat_server)[before:] == []


def test_a_fallback_not_below_the_wait_timeout_stops_startup(tmp_path):
    exps = tmp_path / "experiments"
    write_experiment(
        exps,
        "duo",
        players=["p0", "p1"],
        multiplayer={"match_rtt_ms": 150, "match_fallback_s": 60, "wait_timeout": 30},
    )
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "app.py"),
            "--port",
            "0",
            "--experiments-dir",
            str(exps),
            "--database",
            str(tmp_path / "db.sqlite"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert proc.returncode == 2, proc.stderr
    assert str(exps / "duo" / "experiment.py") in proc.stderr
    assert "EXPERIMENT.multiplayer.match_fallback_s" in proc.stderr
    assert "must be below wait_timeout (30 s)" in proc.stderr
