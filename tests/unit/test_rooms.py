"""Matchmaker and Room (server/multiplayer/rooms.py) used directly: no sockets, no server."""

from __future__ import annotations

import pytest

from server.multiplayer.rooms import (
    MAX_INPUT_BYTES,
    LatencyRule,
    Matchmaker,
    Room,
    RoomError,
    Seat,
    pick_owner,
    room_from_wire,
    room_to_wire,
)

PLAYERS = ["p0", "p1"]
HORIZON = 100


def seat(n: int) -> Seat:
    return Seat(sid=f"sid-{n}", participant_id=f"part-{n}", episode_id=f"ep-{n}",
                net={"delay_ms": 0.0, "jitter_ms": 0.0, "drop": 0.0})


def make_room(players=None, horizon: int = HORIZON) -> Room:
    players = list(players or PLAYERS)
    return Room(id="room-1", experiment="exp", seed=7, players=players,
                seats={p: seat(i) for i, p in enumerate(players)}, horizon=horizon)


# -- Matchmaker ---------------------------------------------------------------------------

def test_join_fills_rooms_in_arrival_order():
    mm = Matchmaker()
    seats = [seat(i) for i in range(5)]

    assert mm.join("exp", seats[0], PLAYERS, HORIZON) is None
    assert [s.sid for s in mm.waiting("exp")] == ["sid-0"]
    first = mm.join("exp", seats[1], PLAYERS, HORIZON)
    assert first is not None
    assert first.players == PLAYERS
    assert first.seats == {"p0": seats[0], "p1": seats[1]}
    assert first.experiment == "exp" and first.horizon == HORIZON and first.status == "playing"
    assert first.inputs == {"p0": {}, "p1": {}}
    assert mm.waiting("exp") == []

    assert mm.join("exp", seats[2], PLAYERS, HORIZON) is None
    second = mm.join("exp", seats[3], PLAYERS, HORIZON)
    assert second is not None and second.id != first.id
    assert second.seats == {"p0": seats[2], "p1": seats[3]}

    assert mm.join("exp", seats[4], PLAYERS, HORIZON) is None
    assert [s.sid for s in mm.waiting("exp")] == ["sid-4"]

    assert mm.room_for("sid-0") is first and mm.room_for("sid-1") is first
    assert mm.room_for("sid-2") is second and mm.room_for("sid-3") is second
    assert mm.room_for("sid-4") is None
    assert first.player_of("sid-1") == "p1" and first.player_of("sid-2") is None
    assert first.peers_of("p0") == [seats[1]]


def test_three_player_room_waits_for_all_three():
    mm = Matchmaker()
    players = ["a", "b", "c"]
    assert mm.join("exp", seat(0), players, HORIZON) is None
    assert mm.join("exp", seat(1), players, HORIZON) is None
    room = mm.join("exp", seat(2), players, HORIZON)
    assert room is not None
    assert {p: s.sid for p, s in room.seats.items()} == {"a": "sid-0", "b": "sid-1", "c": "sid-2"}
    assert [s.sid for s in room.peers_of("b")] == ["sid-0", "sid-2"]


def test_queues_are_per_experiment():
    mm = Matchmaker()
    assert mm.join("exp-a", seat(0), PLAYERS, HORIZON) is None
    assert mm.join("exp-b", seat(1), PLAYERS, HORIZON) is None  # not matched with exp-a's seat
    assert [s.sid for s in mm.waiting("exp-a")] == ["sid-0"]
    assert [s.sid for s in mm.waiting("exp-b")] == ["sid-1"]
    assert mm.waiting("exp-c") == []
    room = mm.join("exp-b", seat(2), PLAYERS, HORIZON)
    assert room is not None and room.experiment == "exp-b"
    assert [s.sid for s in room.seats.values()] == ["sid-1", "sid-2"]


def test_joining_twice_is_refused():
    mm = Matchmaker()
    mm.join("exp", seat(0), PLAYERS, HORIZON)
    with pytest.raises(RoomError):
        mm.join("exp", seat(0), PLAYERS, HORIZON)  # already waiting
    assert len(mm.waiting("exp")) == 1
    room = mm.join("exp", seat(1), PLAYERS, HORIZON)
    assert room is not None
    with pytest.raises(RoomError):
        mm.join("exp", seat(1), PLAYERS, HORIZON)  # already playing
    assert mm.waiting("exp") == []


