"""The real server process on a real Postgres (``--database postgresql://...``), started
by this module (tests/postgres.py; missing Postgres binaries fail the tests, they never
skip): the same flows as on SQLite — step batches out of order, resent and across a server
restart stored exactly once; many participants at once; the study flow's progress and
survey answers; and the export round trip (exported rows == stored rows)."""

from __future__ import annotations

import asyncio
import csv
import subprocess
import sys
import uuid

import pyarrow.parquet as pq
import pytest

from server.export import queries
from tests.e2e.test_study_flow import SCENES
from tests.integration.conftest import participant
from tests.postgres import start_postgres
from tests.servers import ROOT, start_server, write_experiment


@pytest.fixture(scope="module")
def postgres():
    server = start_postgres()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def database(postgres) -> str:
    return postgres.create_database(f"it_{uuid.uuid4().hex[:16]}")


def batch(frames):
    return [{"frame": f, "actions": {"p0": "left"}, "rewards": {"p0": 0}, "done": False, "info": {"f": f}}
            for f in frames]


@pytest.mark.asyncio
async def test_out_of_order_duplicated_and_restarted_batches_are_stored_once_on_postgres(tmp_path, database):
    first = start_server(tmp_path, database=database)
    try:
        assert first.database == database and "coplay.sqlite" not in " ".join(map(str, tmp_path.iterdir()))
        async with participant(first.url, "keeper") as p:
            assert (await p.call("episode_start", {"episode_id": "ep-keep", "seed": 2**40}))["ok"]
            later = await p.call("steps", {"episode_id": "ep-keep", "records": batch(range(30, 60))})
            earlier = await p.call("steps", {"episode_id": "ep-keep", "records": batch(range(0, 30))})
            assert later["stored"] == earlier["stored"] == 30
            dup = await p.call("steps", {"episode_id": "ep-keep", "records": batch(range(0, 30))})
            assert dup == {"ok": True, "stored": 0, "received": 30}
    finally:
        first.stop()

    second = start_server(tmp_path, database=database)  # a new server process, the same Postgres database
    try:
        async with participant(second.url, "keeper") as p:
            overlap = await p.call("steps", {"episode_id": "ep-keep", "records": batch(range(50, 90))})
            assert overlap["ok"] and overlap["stored"] == 30  # 50-59 were already there
            assert (await p.call("episode_end", {"episode_id": "ep-keep", "status": "completed", "frames": 90,
                                                 "total_reward": 1.5}))["ok"]
        frames = [f for (f,) in second.query("SELECT frame FROM steps WHERE episode_id=? ORDER BY frame",
                                             "ep-keep")]
        assert frames == list(range(90))
        assert second.query("SELECT seed, status, frames, total_reward FROM episodes") == \
            [(2**40, "completed", 90, 1.5)]
    finally:
        second.stop()
    assert "Traceback" not in first.log() + second.log()


@pytest.mark.asyncio
async def test_concurrent_participants_each_get_their_own_exact_count_on_postgres(tmp_path, database):
    server = start_server(tmp_path, database=database)
    try:
        async def one(i):
            async with participant(server.url, f"crowd-{i}") as p:
                assert (await p.call("episode_start", {"episode_id": f"ep-crowd-{i}", "seed": i}))["ok"]
                acks = []
                for k in range(5):
                    records = batch(range(k * 100, (k + 1) * 100))
                    acks.append(await p.call("steps", {"episode_id": f"ep-crowd-{i}", "records": records}))
                return acks

        results = await asyncio.gather(*[one(i) for i in range(20)])
        assert all(ack == {"ok": True, "stored": 100, "received": 100} for acks in results for ack in acks)
        assert server.query("SELECT count(*) FROM steps") == [(20 * 500,)]
    finally:
        server.stop()


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
    subprocess.run([sys.executable, "-m", "server.export", "study", "--database", database,
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
