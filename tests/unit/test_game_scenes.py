"""Game scenes with their own settings (server/study/games.py): inheritance from the top
level, condition overrides, startup errors naming file, scene and field; the experiment's
env files; a multi-file env in CPython (replay, synctest) exactly as the browser loads it."""

import json
import shutil
import sys
from pathlib import Path

import pytest

from server.multiplayer.replay import replay
from server.multiplayer.synctest import main as synctest_main
from server.study.experiment import ExperimentError, load_experiment
from server.study.games import env_search_path

ROOT = Path(__file__).resolve().parents[2]
ENV = '''
PLAYERS = None


class Env:
    def __init__(self, config):
        self.config = config
        self.t = 0
        {players}

    def reset(self, seed=None):
        self.t = 0
        return 0, {{}}

    def step(self, actions):
        self.t += 1
        return self.t, 0, False, False, {{}}

    def render(self):
        return []


def create_env(config):
    return Env(config)
'''
CONTROLS = {"ArrowLeft": "left"}


def write(tmp_path, scenes, env_players="", **top):
    folder = tmp_path / "exp"
    folder.mkdir(exist_ok=True)
    (folder / "env.py").write_text(ENV.format(players=env_players))
    definition = {"env": "env.py", "controls": CONTROLS, "default_action": "noop", "scenes": scenes, **top}
    path = folder / "experiment.py"
    path.write_text(f"EXPERIMENT = {definition!r}\n")
    return path


def error_of(path):
    with pytest.raises(ExperimentError) as info:
        load_experiment(path)
    message = str(info.value)
    assert str(path) in message
    return message


def test_scene_keys_default_to_the_top_level_and_may_differ_per_scene(tmp_path):
    (tmp_path / "exp" / "other").mkdir(parents=True)
    (tmp_path / "exp" / "other" / "env.py").write_text(ENV.format(players="self.players = ['a', 'b']"))
    exp = load_experiment(write(tmp_path, [
        {"type": "game", "id": "solo"},
        {"type": "game", "id": "pair", "env": "other/env.py", "players": ["a", "b"], "episodes": 3,
         "fps": 20, "max_steps": 99, "time_limit": 60, "env_config": {"level": 2},
         "multiplayer": {"input_delay": 4}, "default_action": "stay"},
    ], fps=30, max_steps=500, env_config={"level": 1}))
    solo, pair = exp.game(None, "solo"), exp.game(None, "pair")
    assert (solo.env_rel, solo.players, solo.episodes, solo.fps, solo.max_steps, solo.env_config) == \
        ("env.py", ["p0"], 1, 30, 500, {"level": 1})
    assert solo.default_action == "noop" and solo.time_limit is None and not solo.is_multiplayer
    assert (pair.env_rel, pair.players, pair.episodes, pair.fps, pair.max_steps, pair.env_config) == \
        ("other/env.py", ["a", "b"], 3, 20, 99, {"level": 2})
    assert pair.default_action == "stay" and pair.time_limit == 60 and pair.is_multiplayer
    # scene multiplayer keys refine the experiment's; the rest stay as defaults
    assert pair.multiplayer.input_delay == 4 and pair.multiplayer.max_prediction == 8
    assert exp.is_multiplayer and [g.scene_id for g in exp.games_for(None)] == ["solo", "pair"]


def test_a_condition_overrides_one_scene(tmp_path):
    exp = load_experiment(write(tmp_path, [{"type": "game", "id": "a"}, {"type": "game", "id": "b"}],
                                env_config={"x": 1, "y": 1}, conditions=[
        {"name": "hard", "env_config": {"y": 2}, "overrides": {"b": {"env_config": {"x": 5}, "episodes": 4}}},
        {"name": "easy"}]))
    assert exp.game("hard", "a").env_config == {"x": 1, "y": 2} and exp.game("hard", "a").episodes == 1
    assert exp.game("hard", "b").env_config == {"x": 5, "y": 2} and exp.game("hard", "b").episodes == 4
    assert exp.game("easy", "b").env_config == {"x": 1, "y": 1} and exp.game("easy", "b").episodes == 1
    assert exp.game(None).scene_id == "a"


@pytest.mark.parametrize("scene, needle", [
    ({"type": "game", "id": "g", "fps": "fast"}, "EXPERIMENT.scenes.0.game.fps:"),
    ({"type": "game", "id": "g", "episodes": 0}, "EXPERIMENT.scenes.0.game.episodes:"),
    ({"type": "game", "id": "g", "players": "p0"}, "EXPERIMENT.scenes.0.game.players:"),
    ({"type": "game", "id": "g", "multiplayer": {"input_delay": -1}}, "scene 'g': multiplayer.input_delay:"),
    ({"type": "game", "id": "g", "bogus": 1}, "EXPERIMENT.scenes.0.game.bogus:"),
])
def test_a_scene_field_of_the_wrong_type_names_file_scene_and_field(tmp_path, scene, needle):
    assert needle in error_of(write(tmp_path, [scene]))