def test_leave_queue():
    mm = Matchmaker()
    mm.join("exp", seat(0), PLAYERS, HORIZON)
    assert mm.leave_queue("sid-0") == "exp"
    assert mm.waiting("exp") == []
    assert mm.leave_queue("sid-0") is None  # already gone
    assert mm.leave_queue("sid-unknown") is None

    # the next two arrivals are matched with each other, not with the one who left
    assert mm.join("exp", seat(1), PLAYERS, HORIZON) is None
    room = mm.join("exp", seat(2), PLAYERS, HORIZON)
    assert room is not None
    assert [s.sid for s in room.seats.values()] == ["sid-1", "sid-2"]
    # a seated player is not in a queue
    assert mm.leave_queue("sid-1") is None
    assert mm.room_for("sid-1") is room


def test_leave_queue_keeps_the_order_of_the_others():
    mm = Matchmaker()
    players = ["a", "b", "c"]
    for i in range(2):
        assert mm.join("exp", seat(i), players, HORIZON) is None
    assert mm.leave_queue("sid-0") == "exp"
    assert mm.join("exp", seat(3), players, HORIZON) is None
    room = mm.join("exp", seat(4), players, HORIZON)
    assert room is not None
    assert [s.sid for s in room.seats.values()] == ["sid-1", "sid-3", "sid-4"]


def test_close_forgets_the_room_and_lets_its_players_join_again():
    mm = Matchmaker()
    mm.join("exp", seat(0), PLAYERS, HORIZON)
    room = mm.join("exp", seat(1), PLAYERS, HORIZON)
    other_waiting = seat(2)
    mm.join("exp", other_waiting, PLAYERS, HORIZON)

    mm.close(room)
    assert mm.room_for("sid-0") is None and mm.room_for("sid-1") is None
    assert room.id not in mm.rooms
    assert [s.sid for s in mm.waiting("exp")] == ["sid-2"]  # the queue is untouched
    mm.close(room)  # closing twice is harmless

    again = mm.join("exp", seat(0), PLAYERS, HORIZON)
    assert again is not None and again.id != room.id
    assert {p: s.sid for p, s in again.seats.items()} == {"p0": "sid-2", "p1": "sid-0"}


# -- Room.record_inputs ---------------------------------------------------------------------

def test_record_inputs_stores_and_returns_the_new_ones():
    room = make_room()
    assert room.record_inputs("p0", [[2, "up"], [3, "down"]]) == [(2, "up"), (3, "down")]
    assert room.inputs == {"p0": {2: "up", 3: "down"}, "p1": {}}
    assert room.newest == 3
    # a resend (redundant inputs) is accepted; only the new frame is returned
    assert room.record_inputs("p0", [[2, "up"], [3, "down"], [4, "left"]]) == [(4, "left")]
    assert room.record_inputs("p0", [[4, "left"]]) == []
    assert room.inputs["p0"] == {2: "up", 3: "down", 4: "left"}
    # players are independent: the same frame for another player is no conflict
    assert room.record_inputs("p1", [[2, "interact"]]) == [(2, "interact")]
    assert room.inputs["p1"] == {2: "interact"}
    assert room.newest == 4


def test_record_inputs_accepts_structured_values():
    room = make_room()
    value = {"move": [1, -1], "fire": True}
    assert room.record_inputs("p0", [[0, value]]) == [(0, value)]
    assert room.record_inputs("p0", [[0, {"fire": True, "move": [1, -1]}]]) == []  # equal dict


def test_record_inputs_refuses_a_rewrite():
    room = make_room()
    room.record_inputs("p0", [[5, "up"]])
    with pytest.raises(RoomError, match="different"):
        room.record_inputs("p0", [[5, "down"]])
    assert room.inputs["p0"] == {5: "up"}


def test_record_inputs_refuses_frames_out_of_range():
    room = make_room(horizon=10)
    with pytest.raises(RoomError, match="out of range"):
        room.record_inputs("p0", [[11, "up"]])  # newest 0 + horizon 10
    with pytest.raises(RoomError, match="out of range"):
        room.record_inputs("p0", [[-1, "up"]])
    with pytest.raises(RoomError, match="out of range"):
        room.record_inputs("p1", [[10_000, "up"]])
    assert room.inputs == {"p0": {}, "p1": {}}
    assert room.newest == 0

    room.record_inputs("p0", [[10, "up"]])  # the edge of the horizon is allowed
    assert room.newest == 10
    room.record_inputs("p1", [[20, "up"]])  # the horizon moves with the newest frame
    with pytest.raises(RoomError, match="out of range"):
        room.record_inputs("p1", [[31, "up"]])
    assert room.inputs == {"p0": {10: "up"}, "p1": {20: "up"}}


