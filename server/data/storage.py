"""Experiment data through SQLAlchemy Core (async): SQLite (aiosqlite) by default, Postgres
(asyncpg) when the database setting is a ``postgresql://`` URL. One code path and the same
tables for both. Writes are idempotent (a step is keyed by episode and frame), so a client
may resend a batch it is unsure about."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import msgspec
from sqlalchemy import (
    REAL,
    BigInteger,
    Column,
    ForeignKey,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    event,
    inspect,
    text,
)
from sqlalchemy.dialects.postgresql import DOUBLE_PRECISION
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

# SQLite keeps its declared types (INTEGER, REAL, TEXT); Postgres gets 64-bit integers and
# double precision (its REAL is 32-bit: far too coarse for epoch timestamps).
INT = Integer().with_variant(BigInteger(), "postgresql")
FLOAT = REAL().with_variant(DOUBLE_PRECISION(), "postgresql")

metadata = MetaData()
Table("participants", metadata,
      Column("id", Text, primary_key=True), Column("experiment", Text, nullable=False),
      Column("url_params", Text, nullable=False), Column("created", FLOAT, nullable=False),
      Column("condition", Text))
Table("episodes", metadata,
      Column("id", Text, primary_key=True),
      Column("participant_id", Text, ForeignKey("participants.id"), nullable=False),
      Column("experiment", Text, nullable=False), Column("seed", INT),
      Column("started", FLOAT, nullable=False), Column("ended", FLOAT),
      Column("status", Text, nullable=False, server_default="running"),
      Column("frames", INT), Column("total_reward", FLOAT), Column("client", Text),
      # which game block of the study, and which of its episodes (0-based)
      Column("scene_id", Text), Column("episode_index", INT))
STEP_COLUMNS = ("episode_id", "frame", "actions", "rewards", "done", "info", "t_client", "t_sent",
                "t_worker_start", "t_worker_end", "t_received", "t_server", "metrics")
Table("steps", metadata,
      Column("episode_id", Text, ForeignKey("episodes.id"), nullable=False),
      Column("frame", INT, nullable=False),
      Column("actions", Text, nullable=False), Column("rewards", Text, nullable=False),
      Column("done", INT, nullable=False), Column("info", Text, nullable=False),
      *(Column(name, FLOAT) for name in STEP_COLUMNS[6:11]),
      Column("t_server", FLOAT, nullable=False), Column("metrics", Text),
      PrimaryKeyConstraint("episode_id", "frame"))
Table("progress", metadata,
      Column("participant_id", Text, nullable=False), Column("experiment", Text, nullable=False),
      Column("scene_index", INT, nullable=False), Column("outcome", Text),
      Column("updated", FLOAT, nullable=False),
      PrimaryKeyConstraint("participant_id", "experiment"))
Table("survey_responses", metadata,
      *(Column(name, Text, nullable=False) for name in ("participant_id", "experiment", "scene_id",
                                                         "question_id", "answer")),
      Column("t_server", FLOAT, nullable=False),
      PrimaryKeyConstraint("participant_id", "experiment", "scene_id", "question_id"))
Table("rooms", metadata,
      Column("id", Text, primary_key=True), Column("experiment", Text, nullable=False),
      Column("seed", INT, nullable=False), Column("players", Text, nullable=False),
      Column("created", FLOAT, nullable=False), Column("ended", FLOAT),
      Column("status", Text, nullable=False),
      Column("end_frame", INT), Column("final_hashes", Text), Column("replay_hash", Text),
      Column("desyncs", Text), Column("inputs", Text), Column("end_reason", Text), Column("condition", Text),
      Column("scene_id", Text),
      # why the server's replay could not run (status replay_error; the hashes were not compared)
      Column("replay_error", Text))
Table("events", metadata,
      Column("id", INT, primary_key=True, autoincrement=True), Column("participant_id", Text),
      Column("episode_id", Text), Column("kind", Text, nullable=False),
      Column("payload", Text, nullable=False),
      Column("t_server", FLOAT, nullable=False),
      sqlite_autoincrement=True)

# Data messages the server has stored, by the page load (stream) and sequence number
# that sent them: a resend of one of them is acknowledged and changes nothing.
Table("receipts", metadata,
      Column("participant_id", Text, nullable=False), Column("stream", Text, nullable=False),
      Column("seq", INT, nullable=False), Column("t_server", FLOAT, nullable=False),
      PrimaryKeyConstraint("participant_id", "stream", "seq"))

# One row per page load (its outbox stream): when, and with which browser and screen.
Table("sessions", metadata,
      Column("participant_id", Text, nullable=False), Column("experiment", Text, nullable=False),
      Column("stream", Text, nullable=False), Column("started", FLOAT, nullable=False),
      Column("client", Text, nullable=False),
      PrimaryKeyConstraint("participant_id", "stream"))

# Columns added after a table first shipped: added to older databases on open.
ADDED_COLUMNS = {"steps": ["metrics"], "rooms": ["end_reason", "condition", "scene_id", "replay_error"],
                 "participants": ["condition"], "episodes": ["scene_id", "episode_index"]}

# Bound parameters in one statement: Postgres allows 32767; SQLite >= 3.32 allows 32766
# (older SQLite: 999).
MAX_PARAMS = 32_000 if sqlite3.sqlite_version_info >= (3, 32) else 999


def database_url(database: str | Path) -> URL:
    """A filesystem path (SQLite) or a database URL, translated to the async driver:
    ``postgresql://user@host:5432/db`` -> postgresql+asyncpg, ``sqlite:///file`` -> sqlite+aiosqlite."""
    raw = str(database)
    if "://" not in raw:
        return URL.create("sqlite+aiosqlite", database=str(Path(raw).expanduser().resolve()))
    url = make_url(raw)
    backend = url.get_backend_name()
    if backend in ("postgresql", "postgres"):
        return url.set(drivername="postgresql+asyncpg")
    if backend == "sqlite":
        return url.set(drivername="sqlite+aiosqlite")
    raise ValueError(f"database {url.render_as_string(hide_password=True)!r}: "
                     "use a SQLite file path or a postgresql:// URL")


