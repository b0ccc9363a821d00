"""Export one experiment's data as tidy tables: a CSV and a Parquet file per table, plus
manifest.json (row counts, file hashes, the code hash of the experiment and env, and the
browser runtime versions), so an analysis can say exactly what produced the data.
Reads the server's database setting: a SQLite file or a postgresql:// URL.

    python -m server.data.export EXPERIMENT [--database data/coplay.sqlite | postgresql://...] [--out exports]
    nox -s export -- EXPERIMENT
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import csv
import datetime as dt
import gc
import hashlib
import json
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import Float, Integer, inspect, text
from sqlalchemy.engine import Connection

from server.data.storage import create_engine, is_url
from server.settings import ServerSettings
from server.study.experiment import Experiment, ExperimentError, load_experiments
from server.vendor import sha256_of, versions

# The one dialect-specific piece: the room id inside an event's JSON payload.
ROOM_OF_EVENT = {"sqlite": "json_extract(v.payload, '$.room')",
                 "postgresql": "(CAST(v.payload AS json) ->> 'room')"}


def queries(dialect: str = "sqlite") -> dict[str, str]:
    """table -> query selecting one experiment's rows (JSON columns stay JSON text)."""
    return {
        "participants": "SELECT * FROM participants WHERE experiment = :e ORDER BY created, id",
        "episodes": "SELECT * FROM episodes WHERE experiment = :e ORDER BY started, id",
        "steps": "SELECT s.* FROM steps s JOIN episodes e ON e.id = s.episode_id WHERE e.experiment = :e"
                 " ORDER BY s.episode_id, s.frame",
        "survey_responses": "SELECT * FROM survey_responses WHERE experiment = :e"
                            " ORDER BY participant_id, scene_id, question_id",
        "progress": "SELECT * FROM progress WHERE experiment = :e ORDER BY participant_id",
        "sessions": "SELECT * FROM sessions WHERE experiment = :e ORDER BY started, participant_id",
        "rooms": "SELECT * FROM rooms WHERE experiment = :e ORDER BY created, id",
        "events": "SELECT v.* FROM events v LEFT JOIN participants p ON p.id = v.participant_id"
                  f" WHERE p.experiment = :e OR {ROOM_OF_EVENT[dialect]} IN"
                  " (SELECT id FROM rooms WHERE experiment = :e) ORDER BY v.id",
    }


TABLES = queries("sqlite")
BATCH_ROWS = 200_000


def code_hash(exp: Experiment) -> str:
    digest = hashlib.sha256()
    definition = exp.directory / "experiment.py"
    digest.update(definition.read_bytes() if definition.exists() else b"")
    for f in exp.env_files:  # every module and data file an env may read, in path order
        digest.update(f"{f.path}\0{f.sha256}\0".encode())
    return digest.hexdigest()


def _arrow_type(column_type) -> pa.DataType:
    if isinstance(column_type, Integer):
        return pa.int64()
    if isinstance(column_type, Float):  # SQLite REAL, Postgres double precision
        return pa.float64()
    return pa.string()


def _schema(conn: Connection, table: str) -> pa.Schema:
    # typed from the table's declaration, so an all-NULL column is still the right type
    inspector = inspect(conn)
    if not inspector.has_table(table):
        return pa.schema([])
    return pa.schema([(c["name"], _arrow_type(c["type"])) for c in inspector.get_columns(table)])


def _write_table(conn: Connection, name: str, query: str, experiment: str, out: Path) -> int:
    schema = _schema(conn, name)
    if not len(schema):
        return 0  # a database from before this table existed
    # Read through the driver's own (server-side) cursor of the connection SQLAlchemy opened:
    # the rows as the driver gives them (plain values on both drivers, nothing to convert),
    # without a Row object per row, which cost half again the export's CPU time.
    compiled = text(query).compile(dialect=conn.dialect)
    bound = compiled.construct_params({"e": experiment})
    cursor = conn.connection.dbapi_connection.cursor(server_side=True)
    rows = 0
    try:
        cursor.execute(str(compiled), tuple(bound[name] for name in compiled.positiontup))
        columns = [d[0] for d in cursor.description]
        with (out / f"{name}.csv").open("w", newline="") as fh, \
                pq.ParquetWriter(out / f"{name}.parquet", schema) as parquet:
            out_csv = csv.writer(fh)
            out_csv.writerow(columns)
            while chunk := cursor.fetchmany(BATCH_ROWS):
                out_csv.writerows(chunk)
                rows += len(chunk)
                data = dict(zip(columns, zip(*chunk, strict=True), strict=True))
                parquet.write_table(pa.Table.from_arrays(
                    [pa.array(data[field.name], type=field.type) for field in schema], schema=schema))
    finally:
        cursor.close()
    return rows


async def _write_tables(database: str | Path, experiment: str, out: Path) -> dict[str, int]:
    engine = create_engine(database, readonly=True)
    try:
        async with engine.connect() as conn:
            tables = queries(conn.dialect.name)
            return await conn.run_sync(
                lambda sync: {name: _write_table(sync, name, query, experiment, out)
                              for name, query in tables.items()})
    finally:
        await engine.dispose()


@contextlib.contextmanager
def _gc_paused():
    """The export makes millions of short-lived tuples that reference counting frees anyway;
    the cyclic collector would rescan them again and again (a quarter of the export's CPU
    time). Paused for the export only, then restored."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _run(coro):
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:  # called from inside an event loop
        return pool.submit(asyncio.run, coro).result()


def export(database: str | Path, exp: Experiment, out: Path) -> dict:
    """Write ``out``; ``database`` is the server's setting (a SQLite file or a postgresql:// URL)."""
    out.mkdir(parents=True, exist_ok=True)
    with _gc_paused():
        counts = _run(_write_tables(database, exp.name, out))
    manifest = {
        "experiment": exp.name,
        "exported_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "code_sha256": code_hash(exp),
        "env_files": sorted({g.env_rel for g in exp.games.values()}),
        "game_scenes": {scene: g.env_rel for (condition, scene), g in exp.games.items() if condition is None},
        "runtime_versions": versions(),
        "counts": counts,
        "files": {p.name: sha256_of(p) for p in sorted(out.glob("*.*")) if p.suffix in (".csv", ".parquet")},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("experiment")
    parser.add_argument("--database", default=str(ServerSettings().database),
                        help="SQLite file or postgresql:// URL")
    parser.add_argument("--experiments-dir", type=Path, default=ServerSettings().experiments_dir)
    parser.add_argument("--out", type=Path, default=Path("exports"))
    args = parser.parse_args(argv)
    try:
        experiments = load_experiments(args.experiments_dir)
    except ExperimentError as exc:
        print(exc, file=sys.stderr)
        return 2
    if args.experiment not in experiments:
        print(f"unknown experiment {args.experiment!r}; known: {sorted(experiments)}", file=sys.stderr)
        return 2
    if not is_url(args.database) and not Path(args.database).exists():
        print(f"{args.database}: no database", file=sys.stderr)
        return 2
    out = args.out / args.experiment
    manifest = export(args.database, experiments[args.experiment], out)
    print(f"exported to {out}: " + ", ".join(f"{k} {v}" for k, v in manifest["counts"].items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
