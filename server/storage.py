"""Experiment data in SQLite through aiosqlite. Writes are idempotent (a step is keyed
by episode and frame), so a client may resend a batch it is unsure about."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import aiosqlite

SCHEMA = """
PRAGMA journal_mode=WAL;
-- WAL + NORMAL: a commit survives a crash or restart of the server process (what we
-- promise); only an OS crash or power cut could lose the last moments.
PRAGMA synchronous=NORMAL;
CREATE TABLE IF NOT EXISTS participants (
    id TEXT PRIMARY KEY, experiment TEXT NOT NULL, url_params TEXT NOT NULL, created REAL NOT NULL,
    condition TEXT
);
CREATE TABLE IF NOT EXISTS episodes (
    id TEXT PRIMARY KEY, participant_id TEXT NOT NULL REFERENCES participants(id),
    experiment TEXT NOT NULL, seed INTEGER, started REAL NOT NULL, ended REAL,
    status TEXT NOT NULL DEFAULT 'running', frames INTEGER, total_reward REAL, client TEXT
);
CREATE TABLE IF NOT EXISTS steps (
    episode_id TEXT NOT NULL REFERENCES episodes(id), frame INTEGER NOT NULL,
    actions TEXT NOT NULL, rewards TEXT NOT NULL, done INTEGER NOT NULL, info TEXT NOT NULL,
    t_client REAL, t_sent REAL, t_worker_start REAL, t_worker_end REAL, t_received REAL,
    t_server REAL NOT NULL, metrics TEXT,
    PRIMARY KEY (episode_id, frame)
);
CREATE TABLE IF NOT EXISTS progress (
    participant_id TEXT NOT NULL, experiment TEXT NOT NULL, scene_index INTEGER NOT NULL,
    outcome TEXT, updated REAL NOT NULL, PRIMARY KEY (participant_id, experiment)
);
CREATE TABLE IF NOT EXISTS survey_responses (
    participant_id TEXT NOT NULL, experiment TEXT NOT NULL, scene_id TEXT NOT NULL,
    question_id TEXT NOT NULL, answer TEXT NOT NULL, t_server REAL NOT NULL,
    PRIMARY KEY (participant_id, experiment, scene_id, question_id)
);
CREATE TABLE IF NOT EXISTS rooms (
    id TEXT PRIMARY KEY, experiment TEXT NOT NULL, seed INTEGER NOT NULL, players TEXT NOT NULL,
    created REAL NOT NULL, ended REAL, status TEXT NOT NULL, end_frame INTEGER,
    final_hashes TEXT, replay_hash TEXT, desyncs TEXT, inputs TEXT, end_reason TEXT, condition TEXT
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, participant_id TEXT, episode_id TEXT,
    kind TEXT NOT NULL, payload TEXT NOT NULL, t_server REAL NOT NULL
);
"""


# Columns added after a table first shipped: added to older databases on open.
ADDED_COLUMNS = {"steps": ["metrics TEXT"], "rooms": ["end_reason TEXT", "condition TEXT"],
                 "participants": ["condition TEXT"]}


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


_fast_json = json.JSONEncoder(separators=(",", ":")).encode  # per-step columns: the hot path


class Store:
    def __init__(self, path: Path):
        self.path = path
        self.db: aiosqlite.Connection | None = None

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = await aiosqlite.connect(self.path)
        await self.db.executescript(SCHEMA)
        for table, columns in ADDED_COLUMNS.items():
            async with self.db.execute(f"PRAGMA table_info({table})") as cur:
                present = {row[1] for row in await cur.fetchall()}
            for column in columns:
                if column.split()[0] not in present:
                    await self.db.execute(f"ALTER TABLE {table} ADD COLUMN {column}")
        await self.db.commit()

    async def close(self) -> None:
        if self.db is not None:
            await self.db.close()
            self.db = None

    @property
    def conn(self) -> aiosqlite.Connection:
        if self.db is None:
            raise RuntimeError("store is not open")
        return self.db

    async def upsert_participant(self, pid: str, experiment: str, url_params: dict[str, str]) -> None:
        await self.conn.execute(
            "INSERT OR IGNORE INTO participants (id, experiment, url_params, created) VALUES (?,?,?,?)",
            (pid, experiment, _json(url_params), time.time()),
        )
        await self.conn.commit()

    async def start_episode(self, eid: str, pid: str, experiment: str, seed: int | None,
                            client: dict[str, Any]) -> None:
        await self.conn.execute(
            "INSERT OR IGNORE INTO episodes (id, participant_id, experiment, seed, started, client)"
            " VALUES (?,?,?,?,?,?)",
            (eid, pid, experiment, seed, time.time(), _json(client)),
        )
        await self.conn.commit()

    async def episode_owner(self, eid: str) -> str | None:
        async with self.conn.execute("SELECT participant_id FROM episodes WHERE id=?", (eid,)) as cur:
            row = await cur.fetchone()
        return row[0] if row else None

    async def add_steps(self, eid: str, records: list[dict[str, Any]]) -> int:
        now = time.time()
        rows = [
            (eid, r["frame"], _fast_json(r["actions"]), _fast_json(r["rewards"]), int(r["done"]),
             _fast_json(r["info"]), r.get("t_client"), r.get("t_sent"), r.get("t_worker_start"),
             r.get("t_worker_end"), r.get("t_received"), now, _fast_json(r.get("metrics") or {}))
            for r in records
        ]
        # rowcount of this statement, not connection.total_changes: reading the connection
        # from the event loop while aiosqlite's thread runs another statement is unsafe
        # (and would count other participants' rows)
        cur = await self.conn.executemany(
            "INSERT OR IGNORE INTO steps VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
        stored = cur.rowcount
        await cur.close()
        await self.conn.commit()
        return stored

    async def end_episode(self, eid: str, status: str, frames: int, total_reward: float) -> None:
        await self.conn.execute(
            "UPDATE episodes SET ended=?, status=?, frames=?, total_reward=? WHERE id=?",
            (time.time(), status, frames, total_reward, eid),
        )
        await self.conn.commit()

    async def assign_condition(self, pid: str, experiment: str, names: list[str]) -> str:
        """The participant's condition; a newcomer gets the least-used one (ties: the first
        listed), so counts stay balanced. Callers serialise calls per experiment."""
        async with self.conn.execute("SELECT condition FROM participants WHERE id=? AND experiment=?",
                                     (pid, experiment)) as cur:
            row = await cur.fetchone()
        if row and row[0] in names:
            return row[0]
        counts = dict.fromkeys(names, 0)
        async with self.conn.execute("SELECT condition, count(*) FROM participants WHERE experiment=?"
                                     " GROUP BY condition", (experiment,)) as cur:
            for name, count in await cur.fetchall():
                if name in counts:
                    counts[name] = count
        chosen = min(names, key=lambda n: counts[n])
        await self.conn.execute("UPDATE participants SET condition=? WHERE id=? AND experiment=?",
                                (chosen, pid, experiment))
        await self.conn.commit()
        return chosen

    async def get_condition(self, pid: str, experiment: str) -> str | None:
        async with self.conn.execute("SELECT condition FROM participants WHERE id=? AND experiment=?",
                                     (pid, experiment)) as cur:
            row = await cur.fetchone()
        return row[0] if row else None

    async def get_progress(self, pid: str, experiment: str) -> tuple[int, str | None]:
        async with self.conn.execute(
                "SELECT scene_index, outcome FROM progress WHERE participant_id=? AND experiment=?",
                (pid, experiment)) as cur:
            row = await cur.fetchone()
        return (row[0], row[1]) if row else (0, None)

    async def set_progress(self, pid: str, experiment: str, index: int, outcome: str | None,
                           answers: dict[str, Any] | None = None, scene_id: str = "") -> None:
        """Advance a participant and store a survey's answers in one transaction."""
        now = time.time()
        await self.conn.execute(
            "INSERT INTO progress (participant_id, experiment, scene_index, outcome, updated)"
            " VALUES (?,?,?,?,?) ON CONFLICT (participant_id, experiment)"
            " DO UPDATE SET scene_index=excluded.scene_index,"
            " outcome=COALESCE(excluded.outcome, progress.outcome), updated=excluded.updated",
            (pid, experiment, index, outcome, now))
        if answers:
            await self.conn.executemany(
                "INSERT OR REPLACE INTO survey_responses VALUES (?,?,?,?,?,?)",
                [(pid, experiment, scene_id, q, json.dumps(a), now) for q, a in answers.items()])
        await self.conn.commit()

    async def save_room(self, room: dict[str, Any]) -> None:
        """Insert or replace a room's record (called when it starts and when it ends)."""
        await self.conn.execute(
            "INSERT OR REPLACE INTO rooms (id, experiment, seed, players, created, ended, status, end_frame,"
            " final_hashes, replay_hash, desyncs, inputs, end_reason, condition)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (room["id"], room["experiment"], room["seed"], _json(room["players"]), room["created"],
             room.get("ended"), room["status"], room.get("end_frame"), _json(room.get("final_hashes", {})),
             room.get("replay_hash"), _json(room.get("desyncs", [])), _json(room.get("inputs", {})),
             room.get("end_reason"), room.get("condition")),
        )
        await self.conn.commit()

    async def add_event(self, pid: str | None, eid: str | None, kind: str, payload: Any) -> None:
        await self.conn.execute(
            "INSERT INTO events (participant_id, episode_id, kind, payload, t_server) VALUES (?,?,?,?,?)",
            (pid, eid, kind, _json(payload), time.time()),
        )
        await self.conn.commit()
