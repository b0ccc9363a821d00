"""worker/adapters.py with real Gymnasium and PettingZoo envs, loaded through EnvHost as
an experiment's env code would be (CPython; the browser runs the same adapter)."""

import pytest

from worker.adapters import GymnasiumAdapter, ParallelEnvAdapter, adapt
from worker.env_host import EnvContractError, EnvHost

# A small Gymnasium env whose steps draw from self.np_random: a rollback replays the same
# noise only if the snapshot restored the generator.
NOISY_WALK = '''
import gymnasium
import numpy as np

class NoisyWalk(gymnasium.Env):
    metadata = {"render_modes": ["rgb_array"], "render_fps": 30}

    def __init__(self, render_mode=None):
        self.render_mode = render_mode
        self.action_space = gymnasium.spaces.Discrete(3)
        self.observation_space = gymnasium.spaces.Box(-100.0, 100.0, shape=(1,))
        self.x = 0.0
        self.received = []

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.x = 0.0
        return np.array([self.x], dtype=np.float32), {}

    def step(self, action):
        self.received.append(action)
        self.x += (int(action) - 1) + float(self.np_random.normal(0, 0.5))
        obs = np.array([self.x], dtype=np.float32)
        return obs, -abs(self.x), abs(self.x) > 50, False, {"x": self.x}

    def render(self):
        frame = np.zeros((2, 3, 3), dtype=np.uint8)
        frame[:, :, 0] = 255  # red
        return frame

def create_env(config):
    if config.get("make"):
        if "NoisyWalk-v0" not in gymnasium.registry:
            gymnasium.register("NoisyWalk-v0", entry_point=NoisyWalk, max_episode_steps=200)
        return gymnasium.make("NoisyWalk-v0", render_mode="rgb_array")
    return NoisyWalk(render_mode="rgb_array")
'''

# A PettingZoo ParallelEnv: two agents with their own names, random payoffs from a seeded
# numpy Generator, one agent done after `limit` steps.
DUEL = '''
import numpy as np
from gymnasium.spaces import Discrete
from pettingzoo import ParallelEnv

class Duel(ParallelEnv):
    metadata = {"name": "duel_v0"}

    def __init__(self, names, limit):
        self.possible_agents = list(names)
        self.agents = []
        self.limit = limit
        self.t = 0
        self.rng = None
        self.last = {}

    def observation_space(self, agent):
        return Discrete(3)

    def action_space(self, agent):
        return Discrete(3)

    def reset(self, seed=None, options=None):
        self.agents = list(self.possible_agents)
        self.t = 0
        self.rng = np.random.default_rng(seed)
        return {a: 0 for a in self.agents}, {a: {} for a in self.agents}

    def step(self, actions):
        self.t += 1
        self.last = dict(actions)
        first, second = self.possible_agents
        noise = float(self.rng.integers(0, 100))
        rewards = {first: actions[first] * 10 + noise, second: actions[second] * 10 - noise}
        terminated = {a: (self.t >= self.limit and a == first) for a in self.agents}
        truncated = {a: False for a in self.agents}
        obs = {a: actions[a] for a in self.agents}
        infos = {a: {"t": self.t} for a in self.agents}
        self.agents = [a for a in self.agents if not terminated[a]]
        return obs, rewards, terminated, truncated, infos

    def render(self):
        return [{"type": "text", "x": 0, "y": 0, "text": str(self.t)}]

def create_env(config):
    return Duel(config.get("names", ["alice", "bob"]), config.get("limit", 100))
'''


def host_for(source, players, **config):
    host = EnvHost(ring_size=20)
    host.set_globals({"env_config": config, "players": players})
    host.load(source)
    return host


def walk_actions(i):
    return {"p0": (0, 2, 1, 2)[i % 4]}


def duel_actions(i):
    return {"p0": i % 3, "p1": (i * 2) % 3}


# -- Gymnasium ------------------------------------------------------------------------

@pytest.mark.parametrize("make", [False, True], ids=["env", "gymnasium.make"])
def test_gymnasium_env_gets_the_action_as_is(make):
    host = host_for(NOISY_WALK, ["p0"], make=make)
    assert isinstance(host.env, GymnasiumAdapter)
    reset = host.reset(seed=1, render=False)
    assert reset["obs"] == [0.0]
    step = host.step({"p0": 2}, render=False, include_obs=True)
    assert host.env.env.unwrapped.received == [2]  # the action, not {"p0": 2}
    assert step["frame"] == 1 and isinstance(step["rewards"], float) and step["terminated"] is False
    assert step["info"]["x"] == pytest.approx(step["obs"][0], abs=1e-5)


def test_gymnasium_cartpole_steps_and_rolls_back():
    host = host_for("import gymnasium\ndef create_env(config):\n    return gymnasium.make('CartPole-v1')\n",
                    ["p0"])
    host.reset(seed=5, render=False)
    host.snapshot()
    first = [host.step({"p0": i % 2}, render=False, include_obs=True) for i in range(10)]
    first_hash = host.hash()["hash"]
    host.restore(0)
    again = [host.step({"p0": i % 2}, render=False, include_obs=True) for i in range(10)]
    assert again == first and host.hash()["hash"] == first_hash
    assert first[0]["obs"] != first[-1]["obs"]  # the pole did move


