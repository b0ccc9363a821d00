"""The Store on both backends through the same code: SQLite (a file) and a real Postgres
server started for this module (tests/postgres.py; missing binaries fail, never skip)."""

from __future__ import annotations

import asyncio
import sqlite3

import pyarrow.parquet as pq
import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from server.admin import routes as admin_routes
from server.data import storage
from server.data.export import export, queries
from server.data.storage import Store, database_url
from server.monitor.records import read_records
from server.study.experiment import load_experiment
from tests.postgres import query_url
from tests.servers import write_experiment
from tests.unit.test_export import assert_exported, fill


@pytest.fixture
def database(any_database):
    return any_database


def rows(database, sql: str, *args) -> list[tuple]:
    """Read back through the plain driver (sqlite3 / asyncpg), not through the Store."""
    if "://" in str(database):
        return query_url(str(database), sql, *args)
    with sqlite3.connect(database) as conn:
        return conn.execute(sql, args).fetchall()


def steps(frames, **extra) -> list[dict]:
    return [{"frame": f, "actions": {"p0": "left"}, "rewards": {"p0": f % 3}, "done": False,
             "info": {"f": f, "s": "ü,\"\n\u0000"}, **extra} for f in frames]


async def opened(database) -> Store:
    store = Store(database)
    await store.open()
    await store.upsert_participant("p1", "exp", {"src": "x"})
    await store.start_episode("e1", "p1", "exp", 2**40, {"ua": "test"})
    return store


def test_database_setting_becomes_an_async_driver_url(tmp_path):
    assert database_url(tmp_path / "a.sqlite").render_as_string() == f"sqlite+aiosqlite:///{tmp_path}/a.sqlite"
    assert database_url("postgresql://u:pw@h:5433/db").render_as_string(hide_password=False) == \
        "postgresql+asyncpg://u:pw@h:5433/db"
    assert database_url("postgres://u@h/db").drivername == "postgresql+asyncpg"
    assert database_url("postgresql+asyncpg://u@h/db").drivername == "postgresql+asyncpg"
    assert database_url(f"sqlite:///{tmp_path}/b.sqlite").drivername == "sqlite+aiosqlite"
    with pytest.raises(ValueError, match="postgresql://"):
        database_url("mysql://u:secret@h/db")
    with pytest.raises(ValueError) as err:
        database_url("mysql://u:secret@h/db")
    assert "secret" not in str(err.value)


@pytest.mark.asyncio
async def test_steps_are_stored_once_and_add_steps_counts_only_new_rows(database):
    store = await opened(database)
    try:
        assert await store.add_steps("e1", steps(range(30, 60))) == 30  # out of order
        assert await store.add_steps("e1", steps(range(0, 30))) == 30
        assert await store.add_steps("e1", steps(range(0, 30))) == 0  # resent
        assert await store.add_steps("e1", steps(range(50, 90))) == 30  # overlapping
        assert await store.add_steps("e1", steps([90, 91, 90, 91, 92])) == 3  # repeats inside one batch
        assert await store.add_steps("e1", []) == 0
        big = steps(range(1000, 6000))  # more rows than one statement's parameter limit holds
        assert await store.add_steps("e1", big) == 5000
        assert await store.add_steps("e1", steps(range(5990, 6010))) == 10
    finally:
        await store.close()
    stored = rows(database, "SELECT frame FROM steps WHERE episode_id = ? ORDER BY frame", "e1")
    frames = [f for (f,) in stored]
    assert frames == list(range(93)) + list(range(1000, 6010))
    info, t_server = rows(database, "SELECT info, t_server FROM steps WHERE frame = 5")[0]
    # compact JSON, UTF-8 kept as is (msgspec), control characters escaped
    assert info == '{"f":5,"s":"\u00fc,\\"\\n\\u0000"}'
    assert isinstance(t_server, float) and t_server > 1.7e9


@pytest.mark.asyncio
async def test_concurrent_batches_from_many_participants_each_get_their_own_count(database):
    store = Store(database)
    await store.open()
    try:
        async def one(i: int) -> list[int]:
            await store.upsert_participant(f"p{i}", "exp", {})
            await store.start_episode(f"e{i}", f"p{i}", "exp", i, {})
            return [await store.add_steps(f"e{i}", steps(range(k * 50, (k + 2) * 50))) for k in range(8)]

        counts = await asyncio.gather(*[one(i) for i in range(12)])
    finally:
        await store.close()
    assert counts == [[100] + [50] * 7] * 12
    assert rows(database, "SELECT count(*) FROM steps") == [(12 * 450,)]


