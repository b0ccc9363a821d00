"""Experiment definitions: one Python file per experiment (``experiments/<name>/experiment.py``)
that sets ``EXPERIMENT = {...}``. Validated at startup; every error names the file,
the field and the reason, so a researcher never meets a half-broken page."""

from __future__ import annotations

import re
import runpy
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from server.policies.check import check_partners_run
from server.policies.config import parse_policy
from server.study.games import EnvFile, GameSpec, GameSpecError, check_players, experiment_files, resolve_game
from server.study.scenes import Game, Scene, finish_scenes, personal_order
from server.study.screening import Screening

SLUG = r"^[a-z0-9][a-z0-9_-]{0,63}$"


class ExperimentError(ValueError):
    """An experiment definition is unusable; the message is meant for the researcher."""


class Timeouts(BaseModel):
    """Seconds a worker request may take before the page declares the worker dead."""

    model_config = ConfigDict(extra="forbid")
    init: float = Field(60.0, gt=0)
    install_packages: float = Field(180.0, gt=0)
    set_globals: float = Field(10.0, gt=0)
    run_init_code: float = Field(30.0, gt=0)
    reset: float = Field(10.0, gt=0)
    step: float = Field(3.0, gt=0)
    batch: float = Field(3.0, gt=0)


class NetworkShape(BaseModel):
    """Artificial network conditions applied on the relay (tests and demos)."""

    model_config = ConfigDict(extra="forbid")
    delay_ms: float = Field(0.0, ge=0, le=5000)
    jitter_ms: float = Field(0.0, ge=0, le=5000)
    drop: float = Field(0.0, ge=0, le=0.9)


class Multiplayer(BaseModel):
    """Netcode and matchmaking settings; a game with more than one player uses them."""

    model_config = ConfigDict(extra="forbid")
    input_delay: int = Field(2, ge=0, le=30)
    max_prediction: int = Field(8, ge=1, le=60)
    hash_every: int = Field(30, ge=1, le=10000)
    wait_timeout: float = Field(120.0, gt=0)
    wait_timeout_message: str = "No partner could be found. Thank you for your time."
    wait_timeout_redirect: str | None = None
    stall_fetch_ms: int = Field(250, ge=50, le=10000)
    network: NetworkShape = NetworkShape()
    network_from_url: bool = False  # let ?delay=&jitter=&drop= shape the relay (never in a real study)
    focus_loss_timeout: float = Field(30.0, gt=0)  # a tab hidden this long ends the room
    # a player whose connection drops may come back within this many seconds (0: never)
    reconnect_timeout: float = Field(10.0, ge=0, le=300)
    # after that: "end" the episode for everyone, or let a scripted "stand_in" play the seat
    dropout: Literal["end", "stand_in"] = "end"
    # with dropout "stand_in": the policy (a name in ``policies``) that plays a dropped
    # person's seat, hosted by a browser that stays; left out, the seat repeats default_action
    stand_in: str | None = None
    dropout_message: str = "Your partner lost their connection, so the game has ended. Thank you!"
    dropout_completion_code: str | None = None  # shown to the partners left behind (partial pay)
    # latency-aware matching (server/multiplayer/rooms.py LatencyRule): group only participants
    # whose RTTs to the server sum to at most this; None: first come first served
    match_rtt_ms: float | None = Field(None, gt=0, le=60_000)
    # ... and after waiting this long a participant is grouped with anyone (None: never)
    match_fallback_s: float | None = Field(None, gt=0)

    @field_validator("match_fallback_s")
    @classmethod
    def _fallback_within_wait(cls, value: float | None, info: ValidationInfo) -> float | None:
        if value is None:
            return value
        if info.data.get("match_rtt_ms") is None:
            raise ValueError("match_fallback_s needs match_rtt_ms (latency-aware matching) to be set")
        wait = info.data.get("wait_timeout")
        if wait is not None and value >= wait:
            raise ValueError(f"match_fallback_s ({value:g} s) must be below wait_timeout ({wait:g} s), "
                             "or nobody would ever reach the fallback")
        return value


