"""ONNX seats as the browser runs them: inference awaited in the worker between frames
(worker/dispatcher.py, worker/policies.py Seat.decide_pending). The runner here is the real
onnxruntime behind an awaitable that takes as long as the test says, standing in for
onnxruntime-web's Promise (the inference itself is onnxruntime's, as in the startup check).
A frame never waits for a decision: the seat holds its last action, and the step reports
the action it played and the frame that chose it, so the record stays exact."""

import asyncio
import json

import pytest

from protocol import messages as m
from tests.policy_models import mlp_model
from tests.unit.test_dispatcher import Worker
from tests.unit.test_policies import COUNTER_ENV
from worker.env_host import forget_search_path
from worker.onnx_cpython import CpuRunner

FEATURES = ("def encode(obs, info, seat):\n    t = obs[seat]\n"
            "    return [((t * (i + 3)) % 7) / 3.0 for i in range(8)]\n")
BROKEN = "def encode(obs, info, seat):\n    if obs[seat] == 3:\n        raise ValueError('no pot')\n" \
         "    return [0.0] * 8\n"


class AwaitedRunner(CpuRunner):
    """onnxruntime, answered after ``delay`` seconds of the event loop (a Promise's wait)."""

    is_async = True
    delay = 0.0

    async def open(self):
        await asyncio.sleep(0)

    async def run_async(self, feeds, wanted):
        await asyncio.sleep(self.delay)
        return self.run(feeds, wanted)


@pytest.fixture
def worker(tmp_path, monkeypatch):
    import worker.dispatcher as d

    monkeypatch.setattr(d, "FILES_ROOT", str(tmp_path / "fs"))
    exp = tmp_path / "fs" / "exp"
    exp.mkdir(parents=True)
    (exp / "features.py").write_text(FEATURES)
    (exp / "broken.py").write_text(BROKEN)
    mlp_model(exp / "bc.onnx", n_in=8, n_out=4, hidden=16, seed=2)
    w = Worker()
    w.runners = []

    def runner(path, options):
        made = AwaitedRunner(path)
        w.runners.append(made)
        return made

    w.dispatcher.onnx_runner = runner
    yield w
    forget_search_path([str(exp)])


def spec(obs_file="features.py"):
    return {"p1": {"name": "bc", "kind": "onnx", "file": "bc.onnx", "obs_file": obs_file,
                   "obs_function": "encode", "actions": ["a", "b", "c", "d"], "choose": "argmax", "every": 1,
                   "input": "obs", "input_shape": [1, 8], "output": "logits", "state": []}}


def load(worker, partners):
    worker.request(1, m.SET_GLOBALS, globals={"env_config": {}, "players": ["p0", "p1"]})
    asyncio.run(worker.request(2, m.RUN_INIT_CODE, code=COUNTER_ENV, filename="env.py", files=[],
                               root="exp", partners=partners))
    reply = worker.last()
    assert reply["type"] == m.INIT_COMPLETE, reply
    assert reply["partners_ms"] >= 0  # session created and warmed up while the page loads


def play(worker, frames, await_decisions=True, first_id=10):
    """The page's loop: RESET (awaited: the first decision must exist), then STEPs."""

    async def run():
        await worker.request(first_id, m.RESET, seed=1)
        results = []
        for i in range(frames):
            decision = worker.request(first_id + 1 + i, m.STEP, actions={"p0": "x"}, render=False)
            results.append(worker.last())
            if decision is not None and await_decisions:
                await decision
            elif decision is not None:
                pending.append(asyncio.ensure_future(decision))
        await asyncio.gather(*pending)
        return results

    pending: list = []
    return asyncio.run(run())


def test_decisions_that_keep_up_play_exactly_what_the_synchronous_policy_plays(worker):
    load(worker, spec())
    played = play(worker, 10)
    assert [r["type"] for r in played] == [m.STEP_RESULT] * 10
    from worker.env_host import EnvHost
    from worker.policies import build_seats

    host = EnvHost()
    host.set_globals({"players": ["p0", "p1"]})
    host.load(COUNTER_ENV)
    host.set_partners(build_seats(spec(), worker_dir()))
    host.reset(seed=1, render=False)
    again = [host.step({"p0": "x"}, render=False) for _ in range(10)]
    assert [r["partner_actions"] for r in played] == [r["partner_actions"] for r in again]
    assert [r["partners"]["p1"]["from"] for r in played] == list(range(10))
    json.dumps(played)


def worker_dir():
    import worker.dispatcher as d

    return d.FILES_ROOT + "/exp"


def test_a_slow_model_never_holds_a_frame_up_the_seat_holds_its_action(worker):
    load(worker, spec())
    worker.runners[0].delay = 0.01
    played = play(worker, 8, await_decisions=False)  # frames come faster than decisions
    assert [r["type"] for r in played] == [m.STEP_RESULT] * 8
    # only the reset decision had finished: every frame played it, and says so
    assert {r["partners"]["p1"]["from"] for r in played} == {0}
    assert all(r["info"]["did"]["p1"] == r["partner_actions"]["p1"] for r in played)


def test_a_decision_still_running_at_reset_is_dropped(worker):
    load(worker, spec())
    worker.runners[0].delay = 0.005

    async def run():
        await worker.request(10, m.RESET, seed=1)
        late = asyncio.ensure_future(worker.request(11, m.STEP, actions={"p0": "x"}, render=False))
        await asyncio.sleep(0)  # the decision from frame 1 is under way...
        await worker.request(12, m.RESET, seed=1)  # ...when the episode restarts
        await worker.request(13, m.STEP, actions={"p0": "x"}, render=False)
        await late
        return [r for r in worker.replies() if r["id"] == 13][0]

    first = asyncio.run(run())
    assert first["type"] == m.STEP_RESULT and first["partners"]["p1"]["from"] == 0


def test_a_failed_decision_is_the_next_step_s_error_naming_policy_seat_and_frame(worker):
    load(worker, spec("broken.py"))
    played = play(worker, 6)
    errors = [r for r in played if r["type"] == m.ERROR]
    assert errors and played.index(errors[0]) == 3  # frame 3's obs failed; frame 4's step reports it
    assert "policy 'bc' (seat p1) raised at frame 3: ValueError: no pot" in errors[0]["message"]


def test_a_decision_overtaken_before_any_frame_played_it_is_reported_as_unplayed(worker):
    load(worker, spec())
    worker.runners[0].delay = 0.01

    async def run():
        await worker.request(10, m.RESET, seed=1)
        first = asyncio.ensure_future(worker.request(11, m.STEP, actions={"p0": "x"}, render=False))
        await asyncio.sleep(0)  # the decision from frame 1 is running...
        await worker.request(12, m.STEP, actions={"p0": "x"}, render=False)  # ...frame 2's waits
        await first
        await asyncio.sleep(0.05)  # both finish before the next frame: frame 1's is never played
        await worker.request(13, m.STEP, actions={"p0": "x"}, render=False)
        return [r for r in worker.replies() if r["id"] == 13][0]

    third = asyncio.run(run())
    assert third["partners"]["p1"]["from"] == 2 and third["partners"]["p1"]["unplayed"] == [1]