@pytest.mark.asyncio
async def test_timestamps_and_large_integers_keep_full_precision(database):
    store = await opened(database)
    try:
        await store.add_steps("e1", steps([0], t_client=1732560000123.456, t_sent=1732560000123.457))
        await store.end_episode("e1", "completed", 1, 0.1 + 0.2)
    finally:
        await store.close()
    assert rows(database, "SELECT t_client, t_sent FROM steps") == [(1732560000123.456, 1732560000123.457)]
    assert rows(database, "SELECT seed, status, frames, total_reward FROM episodes") == \
        [(2**40, "completed", 1, 0.1 + 0.2)]


@pytest.mark.asyncio
async def test_progress_survey_answers_conditions_rooms_and_events(database):
    store = await opened(database)
    try:
        assert await store.episode_owner("e1") == "p1" and await store.episode_owner("nope") is None
        assert await store.get_progress("p1", "exp") == (0, None)
        await store.set_progress("p1", "exp", 1, "agreed")
        await store.set_progress("p1", "exp", 2, None, {"fun": "5", "note": "a\nb"}, "survey-1")
        assert await store.get_progress("p1", "exp") == (2, "agreed")  # outcome kept
        await store.set_progress("p1", "exp", 2, None, {"fun": "4"}, "survey-1")  # an answer replaced
        names = ["a", "b", "c"]
        for i in range(2, 6):
            await store.upsert_participant(f"p{i}", "exp", {})
        got = [await store.assign_condition(f"p{i}", "exp", names) for i in range(1, 6)]
        assert got == ["a", "b", "c", "a", "b"]
        assert await store.assign_condition("p3", "exp", names) == "c"  # kept
        assert await store.get_condition("p3", "exp") == "c"
        assert await store.get_condition("zz", "exp") is None
        room = {"id": "r1", "experiment": "exp", "seed": 7, "players": ["p1", "p2"], "created": 1.5,
                "status": "running"}
        await store.save_room(room)
        await store.save_room({**room, "status": "completed", "ended": 9.5, "end_frame": 300,
                               "final_hashes": {"p1": "ab"}, "condition": "a"})
        await store.add_event("p1", "e1", "focus", {"hidden": True})
        await store.add_event(None, None, "desync", {"room": "r1", "frame": 3})
        await store.upsert_participant("p1", "exp", {"src": "changed"})  # first visit wins
    finally:
        await store.close()
    answers = "SELECT scene_id, question_id, answer FROM survey_responses ORDER BY question_id"
    assert rows(database, answers) == [("survey-1", "fun", '"4"'), ("survey-1", "note", '"a\\nb"')]
    assert rows(database, "SELECT status, ended, end_frame, final_hashes, condition FROM rooms") == \
        [("completed", 9.5, 300, '{"p1":"ab"}', "a")]
    assert rows(database, "SELECT id, kind, payload FROM events ORDER BY id") == \
        [(1, "focus", '{"hidden":true}'), (2, "desync", '{"frame":3,"room":"r1"}')]
    assert rows(database, "SELECT url_params FROM participants WHERE id = 'p1'") == [('{"src":"x"}',)]


@pytest.mark.asyncio
async def test_reopening_keeps_everything_and_stays_idempotent(database):
    store = await opened(database)
    await store.add_steps("e1", steps(range(10)))
    await store.close()
    again = Store(database)
    await again.open()
    try:
        assert await again.add_steps("e1", steps(range(5, 15))) == 5
        assert await again.episode_owner("e1") == "p1"
    finally:
        await again.close()
    assert rows(database, "SELECT count(*) FROM steps") == [(15,)]


def test_export_round_trip_exported_rows_equal_stored_rows(database, tmp_path):
    exp = load_experiment(write_experiment(tmp_path / "exps", "study") / "experiment.py")
    asyncio.run(fill(database, "study"))

    async def desync_event():  # an event found through its room, not its participant
        store = Store(database)
        await store.open()
        await store.save_room({"id": "r9", "experiment": "study", "seed": 1, "players": ["p1"],
                               "created": 2.0, "status": "completed"})
        await store.add_event(None, None, "desync", {"room": "r9"})
        await store.add_event(None, None, "desync", {"room": "elsewhere"})
        await store.close()

    asyncio.run(desync_event())
    manifest = export(database, exp, tmp_path / "out")
    dialect = "postgresql" if "://" in str(database) else "sqlite"
    for table, query in queries(dialect).items():
        stored = rows(database, query.replace(":e", "?"), *(["study"] * query.count(":e")))
        assert_exported(tmp_path / "out", manifest, table, stored)
    assert manifest["counts"]["steps"] == 100 and manifest["counts"]["participants"] == 1
    assert manifest["counts"]["events"] == 1 and manifest["counts"]["rooms"] == 1
    schema = pq.read_schema(tmp_path / "out" / "steps.parquet")
    assert [str(schema.field(c).type) for c in ("frame", "t_server", "info")] == ["int64", "double", "string"]


