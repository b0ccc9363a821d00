"""Schemas of the Socket.IO events a page may send. Anything else is rejected."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from pydantic import BaseModel, ConfigDict, Field, field_validator

from server.study.scenes import MAX_QUESTIONS

ID_PATTERN = r"^[A-Za-z0-9_.:-]+$"
ID = Field(min_length=1, max_length=64, pattern=ID_PATTERN)


INT64 = 2**63 - 1


class Strict(BaseModel):
    # strict: no silent coercion ("7" is not a frame number)
    model_config = ConfigDict(extra="forbid", strict=True)


class ConnectAuth(Strict):
    participant_id: str = ID
    experiment: str = Field(min_length=1, max_length=64)
    url_params: dict[str, str] = Field(default={}, max_length=32)


STREAM = Field(default=None, min_length=1, max_length=40, pattern=ID_PATTERN)
SEQ = Field(default=None, ge=1, le=INT64)


class Sequenced(Strict):
    """Data messages carry the page load's stream id and a sequence number: the server
    stores each (participant, stream, seq) once, so a page may resend freely."""
    stream: str | None = STREAM
    seq: int | None = SEQ


class EpisodeResume(Strict):
    """A page reloaded mid-episode asks for what the server has of it, to play on."""
    episode_id: str = ID


class EpisodeStart(Sequenced):
    episode_id: str = ID
    seed: int | None = Field(default=None, ge=-INT64, le=INT64)
    client: dict[str, Any] = {}
    scene_id: str | None = Field(default=None, pattern=r"^[a-z0-9_-]{1,40}$")
    episode_index: int | None = Field(default=None, ge=0, le=100_000)


# The hot path (every step of every participant) is validated by msgspec, not pydantic:
# about 10x less CPU per record, the same strictness (no coercion, unknown fields
# refused, ranges checked).
Frame = Annotated[int, msgspec.Meta(ge=0, le=10_000_000)]


class StepRecord(msgspec.Struct, forbid_unknown_fields=True):
    frame: Frame
    actions: dict[str, Any]
    rewards: Any = 0
    done: bool = False
    info: dict[str, Any] = {}
    t_client: float | None = None
    t_sent: float | None = None
    t_worker_start: float | None = None
    t_worker_end: float | None = None
    t_received: float | None = None
    metrics: dict[str, Any] = {}


class StepBatch(msgspec.Struct, forbid_unknown_fields=True):
    episode_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=ID_PATTERN)]
    records: Annotated[list[StepRecord], msgspec.Meta(max_length=2000)]
    stream: Annotated[str, msgspec.Meta(min_length=1, max_length=40, pattern=ID_PATTERN)] | None = None
    seq: Annotated[int, msgspec.Meta(ge=1, le=INT64)] | None = None


class EpisodeEnd(Sequenced):
    episode_id: str = ID
    status: Literal["completed", "error", "abandoned", "time_limit", "excluded"]
    frames: int = Field(ge=0, le=10_000_000)
    total_reward: float = 0.0


class ClientEvent(Sequenced):
    kind: Literal["worker_error", "page_error", "stage", "focus"]
    episode_id: str | None = None
    detail: dict[str, Any] = {}


class NetShape(Strict):
    delay_ms: float = Field(0.0, ge=0, le=5000)
    jitter_ms: float = Field(0.0, ge=0, le=5000)
    drop: float = Field(0.0, ge=0, le=0.9)


class MpJoin(Strict):
    episode_id: str = ID
    net: NetShape | None = None
    # the game scene joined (a waiting room per scene); None: the study's first game
    scene: str | None = Field(default=None, pattern=r"^[a-z0-9_-]{1,40}$")
    # the page's round trip to the server (median of a few pings just before joining), for
    # latency-aware matching; None: unknown (matched only once the fallback applies)
    rtt_ms: float | None = Field(default=None, ge=0, le=60_000)


def _input_pairs(value: list[list[Any]]) -> list[list[Any]]:
    for pair in value:
        if len(pair) != 2 or type(pair[0]) is not int or not 0 <= pair[0] <= 10_000_000:
            raise ValueError("each input must be [frame, value] with 0 <= frame <= 10000000")
    return value


class InputMsg(msgspec.Struct, forbid_unknown_fields=True):
    """A player's inputs, 30 times a second per player: the relay's hot path, so msgspec."""
    frame: Frame  # the sender's current frame (time sync)
    inputs: Annotated[list[tuple[Frame, Any]], msgspec.Meta(min_length=1, max_length=32)]  # [[frame, input]]
    adv: Annotated[float, msgspec.Meta(ge=-100_000, le=100_000)] = 0.0  # frame advantage (time sync)
    # an AI seat's inputs, sent by the browser hosting it (the room tells who that is)
    seat: Annotated[str, msgspec.Meta(max_length=64)] | None = None


class FetchInputs(Strict):
    from_frame: int = Field(ge=0, le=10_000_000)


class StateHash(Strict):
    frame: int = Field(ge=0, le=10_000_000)
    hash: str = Field(pattern=r"^[0-9a-f]{16}$")
    final: bool = False


class MpRejoin(Strict):
    token: str = Field(min_length=16, max_length=64)
    # the page's own recent inputs: the ones it made while cut off reach the server here
    inputs: list[list[Any]] = Field(default=[], max_length=128)
    from_frame: int = Field(0, ge=0, le=10_000_000)  # send me the others' inputs from here on
    # a reloaded page: it knows nothing of the game, so its own (and its AI seats') recorded
    # inputs come back too, and the resume is recorded as an event
    reload: bool = False

    @field_validator("inputs")
    @classmethod
    def _pairs(cls, value: list[list[Any]]) -> list[list[Any]]:
        return _input_pairs(value)


class MpLeave(Strict):
    reason: Literal["focus_lost", "left"]


class Vitals(Strict):
    """What a playing page last saw of itself, sent with its RTT pings: the live monitor's
    per-seat figures and the in-play checks read it (server/monitor/presence.py)."""
    rtt_ms: float | None = Field(None, ge=0, le=600_000)
    frame: int | None = Field(None, ge=0, le=10_000_000)
    rollbacks: int | None = Field(None, ge=0, le=100_000_000)
    stalls: int | None = Field(None, ge=0, le=100_000_000)
    hidden: bool | None = None
    scene: str | None = Field(None, pattern=r"^[a-z0-9_-]{1,40}$")
    episode_id: str | None = Field(None, min_length=1, max_length=64, pattern=ID_PATTERN)


class Rtt(Strict):
    t: float
    vitals: Vitals | None = None
    # the page's own network shaping (?delay=, when the experiment allows it): the ack is held
    # this long, so a screening ping sees the shaped round trip
    shape_ms: float = Field(0.0, ge=0, le=10_000)


class Hello(Strict):
    # the page load's outbox stream and what it runs on (browser, screen): the sessions table
    stream: str | None = STREAM
    client: dict[str, str | int | float | bool | None] = Field(default={}, max_length=16)


class SceneDone(Sequenced):
    index: int = Field(ge=0, le=1000)
    scene_id: str = Field(min_length=1, max_length=40)
    outcome: str | None = Field(default=None, max_length=40, pattern=r"^[a-z_]+$")
    answers: dict[str, str | int] | None = Field(default=None, max_length=MAX_QUESTIONS)