def test_record_inputs_refuses_oversized_values():
    room = make_room()
    # json.dumps('"' + x*n + '"') is n + 2 characters
    biggest = "x" * (MAX_INPUT_BYTES - 2)
    assert room.record_inputs("p0", [[1, biggest]]) == [(1, biggest)]
    with pytest.raises(RoomError, match="too large"):
        room.record_inputs("p0", [[2, "x" * (MAX_INPUT_BYTES - 1)]])
    with pytest.raises(RoomError, match="too large"):
        room.record_inputs("p0", [[3, {"keys": ["a"] * 100}]])
    assert room.inputs["p0"] == {1: biggest}


@pytest.mark.parametrize("batch", [
    [[3, "up"], [4, "down"], [10_000, "up"]],  # out of range after good ones
    [[3, "up"], [4, "x" * 300]],  # oversized after a good one
    [[3, "up"], [2, "left"]],  # rewrite of frame 2 after a good one
], ids=["out-of-range", "oversized", "rewrite"])
def test_a_refused_batch_records_nothing(batch):
    # A refused input event gets an error ack and, per server/transport/sockets.py, "changes
    # nothing": the sender believes none of it was taken, and the peer never receives it.
    room = make_room()
    room.record_inputs("p0", [[2, "right"]])
    with pytest.raises(RoomError):
        room.record_inputs("p0", batch)
    assert room.inputs == {"p0": {2: "right"}, "p1": {}}
    assert room.newest == 2


# -- Room.inputs_since ----------------------------------------------------------------------

def test_inputs_since():
    room = make_room()
    room.record_inputs("p0", [[f, f"a{f}"] for f in (5, 2, 9, 7)])
    room.record_inputs("p1", [[3, "b3"], [8, "b8"]])
    assert room.inputs_since(0) == {"p0": [(2, "a2"), (5, "a5"), (7, "a7"), (9, "a9")],
                                    "p1": [(3, "b3"), (8, "b8")]}
    assert room.inputs_since(7) == {"p0": [(7, "a7"), (9, "a9")], "p1": [(8, "b8")]}
    assert room.inputs_since(10) == {"p0": [], "p1": []}
    assert make_room().inputs_since(0) == {"p0": [], "p1": []}


# -- Room.add_checkpoint --------------------------------------------------------------------

def test_checkpoint_reports_nothing_until_all_players_reported():
    room = make_room(players=["p0", "p1", "p2"])
    assert room.add_checkpoint("p0", 30, "aaaaaaaaaaaaaaaa") is None
    assert room.add_checkpoint("p1", 30, "bbbbbbbbbbbbbbbb") is None  # p2 has not reported
    assert room.desyncs == []
    report = room.add_checkpoint("p2", 30, "aaaaaaaaaaaaaaaa")
    assert report == {"frame": 30, "hashes": {"p0": "aaaaaaaaaaaaaaaa", "p1": "bbbbbbbbbbbbbbbb",
                                              "p2": "aaaaaaaaaaaaaaaa"}}
    assert room.desyncs == [report]
    assert 30 not in room.checkpoints


def test_checkpoint_agreement_is_not_reported():
    room = make_room()
    assert room.add_checkpoint("p0", 30, "0123456789abcdef") is None
    assert room.add_checkpoint("p1", 30, "0123456789abcdef") is None
    assert room.desyncs == []
    assert room.checkpoints == {}


def test_checkpoint_frames_are_independent():
    room = make_room()
    assert room.add_checkpoint("p0", 30, "1111111111111111") is None
    assert room.add_checkpoint("p0", 60, "2222222222222222") is None
    assert room.add_checkpoint("p1", 60, "2222222222222222") is None  # 60 agrees
    assert room.add_checkpoint("p1", 90, "3333333333333333") is None
    report = room.add_checkpoint("p1", 30, "ffffffffffffffff")  # 30 differs
    assert report == {"frame": 30, "hashes": {"p0": "1111111111111111", "p1": "ffffffffffffffff"}}
    assert room.desyncs == [report]
    assert list(room.checkpoints) == [90]  # only the frame p0 has not reported yet