def test_an_env_file_that_does_not_exist_names_the_scene(tmp_path):
    message = error_of(write(tmp_path, [{"type": "game", "id": "g"}, {"type": "game", "id": "late",
                                                                       "env": "nope/env.py"}]))
    assert "scene 'late'" in message and "nope/env.py" in message and "not found" in message


@pytest.mark.parametrize("declared, needle", [
    ("self.players = ['a', 'b', 'c']", "env 'env.py' declares 3"),  # our contract's players attribute
    ("self.possible_agents = ['a', 'b', 'c']", "PettingZoo env with 3 agents"),  # worker/adapters.py
])
def test_a_multiplayer_scene_whose_players_disagree_with_its_env(tmp_path, declared, needle):
    message = error_of(write(tmp_path, [{"type": "game", "id": "duo", "players": ["p0", "p1"]}],
                             env_players=declared))
    assert "scene 'duo': players:" in message and needle in message


def test_condition_override_of_an_unknown_scene_is_refused(tmp_path):
    message = error_of(write(tmp_path, [{"type": "game", "id": "g"}],
                             conditions=[{"name": "c", "overrides": {"nope": {"fps": 10}}}]))
    assert "condition 'c'" in message and "'nope'" in message


def test_env_files_are_the_experiment_folder_minus_private_files(tmp_path):
    path = write(tmp_path, [{"type": "game", "id": "g"}])
    folder = path.parent
    (folder / "maps").mkdir()
    (folder / "maps" / "a.txt").write_text("map")
    (folder / "pyscript.toml").write_text("packages = []\n")
    (folder / "assets").mkdir()
    (folder / "assets" / "s.png").write_bytes(b"png")
    (folder / "wheels").mkdir()
    (folder / "wheels" / "x-1-py3-none-any.whl").write_bytes(b"zip")
    (folder / ".secret").write_text("x")
    exp = load_experiment(path)
    assert [f.path for f in exp.env_files] == ["env.py", "maps/a.txt"]


def test_the_multi_file_example_env_replays_and_synctests_in_cpython(tmp_path, capsys):
    """The study's maze imports its rules module and reads a map file relative to itself:
    the server's CPython does both exactly as the worker does."""
    exp = load_experiment(ROOT / "experiments" / "study" / "experiment.py")
    game = exp.game(None, "practice")
    folders = env_search_path(game, exp.directory)
    inputs = {"p0": {f: ["right", "down"][f % 2] for f in range(40)}}
    one = replay(game.env_source, game.env_config, game.players, 1, inputs, 39, "noop", str(game.env_path),
                 folders, trajectory=True)
    two = replay(game.env_source, game.env_config, game.players, 1, inputs, 39, "noop", str(game.env_path),
                 folders)
    assert one["hash"] == two["hash"]
    assert one["trajectory"][0]["info"] == {"pos": [2, 1]}  # rules.move from S at (1, 1)
    # the env's modules do not leak into the server's own imports
    assert not [m for m in sys.modules.values() if str(getattr(m, "__file__", "")).startswith(folders[0])]
    assert folders[0] not in sys.path
    assert synctest_main([str(ROOT / "experiments" / "study"), "--frames", "60"]) == 0
    reports = capsys.readouterr().out
    assert '"scene": "practice"' in reports and '"scene": "duo"' in reports


def test_an_edited_sibling_module_is_reloaded(tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(ROOT / "experiments" / "study" / "maze", folder / "maze")
    from worker.env_host import EnvHost

    env_path = folder / "maze" / "env.py"
    host = EnvHost()
    host.set_globals({"env_config": {"map": "open.txt"}})
    host.load(env_path.read_text(), str(env_path), search_path=[str(env_path.parent)])
    host.reset(1)
    assert host.step({"p0": "right"})["info"] == {"pos": [2, 1]}
    rules = (folder / "maze" / "rules.py").read_text().replace('"right": (1, 0)', '"right": (2, 0)')
    (folder / "maze" / "rules.py").write_text(rules)
    host.load(env_path.read_text(), str(env_path), search_path=[str(env_path.parent)])
    host.reset(1)
    assert host.step({"p0": "right"})["info"] == {"pos": [3, 1]}
    assert json.dumps(host.render())  # still plain data
