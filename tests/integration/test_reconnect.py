"""Issue 6, reconnect and dropout, in the real server process with python-socketio
clients: a player whose socket closes comes back within the reconnect window with its
token, hands over the inputs it made while cut off, gets the ones it missed, and the room
ends with final hashes equal to the server's CPython replay. A player gone past the
window triggers the experiment's dropout policy for the partner: end the episode (with
the partial-completion code) or let a scripted stand-in play the seat."""

from __future__ import annotations

import asyncio

import pytest

from tests.integration.test_multiplayer_relay import (
    Client,
    clients,
    expect_rejected,
    expected_hash,
    kitchen_server,
    pair_up,
    room_row,
    send_inputs,
)
from tests.servers import RunningServer

pytestmark = pytest.mark.asyncio

EXPERIMENTS = {
    "rc-back": {"reconnect_timeout": 10},
    "rc-end": {"reconnect_timeout": 1, "dropout_completion_code": "PARTIAL-42",
               "dropout_message": "Your partner left."},
    "rc-stand": {"reconnect_timeout": 1, "dropout": "stand_in"},
    "rc-spoof": {"reconnect_timeout": 10},
}


@pytest.fixture(scope="module")
def rc_server(tmp_path_factory) -> RunningServer:
    running = kitchen_server(tmp_path_factory.mktemp("rc-server"), EXPERIMENTS)
    try:
        yield running
    finally:
        running.stop()


async def reconnect_as(old: Client, server: RunningServer) -> Client:
    """The same participant on a new socket (as socket.io-client does after a drop)."""
    again = Client(server.url, old.auth["experiment"])
    again.participant_id = old.participant_id
    again.auth = dict(old.auth)
    await again.connect()
    return again


async def test_a_player_who_reconnects_within_the_window_finishes_the_episode_in_sync(rc_server):
    async with clients(rc_server, "rc-back", 2) as (c0, c1):
        start = await pair_up(c0, c1)
        token = start["token"]
        assert len(token) >= 16 and token != (await c1.wait_for("room_start"))[0]["token"]
        await asyncio.gather(send_inputs(c0, range(2, 21), "right"), send_inputs(c1, range(2, 21), "left"))

        await c0.sio.disconnect()  # the socket closes mid-episode
        assert (await c1.wait_for("partner_away"))[0] == {"player": "p0", "seconds": 10}
        await send_inputs(c1, range(21, 41), "up")  # the partner plays on; recorded for p0

        back = await reconnect_as(c0, rc_server)
        try:
            # p0 kept playing offline (predicting p1) for frames 21-30: those inputs arrive now
            offline = [[f, "down"] for f in range(21, 31)]
            ack = await back.call("mp_rejoin", {"token": token, "inputs": offline, "from_frame": 21})
            assert ack["ok"] and (ack["player"], ack["room"], ack["seed"]) == ("p0", start["room"],
                                                                             start["seed"])
            assert ack["inputs"] == {"p1": [[f, "up"] for f in range(21, 41)]}  # what p0 missed
            assert await c1.wait_for("partner_back") == [{"player": "p0"}]
            relayed = [m for m in c1.got("input") if m["player"] == "p0" and m["inputs"][0][0] == 21]
            assert relayed and relayed[0]["inputs"] == offline
            await send_inputs(back, range(31, 41), "down")

            inputs = {"p0": {**dict.fromkeys(range(2, 21), "right"), **dict.fromkeys(range(21, 41), "down")},
                      "p1": {**dict.fromkeys(range(2, 21), "left"), **dict.fromkeys(range(21, 41), "up")}}
            good = expected_hash(start["seed"], inputs, 40)
            assert await back.call("state_hash", {"frame": 41, "hash": good, "final": True}) == {"ok": True}
            assert await c1.call("state_hash", {"frame": 41, "hash": good, "final": True}) == {"ok": True}
            result = (await back.wait_for("room_result"))[0]
            assert result == {"status": "completed", "final_hashes": {"p0": good, "p1": good},
                              "replay_hash": good, "end_frame": 40}
            assert c1.got("partner_left") == []
            row = room_row(rc_server, start["room"])
            assert row["status"] == "completed" and row["end_reason"] is None
            # the old socket is gone for good: nothing of it is still seated
            await expect_rejected(back, "mp_rejoin", {"token": token}, "no open room")
        finally:
            await back.close()