def test_partners_reform_their_room_in_their_seats_whatever_the_arrival_order():
    mm = Matchmaker()
    seats = [seat(i) for i in range(4)]
    first = [mm.join("exp/a", s, PLAYERS, HORIZON) for s in seats]
    rooms = [r for r in first if r is not None]
    assert [{p: s.participant_id for p, s in r.seats.items()} for r in rooms] == [
        {"p0": "part-0", "p1": "part-1"}, {"p0": "part-2", "p1": "part-3"}]
    for r in rooms:
        mm.close(r)
    # the next episode: they come back in another order, and in new sockets
    again = {}
    for n in (3, 0, 2, 1):
        back = Seat(sid=f"new-{n}", participant_id=f"part-{n}", episode_id=f"ep2-{n}", net={})
        group = mm.partners[f"part-{n}"][1]
        room = mm.join("exp/b", back, PLAYERS, HORIZON, group=group)
        if room is not None:
            again[room.id] = {p: s.participant_id for p, s in room.seats.items()}
    assert sorted(again.values(), key=lambda r: r["p0"]) == [
        {"p0": "part-0", "p1": "part-1"}, {"p0": "part-2", "p1": "part-3"}]
    assert all(r.experiment == "exp/b" for r in mm.rooms.values())


def test_a_group_waits_only_for_its_own_members():
    mm = Matchmaker()
    group = {"part-0": "p0", "part-1": "p1"}
    assert mm.join("exp", seat(0), PLAYERS, HORIZON, group=group) is None
    assert mm.join("exp", seat(5), PLAYERS, HORIZON) is None  # a stranger waits apart
    assert mm.waiting("exp") == [mm.waiting("exp")[0]] and mm.waiting("exp")[0].sid == "sid-5"
    room = mm.join("exp", seat(1), PLAYERS, HORIZON, group=group)
    assert room is not None and {s.sid for s in room.seats.values()} == {"sid-0", "sid-1"}


# -- latency-aware matching (LatencyRule) ----------------------------------------------------

RULE = LatencyRule(max_rtt_ms=100, fallback_s=30)


def timed(n: int, rtt: float | None, joined: float) -> Seat:
    """A seat that joined at monotonic time `joined` with a measured RTT (None: unknown)."""
    s = seat(n)
    s.rtt_ms, s.joined = rtt, joined
    return s


def sids(room: Room | None) -> dict[str, str] | None:
    return None if room is None else {p: s.sid for p, s in room.seats.items()}


def test_latency_matching_pairs_the_low_rtt_seats_and_keeps_the_others_waiting():
    mm = Matchmaker()
    arrivals = [(0, 85.0), (1, 20.0), (2, 90.0), (3, 30.0)]  # high, low, high, low
    rooms = [mm.join("exp", timed(n, rtt, float(n)), PLAYERS, HORIZON, rule=RULE, now=float(n))
             for n, rtt in arrivals]
    assert rooms[:3] == [None, None, None]  # 85+20 and 20+90 are the best of each, over 100 ms
    assert sids(rooms[3]) == {"p0": "sid-1", "p1": "sid-3"}  # 20+30: the low ones, in arrival order
    assert rooms[3].matching == {"by": "latency", "rtt_ms": {"p0": 20.0, "p1": 30.0},
                                 "waited_s": {"p0": 2.0, "p1": 0.0}}
    assert [s.sid for s in mm.waiting("exp")] == ["sid-0", "sid-2"]
    assert mm.room_for("sid-0") is None and mm.room_for("sid-1") is rooms[3]


def test_latency_matching_without_a_rule_is_first_come_first_served():
    mm = Matchmaker()
    assert mm.join("exp", timed(0, 80.0, 0.0), PLAYERS, HORIZON) is None
    room = mm.join("exp", timed(1, 90.0, 1.0), PLAYERS, HORIZON)  # 170 ms, but no rule
    assert sids(room) == {"p0": "sid-0", "p1": "sid-1"} and room.matching == {}


