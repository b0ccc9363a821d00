"""Policy definitions in an experiment file, e.g.

    "policies": {"cook": {"python": "cook.py", "config": {"seat": "p1"}},
                 "coin": {"random": True, "actions": ["up", "down", "left", "right"]},
                 "bc": {"onnx": "bc.onnx", "obs": "features.py:encode", "actions": [...]}}

and, in a game scene (or at the top level, or in a condition's overrides),
``"partners": {"p1": "cook"}``: seat p1 is played by that policy in the participant's
browser, in the env's worker. Each kind is checked here; files and behaviour at startup
(server/policies/check.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator


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


class OnnxPolicy(BaseModel):
    """A model file (exported from PyTorch, JAX, ...) run by onnxruntime-web in the env's
    worker. ``obs`` names the researcher's function ``encode(obs, info, seat)`` that turns the
    env's observation into the model's input (a flat list of numbers); the model's output
    gives one score per entry of ``actions``, turned into an action by ``choose``."""

    model_config = ConfigDict(extra="forbid")
    onnx: Path
    obs: str = Field(pattern=r"^[^:]+\.py:[A-Za-z_][A-Za-z0-9_]*$")  # "file.py:function"
    actions: list[Any] = Field(min_length=1)
    choose: Literal["argmax", "sample"] = "argmax"
    every: int = Field(1, ge=1, le=600)
    # model input fed the encoded observation, and output holding the action scores; left
    # out when the model has exactly one of each that is not recurrent state
    input: str | None = None
    output: str | None = None
    # recurrent state: input name -> the output fed back into it at the next decision;
    # zeros at the start of every episode
    state: dict[str, str] = {}
    # filled in by the startup check (server/policies/check.py): names and shapes read off
    # the model by CPython onnxruntime, so the browser never has to guess them
    _resolved: dict[str, Any] | None = PrivateAttr(default=None)

    @field_validator("onnx")
    @classmethod
    def _suffix(cls, value: Path) -> Path:
        if value.suffix != ".onnx":
            raise ValueError(f"{value}: an ONNX model file ends in .onnx")
        return value

    @property
    def obs_file(self) -> str:
        return self.obs.split(":", 1)[0]

    @property
    def obs_function(self) -> str:
        return self.obs.split(":", 1)[1]


Policy = PythonPolicy | RandomPolicy | OnnxPolicy


def parse_policy(value: Any) -> Policy:
    """Pick the kind by its key, so an error names the fields of the kind meant."""
    if isinstance(value, Policy):
        return value
    if not isinstance(value, dict):
        raise ValueError('a policy is a dict: {"python": "file.py"}, {"onnx": "model.onnx", ...} '
                         'or {"random": true, "actions": [...]}')
    if "onnx" in value:
        return OnnxPolicy.model_validate(value)
    if "python" in value:
        return PythonPolicy.model_validate(value)
    if "random" in value:
        return RandomPolicy.model_validate(value)
    raise ValueError('a policy needs one of the keys "python", "onnx" or "random"')


def partner_spec(name: str, policy: Policy, directory: Path) -> dict:
    """What the worker needs to seat the policy (worker/policies.py build_seats)."""
    if isinstance(policy, RandomPolicy):
        return {"name": name, "kind": "random", "actions": policy.actions, "every": policy.every}
    if isinstance(policy, OnnxPolicy):
        if policy._resolved is None:
            raise RuntimeError(f"policy {name!r} was not checked at startup")
        return {"name": name, "kind": "onnx", "file": rel_to(policy.onnx, directory),
                "obs_file": rel_to(Path(policy.obs_file), directory), "obs_function": policy.obs_function,
                "actions": policy.actions, "choose": policy.choose, "every": policy.every, **policy._resolved}
    return {"name": name, "kind": "python", "file": rel_to(policy.python, directory), "config": policy.config,
            "every": policy.every}


def policy_path(path: Path, directory: Path) -> Path:
    return path if path.is_absolute() else directory / path


def rel_to(path: Path, directory: Path) -> str:
    """A policy's file relative to the experiment folder (the worker lays that folder out)."""
    return policy_path(path, directory).resolve().relative_to(directory.resolve()).as_posix()


def uses_onnx(policies: dict[str, Policy], seated: set[str]) -> bool:
    """Whether any seated policy is an ONNX model (the page then loads onnxruntime-web)."""
    return any(isinstance(policies[name], OnnxPolicy) for name in seated)
