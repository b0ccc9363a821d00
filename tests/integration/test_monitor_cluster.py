"""The live monitor with two real server processes and a real Redis: a monitor page connected
to one process sees a room owned by the other, with the figures of each seat whichever
process holds its socket; ending that room from the monitor ends it on its owner; closing a
study on one process keeps new arrivals out on the other too, and reopening lets them in."""

from __future__ import annotations

import asyncio
import json
import urllib.request

import pytest

from tests.integration.test_admin_login import HASH, SECRET, Browser
from tests.integration.test_monitor_security import connect, monitor_config
from tests.integration.test_multiplayer_relay import KITCHEN_CONFIG, KITCHEN_SOURCE, PLAYERS, Client, room_row
from tests.integration.test_room_owners import wait_until
from tests.redis_server import start_redis
from tests.servers import start_server, write_experiment

pytestmark = pytest.mark.asyncio


@pytest.fixture
def two(tmp_path):
    redis = start_redis()
    experiments = tmp_path / "experiments"
    write_experiment(experiments, "spread", env_source=KITCHEN_SOURCE, players=PLAYERS, default_action="noop",
                     env_config=KITCHEN_CONFIG, closed_message="closed for now")
    env = {"COPLAY_REDIS_URL": redis.url, "COPLAY_ADMIN_PASSWORD_HASH": HASH, "COPLAY_SECRET_KEY": SECRET}
    servers = []
    try:
        servers = [start_server(tmp_path, experiments_dir=experiments, env=env) for _ in range(2)]
        yield servers
    finally:
        for server in servers:
            server.stop()
        redis.stop()


def process_id(server) -> str:
    with urllib.request.urlopen(server.url + "/stats", timeout=5) as resp:
        return json.loads(resp.read())["cluster"]["process"]


async def test_one_monitor_sees_and_acts_on_every_process(two):
    a, b = two
    browser = Browser(a.url)
    assert browser.login()[0] == 303
    config = monitor_config(browser)
    monitor, pictures = await connect(a.url, {"ticket": config["ticket"]})
    p0, p1 = Client(b.url, "spread"), Client(a.url, "spread")  # p0's process owns the room
    try:
        for client in (p0, p1):
            await client.connect()
            assert (await client.call("hello", {}))["ok"]
        assert (await p0.call("mp_join", {"episode_id": "ep-p0"}))["status"] == "waiting"
        assert (await p1.call("mp_join", {"episode_id": "ep-p1"}))["status"] == "matched"
        room = (await p0.wait_for("room_start"))[0]["room"]
        for client, rtt in ((p0, 40.0), (p1, 60.0)):
            await client.call("rtt", {"t": 1.0, "vitals": {"rtt_ms": rtt, "frame": 12}})

        def listed():
            if not pictures:
                return None
            rooms = pictures[-1]["studies"]["spread"]["rooms"]
            found = [r for r in rooms if r["id"] == room]
            return found[0] if found and all("rtt_ms" in s for s in found[0]["seats"]) else None

        seen = await wait_until(listed, 10, "the room owned by the other process, with both seats' RTT")
        assert seen["process"] == process_id(b)
        assert {s["player"]: s["rtt_ms"] for s in seen["seats"]} == {"p0": 40.0, "p1": 60.0}
        assert sum(pictures[-1]["studies"]["spread"]["scenes"].values()) == 2  # one on each process

        ack = await monitor.call("act", {"action": "end_room", "room": room, "reason": "pilot over",
                                         "csrf": config["csrf"]}, namespace="/admin", timeout=10)
        assert ack == {"ok": True}
        for client in (p0, p1):
            assert (await client.wait_for("partner_left"))[0]["reason"] == "ended_by_researcher"
        row = room_row(a, room)
        assert (row["status"], row["end_reason"]) == ("ended", "researcher: pilot over")

        # the doors: closed on a, closed on b; reopened on a, open on b
        for action, closed in (("close_study", True), ("reopen_study", False)):
            request = {"action": action, "experiment": "spread", "csrf": config["csrf"]}
            ack = await monitor.call("act", request, namespace="/admin", timeout=5)
            assert ack == {"ok": True}
            reply = await arrival_on(b, closed)
            assert reply.get("message") == ("closed for now" if closed else None)
    finally:
        await monitor.disconnect()
        for client in (p0, p1):
            await client.close()


async def arrival_on(server, closed: bool, timeout: float = 5.0) -> dict:
    """A new participant's hello on `server` until the study is `closed` (or open) there: the
    news crosses processes in a moment (each try is a new participant: one who got in once
    stays in)."""
    for _ in range(int(timeout / 0.1)):
        newcomer = Client(server.url, "spread")
        await newcomer.connect()
        try:
            reply = await newcomer.call("hello", {})
        finally:
            await newcomer.close()
        if bool(reply.get("closed")) == closed:
            return reply
        await asyncio.sleep(0.1)
    raise AssertionError(f"the study is not {'closed' if closed else 'open'} on {server.url}")