def test_latency_matching_takes_the_lowest_rtt_set_with_earliest_arrivals_breaking_ties():
    mm = Matchmaker()
    assert mm.join("exp", timed(0, 70.0, 0.0), PLAYERS, HORIZON, rule=RULE, now=0.0) is None
    assert mm.join("exp", timed(1, 70.0, 1.0), PLAYERS, HORIZON, rule=RULE, now=1.0) is None  # 140
    # 30 fits with either 70 (exactly the bound): the earlier one
    room = mm.join("exp", timed(2, 30.0, 2.0), PLAYERS, HORIZON, rule=RULE, now=2.0)
    assert sids(room) == {"p0": "sid-0", "p1": "sid-2"}
    assert [s.sid for s in mm.waiting("exp")] == ["sid-1"]
    # three players: the lowest sum wins over the earliest arrival
    mm = Matchmaker()
    rule = LatencyRule(max_rtt_ms=150, fallback_s=None)
    players = ["a", "b", "c"]
    for n, rtt in enumerate([60.0, 50.0, 150.0, 50.0]):  # 50+50+60 = 160: over
        assert mm.join("exp", timed(n, rtt, float(n)), players, HORIZON, rule=rule, now=float(n)) is None
    room = mm.join("exp", timed(4, 50.0, 4.0), players, HORIZON, rule=rule, now=4.0)
    assert sids(room) == {"a": "sid-1", "b": "sid-3", "c": "sid-4"}
    assert [s.sid for s in mm.waiting("exp")] == ["sid-0", "sid-2"]


def test_a_seat_falls_back_after_its_time_and_is_grouped_first_come_first_served():
    mm = Matchmaker()
    assert mm.join("exp", timed(0, 80.0, 0.0), PLAYERS, HORIZON, rule=RULE, now=0.0) is None
    assert mm.join("exp", timed(1, 90.0, 10.0), PLAYERS, HORIZON, rule=RULE, now=10.0) is None
    assert mm.join("exp", timed(2, 70.0, 20.0), PLAYERS, HORIZON, rule=RULE, now=20.0) is None
    # time alone changes nothing before the first seat's 30 s ...
    assert mm.match("exp", PLAYERS, HORIZON, rule=RULE, now=29.99) is None
    # ... then it is grouped with the earliest other arrival, whatever their RTTs
    room = mm.match("exp", PLAYERS, HORIZON, rule=RULE, now=30.0)
    assert sids(room) == {"p0": "sid-0", "p1": "sid-1"}
    assert room.matching == {"by": "fallback", "rtt_ms": {"p0": 80.0, "p1": 90.0},
                             "waited_s": {"p0": 30.0, "p1": 20.0}}
    assert mm.match("exp", PLAYERS, HORIZON, rule=RULE, now=49.0) is None  # sid-2 waits alone
    assert [s.sid for s in mm.waiting("exp")] == ["sid-2"]
    # a newcomer joins a fallback seat at once
    room = mm.join("exp", timed(3, 95.0, 60.0), PLAYERS, HORIZON, rule=RULE, now=60.0)
    assert sids(room) == {"p0": "sid-2", "p1": "sid-3"} and room.matching["by"] == "fallback"


def test_a_compatible_pair_is_matched_by_latency_even_beside_a_fallback_seat():
    mm = Matchmaker()
    assert mm.join("exp", timed(0, 90.0, 0.0), PLAYERS, HORIZON, rule=RULE, now=0.0) is None
    assert mm.join("exp", timed(1, 30.0, 40.0), PLAYERS, HORIZON, rule=RULE, now=40.0) is not None
    # sid-0 (fallback since 30 s) got sid-1 at once; a later low pair still goes by latency
    assert mm.join("exp", timed(2, 30.0, 41.0), PLAYERS, HORIZON, rule=RULE, now=41.0) is None
    room = mm.join("exp", timed(3, 30.0, 42.0), PLAYERS, HORIZON, rule=RULE, now=42.0)
    assert sids(room) == {"p0": "sid-2", "p1": "sid-3"} and room.matching["by"] == "latency"


def test_an_unknown_rtt_is_matched_only_by_the_fallback():
    mm = Matchmaker()
    assert mm.join("exp", timed(0, None, 0.0), PLAYERS, HORIZON, rule=RULE, now=0.0) is None
    assert mm.join("exp", timed(1, 10.0, 1.0), PLAYERS, HORIZON, rule=RULE, now=1.0) is None
    assert mm.join("exp", timed(2, 10.0, 2.0), PLAYERS, HORIZON, rule=RULE, now=2.0) is not None  # 1+2
    assert mm.join("exp", timed(3, None, 3.0), PLAYERS, HORIZON, rule=RULE, now=3.0) is None
    assert mm.match("exp", PLAYERS, HORIZON, rule=RULE, now=29.0) is None  # two unknowns: no sum
    room = mm.match("exp", PLAYERS, HORIZON, rule=RULE, now=30.0)
    assert sids(room) == {"p0": "sid-0", "p1": "sid-3"}
    assert room.matching["by"] == "fallback" and room.matching["rtt_ms"] == {"p0": None, "p1": None}
    # without a fallback time, an unknown RTT is never matched
    strict = LatencyRule(max_rtt_ms=100)
    mm2 = Matchmaker()
    assert mm2.join("exp", timed(0, None, 0.0), PLAYERS, HORIZON, rule=strict, now=0.0) is None
    assert mm2.join("exp", timed(1, 10.0, 0.0), PLAYERS, HORIZON, rule=strict, now=1e6) is None
    assert mm2.match("exp", PLAYERS, HORIZON, rule=strict, now=1e9) is None


