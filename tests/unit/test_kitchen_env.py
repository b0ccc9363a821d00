"""experiments/kitchen/env.py: scripted cooperative play, movement and interaction rules,
determinism, get_state/set_state for rollback, EnvHost batches and render output."""

import json
import random
from pathlib import Path

from protocol import messages as m
from server.study.experiment import load_experiment
from worker.env_host import EnvHost
from worker.serialize import state_hash

ROOT = Path(__file__).resolve().parents[2]
KITCHEN_DIR = ROOT / "experiments" / "kitchen"
SOURCE = (KITCHEN_DIR / "env.py").read_text()
ACTIONS = ("up", "down", "left", "right", "interact", "noop")

# Map (x right, y down): p0 starts at (1, 1), p1 at (5, 3), both facing up.
#   ##OPO##
#   #.....#
#   D..#..S
#   #.....#
#   #######
UP, DOWN, LEFT, RIGHT = 0, 1, 2, 3

# (p0 action, p1 action) per frame, with the expected result noted.
SCRIPT = [
    ("right", "up"),           # 1: p0 -> (2,1); p1 -> (5,2)
    ("up", "up"),              # 2: p0 turns to the onion dispenser (2,0); p1 -> (5,1)
    ("interact", "left"),      # 3: p0 takes an onion; p1 -> (4,1)
    ("right", "up"),           # 4: p0 -> (3,1); p1 turns to the onion dispenser (4,0)
    ("up", "interact"),        # 5: p0 turns to the pot; p1 takes an onion
    ("interact", "noop"),      # 6: pot 1 onion
    ("left", "left"),          # 7: p0 -> (2,1); p1 blocked (p0 was on (3,1)), turns left
    ("up", "left"),            # 8: p0 turns up; p1 -> (3,1)
    ("interact", "up"),        # 9: p0 takes an onion; p1 turns to the pot
    ("noop", "interact"),      # 10: pot 2 onions
    ("noop", "right"),         # 11: p1 -> (4,1)
    ("right", "down"),         # 12: p0 -> (3,1); p1 -> (4,2)
    ("up", "down"),            # 13: p0 turns to the pot; p1 -> (4,3)
    ("interact", "left"),      # 14: pot 3 onions: cooking starts; p1 -> (3,3)
    ("right", "left"),         # 15: p0 -> (4,1); p1 -> (2,3)
    ("right", "left"),         # 16: p0 -> (5,1) (out of the way); p1 -> (1,3)
    ("noop", "up"),            # 17: p1 -> (1,2)
    ("noop", "left"),          # 18: p1 turns to the dish dispenser (0,2)
    ("noop", "interact"),      # 19: p1 takes a dish
    ("noop", "up"),            # 20: p1 -> (1,1)
    ("noop", "right"),         # 21: p1 -> (2,1)
    ("noop", "right"),         # 22: p1 -> (3,1)
    ("noop", "up"),            # 23: p1 turns to the pot
    ("noop", "interact"),      # 24: soup not cooked yet: nothing happens
    *[("noop", "noop")] * 49,  # 25-73: the pot cooks (60 frames, counted from frame 14)
    ("noop", "interact"),      # 74: p1 scoops the soup into the dish
    ("noop", "right"),         # 75: p1 -> (4,1)
    ("noop", "down"),          # 76: p1 -> (4,2)
    ("noop", "right"),         # 77: p1 -> (5,2)
    ("noop", "right"),         # 78: p1 turns to the serving window (6,2)
    ("noop", "interact"),      # 79: delivered: +20 for both
]


def load_env(**config):
    namespace = {"__name__": "kitchen_env"}
    exec(compile(SOURCE, str(KITCHEN_DIR / "env.py"), "exec"), namespace)
    env = namespace["create_env"](config)
    env.reset(seed=0)
    return env


def step(env, a0="noop", a1="noop"):
    return env.step({"p0": a0, "p1": a1})


def place(env, p0, p1, held=(None, None)):
    """Put the players at (x, y, facing) through set_state."""
    state = env.get_state()
    state["players"] = [[*p0, held[0]], [*p1, held[1]]]
    env.set_state(state)


def random_actions(seed, n):
    rng = random.Random(seed)
    return [{"p0": rng.choice(ACTIONS), "p1": rng.choice(ACTIONS)} for _ in range(n)]


def positions(env):
    return [tuple(p[:3]) for p in env.get_state()["players"]]


# -- scripted cooperative play --------------------------------------------------------------