def is_url(database: str | Path) -> bool:
    return "://" in str(database)


def create_engine(database: str | Path, readonly: bool = False) -> AsyncEngine:
    """The async engine for a database setting, shared by the server and the export
    (``readonly``: never creates or changes anything)."""
    url = database_url(database)
    if url.get_backend_name() != "sqlite":
        return create_async_engine(url, execution_options={"postgresql_readonly": True} if readonly else {})
    if readonly:
        uri = url.set(database=f"file:{url.database}", query={"mode": "ro", "uri": "true"})
        return create_async_engine(uri)
    if url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    # one connection: SQLite serialises writers anyway, and a second writer would only wait
    engine = create_async_engine(url, pool_size=1, max_overflow=0)

    @event.listens_for(engine.sync_engine, "connect")
    def _pragmas(dbapi_connection, _record) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # WAL + NORMAL: a commit survives a crash or restart of the server process (what we
        # promise); only an OS crash or power cut could lose the last moments.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    return engine


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


_encode = msgspec.json.encode


def _fast_json(value: Any) -> str:
    """Per-step JSON columns (the ingest hot path): msgspec, about 5x the stdlib's speed."""
    return _encode(value).decode()


def _placeholders(paramstyle: str, rows: int, columns: int) -> str:
    if paramstyle in ("qmark", "format"):
        mark = "?" if paramstyle == "qmark" else "%s"
        row = "(" + ",".join([mark] * columns) + ")"
        return ",".join([row] * rows)
    if paramstyle in ("numeric", "numeric_dollar"):
        prefix = "$" if paramstyle == "numeric_dollar" else ":"
        return ",".join("(" + ",".join(f"{prefix}{r * columns + c + 1}" for c in range(columns)) + ")"
                        for r in range(rows))
    raise RuntimeError(f"unsupported DBAPI paramstyle {paramstyle!r}")


ADD_SESSION = text("INSERT INTO sessions (participant_id, experiment, stream, started, client)"
                   " VALUES (:pid, :e, :stream, :now, :client) ON CONFLICT DO NOTHING")
UPSERT_PARTICIPANT = text(
    "INSERT INTO participants (id, experiment, url_params, created) VALUES (:id, :e, :params, :now)"
    " ON CONFLICT DO NOTHING")
START_EPISODE = text(
    "INSERT INTO episodes (id, participant_id, experiment, seed, started, client, scene_id, episode_index)"
    " VALUES (:id, :pid, :e, :seed, :now, :client, :scene, :index) ON CONFLICT DO NOTHING")
