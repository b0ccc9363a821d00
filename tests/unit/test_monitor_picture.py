from server.monitor.picture import StallWatch, live_picture
from server.monitor.presence import Presence
from server.multiplayer.rooms import Matchmaker, Seat

KEY = "kitchen//game"


def seat(sid: str) -> Seat:
    return Seat(sid, "pid-" + sid, "ep-" + sid, {})


def test_the_picture_shows_scenes_waiting_rooms_and_problems():
    mm = Matchmaker()
    presence = Presence()
    for sid, scene in (("a", "game"), ("b", "game"), ("c", "consent"), ("w", "game")):
        presence.arrive(sid, "pid-" + sid, "kitchen", 0, scene)
    room = mm.join(KEY, seat("a"), ["p0", "p1"], horizon=100)
    assert room is None
    room = mm.join(KEY, seat("b"), ["p0", "p1"], horizon=100)
    mm.join(KEY, seat("w"), ["p0", "p1"], horizon=100)
    presence.report("a", {"rtt_ms": 35.0, "frame": 40, "rollbacks": 6, "hidden": False})
    presence.report("b", {"rtt_ms": 480.0, "frame": 39, "rollbacks": 2, "hidden": True})
    room.created -= 60  # a minute old
    room.desyncs.append({"frame": 30, "hashes": {}})
    clock = [100.0]
    stalls = StallWatch(clock=lambda: clock[0])
    records = {"counts": {"kitchen": {"participants": 4}}, "actions": [{"action": "close_study"}],
               "problems": [{"kind": "worker_error", "experiment": "kitchen", "detail": "boom"},
                            {"kind": "replay_error", "experiment": "elsewhere", "detail": "not ours"}]}

    picture = live_picture(["kitchen"], mm, presence, {"kitchen"}, records, stalls, rtt_limit_ms=200)
    study = picture["studies"]["kitchen"]
    assert study["closed"] is True and study["scenes"] == {"consent": 1, "game": 3}
    assert [p["participant"] for q in study["waiting"] for p in q["participants"]] == ["pid-w"]
    [shown] = study["rooms"]
    assert shown["id"] == room.id and shown["desyncs"] == 1
    by_player = {s["player"]: s for s in shown["seats"]}
    assert by_player["p0"]["rtt_ms"] == 35.0 and 5.5 < by_player["p0"]["rollbacks_per_min"] < 6.5
    assert by_player["p1"]["hidden"] is True
    kinds = sorted(p["kind"] for p in study["problems"])
    assert kinds == ["desync", "rtt", "worker_error"]  # not stalled yet; another study's problem elsewhere
    assert study["outcomes"] == {"participants": 4} and picture["actions"] == [{"action": "close_study"}]

    clock[0] += 5  # no new input for 5 s
    picture = live_picture(["kitchen"], mm, presence, set(), records, stalls, rtt_limit_ms=200)
    assert "stall" in [p["kind"] for p in picture["studies"]["kitchen"]["problems"]]
    room.newest += 1  # an input arrived
    picture = live_picture(["kitchen"], mm, presence, set(), records, stalls, rtt_limit_ms=200)
    assert "stall" not in [p["kind"] for p in picture["studies"]["kitchen"]["problems"]]


def test_away_and_stand_in_seats_show_no_stale_vitals():
    mm = Matchmaker()
    presence = Presence()
    mm.join(KEY, seat("a"), ["p0", "p1"], horizon=100)
    room = mm.join(KEY, seat("b"), ["p0", "p1"], horizon=100)
    presence.arrive("a", "pid-a", "kitchen", 0, "game")
    presence.report("a", {"rtt_ms": 20.0})
    room.seats["p0"].away = True
    room.seats["p1"].stand_in = True
    picture = live_picture(["kitchen"], mm, presence, set(), {}, StallWatch(), rtt_limit_ms=200)
    seats = picture["studies"]["kitchen"]["rooms"][0]["seats"]
    assert [(s["status"], "rtt_ms" in s) for s in seats] == [("away", False), ("stand_in", False)]
