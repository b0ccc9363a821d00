"""experiments/kitchen_ai/cook.py: the scripted cook plays the real kitchen env (no mocks).

The platform (worker/policies.py ``for_seat``) gives a policy ``obs[seat]`` when the
observation is a dict with every player id as a key, else the whole obs (likewise info). The
kitchen's obs has "p0" and "p1" (next to "pot", "counters", "frame"), so a cook gets only its
own ``[x, y, facing, item code]`` ("seat" view, what the platform does); its info has no player
keys at the top level, so the cook gets all of it (pot and what both players hold). The whole
obs ("whole" view) is tested too, in case an env or the platform passes everything.
"""

import ast
import random
import runpy
import time
from pathlib import Path

import pytest

from worker.policies import build_seats
from worker.policies import for_seat as platform_for_seat

KITCHEN_DIR = Path(__file__).resolve().parents[2] / "experiments" / "kitchen"
COOK_DIR = KITCHEN_DIR.parent / "kitchen_ai"
EXPERIMENT = runpy.run_path(str(KITCHEN_DIR / "experiment.py"))["EXPERIMENT"]
ENV_MODULE = runpy.run_path(str(KITCHEN_DIR / "env.py"))
COOK_MODULE = runpy.run_path(str(COOK_DIR / "cook.py"))
ACTIONS = ("up", "down", "left", "right", "interact", "noop")
FRAMES = EXPERIMENT["max_steps"]
VIEWS = ("seat", "whole")


def make_env():
    return ENV_MODULE["create_env"](dict(EXPERIMENT["env_config"]))


def make_cook(seat):
    return COOK_MODULE["create_policy"]({"seat": seat})


def for_seat(value, seat, view):
    """What the policy of `seat` is given: the platform's choice, or everything ("whole")."""
    if view == "seat":
        return platform_for_seat(value, seat, EXPERIMENT["players"])
    return value


def play(cooks, view, frames=FRAMES, partner=None, env=None):
    """One episode: `cooks` maps seats to policies, the other seat plays `partner(frame)`
    (noop by default). Returns (actions per frame, deliveries, summed p0 reward, act() seconds)."""
    env = env or make_env()
    obs, info = env.reset(seed=0)
    for cook in cooks.values():
        cook.reset(0)
    log, total, spent, terminated = [], 0, 0.0, False
    for frame in range(frames):
        actions = {}
        for seat in EXPERIMENT["players"]:
            if seat in cooks:
                start = time.perf_counter()
                action = cooks[seat].act(for_seat(obs, seat, view), for_seat(info, seat, view))
                spent += time.perf_counter() - start
                assert action in ACTIONS, (frame, seat, action)
            else:
                action = partner(frame) if partner else "noop"
            actions[seat] = action
        log.append((actions["p0"], actions["p1"]))
        obs, rewards, terminated, _, info = env.step(actions)
        assert rewards["p0"] == rewards["p1"]
        total += rewards["p0"]
        if terminated:
            break
    assert terminated, "the episode should end after the experiment's max_steps"
    return log, info["deliveries"], total, spent


@pytest.mark.parametrize("view", VIEWS)
def test_cook_alone_as_p1_delivers_soups(view):
    _, deliveries, total, spent = play({"p1": make_cook("p1")}, view)
    assert deliveries >= 2
    assert total == deliveries * EXPERIMENT["env_config"]["delivery_reward"]
    assert spent / FRAMES < 1e-3  # mean act() time: well under a millisecond


@pytest.mark.parametrize("view", VIEWS)
def test_cook_plays_p0_too(view):
    _, deliveries, _, _ = play({"p0": make_cook("p0")}, view)
    assert deliveries >= 2


@pytest.mark.parametrize("view", VIEWS)
def test_two_cooks_deliver_at_least_as_many_as_one(view):
    _, alone, _, _ = play({"p1": make_cook("p1")}, view)
    _, together, _, spent = play({"p0": make_cook("p0"), "p1": make_cook("p1")}, view)
    assert together >= alone >= 2
    assert spent / (2 * FRAMES) < 1e-3


@pytest.mark.parametrize("view", VIEWS)
def test_deterministic_action_sequence(view):
    first = play({"p0": make_cook("p0"), "p1": make_cook("p1")}, view)[0]
    second = play({"p0": make_cook("p0"), "p1": make_cook("p1")}, view)[0]
    assert first == second
    solo = [play({"p1": make_cook("p1")}, view)[0] for _ in range(2)]
    assert solo[0] == solo[1]


@pytest.mark.parametrize("view", VIEWS)
def test_reset_between_episodes_replays_the_same_actions(view):
    cook, env = make_cook("p1"), make_env()
    first = play({"p1": cook}, view, env=env)[0]
    second = play({"p1": cook}, view, env=env)[0]  # same instance, reset() in between
    assert first == second
    # also after an episode cut short in the middle of a plan
    obs, info = env.reset(seed=1)
    cook.reset(1)
    for _ in range(137):
        action = cook.act(for_seat(obs, "p1", view), for_seat(info, "p1", view))
        obs, _, _, _, info = env.step({"p0": "noop", "p1": action})
    assert info["holding"]["p1"] is not None or info["pot"]["onions"] > 0  # mid-plan
    assert play({"p1": cook}, view, env=env)[0] == first


@pytest.mark.parametrize("view", VIEWS)
def test_cook_copes_with_a_random_partner(view):
    rng = random.Random(7)
    moves = [rng.choice(ACTIONS) for _ in range(FRAMES)]
    log, deliveries, _, _ = play({"p1": make_cook("p1")}, view, partner=moves.__getitem__)
    assert deliveries >= 2
    assert len({a1 for _, a1 in log}) >= 5  # it keeps playing, not stuck on one action


def test_default_seat_is_p1_and_empty_config_works():
    for config in ({}, None):
        cook = COOK_MODULE["create_policy"](config)
        env = make_env()
        obs, info = env.reset(seed=0)
        cook.reset(0)
        action = cook.act(obs, info)
        assert action in ACTIONS and action != "noop"
        obs, _, _, _, info = env.step({"p0": "noop", "p1": action})
        assert obs["p1"][:2] != [5, 3] and obs["p0"][:2] == [1, 1]  # it moved p1, not p0


def test_policy_imports_only_the_standard_library():
    tree = ast.parse((COOK_DIR / "cook.py").read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])
    assert imported <= {"collections"}
    assert COOK_MODULE["MAP"] == ENV_MODULE["MAP"]  # its copy of the map mirrors env.py


def test_cook_through_the_platforms_policy_seat():
    """Loaded and driven the way the env's worker does it (worker/policies.py): the action for
    frame f is decided from what the seat saw after frame f - 1."""
    partners = {"p1": {"name": "cook", "kind": "python", "file": "cook.py", "config": {"seat": "p1"}}}
    seat = build_seats(partners, str(COOK_DIR))["p1"]
    players = EXPERIMENT["players"]
    env = make_env()
    obs, info = env.reset(seed=0)
    seat.reset(0, obs, info, players)
    log = []
    for frame in range(1, FRAMES + 1):
        log.append(("noop", seat.action))
        obs, _, terminated, _, info = env.step({"p0": "noop", "p1": seat.action})
        seat.observe(frame, obs, info, players)
    assert terminated and info["deliveries"] >= 2
    assert log == play({"p1": make_cook("p1")}, "seat")[0]