def test_latency_matching_leaves_groups_ai_seats_and_the_address_count_as_they_were():
    mm = Matchmaker()
    group = {"part-0": "p1", "part-1": "p0"}  # returning partners: the rule does not apply to them
    assert mm.join("exp", timed(0, 900.0, 0.0), PLAYERS, HORIZON, group=group, rule=RULE, now=0.0) is None
    room = mm.join("exp", timed(1, 900.0, 0.0), PLAYERS, HORIZON, group=group, rule=RULE, now=0.0)
    assert sids(room) == {"p0": "sid-1", "p1": "sid-0"} and room.matching == {}
    # an AI seat is no one's RTT: two people and a bot, hosted by the first person seated
    players = ["p0", "p1", "bot"]
    assert mm.join("exp/ai", timed(2, 10.0, 0.0), players, HORIZON, ai=["bot"], rule=RULE, now=0.0) is None
    room = mm.join("exp/ai", timed(3, 10.0, 0.0), players, HORIZON, ai=["bot"], rule=RULE, now=0.0)
    assert room.players == players and sids(room) == {"p0": "sid-2", "p1": "sid-3"}
    assert room.hosts == {"bot": "p0"} and set(room.matching["rtt_ms"]) == {"p0", "p1"}
    # waiting seats count against their address until matched
    for n in (4, 5):
        s = timed(n, 500.0, 0.0)
        s.ip = "10.0.0.9"
        mm.join("exp/ip", s, PLAYERS, HORIZON, rule=RULE, now=0.0)
    assert mm.seats_from("10.0.0.9") == 2
    assert mm.match("exp/ip", PLAYERS, HORIZON, rule=RULE, now=30.0) is not None
    assert mm.seats_from("10.0.0.9") == 2 and mm.waiting("exp/ip") == []


# -- rooms spread over processes ------------------------------------------------------------------

def _room_of(*sids: str, stand_in: str | None = None) -> Room:
    seats = {f"p{i}": Seat(sid, f"pid-{sid}", f"ep-{sid}", {"delay_ms": 0}, joined=float(i),
                           stand_in=sid == stand_in) for i, sid in enumerate(sids)}
    return Room(id="r", experiment="e//g", seed=7, players=list(seats), seats=seats, horizon=90)


def test_a_room_goes_to_the_process_holding_most_of_its_people():
    homes = {"a": "P1", "b": "P2", "c": "P2"}
    assert pick_owner(_room_of("a", "b", "c"), homes) == "P2"


def test_a_tie_goes_to_the_first_arrivals_process_and_stand_ins_do_not_count():
    assert pick_owner(_room_of("a", "b"), {"a": "P1", "b": "P2"}) == "P1"
    assert pick_owner(_room_of("b", "a"), {"a": "P1", "b": "P2"}) == "P2"
    # the stand-in's placeholder socket is on no process: the one person decides
    assert pick_owner(_room_of("s", "a", stand_in="s"), {"s": "P9", "a": "P1"}) == "P1"


def test_a_room_handed_to_another_process_arrives_whole():
    room = _room_of("a", "b")
    room.hosts = {"p2": "p0"}
    room.matching = {"by": "latency"}
    again = room_from_wire(room_to_wire(room))
    assert (again.id, again.experiment, again.seed, again.players, again.horizon, again.created) == (
        room.id, room.experiment, room.seed, room.players, room.horizon, room.created)
    assert again.hosts == room.hosts and again.matching == room.matching
    for player, seat in room.seats.items():
        other = again.seats[player]
        assert (other.sid, other.participant_id, other.episode_id, other.net, other.token, other.ip) == (
            seat.sid, seat.participant_id, seat.episode_id, seat.net, seat.token, seat.ip)
    assert again.inputs == {"p0": {}, "p1": {}}
