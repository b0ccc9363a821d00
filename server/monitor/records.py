"""What the live monitor reads from the database (every few seconds, not every push):
the outcomes so far (server/admin/routes.py read_counts, shared with the dashboard),
recent problems that only the record knows of (worker errors, rooms whose end was a
desync or a replay error) and the researchers' own actions. All of it in one connection of
the store's own engine: nothing is opened per read."""

from __future__ import annotations

import json
import time
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from server.admin.routes import read_counts
from server.data.storage import Store
from server.study.experiment import Experiment

WINDOW_S = 3600.0  # problems of the last hour

WORKER_ERRORS = text(
    "SELECT e.participant_id, e.episode_id, e.payload, e.t_server, p.experiment FROM events e"
    " JOIN participants p ON p.id = e.participant_id"
    " WHERE e.kind = 'worker_error' AND e.t_server >= :since ORDER BY e.id DESC LIMIT 50")
BAD_ROOMS = text(
    "SELECT id, experiment, status, ended, replay_error, desyncs FROM rooms"
    " WHERE status IN ('desync', 'replay_error') AND ended >= :since ORDER BY ended DESC LIMIT 50")
ACTIONS = text("SELECT payload FROM events WHERE kind = 'admin_action' ORDER BY id DESC LIMIT 20")


def _short(value: Any, limit: int = 200) -> str:
    value = str(value)
    return value if len(value) <= limit else value[: limit - 1] + "…"


async def read_records(store: Store, experiments: dict[str, Experiment]) -> dict[str, Any]:
    since = time.time() - WINDOW_S
    counts: dict[str, Any] = {}
    problems: list[dict[str, Any]] = []
    actions: list[dict[str, Any]] = []
    try:
        async with store.reader.connect() as conn:
            counts = await read_counts(conn, experiments)
            errors = (await conn.execute(WORKER_ERRORS, {"since": since})).all()
            for pid, eid, payload, at, experiment in errors:
                detail = json.loads(payload)
                problems.append({"kind": "worker_error", "experiment": experiment, "participant": pid,
                                 "episode": eid, "t": at,
                                 "detail": _short(detail.get("message") or detail.get("error") or detail)})
            for rid, experiment, status, ended, replay_error, desyncs in \
                    (await conn.execute(BAD_ROOMS, {"since": since})).all():
                first = json.loads(desyncs or "[]")
                detail = replay_error if status == "replay_error" else \
                    f"hashes differ at frame {first[0]['frame']}" if first else "final hashes differ"
                problems.append({"kind": status, "experiment": experiment, "room": rid, "t": ended,
                                 "detail": _short(detail)})
            actions = [json.loads(p) for (p,) in (await conn.execute(ACTIONS)).all()]
    except SQLAlchemyError:
        problems.append({"kind": "database", "experiment": None, "t": time.time(),
                         "detail": "the database could not be read"})
    return {"counts": counts, "problems": problems, "actions": actions}
