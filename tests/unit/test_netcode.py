"""Rollback engine (pages/netcode.py) driving real EnvHosts in CPython, with inputs
arriving late, duplicated and out of order."""

from __future__ import annotations

import random

import pytest

from pages.netcode import InputConflict, RollbackSession
from tests.unit.test_policies import COUNTER_ENV
from worker.env_host import EnvHost

DUO_ENV = '''
import random

class Duo:
    def reset(self, seed=None):
        self.rng = random.Random(seed)
        self.pos = {"p0": 0, "p1": 10}
        self.coin = self.rng.randint(0, 10)
        self.score = 0
        self.t = 0
        return None, {}

    def step(self, actions):
        self.t += 1
        for p in ("p0", "p1"):
            self.pos[p] = max(0, min(10, self.pos[p] + actions[p]))
        reward = 0
        if self.coin in self.pos.values():
            reward = 1
            self.score += 1
            self.coin = self.rng.randint(0, 10)
        done = self.score >= 1000
        return None, {"p0": reward, "p1": reward}, done, False, {"score": self.score, "t": self.t}

    def render(self):
        return []

def create_env(config):
    return Duo()
'''

PLAYERS = ["p0", "p1"]


def make_host(ring):
    host = EnvHost(ring_size=ring)
    host.load(DUO_ENV)
    host.reset(seed=5)
    return host


def reference_hash(scripts, delay, end_frame):
    host = make_host(4)
    for g in range(end_frame + 1):
        host.step({p: (scripts[p][g - delay] if g >= delay else 0) for p in PLAYERS}, render=False)
    return host.hash()["hash"]


class Peer:
    def __init__(self, player, delay, window, last_frame, script):
        self.player = player
        self.session = RollbackSession(PLAYERS, player, input_delay=delay, max_prediction=window,
                                       default_input=0, last_frame=last_frame, hash_every=10)
        self.host = make_host(window + delay + 4)
        self.host.run_batch(self.session.start_ops())
        self.script = script
        self.records = []
        self.hashes = {}

    def tick(self):
        s = self.session
        sent = []
        if s.can_advance():
            sent = s.local_input(self.script[s.frame])
            ops, _ = s.plan()
        else:
            s.stats["stalls"] += 1
            ops, _ = s.plan(advance=False)
        if ops:
            hashes, _ = s.apply_results(ops, self.host.run_batch(ops))
            self.hashes.update(hashes)
        self.records.extend(s.take_confirmed())
        return sent

    def final_hash(self):
        return self.host.hash(self.session.end_frame + 1)["hash"]


def run_match(seed, delay=2, window=8, max_latency=6, last_frame=299, dup=0.2):
    rng = random.Random(seed)
    scripts = {p: [rng.choice([-1, 0, 1]) for _ in range(last_frame + 1)] for p in PLAYERS}
    peers = {p: Peer(p, delay, window, last_frame, scripts[p]) for p in PLAYERS}
    in_flight = []  # (deliver_at_tick, to, from, frame, value)
    tick = 0
    while not all(peer.session.finished() for peer in peers.values()):
        tick += 1
        assert tick < 10_000, "match did not finish"
        arrived = [m for m in in_flight if m[0] <= tick]
        in_flight = [m for m in in_flight if m[0] > tick]
        rng.shuffle(arrived)  # any order
        for _, to, sender, frame, value in arrived:
            peers[to].session.remote_input(sender, frame, value)
        for p, peer in peers.items():
            if peer.session.finished():
                continue
            for frame, value in peer.tick():
                other = "p1" if p == "p0" else "p0"
                copies = 2 if rng.random() < dup else 1
                for _ in range(copies):
                    in_flight.append((tick + rng.randint(0, max_latency), other, p, frame, value))
    return scripts, peers


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_late_out_of_order_inputs_end_in_the_no_latency_state(seed):
    scripts, peers = run_match(seed)
    a, b = peers["p0"], peers["p1"]
    assert a.session.end_frame == b.session.end_frame == 299
    expected = reference_hash(scripts, 2, 299)
    assert a.final_hash() == b.final_hash() == expected
    assert a.session.stats["rollbacks"] > 0 and b.session.stats["rollbacks"] > 0
    # each confirmed frame was handed out exactly once, in order, with the real inputs
    for peer in (a, b):
        frames = [r[0] for r in peer.records]
        assert frames == list(range(300))
        for g, inputs, _ in peer.records:
            assert inputs == {p: (scripts[p][g - 2] if g >= 2 else 0) for p in PLAYERS}
    # checkpoint hashes agree on both sides
    assert a.hashes and a.hashes == {k: v for k, v in b.hashes.items() if k in a.hashes}


