"""Real server process + real python-socketio client: data reaches SQLite, bad input
is refused without harming the server or stored data."""

from __future__ import annotations

import json

import pytest
import socketio

pytestmark = pytest.mark.asyncio


def record(n: int, /, **overrides) -> dict:
    """A valid StepRecord for frame ``n``; ``overrides`` replace (or add) fields."""
    rec = {"frame": n, "actions": {"p0": "left" if n % 2 else "right"},
           "rewards": {"p0": n % 3 == 0}, "done": False,
           "info": {"basket_x": 240 + n, "score": 0, "lives": 3},
           "t_client": 1000.0 + n, "t_sent": 1000.5 + n, "t_worker_start": 1001.0 + n,
           "t_worker_end": 1001.5 + n, "t_received": 1002.0 + n}
    rec.update(overrides)
    return rec


def batch(episode_id: str, frames) -> dict:
    return {"episode_id": episode_id, "records": [record(f) for f in frames]}


def step_count(server, episode_id: str) -> int:
    return server.query("SELECT COUNT(*) FROM steps WHERE episode_id=?", episode_id)[0][0]


async def test_episode_round_trip_is_stored(server, join):
    async with join("p-1") as client:
        ack = await client.call("episode_start", {"episode_id": "ep-good", "seed": 42,
                                                  "client": {"worker": True, "fps": 30}})
        assert ack == {"ok": True, "episode_id": "ep-good"}

        first = await client.call("steps", batch("ep-good", range(1, 6)))
        assert first == {"ok": True, "stored": 5, "received": 5}
        again = await client.call("steps", batch("ep-good", range(1, 6)))
        assert again == {"ok": True, "stored": 0, "received": 5}  # resend is idempotent

        end = await client.call("episode_end", {"episode_id": "ep-good", "status": "completed",
                                                "frames": 5, "total_reward": 2.0})
        assert end == {"ok": True}
        assert client.server_errors == []

    assert server.query("SELECT id, experiment FROM participants WHERE id='p-1'") == [("p-1", "catch")]
    rows = server.query("SELECT participant_id, experiment, seed, status, frames, total_reward, client "
                        "FROM episodes WHERE id='ep-good'")
    assert len(rows) == 1
    pid, experiment, seed, status, frames, total, client_json = rows[0]
    assert (pid, experiment, seed, status, frames, total) == ("p-1", "catch", 42, "completed", 5, 2.0)
    assert json.loads(client_json) == {"worker": True, "fps": 30}

    assert step_count(server, "ep-good") == 5
    steps = server.query("SELECT frame, actions, rewards, done, info, t_client, t_worker_end "
                         "FROM steps WHERE episode_id='ep-good' ORDER BY frame")
    assert [s[0] for s in steps] == [1, 2, 3, 4, 5]
    frame, actions, rewards, done, info, t_client, t_worker_end = steps[2]
    assert json.loads(actions) == {"p0": "left"}
    assert json.loads(rewards) == {"p0": True}
    assert done == 0
    assert json.loads(info) == {"basket_x": 243, "score": 0, "lives": 3}
    assert (t_client, t_worker_end) == (1003.0, 1004.5)


@pytest.mark.parametrize("auth", [
    None,
    {},
    {"participant_id": "p-x"},
    {"participant_id": "p-x", "experiment": "no-such-experiment"},
    {"participant_id": "has spaces", "experiment": "catch"},
    {"participant_id": "p-x", "experiment": "catch", "role": "admin"},
])
async def test_bad_connect_auth_is_refused(server, auth):
    client = socketio.AsyncClient(reconnection=False, handle_sigint=False)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect(server.url, auth=auth, transports=["websocket"], wait_timeout=10)
    assert not client.connected
    await client.disconnect()
    assert server.query("SELECT COUNT(*) FROM participants WHERE id IN ('p-x', 'has spaces')") == [(0,)]


async def expect_rejected(client, event, data, needle=None):
    before = len(client.server_errors)
    ack = await client.call(event, data)
    assert isinstance(ack, dict) and ack.get("ok") is False, ack
    assert isinstance(ack.get("error"), str) and ack["error"]
    if needle is not None:
        assert needle in ack["error"]
    errors = await client.wait_errors(before + 1)
    assert len(errors) == before + 1, f"no server_error for {event}"
    assert errors[-1] == {"event": event, "error": ack["error"]}
    return ack


