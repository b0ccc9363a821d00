"""The replay viewer's pure parts: seek planning (pages/viewer/seek.py, run here against a real
EnvHost with the kitchen env: every seek lands on the state stepping straight through
reaches), and the records' shaping (server/replay_viewer/records.py): a room's inputs and
length, where a desync / replay_error room or a failed episode opens."""

from __future__ import annotations

import random

import pytest

from pages.viewer.seek import Timeline, failed_op, keyframe_every
from server.replay_viewer.records import (
    episode_first_bad,
    episode_inputs,
    first_bad,
    room_inputs,
    room_length,
)
from tests.servers import ROOT
from worker.env_host import BatchOpError, EnvHost

KITCHEN = (ROOT / "experiments" / "kitchen" / "env.py").read_text()
ACTIONS = ["noop", "up", "down", "left", "right", "interact"]


def kinds(ops):
    return [op["op"] for op in ops]


def steps_of(ops):
    return [op["frame"] for op in ops if op["op"] == "step"]


def test_a_first_pass_snapshots_every_keyframe_it_passes():
    line = Timeline([{"p0": "noop"}] * 100, every=30)
    line.applied(line.start_ops())
    ops = line.plan(100, limit=75, render=False)
    assert "restore" not in kinds(ops) and steps_of(ops) == list(range(1, 76))
    assert [op["frame"] for op in ops if op["op"] == "snapshot"] == [30, 60]
    assert not any(op.get("render") for op in ops)
    line.applied(ops)
    assert (line.frame, line.held) == (75, {0, 30, 60})
    ops = line.plan(100, hash_end=True)  # the rest: on from where the env is
    assert steps_of(ops) == list(range(76, 101)) and kinds(ops)[-1] == "hash"
    assert [op["frame"] for op in ops if op["op"] == "snapshot"] == [90]
    line.applied(ops)
    assert line.held == {0, 30, 60, 90} and line.ring_size() >= len(line.held)


def test_a_seek_restores_the_nearest_keyframe_and_replays_the_rest_in_one_batch():
    line = Timeline([{"p0": "noop"}] * 200, every=30)
    line.applied(line.start_ops())
    line.applied(line.plan(200))
    ops = line.plan(47)  # backwards: from keyframe 30
    assert ops[0] == {"op": "restore", "frame": 30} and steps_of(ops) == list(range(31, 48))
    assert [op for op in ops if op.get("render")] == [ops[-1]] and "snapshot" not in kinds(ops)
    line.applied(ops)
    ops = line.plan(55)  # forwards, nearer from where the env is than from a keyframe
    assert "restore" not in kinds(ops) and steps_of(ops) == list(range(48, 56))
    line.applied(ops)
    ops = line.plan(65)  # forwards past a keyframe: from that keyframe
    assert ops[0] == {"op": "restore", "frame": 60} and steps_of(ops) == list(range(61, 66))
    line.applied(ops)
    assert kinds(line.plan(90)) == ["restore", "render"]  # onto a keyframe: nothing to step
    assert kinds(line.plan(65)) == ["render"]  # where it is
    assert line.plan(65, hash_end=True)[-1] == {"op": "hash"}
    assert line.clamp(10_000) == 200 and line.clamp(-3) == 0


def test_without_keyframes_every_seek_replays_from_the_start():
    line = Timeline([{"p0": "noop"}] * 1800, every=0)  # the benchmark's baseline
    line.applied(line.start_ops())
    line.applied(line.plan(1800))
    assert line.held == {0} and line.ring_size() == 2
    ops = line.plan(1799)
    assert ops[0] == {"op": "restore", "frame": 0} and len(steps_of(ops)) == 1799


def test_a_failed_batch_keeps_what_ran_before_the_failing_op():
    line = Timeline([{"p0": "noop"}] * 100, every=10)
    line.applied(line.start_ops())
    ops = line.plan(100)
    index = next(i for i, op in enumerate(ops) if op["op"] == "step" and op["frame"] == 25)
    line.failed(ops, index)
    assert line.frame is None and line.held == {0, 10, 20}
    line.stop_at(24)
    assert line.last == 24
    ops = line.plan(100)
    assert ops[0] == {"op": "restore", "frame": 20} and steps_of(ops) == [21, 22, 23, 24]
    assert failed_op("BatchOpError: BATCH op 12 (step) failed: ValueError: no") == 12
    assert failed_op("TimeoutError: nothing") is None


def test_keyframes_are_spaced_so_the_worker_keeps_at_most_a_few_hundred():
    assert keyframe_every(1800) == 30 and keyframe_every(0) == 30
    assert keyframe_every(18_000) == 30 and keyframe_every(18_030) == 60
    for frames in (100_000, 1_000_000):
        every = keyframe_every(frames)
        assert every % 30 == 0 and frames // every <= 600 < frames // (every - 30)


def run(host: EnvHost, ops: list[dict]) -> list[dict]:
    return host.run_batch(ops)


