"""A participant cannot touch or read another participant's data: over Socket.IO, steps,
episode_end and episode_start for someone else's episode are refused and change nothing,
and there is no event that reads stored data; over HTTP no route outside /admin (and
/admin itself without credentials) hands out the database, an export or stored values.
Uses the default server (no admin credentials configured)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

pytestmark = pytest.mark.asyncio

SECRET_INFO = "secret-marker-7f3a"  # stored in A's steps; must never come back over HTTP


def record(n: int, basket: int = 240) -> dict:
    return {"frame": n, "actions": {"p0": "left"}, "rewards": {"p0": False}, "done": False,
            "info": {"basket_x": basket + n, "note": SECRET_INFO},
            "t_client": 1000.0 + n, "t_sent": 1000.5 + n, "t_worker_start": 1001.0 + n,
            "t_worker_end": 1001.5 + n, "t_received": 1002.0 + n}


def batch(episode_id: str, frames, basket: int = 240) -> dict:
    return {"episode_id": episode_id, "records": [record(f, basket) for f in frames]}


def refused(ack) -> str:
    assert isinstance(ack, dict) and ack.get("ok") is False, ack
    return ack["error"]


async def test_a_participant_cannot_write_into_another_participants_episode(server, join):
    async with join("p-owner-a") as a, join("p-intruder-b") as b:
        assert (await a.call("episode_start", {"episode_id": "ep-of-a", "seed": 7}))["ok"] is True
        assert (await a.call("steps", batch("ep-of-a", range(1, 4))))["stored"] == 3

        # B appends to, overwrites, ends and re-starts A's episode: all refused
        theirs = "another participant"
        assert theirs in refused(await b.call("steps", batch("ep-of-a", range(4, 9))))
        assert theirs in refused(await b.call("steps", batch("ep-of-a", range(1, 4), basket=0)))
        assert theirs in refused(await b.call("episode_end", {"episode_id": "ep-of-a", "status": "abandoned",
                                                              "frames": 99, "total_reward": -5.0}))
        assert "already used" in refused(await b.call("episode_start", {"episode_id": "ep-of-a", "seed": 9}))
        assert len(await b.wait_errors(4)) == 4
        assert a.server_errors == []

        # nothing of B's reached A's episode
        episode = server.query("SELECT participant_id, seed, status, frames FROM episodes WHERE id='ep-of-a'")
        assert episode == [("p-owner-a", 7, "running", None)]
        rows = server.query("SELECT frame, info FROM steps WHERE episode_id='ep-of-a' ORDER BY frame")
        assert [(f, json.loads(i)["basket_x"]) for f, i in rows] == [(1, 241), (2, 242), (3, 243)]

        # A still owns it
        assert (await a.call("steps", batch("ep-of-a", range(4, 6))))["stored"] == 2
        assert (await a.call("episode_end", {"episode_id": "ep-of-a", "status": "completed",
                                             "frames": 5, "total_reward": 1.0})) == {"ok": True}
    assert server.query("SELECT status, frames FROM episodes WHERE id='ep-of-a'") == [("completed", 5)]


async def test_there_is_no_socket_event_that_reads_stored_data(server, join):
    async with join("p-reader-c") as c:
        for event in ("export", "get_steps", "get_episode", "admin", "query"):
            assert "unknown event" in refused(await c.call(event, {"episode_id": "ep-of-a"}))
        hello = await c.call("hello", {})
        assert hello["ok"] is True and SECRET_INFO not in json.dumps(hello)
        assert "p-owner-a" not in json.dumps(hello)


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


async def test_no_http_route_hands_out_stored_data(server, join):
    async with join("p-http-a") as a:
        assert (await a.call("episode_start", {"episode_id": "ep-http-a", "seed": 3}))["ok"] is True
        assert (await a.call("steps", batch("ep-http-a", range(1, 3))))["stored"] == 2
    db = server.database
    up = "../" * 12
    paths = [
        "/admin/export/catch.zip", "/admin/", "/admin/login", "/admin",
        "/data", "/data/", "/data/coplay.sqlite", "/coplay.sqlite", f"/{db.name}",
        "/exports/catch/steps.csv", "/export/catch.zip", "/download/catch.zip", "/api/episodes",
        f"/x/catch/assets/{up}{str(db).lstrip('/')}", f"/x/catch/assets/..%2F..%2F..%2F{db.name}",
        f"/src/pages/{up}{str(db).lstrip('/')}", f"/src/{up}data/coplay.sqlite",
        "/src/protocol/../../data/coplay.sqlite", "/config/../data/coplay.sqlite",
        f"/vendor/v/x/{up}{str(db).lstrip('/')}", f"/pkg/{up}{str(db).lstrip('/')}",
    ]
    for path in paths:
        status, body = get(server.url + path)
        assert status in (400, 404, 405, 308), (path, status)
        for leak in (SECRET_INFO.encode(), b"p-http-a", b"SQLite format"):
            assert leak not in body, path
    # the routes that do answer carry nothing stored
    for path in ("/", "/healthz", "/x/catch", "/config/mpy.toml"):
        status, body = get(server.url + path)
        assert SECRET_INFO.encode() not in body and b"p-http-a" not in body and b"ep-http-a" not in body, path