async def test_bad_events_are_rejected_and_change_nothing(server, join):
    async with join("p-2") as other:
        assert (await other.call("episode_start", {"episode_id": "ep-other", "seed": 1}))["ok"]
        assert (await other.call("steps", batch("ep-other", [1, 2])))["stored"] == 2

    async with join("p-3") as client:
        assert (await client.call("episode_start", {"episode_id": "ep-mine", "seed": 1}))["ok"]
        assert (await client.call("steps", batch("ep-mine", [1, 2, 3])))["stored"] == 3

        await expect_rejected(client, "steps", {"episode_id": "ep-mine",
                                                "records": [record(4, frame="four")]}, "frame")
        await expect_rejected(client, "steps", {"episode_id": "ep-mine",
                                                "records": [record(4, frame=-1)]}, "frame")
        await expect_rejected(client, "steps", batch("ep-mine", range(10, 2011)), "records")
        await expect_rejected(client, "steps", {"episode_id": "ep-mine",
                                                "records": [record(4, extra=1)]}, "extra")
        await expect_rejected(client, "no_such_event", {"episode_id": "ep-mine"}, "unknown event")
        await expect_rejected(client, "steps", [record(4)])
        await expect_rejected(client, "steps", 17)
        await expect_rejected(client, "steps", "not json at all", "not JSON")
        await expect_rejected(client, "episode_end", None)
        await expect_rejected(client, "steps", batch("ep-unknown", [1]), "unknown episode")
        await expect_rejected(client, "steps", batch("ep-other", [3, 4]), "another participant")
        await expect_rejected(client, "episode_end", {"episode_id": "ep-other", "status": "completed",
                                                      "frames": 9}, "another participant")
        await expect_rejected(client, "episode_start", {"episode_id": "ep-other"}, "already used")
        await expect_rejected(client, "episode_end", {"episode_id": "ep-mine", "status": "won",
                                                      "frames": 3}, "status")

        # nothing was stored or changed by the rejected events
        assert step_count(server, "ep-mine") == 3
        assert step_count(server, "ep-other") == 2
        assert step_count(server, "ep-unknown") == 0
        assert server.query("SELECT participant_id, status FROM episodes WHERE id IN "
                            "('ep-other', 'ep-mine') ORDER BY id") == [("p-3", "running"),
                                                                        ("p-2", "running")]

        # the same connection still works
        assert client.sio.connected
        ok = await client.call("steps", batch("ep-mine", [4, 5]))
        assert ok == {"ok": True, "stored": 2, "received": 2}
        assert (await client.call("episode_end", {"episode_id": "ep-mine", "status": "completed",
                                                  "frames": 5}))["ok"]

    assert step_count(server, "ep-mine") == 5
    assert server.query("SELECT status FROM episodes WHERE id='ep-mine'") == [("completed",)]
    assert server.process.poll() is None


async def test_json_string_payload_is_accepted(server, join):
    async with join("p-4") as client:
        assert (await client.call("episode_start", json.dumps({"episode_id": "ep-json"})))["ok"]
        ack = await client.call("steps", json.dumps(batch("ep-json", [1])))
        assert ack == {"ok": True, "stored": 1, "received": 1}


async def test_numeric_string_frame_is_rejected(server, join):
    # events.py promises "anything else is rejected", but pydantic's lax mode turns
    # "7" into 7 and stores it. Known bug: this test fails until the schema is strict.
    async with join("p-5") as client:
        assert (await client.call("episode_start", {"episode_id": "ep-lax"}))["ok"]
        await expect_rejected(client, "steps", {"episode_id": "ep-lax", "records": [record(7, frame="7")]})
    assert step_count(server, "ep-lax") == 0


async def test_out_of_range_seed_gets_an_error_ack(server, join):
    # EpisodeStart.seed has no bounds; 2**64 overflows SQLite INTEGER inside the handler,
    # the exception escapes and the client gets no ack at all. Known bug: fails until fixed.
    async with join("p-6") as client:
        try:
            ack = await client.call("episode_start", {"episode_id": "ep-big", "seed": 2**64},
                                    timeout=3)
        except socketio.exceptions.TimeoutError:
            ack = "no ack (timeout)"
        assert isinstance(ack, dict) and ack.get("ok") is False, ack
        # the server and the connection survive either way
        assert (await client.call("episode_start", {"episode_id": "ep-small", "seed": 1}))["ok"]
    assert server.process.poll() is None


async def test_a_reloaded_page_gets_its_running_episode_back_and_nobody_else_s(server, join):
    async with join("p-res") as client:
        await client.call("episode_start", {"episode_id": "ep-res", "seed": 7, "client": {}})
        await client.call("steps", batch("ep-res", range(1, 4)))
        ack = await client.call("episode_resume", {"episode_id": "ep-res"})
        assert ack["ok"] and ack["seed"] == 7 and [s[0] for s in ack["steps"]] == [1, 2, 3]
        assert ack["steps"][0][1] == record(1)["actions"]
        await client.call("steps", batch("ep-res", [5]))  # a gap: frame 4 never arrived
        gap = await client.call("episode_resume", {"episode_id": "ep-res"})
        assert not gap["ok"] and "gaps" in gap["error"]
    async with join("p-other") as other:
        stolen = await other.call("episode_resume", {"episode_id": "ep-res"})
        assert not stolen["ok"] and "another participant" in stolen["error"]
    async with join("p-res") as client:
        await client.call("episode_end", {"episode_id": "ep-res", "status": "completed", "frames": 5,
                                          "total_reward": 0.0})
        over = await client.call("episode_resume", {"episode_id": "ep-res"})
        assert not over["ok"] and "over" in over["error"]
    assert server.query("SELECT kind FROM events WHERE episode_id = 'ep-res'") == [("resume",)]
    assert step_count(server, "ep-res") == 4  # nothing changed by the refused asks
