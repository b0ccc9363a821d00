"""AI partners (server/policies/, worker/policies.py) in CPython: policy definitions and the
seats scenes give them, each error naming the field; Python and random policies seated in
the env host, deciding from the frame before, holding for `every`, reset every episode."""

import json
from pathlib import Path

import pytest

from server.study.experiment import load_experiment
from tests.unit.test_game_scenes import error_of
from worker.env_host import EnvHost, forget_search_path
from worker.policies import PolicyError, build_seats

COUNTER_ENV = '''
class Counter:
    """obs = the frame; info says what each seat did last."""
    def __init__(self, config):
        self.t = 0
        self.last = {}
    def reset(self, seed=None):
        self.t = 0
        return {"p0": 0, "p1": 0}, {}
    def step(self, actions):
        self.t += 1
        self.last = dict(actions)
        return {"p0": self.t, "p1": self.t}, 0, False, False, {"did": dict(actions)}
    def render(self):
        return []

def create_env(config):
    return Counter(config)
'''
ECHO_POLICY = '''
class Echo:
    """Plays the frame number it saw: shows which observation a decision came from."""
    def __init__(self, config):
        self.offset = config.get("offset", 0)
        self.resets = 0
    def reset(self, seed):
        self.resets += 1
    def act(self, obs, info):
        if obs == self.offset + 99:
            raise ValueError("boom")
        return "saw-" + str(obs)

def create_policy(config):
    return Echo(config)
'''


def write(tmp_path, policies, partners, players=("p0", "p1"), policy_text=ECHO_POLICY, **extra):
    folder = tmp_path / "ai"
    folder.mkdir(exist_ok=True)
    (folder / "env.py").write_text(COUNTER_ENV)
    (folder / "echo.py").write_text(policy_text)
    definition = {"env": "env.py", "controls": {"ArrowLeft": "left"}, "default_action": "noop",
                  "players": list(players), "policies": policies, "partners": partners, **extra}
    path = folder / "experiment.py"
    path.write_text(f"EXPERIMENT = {definition!r}\n")
    return path


def test_a_partner_scene_is_one_person_and_an_ai_seat(tmp_path):
    exp = load_experiment(write(tmp_path, {"echo": {"python": "echo.py", "config": {"offset": 1}}},
                                {"p1": "echo"}))
    game = exp.game(None)
    assert game.humans == ["p0"] and game.partners == {"p1": "echo"} and not game.is_multiplayer


@pytest.mark.parametrize("policies, partners, needle", [
    ({"echo": {"python": "nope.py"}}, {"p1": "echo"}, "policy 'echo': file nope.py not found"),
    ({"echo": {"python": "echo.py", "every": 0}}, {"p1": "echo"}, "policy 'echo': every:"),
    ({"coin": {"random": True}}, {"p1": "coin"}, "policy 'coin': actions:"),
    ({"coin": {"random": True, "actions": ["a"], "bogus": 1}}, {"p1": "coin"}, "policy 'coin': bogus:"),
    ({"bc": {"onnx": "bc.onnx"}}, {"p1": "bc"}, "policy 'bc': obs: Field required"),
    ({"x": {"kind": "magic"}}, {"p1": "x"}, 'a policy needs one of the keys "python", "onnx" or "random"'),
    ({"echo": {"python": "echo.py"}}, {"p1": "other"}, "partners: p1: no policy 'other' (defined: echo)"),
    ({"echo": {"python": "echo.py"}}, {"p7": "echo"}, "partners: seat 'p7' is not one of the players"),
    ({"echo": {"python": "echo.py"}}, {"p0": "echo", "p1": "echo"}, "every seat is an AI partner"),
])
def test_policy_and_partner_errors_name_the_field(tmp_path, policies, partners, needle):
    assert needle in error_of(write(tmp_path, policies, partners))


def test_an_ai_seat_in_a_room_of_several_people_and_a_stand_in_policy(tmp_path):
    from server.study.games import games_config
    from server.study.packages import ResolvedPackages

    exp = load_experiment(write(tmp_path, {"echo": {"python": "echo.py"}}, {"p2": "echo"},
                                players=("p0", "p1", "p2"),
                                multiplayer={"dropout": "stand_in", "stand_in": "echo"}))
    game = exp.game(None)
    assert game.is_multiplayer and game.humans == ["p0", "p1"] and game.policies_used() == {"echo"}
    page = games_config(exp, None, ResolvedPackages(entries=[], local_files={}))["game-0"]
    assert set(page["partners"]) == {"p2"} and page["stand_in"]["name"] == "echo"


