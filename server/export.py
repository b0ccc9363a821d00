"""Export one experiment's data as tidy tables: a CSV and a Parquet file per table, plus
manifest.json (row counts, file hashes, the code hash of the experiment and env, and the
browser runtime versions), so an analysis can say exactly what produced the data.

    python -m server.export EXPERIMENT [--database data/coplay.sqlite] [--out exports]
    nox -s export -- EXPERIMENT
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import hashlib
import json
import sqlite3
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from server.experiment import Experiment, ExperimentError, load_experiments
from server.settings import ServerSettings
from server.vendor import sha256_of, versions

# table -> query selecting one experiment's rows (JSON columns stay JSON text)
TABLES = {
    "participants": "SELECT * FROM participants WHERE experiment = :e ORDER BY created, id",
    "episodes": "SELECT * FROM episodes WHERE experiment = :e ORDER BY started, id",
    "steps": "SELECT s.* FROM steps s JOIN episodes e ON e.id = s.episode_id WHERE e.experiment = :e"
             " ORDER BY s.episode_id, s.frame",
    "survey_responses": "SELECT * FROM survey_responses WHERE experiment = :e"
                        " ORDER BY participant_id, scene_id, question_id",
    "progress": "SELECT * FROM progress WHERE experiment = :e ORDER BY participant_id",
    "rooms": "SELECT * FROM rooms WHERE experiment = :e ORDER BY created, id",
    "events": "SELECT v.* FROM events v LEFT JOIN participants p ON p.id = v.participant_id"
              " WHERE p.experiment = :e OR json_extract(v.payload, '$.room') IN"
              " (SELECT id FROM rooms WHERE experiment = :e) ORDER BY v.id",
}
BATCH_ROWS = 200_000


def code_hash(exp: Experiment) -> str:
    digest = hashlib.sha256()
    definition = exp.directory / "experiment.py"
    digest.update(definition.read_bytes() if definition.exists() else b"")
    digest.update(exp.env_source.encode())
    return digest.hexdigest()


ARROW_TYPES = {"INTEGER": pa.int64(), "REAL": pa.float64(), "TEXT": pa.string()}


def _schema(conn: sqlite3.Connection, table: str) -> pa.Schema:
    # typed from the table's declaration, so an all-NULL column is still the right type
    return pa.schema([(row[1], ARROW_TYPES.get(row[2].upper(), pa.string()))
                      for row in conn.execute(f"PRAGMA table_info({table})")])


def _write_table(conn: sqlite3.Connection, name: str, query: str, experiment: str, out: Path) -> int:
    schema = _schema(conn, name)
    if not len(schema):
        return 0  # a database from before this table existed
    cur = conn.execute(query, {"e": experiment})
    columns = [c[0] for c in cur.description]
    rows = 0
    with (out / f"{name}.csv").open("w", newline="") as fh, \
            pq.ParquetWriter(out / f"{name}.parquet", schema) as parquet:
        out_csv = csv.writer(fh)
        out_csv.writerow(columns)
        while chunk := cur.fetchmany(BATCH_ROWS):
            out_csv.writerows(chunk)
            rows += len(chunk)
            parquet.write_table(pa.Table.from_pydict(
                {c: [r[i] for r in chunk] for i, c in enumerate(columns)}, schema=schema))
    return rows


def export(database: Path, exp: Experiment, out: Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        counts = {name: _write_table(conn, name, query, exp.name, out) for name, query in TABLES.items()}
    finally:
        conn.close()
    manifest = {
        "experiment": exp.name,
        "exported_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "code_sha256": code_hash(exp),
        "env_file": exp.env_path.name,
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
    parser.add_argument("--database", type=Path, default=ServerSettings().database)
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
    if not args.database.exists():
        print(f"{args.database}: no database", file=sys.stderr)
        return 2
    out = args.out / args.experiment
    manifest = export(args.database, experiments[args.experiment], out)
    print(f"exported to {out}: " + ", ".join(f"{k} {v}" for k, v in manifest["counts"].items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