class Condition(BaseModel):
    """A between-subject condition: its env_config entries override the experiment's (in
    every game scene), and ``overrides`` may change any key of one game scene by its id."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=SLUG)
    env_config: dict[str, Any] = {}
    overrides: dict[str, dict[str, Any]] = {}
    # this condition's own path through the study (e.g. the survey before the game);
    # scenes are plain dicts, so one defined once in experiment.py can be reused anywhere
    scenes: list[Scene] | None = None


class Experiment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=SLUG)
    title: str = ""
    env: Path | None = None  # may be left to the game scenes, each naming its own
    env_config: dict[str, Any] = {}
    players: list[str] = Field(default=["p0"], min_length=1, max_length=16)
    fps: int = Field(30, ge=1, le=120)
    max_steps: int = Field(900, ge=1)
    seed: int | None = None
    controls: dict[str, Any] = {}  # required here or in every game scene
    default_action: Any = 0
    start_key: str = " "
    auto_start: bool = False
    instructions: str = ""
    upload_every: int = Field(30, ge=1, le=1000)
    canvas: tuple[int, int] = (480, 480)
    timeouts: Timeouts = Timeouts()
    multiplayer: Multiplayer = Multiplayer()
    # between-subject conditions, assigned on arrival to keep the counts balanced
    conditions: list[Condition] = []
    # AI partners: named policies, and the seats the game scenes give them (server/policies/)
    policies: dict[str, Any] = {}
    partners: dict[str, str] = {}
    # files of the experiment folder never sent to the browser (glob patterns relative to
    # it), e.g. the script that trained a policy
    server_only: list[str] = []
    # a page reloaded mid-episode: "resume" the single-player episode at the frame it reached
    # (a multiplayer seat is always taken back within reconnect_timeout), or "restart" it
    on_reload: Literal["resume", "restart"] = "resume"
    # entry screening before the first scene (server/study/screening.py); None: everyone in
    screening: Screening | None = None
    # shown to a new arrival while the researcher has closed the study (the live monitor)
    closed_message: str = "This study is not taking new participants right now. Thank you for your interest."
    # the participant's path; without it the study is just the game
    scenes: list[Scene] = Field(default_factory=lambda: [Game(type="game")], min_length=1)

    # filled in by the loader, not by the researcher
    directory: Path = Field(default=Path("."), exclude=True)
    # (condition or None, scene id) -> that game scene with every setting resolved
    games: dict[tuple[str | None, str], GameSpec] = Field(default={}, exclude=True)
    env_files: list[EnvFile] = Field(default=[], exclude=True)

    @field_validator("players")
    @classmethod
    def _players_unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("player ids must be unique")
        return value

    @field_validator("controls")
    @classmethod
    def _keys_non_empty(cls, value: dict[str, Any]) -> dict[str, Any]:
        if not value:
            raise ValueError("controls must map at least one key to an action")
        for key in value:
            if not key:
                raise ValueError("a control key must be a KeyboardEvent.key name such as 'ArrowLeft'")
        return value

    @field_validator("policies")
    @classmethod
    def _policies(cls, value: dict[str, Any]) -> dict[str, Any]:
        parsed = {}
        for name, policy in value.items():
            if not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", name):
                raise ValueError(f"policy name {name!r}: use letters, digits, _ and - (at most 40)")
            try:
                parsed[name] = parse_policy(policy)
            except ValidationError as exc:
                problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
                raise ValueError(f"policy {name!r}: {problems}") from None
            except ValueError as exc:
                raise ValueError(f"policy {name!r}: {exc}") from None
        return parsed

    @field_validator("conditions")
    @classmethod
    def _conditions_unique(cls, value: list[Condition]) -> list[Condition]:
        if len({c.name for c in value}) != len(value):
            raise ValueError("condition names must be unique")
        return value

    def scenes_for(self, condition: str | None, participant_id: str | None = None) -> list:
        """The condition's path; with a participant, in that participant's shuffled order."""
        scenes = self.scenes
        for c in self.conditions:
            if c.name == condition and c.scenes is not None:
                scenes = c.scenes
        if participant_id is None:
            return scenes
        return personal_order(scenes, f"{self.name}/{condition}/{participant_id}")

    def game(self, condition: str | None, scene_id: str | None = None) -> GameSpec:
        """A game scene as the condition plays it; without a scene id, its first game."""
        if scene_id is None:
            scene_id = next(s.id for s in self.scenes_for(condition) if s.type == "game")
        key = (condition if any(c.name == condition for c in self.conditions) else None, scene_id)
        return self.games[key]

    def games_for(self, condition: str | None) -> list[GameSpec]:
        return [self.game(condition, s.id) for s in self.scenes_for(condition) if s.type == "game"]

    @model_validator(mode="after")
    def _scenes(self) -> Experiment:
        finish_scenes(self.scenes)
        for c in self.conditions:
            if c.scenes is not None:
                finish_scenes(c.scenes)
        return self

    @model_validator(mode="after")
    def _resolve_games(self) -> Experiment:
        games = {}
        for condition in [None, *self.conditions]:
            name = condition.name if condition is not None else None
            for scene in self.scenes_for(name):
                if scene.type == "game":
                    games[(name, scene.id)] = resolve_game(self, scene, condition)
        for c in self.conditions:
            paths = {s.id for s in self.scenes_for(c.name)}
            unknown = sorted(set(c.overrides) - {i for i in paths if (c.name, i) in games})
            if unknown:
                raise ValueError(f"condition {c.name!r}: overrides name no game scene of its path: "
                                 + ", ".join(map(repr, unknown)))
        self.games = games
        return self

    @property
    def is_multiplayer(self) -> bool:
        """Some game of the study has more than one player (the page needs the game clock)."""
        return any(g.is_multiplayer for g in self.games.values())

    @property
    def uses_onnx(self) -> bool:
        """Some game seats an ONNX policy (the page then loads onnxruntime-web)."""
        from server.policies.config import uses_onnx

        return uses_onnx(self.policies, {name for g in self.games.values() for name in g.policies_used()})


def _format(path: Path, exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        loc = ".".join(["EXPERIMENT", *(str(p) for p in err["loc"])])
        got = f" (got {err['input']!r})" if "input" in err and not isinstance(err["input"], dict) else ""
        message = err["msg"].removeprefix("Value error, ")
        lines.append(f"{path}: {loc}: {message}{got}" if err["loc"] else f"{path}: {message}")
    return "\n".join(lines)


def check_env_source(path: Path) -> str:
    try:
        source = path.read_text()
    except FileNotFoundError:
        raise ExperimentError(f"{path}: env file not found") from None
    try:
        compile(source, str(path), "exec")
    except SyntaxError as exc:
        raise ExperimentError(f"{path}: line {exc.lineno}: {exc.msg}") from None
    if "create_env" not in source:
        raise ExperimentError(f"{path}: must define create_env(config) returning the env")
    return source


def load_experiment(path: Path) -> Experiment:
    try:
        namespace = runpy.run_path(str(path))
    except SyntaxError as exc:
        raise ExperimentError(f"{path}: line {exc.lineno}: {exc.msg}") from None
    except Exception as exc:  # the researcher's file raised while being read
        raise ExperimentError(f"{path}: raised {type(exc).__name__}: {exc}") from None
    data = namespace.get("EXPERIMENT")
    if not isinstance(data, dict):
        raise ExperimentError(f"{path}: must define EXPERIMENT = {{...}} (a dict)")
    data = {**data, "directory": path.parent}
    data.setdefault("name", path.parent.name)
    try:
        exp = Experiment.model_validate(data)
    except ValidationError as exc:
        raise ExperimentError(_format(path, exc)) from None
    sources: dict[Path, str] = {}
    for spec in exp.games.values():
        if spec.env_path not in sources:
            try:
                sources[spec.env_path] = check_env_source(spec.env_path)
            except ExperimentError as exc:
                raise ExperimentError(f"{path}: scene {spec.scene_id!r}: env {spec.env_rel!r}: {exc}") \
                    from None
        spec.env_source = sources[spec.env_path]
    try:
        exp.env_files = experiment_files(exp.directory, exp.server_only)
        for spec in exp.games.values():
            check_players(spec, exp.directory)
            check_partners_run(spec, exp.policies, exp.directory)
    except GameSpecError as exc:
        raise ExperimentError(f"{path}: {exc}") from None
    return exp


def load_experiments(directory: Path) -> dict[str, Experiment]:
    """All experiments under ``directory``; every broken one is reported at once."""
    found: dict[str, Experiment] = {}
    errors: list[str] = []
    for path in sorted(directory.glob("*/experiment.py")):
        try:
            exp = load_experiment(path)
        except ExperimentError as exc:
            errors.append(str(exc))
            continue
        if exp.name in found:
            errors.append(f"{path}: experiment name {exp.name!r} is already used")
        found[exp.name] = exp
    if errors:
        raise ExperimentError("\n".join(errors))
    if not found:
        raise ExperimentError(f"{directory}: no experiments found (expected */experiment.py)")
    return found