@pytest.mark.parametrize("multiplayer, needle", [
    ({"dropout": "stand_in", "stand_in": "nobody"},
     "multiplayer.stand_in: no policy 'nobody' (defined: echo)"),
    ({"stand_in": "echo"}, "multiplayer.stand_in names a policy but dropout is 'end'"),
])
def test_a_stand_in_policy_must_exist_and_needs_dropout_stand_in(tmp_path, multiplayer, needle):
    message = error_of(write(tmp_path, {"echo": {"python": "echo.py"}}, {}, multiplayer=multiplayer))
    assert needle in message, message


def test_a_policy_that_raises_on_the_first_observation_fails_at_startup(tmp_path):
    message = error_of(write(tmp_path, {"echo": {"python": "echo.py", "config": {"offset": -99}}},
                             {"p1": "echo"}))
    assert "scene 'game-0': partners:" in message and "policy 'echo' (seat p1) raised at frame 0" in message


def seated_host(tmp_path, partners):
    folder = tmp_path / "seat"
    folder.mkdir(exist_ok=True)
    (folder / "echo.py").write_text(ECHO_POLICY)
    host = EnvHost()
    host.set_globals({"env_config": {}, "players": ["p0", "p1"]})
    host.load(COUNTER_ENV, str(folder / "env.py"))
    host.set_partners(build_seats(partners, str(folder)))
    return host, folder


def test_an_ai_seat_decides_from_the_frame_before_and_holds_for_every(tmp_path):
    host, folder = seated_host(tmp_path, {"p1": {"name": "echo", "kind": "python", "file": "echo.py",
                                                 "config": {}, "every": 3}})
    try:
        host.reset(seed=1)
        played = [host.step({"p0": "left"}) for _ in range(7)]
    finally:
        forget_search_path([str(folder)])
    # frame 1 plays what was decided on the reset observation (frame 0); decisions come
    # every 3 frames (after frames 3 and 6) and are held in between
    assert [r["partner_actions"]["p1"] for r in played] == ["saw-0"] * 3 + ["saw-3"] * 3 + ["saw-6"]
    assert [r["info"]["did"]["p1"] for r in played] == [r["partner_actions"]["p1"] for r in played]
    assert all(r["info"]["did"]["p0"] == "left" for r in played)  # the person's own seat untouched
    assert played[0]["partners"]["p1"]["policy"] == "echo" and played[0]["partners"]["p1"]["decide_ms"] >= 0
    json.dumps(played)  # plain data, as the channel sends it


def test_a_random_partner_is_seeded_by_episode_and_seat_and_reset_every_episode(tmp_path):
    partners = {s: {"name": "coin", "kind": "random", "actions": ["a", "b", "c", "d"], "every": 1}
                for s in ("p1",)}
    host, _ = seated_host(tmp_path, partners)

    def episode(seed):
        host.reset(seed=seed)
        return [host.step({"p0": "x"})["partner_actions"]["p1"] for _ in range(30)]

    first, again, other = episode(5), episode(5), episode(6)
    assert first == again and first != other and len(set(first)) > 1


def test_a_policy_raising_mid_episode_names_the_policy_seat_and_frame(tmp_path):
    host, folder = seated_host(tmp_path, {"p1": {"name": "echo", "kind": "python", "file": "echo.py",
                                                 "config": {"offset": -90}, "every": 1}})
    try:
        host.reset(seed=1)
        with pytest.raises(PolicyError, match=r"'echo' \(seat p1\) raised at frame 9: ValueError: boom"):
            for _ in range(20):
                host.step({"p0": "x"})
    finally:
        forget_search_path([str(folder)])


def test_the_worker_gets_each_partner_as_the_page_config_says(tmp_path):
    from server.study.games import games_config
    from server.study.packages import ResolvedPackages

    exp = load_experiment(write(tmp_path, {"echo": {"python": "echo.py", "every": 2},
                                           "coin": {"random": True, "actions": [1, 2]}}, {"p1": "echo"},
                                scenes=[{"type": "game", "id": "a"},
                                        {"type": "game", "id": "b", "partners": {"p1": "coin"}}]))
    games = games_config(exp, None, ResolvedPackages(entries=[], local_files={}))
    assert games["a"]["partners"] == {"p1": {"name": "echo", "kind": "python", "file": "echo.py",
                                             "config": {}, "every": 2}}
    assert games["b"]["partners"] == {"p1": {"name": "coin", "kind": "random", "actions": [1, 2], "every": 1}}
    assert games["a"]["humans"] == ["p0"]
    assert Path(tmp_path / "ai" / "echo.py").name in [f["path"] for f in games["a"]["env_files"]]