def test_scripted_cooperation_delivers_a_soup():
    env = load_env()
    assert len(SCRIPT) == 79
    totals = {"p0": 0, "p1": 0}
    rewarded_at = []
    for frame, (a0, a1) in enumerate(SCRIPT, start=1):
        _, rewards, terminated, truncated, info = step(env, a0, a1)
        assert set(rewards) == {"p0", "p1"}
        for player, reward in rewards.items():
            totals[player] += reward
        if rewards["p0"]:
            rewarded_at.append(frame)
        assert terminated is False and truncated is False
        assert info["frame"] == frame
        if frame == 7:
            assert positions(env) == [(2, 1, LEFT), (4, 1, LEFT)]  # p1 blocked by p0
        if frame == 14:
            assert info["pot"] == {"onions": 3, "cooked": 1, "cooking": True, "ready": False}
            assert info["holding"] == {"p0": None, "p1": None}
        if frame == 19:
            assert info["holding"]["p1"] == "dish"
        if frame == 24:
            assert info["holding"]["p1"] == "dish" and info["pot"]["cooking"]
        if frame == 73:
            assert info["pot"]["ready"] and not info["pot"]["cooking"]
        if frame == 74:
            assert info["holding"]["p1"] == "soup"
            assert info["pot"] == {"onions": 0, "cooked": 0, "cooking": False, "ready": False}
    assert rewarded_at == [79]
    assert rewards == {"p0": 20, "p1": 20}
    assert totals == {"p0": 20, "p1": 20}
    assert info["score"] == 20 and info["deliveries"] == 1
    assert info["holding"] == {"p0": None, "p1": None}


def test_reset_returns_start_state_and_info():
    env = load_env()
    for a0, a1 in SCRIPT:
        step(env, a0, a1)
    obs, info = env.reset(seed=5)
    assert info == {"score": 0, "deliveries": 0, "frame": 0,
                    "pot": {"onions": 0, "cooked": 0, "cooking": False, "ready": False},
                    "holding": {"p0": None, "p1": None}}
    assert obs["p0"] == [1, 1, UP, 0] and obs["p1"] == [5, 3, UP, 0]
    assert json.loads(json.dumps(obs)) == obs


def test_terminated_at_episode_frames():
    env = load_env(episode_frames=10)
    flags = [step(env)[2] for _ in range(10)]
    assert flags == [False] * 9 + [True]


def test_pot_takes_three_onions_and_cook_frames_from_config():
    env = load_env(cook_frames=5)
    place(env, (3, 1, UP), (5, 3, UP), held=("onion", None))
    for _ in range(3):
        step(env, "interact")
        place(env, (3, 1, UP), (5, 3, UP), held=("onion", None))
    assert env.get_state()["pot"] == [3, 1]  # the 3rd onion starts the cooking on its frame
    info = step(env, "interact")[4]  # a 4th onion does not fit
    assert info["pot"]["onions"] == 3 and info["holding"]["p0"] == "onion"
    step(env)
    info = step(env)[4]
    assert info["pot"]["cooked"] == 4 and info["pot"]["cooking"] and not info["pot"]["ready"]
    info = step(env)[4]
    assert env.get_state()["pot"] == [3, 5] and info["pot"]["ready"]
    info = step(env)[4]
    assert info["pot"]["ready"] and env.get_state()["pot"] == [3, 5]  # stops counting when done


# -- movement -------------------------------------------------------------------------------

def test_moving_into_a_counter_or_dispenser_only_turns():
    env = load_env()
    place(env, (1, 1, RIGHT), (5, 3, UP))
    step(env, "up", "right")  # (1,0) is a counter, (6,3) a counter
    assert positions(env) == [(1, 1, UP), (5, 3, RIGHT)]
    step(env, "left", "down")
    assert positions(env) == [(1, 1, LEFT), (5, 3, DOWN)]
    place(env, (2, 1, DOWN), (3, 3, UP))
    step(env, "up", "up")  # onion dispenser above p0, centre counter above p1
    assert positions(env) == [(2, 1, UP), (3, 3, UP)]


def test_swapping_cells_leaves_both_in_place():
    env = load_env()
    place(env, (2, 1, UP), (3, 1, UP))
    step(env, "right", "left")
    assert positions(env) == [(2, 1, RIGHT), (3, 1, LEFT)]


def test_both_moving_into_the_same_cell_leaves_both_in_place():
    env = load_env()
    place(env, (2, 1, UP), (4, 1, UP))
    step(env, "right", "left")
    assert positions(env) == [(2, 1, RIGHT), (4, 1, LEFT)]
    place(env, (4, 1, UP), (5, 2, UP))  # same target (5,1) from different directions
    step(env, "right", "up")
    assert positions(env) == [(4, 1, RIGHT), (5, 2, UP)]


def test_cannot_enter_the_other_players_cell_even_if_it_moves_away():
    env = load_env()
    place(env, (2, 1, UP), (3, 1, UP))
    step(env, "right", "noop")
    assert positions(env) == [(2, 1, RIGHT), (3, 1, UP)]
    step(env, "right", "right")  # p1 leaves (3,1) this frame; p0 still blocked this frame
    assert positions(env) == [(2, 1, RIGHT), (4, 1, RIGHT)]
    step(env, "right", "noop")
    assert positions(env) == [(3, 1, RIGHT), (4, 1, RIGHT)]


