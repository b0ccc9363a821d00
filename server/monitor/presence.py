"""Who is connected right now, at which scene, and what their page last reported (its
vitals: RTT, frame, rollbacks, tab hidden) — kept in memory per socket, for the live
monitor and the in-play checks. Nothing here is stored: the database has the record."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Visitor:
    participant_id: str
    experiment: str
    scene_index: int = 0
    scene_id: str | None = None
    arrived: float = field(default_factory=time.time)
    vitals: dict[str, Any] = field(default_factory=dict)
    vitals_at: float = 0.0  # time.time() of the last report


class Presence:
    def __init__(self, clock=time.time) -> None:
        self.clock = clock
        self.visitors: dict[str, Visitor] = {}  # sid -> visitor

    def arrive(self, sid: str, participant_id: str, experiment: str, scene_index: int,
               scene_id: str | None) -> None:
        """A page said hello (a reload is a new socket: the old one left on disconnect)."""
        self.visitors[sid] = Visitor(participant_id, experiment, scene_index, scene_id, self.clock())

    def moved(self, sid: str, scene_index: int, scene_id: str | None) -> None:
        visitor = self.visitors.get(sid)
        if visitor is not None:
            visitor.scene_index, visitor.scene_id = scene_index, scene_id

    def report(self, sid: str, vitals: dict[str, Any]) -> None:
        """The page's latest vitals (sent with its RTT pings)."""
        visitor = self.visitors.get(sid)
        if visitor is not None:
            visitor.vitals = dict(vitals)
            visitor.vitals_at = self.clock()

    def gone(self, sid: str) -> None:
        self.visitors.pop(sid, None)

    def of(self, sid: str) -> Visitor | None:
        return self.visitors.get(sid)

    def in_experiment(self, experiment: str) -> dict[str, Visitor]:
        return {sid: v for sid, v in self.visitors.items() if v.experiment == experiment}
