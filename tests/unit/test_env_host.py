"""worker/env_host.py with the real catch env and tiny inline envs."""

import json
from pathlib import Path

import pytest

from protocol import messages as m
from worker.env_host import BatchOpError, EnvContractError, EnvHost, SnapshotMissing

ROOT = Path(__file__).resolve().parents[2]
CATCH_SOURCE = (ROOT / "experiments" / "catch" / "env.py").read_text()

COUNTER_ENV = """
class Counter:
    def __init__(self, config):
        self.n = config.get("start", 0)
    def reset(self, seed=None):
        self.n = 0
        return self.n, {}
    def step(self, actions):
        self.n += actions["p0"]
        return self.n, {"p0": 1.0}, self.n >= 100, False, {"n": self.n}
    def render(self):
        return [{"type": "text", "text": str(self.n)}]

def create_env(config):
    return Counter(config)
"""


def catch_host(seed=7, **kwargs):
    host = EnvHost(**kwargs)
    host.set_globals({"env_config": {"lives": 3}})
    host.load(CATCH_SOURCE, "experiments/catch/env.py")
    host.reset(seed=seed)
    return host


def actions(i):
    return {"p0": ("left", "right", "noop")[(i * 7) % 3]}


def json_safe(value):
    return json.loads(json.dumps(value, allow_nan=False)) == value


# -- loading ----------------------------------------------------------------

def test_load_without_create_env_raises_contract_error():
    host = EnvHost()
    with pytest.raises(EnvContractError, match="create_env"):
        host.load("x = 1\n")
    assert host.env is None


def test_create_env_that_is_not_callable_raises_contract_error():
    with pytest.raises(EnvContractError):
        EnvHost().load("create_env = 3\n")


@pytest.mark.parametrize("missing", ["step", "reset", "render"])
def test_env_missing_a_method_raises_contract_error(missing):
    methods = "".join(f"    def {name}(self, *a, **k):\n        return None\n"
                      for name in ("reset", "step", "render") if name != missing)
    code = "class E:\n" + methods + "\ndef create_env(config):\n    return E()\n"
    with pytest.raises(EnvContractError, match=missing):
        EnvHost().load(code)


def test_syntax_error_propagates_with_filename():
    with pytest.raises(SyntaxError) as info:
        EnvHost().load("def create_env(config)\n    return 1\n", "broken_env.py")
    assert info.value.filename == "broken_env.py"
    assert info.value.lineno == 1


def test_step_before_load_raises_contract_error():
    with pytest.raises(EnvContractError, match="RUN_INIT_CODE"):
        EnvHost().step({"p0": 1})


def test_globals_are_visible_to_env_code_and_config():
    host = EnvHost()
    host.set_globals({"BONUS": 5, "env_config": {"start": 3}})
    host.load(COUNTER_ENV.replace('config.get("start", 0)', 'config["start"] + BONUS'))
    assert host.env.n == 8


# -- reset / step -----------------------------------------------------------

def test_reset_and_step_results_are_documented_and_json_safe():
    host = EnvHost()
    host.load(CATCH_SOURCE)
    reset = host.reset(seed=1)
    assert set(reset) == {"frame", "obs", "info", "render"}
    assert reset["frame"] == 0 and json_safe(reset)
    step = host.step({"p0": "left"})
    assert set(step) == {"frame", "rewards", "terminated", "truncated", "done", "info", "render"}
    assert step["frame"] == 1 and step["rewards"] == {"p0": 0} and step["done"] is False
    assert json_safe(step)
    quiet = host.step({"p0": "right"}, render=False, include_obs=True)
    assert "render" not in quiet and quiet["obs"] == host.env._obs()
    assert quiet["frame"] == 2


def test_done_reflects_terminated_dict_and_truncated():
    code = COUNTER_ENV.replace('self.n >= 100, False', '{"p0": self.n >= 3}, {"p0": False}')
    host = EnvHost()
    host.load(code)
    host.reset()
    assert host.step({"p0": 1})["done"] is False
    assert host.step({"p0": 2})["done"] is True


# -- batch ------------------------------------------------------------------

def run(host, *ops):
    for op in ops:
        m.validate({"id": 1, "type": m.BATCH, "ops": [op]})  # every op we send is protocol-valid
    return host.run_batch(list(ops))


def test_replay_from_snapshot_with_same_actions_gives_same_hash():
    host = catch_host()
    steps = [{"op": "step", "actions": actions(i)} for i in range(40)]
    first = run(host, {"op": "snapshot"}, *steps, {"op": "hash"})
    assert first[0] == {"frame": 0}
    assert first[-1]["frame"] == 40
    replay = run(host, {"op": "restore", "frame": 0}, *steps, {"op": "hash"})
    assert replay[0] == {"frame": 0}
    assert replay[-1] == first[-1]
    assert [r["frame"] for r in replay[1:-1]] == list(range(1, 41))


