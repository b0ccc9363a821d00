"""Whether each study takes new arrivals: the researcher closes and reopens it from the
live monitor. The state is the last close/reopen action in the events table, so it
survives a restart without a table of its own."""

from __future__ import annotations

import json
import time

from sqlalchemy import text

from server.data.storage import Store

ACTIONS_SQL = text("SELECT payload FROM events WHERE kind = 'admin_action' ORDER BY id")


class StudyDoors:
    def __init__(self) -> None:
        self.closed: dict[str, float] = {}  # experiment -> when it was closed

    async def load(self, store: Store) -> None:
        async with store.db.connect() as conn:
            rows = (await conn.execute(ACTIONS_SQL)).all()
        for (payload,) in rows:
            action = json.loads(payload)
            if action.get("action") == "close_study":
                self.closed[action["experiment"]] = action.get("at", 0.0)
            elif action.get("action") == "reopen_study":
                self.closed.pop(action["experiment"], None)

    def is_closed(self, experiment: str) -> bool:
        return experiment in self.closed

    def close(self, experiment: str) -> None:
        self.closed.setdefault(experiment, time.time())

    def reopen(self, experiment: str) -> None:
        self.closed.pop(experiment, None)
