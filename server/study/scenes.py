"""The participant's path through a study: an ordered list of scenes. Each is a plain
dict in the experiment file, e.g. ``{"type": "consent", "html": "..."}``; a game scene
plays an env, with its own settings or the experiment's top-level ones."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path
from typing import Annotated, Any, Literal

import markdown
from pydantic import BaseModel, ConfigDict, Field, model_validator

SCENE_ID = Field(default="", pattern=r"^[a-z0-9_-]{0,40}$")


class SceneBase(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = SCENE_ID  # defaults to "<type>-<position>"
    # "markdown": the scene's text fields (html, pages) are Markdown, turned into HTML here
    format: Literal["html", "markdown"] = "html"
    # scenes naming the same shuffle group trade places, in an order drawn per participant
    shuffle: str | None = Field(default=None, pattern=r"^[a-z0-9_-]{1,40}$")

    @model_validator(mode="after")
    def _render_markdown(self):
        if self.format == "markdown":
            for name in ("html", "pages"):
                value = getattr(self, name, None)
                if isinstance(value, str):
                    setattr(self, name, markdown.markdown(value))
                elif isinstance(value, list):
                    setattr(self, name, [markdown.markdown(v) for v in value])
            self.format = "html"  # rendered once; a re-validation must not render again
        return self


class Consent(SceneBase):
    type: Literal["consent"]
    html: str = Field(min_length=1)
    agree: str = "I agree"
    decline: str = "I do not agree"
    decline_message: str = "You chose not to take part. Thank you for your time — you may close this page."


class Instructions(SceneBase):
    type: Literal["instructions"]
    pages: list[str] = Field(min_length=1)  # HTML, one page each, with a Next button


class Game(SceneBase):
    """A game block. Every key left out comes from the experiment's top-level key of the
    same name (server/study/games.py), so a one-game experiment needs none of them."""

    type: Literal["game"]
    env: Path | None = None
    env_config: dict[str, Any] | None = None
    players: list[str] | None = Field(default=None, min_length=1, max_length=16)
    episodes: int = Field(1, ge=1, le=1000)
    max_steps: int | None = Field(default=None, ge=1)
    time_limit: float | None = Field(default=None, gt=0)  # seconds for the whole scene
    fps: int | None = Field(default=None, ge=1, le=120)
    controls: dict[str, Any] | None = Field(default=None, min_length=1)
    default_action: Any = None
    start_key: str | None = None
    auto_start: bool | None = None
    instructions: str | None = None
    multiplayer: dict[str, Any] | None = None  # keys refining the experiment's multiplayer settings
    # shown after every episode but the last; {episode} {episodes} {score} {key} are filled in
    between_episodes: str = "Episode {episode} of {episodes} done: score {score}. Press {key} for the next."
    auto_advance: float | None = Field(default=None, ge=0)  # seconds before the next episode starts by itself
    # a multiplayer scene right after another keeps the same partners unless rematch is true
    rematch: bool = False
    # seats played by AI partners: {"p1": "<policy name>"} (server/policies/)
    partners: dict[str, str] | None = None


MAX_QUESTIONS = 200  # per survey


class Question(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=r"^[A-Za-z0-9_]{1,40}$")
    kind: Literal["likert", "choice", "text"]
    prompt: str = Field(min_length=1)
    options: list[str] = []  # choice options; likert labels (default 1..7)
    required: bool = True

    @model_validator(mode="after")
    def _options(self) -> Question:
        if self.kind == "choice" and len(self.options) < 2:
            raise ValueError(f"question {self.id!r}: a choice question needs at least 2 options")
        if self.kind == "likert" and not self.options:
            self.options = [str(i) for i in range(1, 8)]
        return self


class Survey(SceneBase):
    type: Literal["survey"]
    title: str = ""
    # at most what one scene_done message may carry (server/transport/events.py SceneDone)
    questions: list[Question] = Field(min_length=1, max_length=MAX_QUESTIONS)

    @model_validator(mode="after")
    def _unique(self) -> Survey:
        ids = [q.id for q in self.questions]
        if len(set(ids)) != len(ids):
            raise ValueError("question ids must be unique within a survey")
        return self


class End(SceneBase):
    type: Literal["end"]
    html: str = "Thank you for taking part!"
    completion_code: str | None = None
    # may contain {PROLIFIC_PID}, {STUDY_ID}, {SESSION_ID}, {participant_id}, {completion_code}
    redirect: str | None = None
    redirect_after: float | None = Field(default=5.0, ge=0)  # seconds; None: only a link


Scene = Annotated[Consent | Instructions | Game | Survey | End, Field(discriminator="type")]


def finish_scenes(scenes: list) -> list:
    """Give every scene an id and check the path makes sense."""
    seen = set()
    for i, scene in enumerate(scenes):
        if not scene.id:
            scene.id = f"{scene.type}-{i}"
        if scene.id in seen:
            raise ValueError(f"scene id {scene.id!r} is used twice")
        seen.add(scene.id)
    if any(s.type == "end" and s.shuffle for s in scenes):
        raise ValueError("the end scene cannot be in a shuffle group")
    if sum(s.type == "end" for s in scenes) > 1 or any(s.type == "end" for s in scenes[:-1]):
        raise ValueError("an end scene may only be the last scene")
    if not any(s.type == "game" for s in scenes):
        raise ValueError("the scenes must include a game scene")
    return scenes


def personal_order(scenes: list, key: str) -> list:
    """The path one participant walks: scenes sharing a shuffle group trade places in an
    order drawn from `key` (experiment, condition and participant), the same at every
    visit, so a reload resumes the same path without storing it."""
    groups: dict[str, list[int]] = {}
    for i, scene in enumerate(scenes):
        if scene.shuffle:
            groups.setdefault(scene.shuffle, []).append(i)
    if not groups:
        return scenes
    path = list(scenes)
    for name, positions in sorted(groups.items()):
        rng = random.Random(hashlib.sha256(f"{key}/{name}".encode()).digest())
        members = [scenes[i] for i in positions]
        rng.shuffle(members)
        for i, scene in zip(positions, members, strict=True):
            path[i] = scene
    return path
