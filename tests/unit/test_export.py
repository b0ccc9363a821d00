"""Export round trip: every stored row comes back out of the CSV and the Parquet file,
and the manifest accounts for them."""

from __future__ import annotations

import asyncio
import csv
import json
import sqlite3

import pyarrow.parquet as pq

from server.data.export import TABLES, export
from server.data.storage import Store
from server.study.experiment import load_experiment
from server.vendor import sha256_of
from tests.servers import write_experiment


async def fill(path, experiment):
    store = Store(path)
    await store.open()
    await store.upsert_participant("p1", experiment, {"PROLIFIC_PID": "p1"})
    await store.upsert_participant("other", "someone-else", {})
    await store.start_episode("e1", "p1", experiment, 7, {"worker": True})
    steps = [{"frame": f, "actions": {"p0": "left"}, "rewards": {"p0": f % 2}, "done": f == 99,
              "info": {"x": f, "name": 'a,b "q"'}, "t_client": 1.5 * f, "metrics": {}} for f in range(100)]
    await store.add_steps("e1", steps)
    await store.start_episode("e2", "other", "someone-else", 1, {})
    await store.add_steps("e2", [{"frame": 0, "actions": {}, "rewards": 0, "done": False, "info": {}}])
    await store.end_episode("e1", "completed", 100, 50.0)
    await store.set_progress("p1", experiment, 3, None, {"fun": "5", "note": "line1\nline2"}, "survey-2")
    await store.add_session("p1", experiment, "1700000000000-aaaaaaaa", {"user_agent": "X", "screen": "9x9"})
    await store.add_session("other", "someone-else", "1700000000000-bbbbbbbb", {})
    await store.close()


def assert_exported(out, manifest: dict, table: str, stored: list[tuple]) -> None:
    """The table's CSV and Parquet files hold exactly the `stored` rows, and the manifest counts them."""
    with (out / f"{table}.csv").open(newline="") as fh:
        exported = list(csv.reader(fh))[1:]
    assert exported == [["" if v is None else str(v) for v in row] for row in stored], table
    parquet = pq.read_table(out / f"{table}.parquet").to_pylist()
    assert [tuple(r.values()) for r in parquet] == stored, table
    assert manifest["counts"][table] == len(stored)


def test_exported_rows_equal_stored_rows(tmp_path):
    exp = load_experiment(write_experiment(tmp_path / "exps", "study") / "experiment.py")
    db = tmp_path / "data.sqlite"
    asyncio.run(fill(db, "study"))
    manifest = export(db, exp, tmp_path / "out")

    conn = sqlite3.connect(db)
    for table, query in TABLES.items():
        assert_exported(tmp_path / "out", manifest, table, conn.execute(query, {"e": "study"}).fetchall())
    assert manifest["counts"]["steps"] == 100  # only this experiment's episodes
    assert manifest["counts"]["participants"] == 1
    assert manifest["counts"]["sessions"] == 1  # only this experiment's page loads
    assert json.loads(conn.execute("SELECT info FROM steps WHERE frame=3").fetchone()[0])["name"] == 'a,b "q"'
    for name, digest in manifest["files"].items():
        assert sha256_of(tmp_path / "out" / name) == digest
    assert json.loads((tmp_path / "out" / "manifest.json").read_text()) == manifest
    assert manifest["runtime_versions"]["pyodide"] and len(manifest["code_sha256"]) == 64


def test_export_of_an_older_database_without_newer_tables(tmp_path):
    exp = load_experiment(write_experiment(tmp_path / "exps", "study") / "experiment.py")
    db = tmp_path / "old.sqlite"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE participants (id TEXT, experiment TEXT, url_params TEXT, created REAL)")
    conn.execute("INSERT INTO participants VALUES ('p', 'study', '{}', 1.0)")
    conn.commit()
    conn.close()
    manifest = export(db, exp, tmp_path / "out")
    assert manifest["counts"]["participants"] == 1 and manifest["counts"]["steps"] == 0
