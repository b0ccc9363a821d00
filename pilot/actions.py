"""Where a simulated participant's own actions come from: uniformly random over the scene's
controls (the default), or one of the experiment's policies (Python or ONNX, as the page
has them), deciding from what the env shows the way an AI seat does (worker/policies.py)."""

from __future__ import annotations

import random
from typing import Any

from worker.policies import build_seats


def scene_actions(game: dict[str, Any]) -> list[Any]:
    """Every action a participant can press in the scene, and the default."""
    actions = []
    for value in [*game["controls"].values(), game["default_action"]]:
        if value not in actions:
            actions.append(value)
    return actions


class RandomActions:
    needs_obs = False

    def __init__(self, actions: list[Any], rng: random.Random):
        self.actions = actions
        self.rng = rng

    def start(self, reset: dict[str, Any], players: list[str]) -> None:
        pass

    def action(self) -> Any:
        return self.rng.choice(self.actions)

    def saw(self, result: dict[str, Any], players: list[str]) -> None:
        pass


class PolicyActions:
    needs_obs = True

    def __init__(self, seat: Any, seed: int):
        self.seat = seat
        self.seed = seed

    def start(self, reset: dict[str, Any], players: list[str]) -> None:
        self.seat.reset(self.seed, reset["obs"], reset["info"], players)

    def action(self) -> Any:
        self.seat.check()
        return self.seat.action

    def saw(self, result: dict[str, Any], players: list[str]) -> None:
        self.seat.observe(result["frame"], result["obs"], result["info"], players)


def policy_spec(game: dict[str, Any], name: str) -> dict[str, Any]:
    specs = [s for s in (game.get("partners") or {}).values() if s and s.get("name") == name]
    if game.get("stand_in") and game["stand_in"].get("name") == name:
        specs.append(game["stand_in"])
    if not specs:
        raise ValueError(
            f"policy {name!r} plays no seat of scene {game['scene_id']!r}: the pilot plays "
            "a policy the scene seats (partners or multiplayer.stand_in)"
        )
    return specs[0]


def action_source(
    game: dict[str, Any], seat: str, policy: str | None, rng: random.Random, seed: int, files: str = ""
) -> RandomActions | PolicyActions:
    """``files``: the folder the experiment's files were laid out in (the pilot's worker)."""
    if policy is None:
        return RandomActions(scene_actions(game), rng)
    seats = build_seats({seat: policy_spec(game, policy)}, files)
    return PolicyActions(seats[seat], seed)