async def test_past_the_window_the_room_ends_for_the_partner_with_the_partial_code(rc_server):
    async with clients(rc_server, "rc-end", 2) as (c0, c1):
        start = await pair_up(c0, c1)
        await asyncio.gather(send_inputs(c0, range(2, 11), "up"), send_inputs(c1, range(2, 11), "down"))
        await c1.sio.disconnect()
        assert (await c0.wait_for("partner_away"))[0] == {"player": "p1", "seconds": 1}
        assert c0.got("partner_left") == []  # not yet: the window is open
        left = await c0.wait_for("partner_left", timeout=5)
        assert left == [{"player": "p1", "reason": "dropped_out", "message": "Your partner left.",
                         "completion_code": "PARTIAL-42"}]
        row = room_row(rc_server, start["room"])
        assert (row["status"], row["end_reason"]) == ("abandoned", "p1: dropped out")
        assert row["inputs"]["p1"] == {str(f): "down" for f in range(2, 11)}
        # too late to come back
        late = await reconnect_as(c1, rc_server)
        try:
            await expect_rejected(late, "mp_rejoin", {"token": (await c1.wait_for("room_start"))[0]["token"]},
                                  "no open room")
        finally:
            await late.close()


async def test_past_the_window_a_stand_in_plays_the_seat_and_the_room_still_checks(rc_server):
    async with clients(rc_server, "rc-stand", 2) as (c0, c1):
        start = await pair_up(c0, c1)
        await asyncio.gather(send_inputs(c0, range(2, 11), "right"), send_inputs(c1, range(2, 6), "left"))
        await c1.sio.disconnect()
        # no stand-in policy: the server plays default_action
        assert await c0.wait_for("partner_replaced", timeout=5) == [{"player": "p1", "policy": None}]
        await send_inputs(c0, range(11, 31), "right")
        # p0's page got p1's real inputs, then the stand-in's for every frame after p1's last one
        seen = {f: v for m in c0.got("input") if m["player"] == "p1" for f, v in m["inputs"]}
        assert seen == {**dict.fromkeys(range(2, 6), "left"), **dict.fromkeys(range(6, 31), "noop")}

        inputs = {"p0": dict.fromkeys(range(2, 31), "right"),
                  "p1": {**dict.fromkeys(range(2, 6), "left"), **dict.fromkeys(range(6, 31), "noop")}}
        good = expected_hash(start["seed"], inputs, 30)
        assert await c0.call("state_hash", {"frame": 31, "hash": good, "final": True}) == {"ok": True}
        result = (await c0.wait_for("room_result"))[0]
        assert result["status"] == "completed" and result["replay_hash"] == good
        assert c0.got("partner_left") == []
        events = rc_server.query("SELECT kind FROM events WHERE kind='stand_in'")
        assert events == [("stand_in",)]


async def test_a_token_only_brings_back_its_own_participant(rc_server):
    async with clients(rc_server, "rc-spoof", 2) as (c0, c1):
        start = await pair_up(c0, c1)
        await c0.sio.disconnect()
        await c1.wait_for("partner_away")
        # another participant holding p0's token cannot take the seat
        async with clients(rc_server, "rc-spoof", 1) as (thief,):
            await expect_rejected(thief, "mp_rejoin", {"token": start["token"]}, "another participant")
            await expect_rejected(thief, "mp_rejoin", {"token": "x" * 32}, "no open room")
        back = await reconnect_as(c0, rc_server)
        try:
            assert (await back.call("mp_rejoin", {"token": start["token"]}))["ok"]
        finally:
            await back.close()
