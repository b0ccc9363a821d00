"""Policy definitions in an experiment file, e.g.

    "policies": {"cook": {"python": "cook.py", "config": {"seat": "p1"}},
                 "coin": {"random": True, "actions": ["up", "down", "left", "right"]}}

and, in a game scene (or at the top level, or in a condition's overrides),
``"partners": {"p1": "cook"}``: seat p1 is played by that policy in the participant's
browser, in the env's worker. Each kind is checked here; files and behaviour at startup
(server/policies/check.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class PythonPolicy(BaseModel):
    """A file defining ``create_policy(config)`` -> an object with reset(seed) and act(obs, info)."""

    model_config = ConfigDict(extra="forbid")
    python: Path
    config: dict[str, Any] = {}
    every: int = Field(1, ge=1, le=600)  # decide every k frames, hold the action in between


class RandomPolicy(BaseModel):
    """Uniform over ``actions``, seeded from the episode seed and the seat (a baseline)."""

    model_config = ConfigDict(extra="forbid")
    random: bool = True
    actions: list[Any] = Field(min_length=1)
    every: int = Field(1, ge=1, le=600)

    @model_validator(mode="after")
    def _on(self) -> RandomPolicy:
        if not self.random:
            raise ValueError("random must be true (or leave the policy out)")
        return self


def parse_policy(value: Any) -> PythonPolicy | RandomPolicy:
    """Pick the kind by its key, so an error names the fields of the kind meant."""
    if isinstance(value, PythonPolicy | RandomPolicy):
        return value
    if not isinstance(value, dict):
        raise ValueError('a policy is a dict: {"python": "file.py"} or {"random": true, "actions": [...]}')
    if "onnx" in value:
        raise ValueError("ONNX policies are not available yet; use a Python policy (\"python\": \"file.py\")")
    if "python" in value:
        return PythonPolicy.model_validate(value)
    if "random" in value:
        return RandomPolicy.model_validate(value)
    raise ValueError('a policy needs one of the keys "python" or "random"')


def partner_spec(name: str, policy: PythonPolicy | RandomPolicy, directory: Path) -> dict:
    """What the worker needs to seat the policy (worker/policies.py build_seats)."""
    if isinstance(policy, RandomPolicy):
        return {"name": name, "kind": "random", "actions": policy.actions, "every": policy.every}
    return {"name": name, "kind": "python", "file": policy_rel(policy, directory), "config": policy.config,
            "every": policy.every}


def policy_rel(policy: PythonPolicy, directory: Path) -> str:
    """The policy file relative to the experiment folder (the worker lays that folder out)."""
    path = policy.python if policy.python.is_absolute() else directory / policy.python
    return path.resolve().relative_to(directory.resolve()).as_posix()