def test_no_latency_means_no_rollbacks():
    _, peers = run_match(7, max_latency=0, dup=0)
    for peer in peers.values():
        assert peer.session.stats["rollbacks"] == 0
        assert peer.session.stats["prediction_misses"] == 0


def test_prediction_window_bounds_how_far_a_peer_runs_ahead():
    s = RollbackSession(PLAYERS, "p0", input_delay=2, max_prediction=8)
    host = make_host(14)
    host.run_batch(s.start_ops())
    advanced = 0
    while s.can_advance():
        s.local_input(1)
        ops, _ = s.plan()
        s.apply_results(ops, host.run_batch(ops))
        advanced += 1
    assert advanced == 2 + 8  # the D default frames are confirmed, then W predicted
    assert s.frame - s.confirmed_upto == 8
    s.remote_input("p1", 2, 0)
    assert s.can_advance()


def test_rollback_batch_restores_the_first_wrong_frame_only():
    s = RollbackSession(PLAYERS, "p0", input_delay=2, max_prediction=8)
    host = make_host(14)
    host.run_batch(s.start_ops())
    for _ in range(6):
        s.local_input(0)
        ops, _ = s.plan()
        s.apply_results(ops, host.run_batch(ops))
    assert s.frame == 6
    s.remote_input("p1", 2, 0)   # matches the prediction (p1's default 0): no rollback
    assert s.rollback_from is None
    s.remote_input("p1", 4, 1)   # differs from the prediction
    s.remote_input("p1", 3, -1)  # earlier and also different: rollback starts here
    assert s.rollback_from == 3
    ops, depth = s.plan()
    assert depth == 3 and ops[0] == {"op": "restore", "frame": 3}
    assert [op["frame"] for op in ops if op["op"] == "step"] == [3, 4, 5, 6]
    assert sum(1 for op in ops if op.get("render")) == 1 and ops[-2].get("render")


def test_conflicting_inputs_for_one_frame_are_refused():
    s = RollbackSession(PLAYERS, "p0")
    s.remote_input("p1", 5, 1)
    assert s.remote_input("p1", 5, 1) is False  # duplicate: ignored
    with pytest.raises(InputConflict):
        s.remote_input("p1", 5, -1)
    with pytest.raises(InputConflict):
        s.remote_input("p0", 6, 1)  # nobody may speak for the local player


def test_history_is_pruned_as_frames_are_confirmed():
    _, peers = run_match(4, last_frame=599)
    for peer in peers.values():
        s = peer.session
        assert len(s.used) <= 2 * (s.window + s.delay) and len(s.results) <= 2 * (s.window + s.delay)
        assert all(len(v) <= 2 * (s.window + s.delay) + 2 for v in s.confirmed.values())
        assert len(peer.host.snapshots) <= s.window + s.delay + 4