@pytest.mark.asyncio
async def test_the_monitor_reads_the_record_through_the_stores_own_engine(database, tmp_path, monkeypatch):
    """Every few seconds: counts, problems and actions in one connection of the store's
    engine, never an engine of its own (the dashboard's study_counts opens one per request)."""
    exp = load_experiment(write_experiment(tmp_path / "exps", "exp") / "experiment.py")
    store = await opened(database)
    try:
        await store.end_episode("e1", "completed", 3, 1.0)
        await store.add_event("p1", "e1", "worker_error", {"message": "boom"})
        await store.add_event(None, None, "admin_action", {"action": "close_study"})

        def no_new_engine(*args, **kwargs):
            raise AssertionError("the monitor opened a database engine of its own")

        monkeypatch.setattr(admin_routes, "create_engine", no_new_engine)
        monkeypatch.setattr(storage, "create_engine", no_new_engine)
        records = await read_records(store, {"exp": exp})
    finally:
        await store.close()
    counts = records["counts"]["exp"]
    assert (counts["participants"], counts["episodes"], counts["episodes_completed"]) == (1, 1, 1)
    assert [(p["kind"], p["participant"], p["detail"]) for p in records["problems"]] == [
        ("worker_error", "p1", "boom")]
    assert records["actions"] == [{"action": "close_study"}]
    monkeypatch.undo()
    assert await admin_routes.study_counts(database, {"exp": exp}) == records["counts"]  # the dashboard's


@pytest.mark.asyncio
async def test_on_sqlite_a_write_does_not_wait_behind_a_monitor_read(tmp_path):
    """The writer has one connection; the monitor's reads have a read-only one of their own."""
    store = await opened(tmp_path / "db.sqlite")
    try:
        async with store.reader.connect() as conn:  # a read in progress, its connection held
            assert (await conn.execute(text("SELECT count(*) FROM episodes"))).scalar() == 1
            await asyncio.wait_for(store.end_episode("e1", "completed", 3, 1.0), 5)
            with pytest.raises(OperationalError, match="readonly"):
                await conn.execute(text("DELETE FROM episodes"))
        async with store.reader.connect() as conn:  # and it sees what was committed
            assert (await conn.execute(text("SELECT status FROM episodes"))).scalar() == "completed"
    finally:
        await store.close()


@pytest.mark.asyncio
async def test_an_older_sqlite_file_gets_the_columns_added_since(tmp_path):
    db = tmp_path / "old.sqlite"
    conn = sqlite3.connect(db)
    conn.executescript("""
        CREATE TABLE participants (id TEXT PRIMARY KEY, experiment TEXT NOT NULL, url_params TEXT NOT NULL,
                                   created REAL NOT NULL);
        CREATE TABLE steps (episode_id TEXT NOT NULL, frame INTEGER NOT NULL, actions TEXT NOT NULL,
            rewards TEXT NOT NULL, done INTEGER NOT NULL, info TEXT NOT NULL, t_client REAL, t_sent REAL,
            t_worker_start REAL, t_worker_end REAL, t_received REAL, t_server REAL NOT NULL,
            PRIMARY KEY (episode_id, frame));
        INSERT INTO steps VALUES ('old', 0, '{}', '0', 0, '{}', NULL, NULL, NULL, NULL, NULL, 1.0);
    """)
    conn.close()
    store = await opened(db)
    try:
        assert await store.add_steps("e1", steps(range(3), metrics={"rtt": 5})) == 3
        assert await store.assign_condition("p1", "exp", ["x"]) == "x"
    finally:
        await store.close()
    with sqlite3.connect(db) as conn:
        columns = {r[1]: r[2] for r in conn.execute("PRAGMA table_info(steps)")}
        assert columns["metrics"] == "TEXT"
        assert conn.execute("SELECT metrics FROM steps WHERE episode_id='e1' AND frame=2").fetchone() == \
            ('{"rtt":5}',)
        assert conn.execute("SELECT count(*) FROM steps").fetchone() == (4,)
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert {r[1] for r in conn.execute("PRAGMA table_info(rooms)")} >= {"end_reason", "condition"}
