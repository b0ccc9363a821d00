"""Schemas of the Socket.IO events a page may send. Anything else is rejected."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

ID = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")


INT64 = 2**63 - 1


class Strict(BaseModel):
    # strict: no silent coercion ("7" is not a frame number)
    model_config = ConfigDict(extra="forbid", strict=True)


class ConnectAuth(Strict):
    participant_id: str = ID
    experiment: str = Field(min_length=1, max_length=64)
    url_params: dict[str, str] = Field(default={}, max_length=32)


class EpisodeStart(Strict):
    episode_id: str = ID
    seed: int | None = Field(default=None, ge=-INT64, le=INT64)
    client: dict[str, Any] = {}


class StepRecord(Strict):
    frame: int = Field(ge=0, le=10_000_000)
    actions: dict[str, Any]
    rewards: Any = 0
    done: bool = False
    info: dict[str, Any] = {}
    t_client: float | None = None
    t_sent: float | None = None
    t_worker_start: float | None = None
    t_worker_end: float | None = None
    t_received: float | None = None


class StepBatch(Strict):
    episode_id: str = ID
    records: list[StepRecord] = Field(max_length=2000)


class EpisodeEnd(Strict):
    episode_id: str = ID
    status: Literal["completed", "error", "abandoned"]
    frames: int = Field(ge=0, le=10_000_000)
    total_reward: float = 0.0


class ClientEvent(Strict):
    kind: Literal["worker_error", "page_error", "stage"]
    episode_id: str | None = None
    detail: dict[str, Any] = {}