EPISODE_OWNER = text("SELECT participant_id FROM episodes WHERE id = :id")
EPISODE_FOR_RESUME = text("SELECT seed, status FROM episodes WHERE id = :id")
EPISODE_ACTIONS = text("SELECT frame, actions, rewards FROM steps WHERE episode_id = :id ORDER BY frame")
# an episode the server ended with ``excluded`` (in-play screening) keeps that status
END_EPISODE = text("UPDATE episodes SET ended = :now,"
                   " status = CASE WHEN status = 'excluded' THEN status ELSE :status END,"
                   " frames = :frames, total_reward = :reward WHERE id = :id")
EXCLUDE_EPISODE = text("UPDATE episodes SET ended = :now, status = 'excluded',"
                       " frames = COALESCE(:frames, frames) WHERE id = :id")
GET_CONDITION = text("SELECT condition FROM participants WHERE id = :pid AND experiment = :e")
CONDITION_COUNTS = text("SELECT condition, count(*) FROM participants WHERE experiment = :e"
                        " GROUP BY condition")
SET_CONDITION = text("UPDATE participants SET condition = :c WHERE id = :pid AND experiment = :e")
GET_PROGRESS = text("SELECT scene_index, outcome FROM progress"
                    " WHERE participant_id = :pid AND experiment = :e")
SET_PROGRESS = text(
    "INSERT INTO progress (participant_id, experiment, scene_index, outcome, updated)"
    " VALUES (:pid, :e, :index, :outcome, :now) ON CONFLICT (participant_id, experiment)"
    " DO UPDATE SET scene_index = excluded.scene_index,"
    " outcome = COALESCE(excluded.outcome, progress.outcome), updated = excluded.updated")
SAVE_ANSWER = text(
    "INSERT INTO survey_responses (participant_id, experiment, scene_id, question_id, answer, t_server)"
    " VALUES (:pid, :e, :scene, :q, :a, :now) ON CONFLICT (participant_id, experiment, scene_id, question_id)"
    " DO UPDATE SET answer = excluded.answer, t_server = excluded.t_server")
ROOM_COLUMNS = ("id", "experiment", "seed", "players", "created", "ended", "status", "end_frame",
                "final_hashes", "replay_hash", "desyncs", "inputs", "end_reason", "condition", "scene_id",
                "replay_error")
SAVE_ROOM = text(
    f"INSERT INTO rooms ({', '.join(ROOM_COLUMNS)}) VALUES ({', '.join(':' + c for c in ROOM_COLUMNS)})"
    f" ON CONFLICT (id) DO UPDATE SET {', '.join(f'{c} = excluded.{c}' for c in ROOM_COLUMNS[1:])}")
HAS_SESSION = text("SELECT 1 FROM sessions WHERE participant_id = :pid AND experiment = :e LIMIT 1")
HAS_RECEIPT = text("SELECT 1 FROM receipts WHERE participant_id = :pid AND stream = :stream AND seq = :seq")
ADD_RECEIPT = text("INSERT INTO receipts (participant_id, stream, seq, t_server)"
                   " VALUES (:pid, :stream, :seq, :now) ON CONFLICT DO NOTHING")
ADD_EVENT = text("INSERT INTO events (participant_id, episode_id, kind, payload, t_server)"
                 " VALUES (:pid, :eid, :kind, :payload, :now)")