def test_independent_moves_both_happen():
    env = load_env()
    step(env, "down", "left")
    assert positions(env) == [(1, 2, DOWN), (4, 3, LEFT)]


def test_unknown_or_missing_actions_are_noops():
    env = load_env()
    before = env.get_state()
    env.step({})
    env.step({"p0": "jump", "p1": 3})
    env.step({"p0": None, "p1": ["up"]})
    after = env.get_state()
    assert after["frame"] == 3
    after["frame"] = before["frame"]
    assert after == before


# -- interaction ----------------------------------------------------------------------------

def test_interacting_with_nothing_does_nothing():
    env = load_env()
    cases = [
        ((1, 1, DOWN), None),        # faces floor
        ((2, 1, RIGHT), None),       # faces the other player
        ((1, 2, RIGHT), "onion"),    # faces floor while holding
        ((1, 1, UP), None),          # empty hands, empty counter
        ((2, 1, UP), "dish"),        # hands full at the onion dispenser
        ((1, 2, LEFT), "onion"),     # hands full at the dish dispenser
        ((3, 1, UP), None),          # empty hands at an empty pot
        ((3, 1, UP), "dish"),        # dish at a pot with no soup
        ((5, 2, RIGHT), "onion"),    # serving window without soup
        ((5, 2, RIGHT), None),
    ]
    for p0, held in cases:
        place(env, p0, (3, 1, DOWN) if p0[:2] == (2, 1) else (5, 3, UP), held=(held, None))
        before = env.get_state()
        _, rewards, _, _, info = step(env, "interact")
        after = env.get_state()
        assert after["frame"] == before["frame"] + 1
        after["frame"] = before["frame"]
        assert after == before, (p0, held)
        assert rewards == {"p0": 0, "p1": 0} and info["score"] == 0


def test_dish_at_a_cooking_pot_does_nothing():
    env = load_env()
    state = env.get_state()
    state["pot"] = [3, 10]
    env.set_state(state)
    place(env, (3, 1, UP), (5, 3, UP), held=("dish", None))
    info = step(env, "interact")[4]
    assert info["holding"]["p0"] == "dish" and info["pot"]["onions"] == 3 and info["pot"]["cooked"] == 11


def test_counters_hold_items():
    env = load_env()
    place(env, (1, 1, UP), (5, 3, UP), held=("onion", "soup"))
    info = step(env, "interact")[4]  # p0 puts the onion on counter (1,0)
    assert info["holding"]["p0"] is None
    assert env.get_state()["counters"].count("onion") == 1
    place(env, (1, 1, UP), (5, 3, UP), held=("dish", "soup"))
    info = step(env, "interact")[4]  # occupied counter: keeps the dish
    assert info["holding"]["p0"] == "dish"
    place(env, (1, 1, UP), (5, 3, DOWN), held=(None, "soup"))
    info = step(env, "interact", "interact")[4]  # p0 picks the onion back up; p1 puts soup on (5,4)
    assert info["holding"] == {"p0": "onion", "p1": None}
    assert sorted(c for c in env.get_state()["counters"] if c) == ["soup"]
    rendered = env.render()
    assert any(d.get("color") == "#e8743b" for d in rendered)  # the soup is drawn


def test_same_frame_interactions_resolve_in_player_order():
    env = load_env()
    state = env.get_state()
    state["pot"] = [2, 0]
    env.set_state(state)
    place(env, (3, 1, UP), (3, 1, UP), held=("onion", "onion"))  # both face the pot (test only)
    info = step(env, "interact", "interact")[4]
    assert info["holding"] == {"p0": None, "p1": "onion"}  # p0 first fills the pot
    assert info["pot"]["onions"] == 3


# -- determinism and rollback ---------------------------------------------------------------

def test_same_seed_and_actions_give_identical_states():
    script = random_actions(123, 500)
    runs = []
    for _ in range(2):
        env = load_env()
        env.reset(seed=42)
        infos = [env.step(actions)[4] for actions in script]
        runs.append((env.get_state(), state_hash(env.get_state()), infos))
    assert runs[0][0] == runs[1][0]
    assert runs[0][1] == runs[1][1]
    assert runs[0][2] == runs[1][2]
    assert runs[0][0]["frame"] == 500


def test_state_is_plain_json_and_round_trips():
    env = load_env()
    for actions in random_actions(9, 300):
        env.step(actions)
    state = env.get_state()
    text = json.dumps(state, sort_keys=True)
    assert json.loads(text) == state
    other = load_env()
    other.set_state(json.loads(text))
    assert other.get_state() == state
    assert state_hash(other.get_state()) == state_hash(state)