def test_replay_with_different_actions_gives_different_state():
    host = catch_host()
    run(host, *[{"op": "step", "actions": actions(i)} for i in range(5)], {"op": "snapshot"})
    original = run(host, *[{"op": "step", "actions": {"p0": "left"}}] * 10, {"op": "hash"})[-1]
    other = run(host, {"op": "restore", "frame": 5},
                *[{"op": "step", "actions": {"p0": "right"}}] * 10, {"op": "hash"})[-1]
    assert other["frame"] == original["frame"] == 15
    assert other["hash"] != original["hash"]


def test_restore_really_rewinds_env_state():
    host = catch_host()
    run(host, {"op": "snapshot"})
    before = host.hash()["hash"]
    run(host, {"op": "step", "actions": {"p0": "left"}})
    assert host.hash()["hash"] != before
    run(host, {"op": "restore", "frame": 0})
    assert host.hash() == {"frame": 0, "hash": before}


def test_batch_render_op_and_step_render_flag():
    host = catch_host()
    results = run(host, {"op": "step", "actions": {"p0": "noop"}},
                  {"op": "step", "actions": {"p0": "noop"}, "render": True}, {"op": "render"})
    assert "render" not in results[0]
    assert results[1]["render"] == results[2]["render"]
    assert results[2]["frame"] == 2


def test_restore_unknown_frame_raises_batch_op_error_with_index():
    host = catch_host()
    with pytest.raises(BatchOpError) as info:
        run(host, {"op": "snapshot"}, {"op": "step", "actions": {"p0": "left"}},
            {"op": "restore", "frame": 99})
    assert info.value.index == 2
    assert isinstance(info.value.cause, SnapshotMissing)
    assert isinstance(info.value.__cause__, SnapshotMissing)
    assert "99" in str(info.value) and "restore" in str(info.value)


def test_step_error_inside_batch_names_its_index():
    host = catch_host()
    with pytest.raises(BatchOpError) as info:
        host.run_batch([{"op": "hash"}, {"op": "step"}])  # step without actions
    assert info.value.index == 1
    assert isinstance(info.value.cause, KeyError)


def test_ring_buffer_keeps_at_most_ring_size_snapshots():
    host = catch_host(ring_size=3)
    for i in range(6):
        run(host, {"op": "snapshot"}, {"op": "step", "actions": actions(i)})
    assert sorted(host.snapshots) == [3, 4, 5]
    with pytest.raises(BatchOpError) as info:
        run(host, {"op": "restore", "frame": 2})
    assert isinstance(info.value.cause, SnapshotMissing)
    assert run(host, {"op": "restore", "frame": 3}) == [{"frame": 3}]


def test_reset_clears_snapshots():
    host = catch_host()
    run(host, {"op": "snapshot"})
    host.reset(seed=1)
    with pytest.raises(BatchOpError):
        run(host, {"op": "restore", "frame": 0})


STATEFUL_ENV = COUNTER_ENV.replace("    def render(self):", """    def get_state(self):
        CALLS.append("get")
        return {"n": self.n}
    def set_state(self, state):
        CALLS.append("set")
        self.n = state["n"]
    def render(self):""")


def test_env_get_state_and_set_state_are_used():
    calls = []
    host = EnvHost()
    host.set_globals({"CALLS": calls})
    host.load(STATEFUL_ENV)
    host.reset()
    run(host, {"op": "step", "actions": {"p0": 2}}, {"op": "snapshot"})
    assert calls == ["get"] and host.snapshots == {1: {"n": 2}}
    run(host, {"op": "step", "actions": {"p0": 5}})
    assert host.env.n == 7
    run(host, {"op": "restore", "frame": 1})
    assert calls == ["get", "set"] and host.env.n == 2 and host.frame == 1
    run(host, {"op": "hash"})
    assert calls[-1] == "get"
    # the stored snapshot is not aliased by the env after restore
    host.env.n = 50
    assert host.snapshots[1] == {"n": 2}


def test_two_hosts_with_same_seed_and_actions_agree_after_200_steps():
    hashes = []
    for _ in range(2):
        host = catch_host(seed=1234)
        for i in range(200):
            host.step(actions(i), render=False)
        hashes.append(host.hash())
    assert hashes[0] == hashes[1]
    assert hashes[0]["frame"] == 200
    third = catch_host(seed=1235)
    for i in range(200):
        third.step(actions(i), render=False)
    assert third.hash()["hash"] != hashes[0]["hash"]


def test_copy_state_is_independent_of_the_original():
    import random

    from worker.env_host import copy_state

    rng = random.Random(7)
    state = {"grid": [[1, 2], [3, 4]], "pos": (1, 2), "rng": rng, "items": [{"a": [1]}]}
    clone = copy_state(state)
    state["grid"][0][0] = 99
    state["items"][0]["a"].append(2)
    expected = [rng.random() for _ in range(3)]
    assert clone["grid"] == [[1, 2], [3, 4]]
    assert clone["items"] == [{"a": [1]}]
    assert clone["rng"] is not rng
    assert [clone["rng"].random() for _ in range(3)] == expected  # same stream, separate object
