"""The real server process on a real Postgres (``--database postgresql://...``), started
by this module (tests/postgres.py; missing Postgres binaries fail the tests, they never
skip): the same flows as on SQLite — step batches out of order, resent and across a server
restart stored exactly once and many participants at once (tests/integration/
test_lossless_ingest.py, run on both databases); here the study flow's progress and survey
answers, and the export round trip (exported rows == stored rows)."""

from __future__ import annotations

import csv
import subprocess
import sys
import uuid

import pyarrow.parquet as pq
import pytest

from server.data.export import queries
from tests.e2e.test_study_flow import SCENES
from tests.integration.conftest import participant
from tests.integration.test_lossless_ingest import batch
from tests.servers import ROOT, start_server, write_experiment


@pytest.fixture
def database(postgres) -> str:
    return postgres.create_database(f"it_{uuid.uuid4().hex[:16]}")


def done(index, scene_id, **extra):
    return {"index": index, "scene_id": scene_id, **extra}


@pytest.mark.asyncio
async def test_study_progress_survey_answers_and_export_round_trip_on_postgres(tmp_path, database):
    exps = tmp_path / "experiments"
    write_experiment(exps, "study", scenes=SCENES)
    write_experiment(exps, "other")
    server = start_server(tmp_path, experiments_dir=exps, database=database)
    try:
        async with participant(server.url, "walker", "study") as p:
            assert (await p.call("hello", {}))["scene_index"] == 0
            assert (await p.call("scene_done", done(0, "consent-0", outcome="agreed")))["scene_index"] == 1
            assert (await p.call("scene_done", done(0, "consent-0", outcome="agreed")))["scene_index"] == 1
            assert (await p.call("scene_done", done(1, "instructions-1")))["scene_index"] == 2
            assert (await p.call("episode_start", {"episode_id": "ep-walk", "seed": 5}))["ok"]
            for frames, new in ((range(40), 40), (range(20, 60), 20)):
                ack = await p.call("steps", {"episode_id": "ep-walk", "records": batch(frames)})
                assert ack["stored"] == new
            assert (await p.call("scene_done", done(2, "game-2")))["scene_index"] == 3
        async with participant(server.url, "walker", "study") as again:
            assert (await again.call("hello", {}))["scene_index"] == 3  # a reload resumes here
            bad = await again.call("scene_done", done(3, "survey-3", answers={"fun": "9", "hand": "Left"}))
            assert bad["ok"] is False
            answers = {"fun": "4", "hand": "Right", "comments": 'tabs, "quotes"\nand lines'}
            ok = await again.call("scene_done", done(3, "survey-3", answers=answers))
            assert ok == {"ok": True, "scene_index": 4}
        async with participant(server.url, "bystander", "other") as other:  # another experiment's data
            assert (await other.call("episode_start", {"episode_id": "ep-other", "seed": 1}))["ok"]
            assert (await other.call("steps", {"episode_id": "ep-other", "records": batch(range(5))}))["ok"]
        assert server.query("SELECT scene_index, outcome FROM progress WHERE participant_id='walker'") == \
            [(4, "agreed")]
        assert dict(server.query("SELECT question_id, answer FROM survey_responses")) == \
            {"fun": '"4"', "hand": '"Right"', "comments": '"tabs, \\"quotes\\"\\nand lines"'}
    finally:
        server.stop()

    out = tmp_path / "export"
    subprocess.run([sys.executable, "-m", "server.data.export", "study", "--database", database,
                    "--experiments-dir", str(exps), "--out", str(out)],
                   check=True, cwd=ROOT, capture_output=True)
    counts = {}
    for table, query in queries("postgresql").items():
        stored = server.query(query.replace(":e", "?"), *(["study"] * query.count(":e")))
        with (out / "study" / f"{table}.csv").open(newline="") as fh:
            exported = list(csv.reader(fh))[1:]
        assert exported == [["" if v is None else str(v) for v in row] for row in stored], table
        parquet = pq.read_table(out / "study" / f"{table}.parquet").to_pylist()
        assert [tuple(r.values()) for r in parquet] == stored, table
        counts[table] = len(stored)
    assert counts["steps"] == 60 and counts["participants"] == 1 and counts["survey_responses"] == 3
    assert counts["episodes"] == 1 and counts["progress"] == 1