def test_snapshot_restore_replay_is_identical():
    env = load_env()
    script = random_actions(77, 150)
    for actions in script[:100]:
        env.step(actions)
    snapshot = env.get_state()
    first = [env.step(actions) for actions in script[100:]]
    at_150 = env.get_state()
    env.set_state(snapshot)
    assert env.get_state()["frame"] == 100
    second = [env.step(actions) for actions in script[100:]]
    assert env.get_state() == at_150
    assert state_hash(env.get_state()) == state_hash(at_150)
    assert [r[1:] for r in first] == [r[1:] for r in second]


def test_get_state_returns_a_copy():
    env = load_env()
    state = env.get_state()
    reference = json.loads(json.dumps(state))
    state["frame"] = 99
    state["players"][0][0] = 5
    state["players"][1][3] = "soup"
    state["pot"][0] = 3
    state["counters"][0] = "dish"
    assert env.get_state() == reference


def test_set_state_does_not_alias_its_argument():
    env = load_env()
    state = env.get_state()
    env.set_state(state)
    state["players"][0][0] = 5
    state["pot"][1] = 7
    state["counters"][2] = "onion"
    assert env.get_state()["players"][0][0] == 1
    assert env.get_state()["pot"] == [0, 0]
    assert env.get_state()["counters"][2] is None
    step(env, "right")  # stepping does not write through to the passed structure either
    assert state["players"][0][2] == UP


# -- platform integration -------------------------------------------------------------------

def kitchen_host():
    host = EnvHost()
    host.set_globals({"env_config": {"episode_frames": 1800}})
    host.load(SOURCE, "experiments/kitchen/env.py")
    host.reset(seed=1)
    return host


def test_env_host_batch_rollback_gives_identical_hashes():
    host = kitchen_host()
    script = random_actions(5, 60)
    steps = [{"op": m.OP_STEP, "actions": actions} for actions in script]
    ops = [{"op": m.OP_SNAPSHOT}, *steps, {"op": m.OP_HASH}, {"op": m.OP_RESTORE, "frame": 0},
           *steps[:-1], {"op": m.OP_STEP, "actions": script[-1], "render": True}, {"op": m.OP_HASH},
           {"op": m.OP_RENDER}]
    results = host.run_batch(ops)
    first, second = results[61], results[-2]
    assert first["frame"] == second["frame"] == 60
    assert first["hash"] == second["hash"]
    assert results[-3]["render"] == results[-1]["render"]
    assert json.loads(json.dumps(results)) == results


def test_env_host_scripted_delivery_reports_rewards():
    host = kitchen_host()
    results = host.run_batch([{"op": m.OP_STEP, "actions": {"p0": a0, "p1": a1}} for a0, a1 in SCRIPT])
    assert results[-1]["rewards"] == {"p0": 20, "p1": 20}
    assert results[-1]["info"]["score"] == 20
    assert sum(r["rewards"]["p0"] for r in results) == 20
    assert not any(r["done"] for r in results)


DRAWABLE_KEYS = {
    "rect": ("x", "y", "w", "h"),
    "circle": ("x", "y", "r"),
    "line": ("x1", "y1", "x2", "y2", "width"),
    "text": ("x", "y", "size"),
    "sprite": ("x", "y", "w", "h"),
}


def check_drawables(drawables):
    assert 0 < len(drawables) <= 60
    for d in drawables:
        assert d["type"] in DRAWABLE_KEYS, d
        for key in DRAWABLE_KEYS[d["type"]]:
            assert type(d[key]) in (int, float), (d, key)
        if d["type"] == "text":
            assert isinstance(d["text"], str) and d.get("align", "left") in ("left", "center", "right")
        if d["type"] != "sprite":
            assert isinstance(d["color"], str) and d["color"].startswith("#")


def test_render_uses_only_documented_drawables():
    env = load_env()
    check_drawables(env.render())
    for a0, a1 in SCRIPT:
        step(env, a0, a1)
        check_drawables(env.render())
    for actions in random_actions(3, 200):
        env.step(actions)
        check_drawables(env.render())
    texts = [d["text"] for d in env.render() if d["type"] == "text"]
    assert "Score 20" in texts and any(t.startswith("Time ") for t in texts)


def test_render_through_env_host_is_plain_json():
    host = kitchen_host()
    drawn = host.step({"p0": "right", "p1": "up"})["render"]
    check_drawables(drawn)
    assert json.loads(json.dumps(drawn)) == drawn


def test_experiment_definition_is_valid():
    exp = load_experiment(KITCHEN_DIR / "experiment.py")
    assert exp.players == ["p0", "p1"]
    assert exp.start_key == "Enter" and exp.start_key not in exp.controls
    assert set(exp.controls.values()) <= set(ACTIONS)
    assert exp.default_action == "noop"
    assert exp.game(None).env_source == SOURCE