class Store:
    def __init__(self, database: str | Path):
        self.database = database
        self.engine: AsyncEngine | None = None
        self._reader: AsyncEngine | None = None
        self._insert_steps: dict[int, str] = {}  # rows per statement -> driver SQL

    @property
    def path(self) -> Path | None:
        """The SQLite file (None for a server database)."""
        return None if is_url(self.database) else Path(self.database)

    async def open(self) -> None:
        engine = create_engine(self.database)
        try:
            async with engine.begin() as conn:
                await conn.run_sync(metadata.create_all)
                await conn.run_sync(_add_missing_columns)
        except BaseException:
            await engine.dispose()
            raise
        self.engine = engine
        # SQLite's writer has one connection: reads that need not write (the monitor's counts
        # every few seconds) get their own read-only one, so writes never wait behind them (WAL)
        path = self.path
        if path is not None and str(path) != ":memory:":
            self._reader = create_engine(self.database, readonly=True)
        self._rows_per_insert = MAX_PARAMS // len(STEP_COLUMNS)

    async def close(self) -> None:
        if self._reader is not None:
            await self._reader.dispose()
            self._reader = None
        if self.engine is not None:
            await self.engine.dispose()
            self.engine = None

    @property
    def reader(self) -> AsyncEngine:
        """For reads only: a read-only connection of its own on a SQLite file, else `db`."""
        return self._reader or self.db

    @property
    def db(self) -> AsyncEngine:
        if self.engine is None:
            raise RuntimeError("store is not open")
        return self.engine

    async def _write(self, statement, params) -> None:
        async with self.db.begin() as conn:
            await conn.execute(statement, params)

    async def _first(self, statement, params) -> tuple | None:
        async with self.db.connect() as conn:
            return (await conn.execute(statement, params)).first()

    async def upsert_participant(self, pid: str, experiment: str, url_params: dict[str, str]) -> None:
        await self._write(UPSERT_PARTICIPANT, {"id": pid, "e": experiment, "params": _json(url_params),
                                               "now": time.time()})

    async def start_episode(self, eid: str, pid: str, experiment: str, seed: int | None,
                            client: dict[str, Any], scene_id: str | None = None,
                            episode_index: int | None = None) -> None:
        await self._write(START_EPISODE, {"id": eid, "pid": pid, "e": experiment, "seed": seed,
                                          "now": time.time(), "client": _json(client),
                                          "scene": scene_id, "index": episode_index})

    async def episode_for_resume(self, eid: str) -> tuple[Any, str, list[tuple[int, Any, Any]]] | None:
        """(seed, status, [(frame, actions, rewards)]) of an episode, for a reloaded page."""
        async with self.db.connect() as conn:
            row = (await conn.execute(EPISODE_FOR_RESUME, {"id": eid})).first()
            if row is None:
                return None
            steps = (await conn.execute(EPISODE_ACTIONS, {"id": eid})).all()
        return row[0], row[1], [(f, json.loads(a), json.loads(r)) for f, a, r in steps]

    async def episode_owner(self, eid: str) -> str | None:
        row = await self._first(EPISODE_OWNER, {"id": eid})
        return row[0] if row else None

    def _insert_sql(self, rows: int) -> str:
        sql = self._insert_steps.get(rows)
        if sql is None:
            if len(self._insert_steps) >= 64:
                self._insert_steps.clear()
            values = _placeholders(self.db.dialect.paramstyle, rows, len(STEP_COLUMNS))
            sql = self._insert_steps[rows] = (f"INSERT INTO steps ({', '.join(STEP_COLUMNS)}) VALUES {values}"
                                              " ON CONFLICT (episode_id, frame) DO NOTHING")
        return sql

    async def add_steps(self, eid: str, records: list[dict[str, Any]]) -> int:
        """Store a batch; returns how many rows were new (a resent frame is ignored).
        The hot path: one multi-row INSERT per chunk, straight to the driver (SQLAlchemy's
        per-row parameter processing would cost more than the insert itself)."""
        if not records:
            return 0
        now = time.time()
        params: list[Any] = []
        add = params.extend
        for r in records:
            add((eid, r["frame"], _fast_json(r["actions"]), _fast_json(r["rewards"]), int(r["done"]),
                 _fast_json(r["info"]), r.get("t_client"), r.get("t_sent"), r.get("t_worker_start"),
                 r.get("t_worker_end"), r.get("t_received"), now, _fast_json(r.get("metrics") or {})))
        step, width, stored = self._rows_per_insert, len(STEP_COLUMNS), 0
        async with self.db.begin() as conn:
            for start in range(0, len(records), step):
                rows = min(step, len(records) - start)
                # rowcount of this statement: rows actually inserted (conflicts excluded), on both
                # SQLite and Postgres, and never other participants' rows
                result = await conn.exec_driver_sql(
                    self._insert_sql(rows), tuple(params[start * width:(start + rows) * width]))
                stored += result.rowcount
        return stored

    async def end_episode(self, eid: str, status: str, frames: int, total_reward: float) -> None:
        await self._write(END_EPISODE, {"now": time.time(), "status": status, "frames": frames,
                                        "reward": total_reward, "id": eid})

    async def exclude_episode(self, eid: str, frames: int | None) -> None:
        """The server ended the episode: its participant was excluded while playing it."""
        await self._write(EXCLUDE_EPISODE, {"now": time.time(), "frames": frames, "id": eid})

    async def assign_condition(self, pid: str, experiment: str, names: list[str]) -> str:
        """The participant's condition; a newcomer gets the least-used one (ties: the first
        listed), so counts stay balanced. Callers serialise calls per experiment."""
        async with self.db.begin() as conn:
            row = (await conn.execute(GET_CONDITION, {"pid": pid, "e": experiment})).first()
            if row and row[0] in names:
                return row[0]
            counts = dict.fromkeys(names, 0)
            for name, count in await conn.execute(CONDITION_COUNTS, {"e": experiment}):
                if name in counts:
                    counts[name] = count
            chosen = min(names, key=lambda n: counts[n])
            await conn.execute(SET_CONDITION, {"c": chosen, "pid": pid, "e": experiment})
        return chosen

    async def get_condition(self, pid: str, experiment: str) -> str | None:
        row = await self._first(GET_CONDITION, {"pid": pid, "e": experiment})
        return row[0] if row else None

    async def get_progress(self, pid: str, experiment: str) -> tuple[int, str | None]:
        row = await self._first(GET_PROGRESS, {"pid": pid, "e": experiment})
        return (row[0], row[1]) if row else (0, None)

    async def set_progress(self, pid: str, experiment: str, index: int, outcome: str | None,
                           answers: dict[str, Any] | None = None, scene_id: str = "") -> None:
        """Advance a participant and store a survey's answers in one transaction."""
        now = time.time()
        async with self.db.begin() as conn:
            await conn.execute(SET_PROGRESS, {"pid": pid, "e": experiment, "index": index, "outcome": outcome,
                                              "now": now})
            if answers:
                await conn.execute(SAVE_ANSWER, [
                    {"pid": pid, "e": experiment, "scene": scene_id, "q": q, "a": json.dumps(a), "now": now}
                    for q, a in answers.items()])

    async def save_room(self, room: dict[str, Any]) -> None:
        """Insert or replace a room's record (called when it starts and when it ends)."""
        await self._write(SAVE_ROOM, {
            "id": room["id"], "experiment": room["experiment"], "seed": room["seed"],
            "players": _json(room["players"]), "created": room["created"], "ended": room.get("ended"),
            "status": room["status"], "end_frame": room.get("end_frame"),
            "final_hashes": _json(room.get("final_hashes", {})), "replay_hash": room.get("replay_hash"),
            "desyncs": _json(room.get("desyncs", [])), "inputs": _json(room.get("inputs", {})),
            "end_reason": room.get("end_reason"), "condition": room.get("condition"),
            "scene_id": room.get("scene_id"), "replay_error": room.get("replay_error")})

    async def add_event(self, pid: str | None, eid: str | None, kind: str, payload: Any) -> None:
        await self._write(ADD_EVENT, {"pid": pid, "eid": eid, "kind": kind, "payload": _json(payload),
                                      "now": time.time()})

    async def add_session(self, pid: str, experiment: str, stream: str, client: dict[str, Any]) -> None:
        await self._write(ADD_SESSION, {"pid": pid, "e": experiment, "stream": stream, "now": time.time(),
                                        "client": _json(client)})

    async def has_session(self, pid: str, experiment: str) -> bool:
        """Whether this participant has loaded a page of the study before (said hello)."""
        return await self._first(HAS_SESSION, {"pid": pid, "e": experiment}) is not None

    async def has_receipt(self, pid: str, stream: str, seq: int) -> bool:
        return await self._first(HAS_RECEIPT, {"pid": pid, "stream": stream, "seq": seq}) is not None

    async def add_receipt(self, pid: str, stream: str, seq: int) -> None:
        await self._write(ADD_RECEIPT, {"pid": pid, "stream": stream, "seq": seq, "now": time.time()})


def _add_missing_columns(conn) -> None:
    """Bring an older database up to date: add the columns that shipped later."""
    inspector = inspect(conn)
    for table, names in ADDED_COLUMNS.items():
        present = {c["name"] for c in inspector.get_columns(table)}
        for name in names:
            if name not in present:
                column = metadata.tables[table].c[name]
                conn.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN {name} "
                                     f"{column.type.compile(dialect=conn.dialect)}")
