"""Multiplayer per game scene, in the real server with python-socketio clients: a waiting
room per scene; the next episode of a scene, and the multiplayer scene right after it,
bring the same partners back together in their seats, whatever order they arrive in; a
partner who does not come ends it with the dropout message; `rematch: true` matches anew."""

from __future__ import annotations

import pytest

from tests.integration.test_multiplayer_relay import KITCHEN_CONFIG, KITCHEN_SOURCE, PLAYERS, Client
from tests.servers import start_server, write_experiment

pytestmark = pytest.mark.asyncio


def scene(scene_id: str, **fields) -> dict:
    return {"type": "game", "id": scene_id, "players": PLAYERS, "episodes": 2, **fields}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    work = tmp_path_factory.mktemp("partners")
    exps = work / "experiments"
    common = {"env_source": KITCHEN_SOURCE, "default_action": "noop", "env_config": KITCHEN_CONFIG}
    write_experiment(exps, "blocks", **common, scenes=[
        {"type": "game", "id": "solo", "players": ["p0"]}, scene("a"), scene("b"),
        {"type": "survey", "id": "q", "questions": [{"id": "x", "kind": "text", "prompt": "?"}]},
        scene("c"), scene("d", rematch=True)],
        multiplayer={"wait_timeout": 1.5, "dropout_message": "your partner did not come back",
                     "dropout_completion_code": "HALF"})
    write_experiment(exps, "standins", **common, scenes=[scene("a")],
                     multiplayer={"wait_timeout": 1.0, "dropout": "stand_in"})
    running = start_server(work, experiments_dir=exps)
    try:
        yield running
    finally:
        running.stop()


async def connected(server, n: int, experiment: str = "blocks") -> list[Client]:
    made = [Client(server.url, experiment) for _ in range(n)]
    for c in made:
        await c.connect()
    return made


async def join(client: Client, scene_id: str, episode: int) -> dict:
    return await client.call("mp_join", {"episode_id": f"{client.participant_id}-{scene_id}-{episode}",
                                         "scene": scene_id})


async def play_round(order: list[Client], scene_id: str, episode: int) -> dict[str, tuple[str, str]]:
    """Join in `order`; leave each room at once. Returns participant -> (room, player)."""
    starts = {c.participant_id: len(c.got("room_start")) for c in order}
    for c in order:
        ack = await join(c, scene_id, episode)
        assert ack["ok"], (c.participant_id, ack)
    seats = {}
    for c in order:
        start = (await c.wait_for("room_start", starts[c.participant_id] + 1))[-1]
        seats[c.participant_id] = (start["room"], start["player"])
    for c in order:  # the round is over: rooms close (as after their final hashes)
        assert (await c.call("mp_leave", {"reason": "left"}))["ok"]
    return seats


def pairs(seats: dict[str, tuple[str, str]]) -> set[frozenset]:
    rooms: dict[str, set] = {}
    for pid, (room, _) in seats.items():
        rooms.setdefault(room, set()).add(pid)
    return {frozenset(members) for members in rooms.values()}


async def test_partners_stay_together_across_episodes_and_the_next_scene(server):
    c = await connected(server, 4)
    try:
        first = await play_round(c, "a", 0)  # arrival order: c0 c1 | c2 c3
        groups = pairs(first)
        assert groups == {frozenset({c[0].participant_id, c[1].participant_id}),
                          frozenset({c[2].participant_id, c[3].participant_id})}
        # the next episode and the next scene: they arrive interleaved, partners still pair up,
        # each in the seat they had
        for scene_id, episode in (("a", 1), ("b", 0)):
            again = await play_round([c[0], c[2], c[3], c[1]], scene_id, episode)
            assert pairs(again) == groups
            assert {pid: player for pid, (_, player) in again.items()} == \
                {pid: player for pid, (_, player) in first.items()}
        # a survey between: scene c does not follow b directly, so arrival order decides
        after_break = await play_round([c[0], c[2], c[1], c[3]], "c", 0)
        assert pairs(after_break) == {frozenset({c[0].participant_id, c[2].participant_id}),
                                      frozenset({c[1].participant_id, c[3].participant_id})}
        # rematch: true matches anew even right after a scene with partners
        fresh = await play_round([c[0], c[1], c[2], c[3]], "d", 0)
        assert pairs(fresh) == {frozenset({c[0].participant_id, c[1].participant_id}),
                                frozenset({c[2].participant_id, c[3].participant_id})}
        # the waiting rooms are per scene: no one is left waiting anywhere
        for client in c:
            assert not client.got("server_error")
    finally:
        for client in c:
            await client.close()


async def test_a_partner_who_does_not_come_back_ends_it_with_the_dropout_message(server):
    c = await connected(server, 3)
    try:
        await play_round(c[:2], "a", 0)
        # c0 comes to the next episode; its partner c1 does not; a stranger c2 is not matched with it
        assert (await join(c[0], "a", 1))["status"] == "waiting"
        assert (await join(c[2], "a", 1))["status"] == "waiting"
        (notice,) = await c[0].wait_for("wait_timeout", 1, timeout=5)
        assert notice["message"] == "your partner did not come back"
        assert notice["reason"] == "partner_left" and notice["completion_code"] == "HALF"
        assert not c[0].got("room_start")[1:]
    finally:
        for client in c:
            await client.close()


async def test_joining_a_single_player_or_unknown_scene_is_refused(server):
    (c,) = await connected(server, 1)
    try:
        solo = await join(c, "solo", 0)
        assert not solo["ok"] and "single-player" in solo["error"]
        unknown = await join(c, "zzz", 0)
        assert not unknown["ok"] and "no game scene" in unknown["error"]
    finally:
        await c.close()


async def test_with_dropout_stand_in_a_partner_who_does_not_come_back_is_played_by_a_stand_in(server):
    c = await connected(server, 2, "standins")
    try:
        first = await play_round(c, "a", 0)
        assert (await join(c[0], "a", 1))["status"] == "waiting"
        starts = await c[0].wait_for("room_start", 2, timeout=5)  # the partner never joins
        start = starts[-1]
        assert start["player"] == first[c[0].participant_id][1]  # the seat it had
        other = next(p for p in start["players"] if p != start["player"])
        (replaced,) = await c[0].wait_for("partner_replaced", 1)
        assert replaced == {"player": other}
        assert not c[0].got("wait_timeout")
        # the stand-in answers every frame the participant plays, recorded like any input
        ack = await c[0].call("input", {"frame": 5, "inputs": [[f, "noop"] for f in range(6)]})
        assert ack["ok"], ack
        inputs = await c[0].wait_for("input", 1)
        assert inputs[-1]["player"] == other and [f for f, _ in inputs[-1]["inputs"]] == list(range(6))
        (row,) = server.query("SELECT status, players FROM rooms WHERE id = ?", start["room"])
        assert row[0] == "playing" and c[1].participant_id in row[1]
        events = server.query("SELECT kind FROM events WHERE participant_id = ?", c[1].participant_id)
        assert ("stand_in",) in events
    finally:
        for client in c:
            await client.close()