@pytest.mark.parametrize("make", [False, True], ids=["env", "gymnasium.make"])
def test_gymnasium_rollback_restores_np_random(make):
    host = host_for(NOISY_WALK, ["p0"], make=make)
    host.reset(seed=3, render=False)
    for i in range(4):
        host.step(walk_actions(i), render=False)
    host.snapshot()
    ahead = [host.step(walk_actions(i), render=False, include_obs=True) for i in range(4, 12)]
    ahead_hash = host.hash()["hash"]
    # the same actions again without a rollback give other noise: the test can tell
    onward = [host.step(walk_actions(i), render=False, include_obs=True) for i in range(4, 12)]
    assert [r["obs"] for r in onward] != [r["obs"] for r in ahead]
    host.restore(4)
    replay = [host.step(walk_actions(i), render=False, include_obs=True) for i in range(4, 12)]
    assert replay == ahead and host.hash()["hash"] == ahead_hash


def test_generator_state_is_part_of_the_hash():
    host = host_for(NOISY_WALK, ["p0"])
    host.reset(seed=3, render=False)
    before = host.hash()["hash"]
    host.env.env.np_random.normal()  # only the generator moves
    assert host.hash()["hash"] != before


def test_same_seed_and_actions_hash_the_same_in_two_hosts():
    hashes = []
    for _ in range(2):
        host = host_for(NOISY_WALK, ["p0"], make=True)
        host.reset(seed=9, render=False)
        for i in range(20):
            host.step(walk_actions(i), render=False)
        hashes.append(host.hash()["hash"])
    assert hashes[0] == hashes[1]


def test_gymnasium_env_with_several_players_is_refused():
    with pytest.raises(EnvContractError, match="Gymnasium env.*2 players.*ParallelEnv"):
        host_for(NOISY_WALK, ["p0", "p1"])


def test_gymnasium_rgb_array_render_becomes_an_image():
    host = host_for(NOISY_WALK, ["p0"], make=True)
    out = host.reset(seed=1)
    assert out["render"] == [{"type": "image", "w": 3, "h": 2, "buffer": 0}]
    (pixels,) = host.take_frames()
    assert bytes(pixels) == b"\xff\x00\x00\xff" * 6


# -- PettingZoo -----------------------------------------------------------------------

def test_parallel_env_maps_agents_to_players_in_order():
    host = host_for(DUEL, ["p0", "p1"])
    assert isinstance(host.env, ParallelEnvAdapter)
    reset = host.reset(seed=4, render=True)
    assert reset["obs"] == {"p0": 0, "p1": 0} and reset["info"] == {"p0": {}, "p1": {}}
    step = host.step({"p0": 2, "p1": 1}, include_obs=True)
    assert host.env.env.last == {"alice": 2, "bob": 1}  # p0 plays alice, p1 bob
    rewards = step["rewards"]
    assert set(rewards) == {"p0", "p1"} and rewards["p0"] + rewards["p1"] == 30.0
    assert step["terminated"] == {"p0": False, "p1": False}
    assert step["truncated"] == {"p0": False, "p1": False}
    assert step["obs"] == {"p0": 2, "p1": 1} and step["info"] == {"p0": {"t": 1}, "p1": {"t": 1}}
    assert step["done"] is False and step["render"][0]["text"] == "1"


def test_parallel_env_ends_when_an_agent_terminates():
    host = host_for(DUEL, ["p0", "p1"], limit=2)
    host.reset(seed=1)
    assert host.step(duel_actions(0))["done"] is False
    last = host.step(duel_actions(1))
    assert last["done"] is True and last["terminated"] == {"p0": True, "p1": False}


def test_parallel_env_whose_agents_appear_only_in_reset_is_recognised():
    late = DUEL.replace("        self.agents = []\n", "")
    assert late != DUEL
    host = host_for(late, ["p0", "p1"])
    assert isinstance(host.env, ParallelEnvAdapter)
    host.reset(seed=2)
    assert set(host.step(duel_actions(0))["rewards"]) == {"p0", "p1"}


def test_parallel_env_with_the_players_names_maps_by_name():
    host = host_for(DUEL, ["p0", "p1"], names=["p1", "p0"])
    host.reset(seed=1)
    host.step({"p0": 2, "p1": 0})
    assert host.env.env.last == {"p0": 2, "p1": 0}


def test_parallel_env_agent_count_must_match_players():
    with pytest.raises(EnvContractError, match=r"2 agents \['alice', 'bob'\].*3 players"):
        host_for(DUEL, ["p0", "p1", "p2"])


def test_parallel_env_rollback_batch_gives_identical_results():
    host = host_for(DUEL, ["p0", "p1"])
    host.reset(seed=11, render=False)
    host.snapshot()
    steps = [{"op": "step", "actions": duel_actions(i)} for i in range(8)]
    first = host.run_batch(steps + [{"op": "hash"}])
    # a rollback as the netcode sends it: restore, replay, hash
    replay = host.run_batch([{"op": "restore", "frame": 0}] + steps + [{"op": "hash"}])
    assert replay[1:] == first
    other = EnvHost()
    other.set_globals({"players": ["p0", "p1"]})
    other.load(DUEL)
    other.reset(seed=11, render=False)
    assert other.run_batch(steps + [{"op": "hash"}]) == first  # a second browser agrees


def test_a_contract_env_is_left_alone():
    class Plain:
        def reset(self, seed=None):
            return 0, {}

        def step(self, actions):
            return 0, 0, False, False, {}

        def render(self):
            return []

    env = Plain()
    assert adapt(env, ["p0"]) is env