def test_input_arriving_during_a_batch_keeps_stale_frames_unconfirmed():
    # In the page, remote inputs arrive while a BATCH is in flight: frames the pending
    # rollback will redo must not be handed out or hashed with their stale results.
    s = RollbackSession(PLAYERS, "p0", input_delay=2, max_prediction=8, hash_every=2)
    host = make_host(14)
    host.run_batch(s.start_ops())
    for _ in range(5):
        s.local_input(0)
        ops, _ = s.plan()
        s.apply_results(ops, host.run_batch(ops))
    s.local_input(0)
    ops, _ = s.plan()                       # BATCH "sent"
    for g in range(2, 6):                   # ... meanwhile p1's real inputs arrive
        s.remote_input("p1", g, 1 if g == 3 else 0)
    s.apply_results(ops, host.run_batch(ops))
    assert s.rollback_from == 3
    assert [r[0] for r in s.take_confirmed()] == [0, 1, 2]
    ops, _ = s.plan(advance=False)
    assert {"op": "hash", "frame": 4} not in ops[:1] and ops[0] == {"op": "restore", "frame": 3}
    s.apply_results(ops, host.run_batch(ops))
    assert [r[0] for r in s.take_confirmed()] == [3, 4, 5]


def test_a_hosted_ai_seat_is_local_and_a_seat_taken_over_fills_the_frames_since_its_last_input():
    s = RollbackSession(["p0", "p1", "p2"], "p0", input_delay=2, max_prediction=8, hosted=["p2"])
    assert s.remotes == ["p1"]
    assert s.local_input("up") == [(2, "up")] and s.local_input("left", seat="p2") == [(2, "left")]
    with pytest.raises(InputConflict):
        s.remote_input("p2", 3, "right")  # its inputs are made here, never received
    s.remote_input("p1", 2, "down")
    for _ in range(3):
        s.plan()
    # p1 leaves; this page takes p1's seat over from frame 3: frames 3 and 4 (the present
    # plus the input delay) get p1's latest input, and nobody is left to wait for
    assert s.host("p1", 3) == [(3, "down"), (4, "down")]
    assert s.remotes == [] and s.hosted == ["p2", "p1"] and not s.should_wait(0)
    assert s.host("p1", 3) == []


def test_a_reloaded_page_rebuilds_from_the_record_then_fills_its_own_missing_frames():
    s = RollbackSession(["p0", "p1"], "p0", input_delay=2, max_prediction=8)
    s.load_recorded("p0", [(2, "up"), (3, "up"), (4, "left")])
    for f, v in [(2, "a"), (3, "b"), (4, "c"), (5, "d"), (6, "e")]:
        s.remote_input("p1", f, v)
    ops = s.catch_up(chunk=100)
    steps = [op for op in ops if op["op"] == "step"]
    assert [op["frame"] for op in steps] == [0, 1, 2, 3, 4] and steps[-1].get("render")
    assert steps[4]["actions"] == {"p0": "left", "p1": "c"}
    assert s.catch_up(chunk=100) == [] and s.frame == 5
    assert not [op for op in ops if op["op"] == "hash"]  # no checkpoint (every 30) passed
    # p0's record ends at frame 4: frames 5 and 6 (the present plus the delay) get its latest
    assert s.resume_mine() == {"p0": [(5, "left"), (6, "left")]}
    assert s.local_input("down") == [(7, "down")]


def test_a_long_catch_up_hashes_each_checkpoint_right_after_its_snapshot():
    """The worker keeps a few snapshots only: a checkpoint hashed at the end of a 300-frame
    BATCH would be gone (found by the reload benchmark). Replayed in a real EnvHost."""
    s = RollbackSession(["p0", "p1"], "p0", input_delay=2, max_prediction=8, hash_every=30)
    s.load_recorded("p0", [(f, "left") for f in range(2, 120)])
    for f in range(2, 120):
        s.remote_input("p1", f, "right")
    host = EnvHost(ring_size=16)
    host.set_globals({"players": ["p0", "p1"]})
    host.load(COUNTER_ENV)
    host.reset(seed=0, render=False)
    host.snapshot()
    ops = s.catch_up(chunk=300)
    hashes = [r["frame"] for op, r in zip(ops, host.run_batch(ops), strict=True) if op["op"] == "hash"]
    assert hashes == [30, 60, 90, 120] and s.frame == 120