def test_seeks_in_a_real_env_host_land_on_the_state_playing_straight_through_reaches():
    rng = random.Random(7)
    inputs = [{"p0": rng.choice(ACTIONS), "p1": rng.choice(ACTIONS)} for _ in range(400)]
    straight = EnvHost(ring_size=2)
    straight.set_globals({"env_config": {}, "players": ["p0", "p1"]})
    straight.load(KITCHEN, "kitchen.py")
    straight.reset(seed=5, render=False)
    expected = {0: straight.hash()["hash"]}
    drawn = {0: straight.render()}
    for n, actions in enumerate(inputs, start=1):
        straight.step(actions, render=False)
        expected[n], drawn[n] = straight.hash()["hash"], straight.render()

    line = Timeline(inputs, every=keyframe_every(len(inputs)))
    host = EnvHost(ring_size=line.ring_size())
    host.set_globals({"env_config": {}, "players": ["p0", "p1"]})
    host.load(KITCHEN, "kitchen.py")
    host.reset(seed=5, render=False)
    ops = line.start_ops()
    run(host, ops)
    line.applied(ops)
    while line.frame < line.last:  # the first pass, in chunks
        ops = line.plan(line.last, limit=150, render=False)
        run(host, ops)
        line.applied(ops)
    assert sorted(host.snapshots) == sorted(line.held) == list(range(0, 401, 30))
    for target in [399, 17, 0, 240, 241, 239, 400, 1, 123, 122, 124, 300, 5]:
        ops = line.plan(target, hash_end=True)
        results = run(host, ops)
        line.applied(ops)
        assert results[-1]["hash"] == expected[target], target
        assert next(r["render"] for r in reversed(results) if "render" in r) == drawn[target], target


def test_an_env_that_raises_names_the_step_a_batch_failed_on():
    boom = ("def step(self, actions):\n        if getattr(self, 'boom', 0) >= 9:\n"
            "            raise ValueError('boom')\n        self.boom = getattr(self, 'boom', 0) + 1")
    source = KITCHEN.replace("def step(self, actions):", boom, 1)
    host = EnvHost(ring_size=8)
    host.set_globals({"env_config": {}, "players": ["p0", "p1"]})
    host.load(source, "kitchen.py")
    host.reset(seed=1, render=False)
    line = Timeline([{"p0": "noop", "p1": "noop"}] * 30, every=5)
    ops = line.start_ops()
    run(host, ops)
    line.applied(ops)
    ops = line.plan(30)
    with pytest.raises(BatchOpError) as raised:
        run(host, ops)
    index = failed_op("BatchOpError: " + str(raised.value))
    assert ops[index] == {"op": "step", "actions": {"p0": "noop", "p1": "noop"}, "frame": 10}


# -- records ---------------------------------------------------------------------------------------

def test_a_rooms_inputs_fill_unrecorded_frames_with_the_default_as_the_replay_does():
    recorded = {"p0": {"2": "up", "3": "left"}, "p1": {"2": "down", "3": "down", "4": "down"}}
    assert room_length(recorded, ["p0", "p1"], end_frame=5) == 6
    assert room_length(recorded, ["p0", "p1"], end_frame=None) == 4  # as far as every seat's inputs go
    assert room_length({}, ["p0", "p1"], end_frame=None) == 0
    assert room_inputs(recorded, ["p0", "p1"], 5, "noop") == [
        {"p0": "noop", "p1": "noop"}, {"p0": "noop", "p1": "noop"}, {"p0": "up", "p1": "down"},
        {"p0": "left", "p1": "down"}, {"p0": "noop", "p1": "down"}]


def test_a_desync_room_opens_at_its_first_disagreeing_checkpoint_else_at_the_end():
    desyncs = [{"frame": 90, "hashes": {"p0": "a", "p1": "b"}},
               {"frame": 60, "hashes": {"p0": "c", "p1": "d"}}]
    bad = first_bad("desync", desyncs, {"p0": "x", "p1": "y"}, "x", None, 241)
    assert bad["frame"] == 60 and bad["kind"] == "desync" and "p0 c, p1 d" in bad["reason"]
    bad = first_bad("desync", [], {"p0": "x", "p1": "y"}, "x", None, 241)
    assert bad["frame"] == 241 and "final" in bad["reason"]
    assert first_bad("completed", [], {"p0": "x", "p1": "x"}, "x", None, 241) is None


@pytest.mark.parametrize("error, frame", [
    ("ModuleNotFoundError: No module named 'browseronly' (frame 4)", 4),
    ("RuntimeError: boom (frame 9000)", 61),  # never past the record
    ("ImportError: nope (loading the env)", 0),
    ("ValueError: bad seed (reset)", 0),
    ("TypeError: unhashable (hashing the final state)", 61),
    ("replay worker died: killed", 0),
])
def test_a_replay_error_room_opens_where_the_servers_replay_raised(error, frame):
    bad = first_bad("replay_error", [], {"p0": "x", "p1": "x"}, None, error, 61)
    assert bad["frame"] == frame and bad["kind"] == "replay_error" and error in bad["reason"]


def test_an_episode_is_played_up_to_a_gap_and_a_failed_one_opens_where_it_failed():
    assert episode_inputs([(1, "a"), (2, "b"), (3, "c")]) == (["a", "b", "c"], None)
    assert episode_inputs([(1, "a"), (2, "b"), (4, "d")]) == (["a", "b"], 3)
    assert episode_first_bad("completed", [], 3, None) is None
    gap = episode_first_bad("completed", [], 2, 3)
    assert gap["frame"] == 2 and gap["kind"] == "gap"
    events = [{"detail": {"message": "ZeroDivisionError: x", "frame": 41}}]
    error = episode_first_bad("error", events, 41, None)
    assert error["frame"] == 41 and "ZeroDivisionError" in error["reason"]
    assert episode_first_bad("error", [], 12, None)["frame"] == 12
