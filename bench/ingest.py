"""Issue 5 figures: step-record ingest through Socket.IO (validated, acknowledged,
stored in SQLite) vs the same inserts straight into the store (the baseline), ack
latency under a realistic load, and export time for a million step rows; the two ingest
figures again with Postgres as the database (``*_postgres``).

Beside each Socket.IO figure, what became of the batches it sent (``delivery``: sent,
acknowledged, refused with an error ack, lost: no ack within the timeout); the ack latency
is of the acknowledged batches only. Each client awaits every ack before its next batch:
one batch per second (realistic), or back to back (a few dozen per second at most), within
the server's per-connection rate limit, so none should be refused."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import sqlite3
import tempfile
import time
from pathlib import Path

import socketio

from bench.common import delivery, summary
from server.data.export import export
from server.data.storage import Store
from server.study.experiment import load_experiment
from tests.servers import start_server, write_experiment


def records(start: int, count: int) -> list[dict]:
    return [{"frame": f, "actions": {"p0": "left"}, "rewards": {"p0": 0}, "done": False,
             "info": {"basket_x": f % 480, "score": 0}, "t_client": 1.0 * f}
            for f in range(start, start + count)]


async def _client(url: str, i: int) -> socketio.AsyncClient:
    client = socketio.AsyncClient()
    await client.connect(url, auth={"participant_id": f"load-{i}", "experiment": "catch"},
                         transports=["websocket"])
    await client.call("episode_start", {"episode_id": f"ep-{i}", "seed": i})
    return client


class Batches:
    """What became of the batches one figure sent: sent, acknowledged, refused, lost."""

    def __init__(self):
        self.sent = self.refused = self.lost = self.stored = 0
        self.ack_ms: list[float] = []

    async def send(self, client: socketio.AsyncClient, payload: dict, timeout: float = 60) -> None:
        self.sent += 1
        t = time.perf_counter()
        try:  # as JSON text, the way the page's outbox sends a batch
            ack = await client.call("steps", json.dumps(payload), timeout=timeout)
        except socketio.exceptions.TimeoutError:
            self.lost += 1
            return
        if isinstance(ack, dict) and ack.get("ok"):
            self.ack_ms.append((time.perf_counter() - t) * 1000)
            self.stored += ack["stored"]
        else:
            self.refused += 1

    def delivery(self) -> dict:
        return delivery(self.sent, len(self.ack_ms), self.refused)


async def _realistic(url: str, participants: int, seconds: float, per_second: int) -> dict:
    clients = await asyncio.gather(*[_client(url, i) for i in range(participants)])
    batches = Batches()

    async def run(i: int, client: socketio.AsyncClient) -> None:
        frame = 0
        end = time.perf_counter() + seconds
        await asyncio.sleep(i / participants)  # spread the batches over the second
        while time.perf_counter() < end:
            t = time.perf_counter()
            await batches.send(client, {"episode_id": f"ep-{i}", "records": records(frame, per_second)})
            frame += per_second
            await asyncio.sleep(max(0.0, 1.0 - (time.perf_counter() - t)))

    await asyncio.gather(*[run(i, c) for i, c in enumerate(clients)])
    for c in clients:
        await c.disconnect()
    return {"ack_ms": summary(batches.ack_ms), "records": batches.stored, "delivery": batches.delivery()}


async def _saturate(url: str, participants: int, batch: int, seconds: float) -> dict:
    clients = await asyncio.gather(*[_client(url, 1000 + i) for i in range(participants)])
    batches = Batches()
    start = time.perf_counter()

    async def run(i: int, client: socketio.AsyncClient) -> None:
        frame = 0
        while time.perf_counter() - start < seconds:
            await batches.send(client, {"episode_id": f"ep-{1000 + i}", "records": records(frame, batch)})
            frame += batch

    await asyncio.gather(*[run(i, c) for i, c in enumerate(clients)])
    elapsed = time.perf_counter() - start
    for c in clients:
        await c.disconnect()
    return {"records_per_s": round(batches.stored / elapsed), "records": batches.stored,
            "seconds": round(elapsed, 1), "delivery": batches.delivery()}


async def _direct(path: Path, batch: int, seconds: float) -> dict:
    store = Store(path)
    await store.open()
    await store.upsert_participant("direct", "catch", {})
    await store.start_episode("ep-direct", "direct", "catch", 1, {})
    stored, frame, start = 0, 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        stored += await store.add_steps("ep-direct", records(frame, batch))
        frame += batch
    elapsed = time.perf_counter() - start
    await store.close()
    return {"records_per_s": round(stored / elapsed), "records": stored}


def _in_thread(coro):
    # Playwright's sync API may own this thread's loop; run ours on a fresh thread.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def export_million(work: Path, rows: int = 1_000_000) -> dict:
    exp = load_experiment(write_experiment(work / "export-exps", "catch") / "experiment.py")
    db = work / "million.sqlite"
    _in_thread(_prepare(db))
    conn = sqlite3.connect(db)
    info = '{"basket_x":240,"lives":3,"score":0}'
    conn.executemany(
        "INSERT INTO steps (episode_id, frame, actions, rewards, done, info, t_client, t_server)"
        " VALUES (?,?,?,?,?,?,?,?)",
        ((f"ep-{f // 1800}", f % 1800, '{"p0":"left"}', '{"p0":0}', 0, info, 1.0, 2.0) for f in range(rows)))
    conn.executemany("INSERT INTO episodes (id, participant_id, experiment, started) VALUES (?,?,?,?)",
                     ((f"ep-{e}", "p", "catch", 0.0) for e in range(rows // 1800 + 1)))
    conn.commit()
    t = time.perf_counter()
    raw = sum(1 for _ in conn.execute("SELECT * FROM steps"))
    select_s = time.perf_counter() - t
    conn.close()
    t = time.perf_counter()
    manifest = export(db, exp, work / "export-out")
    return {"rows": manifest["counts"]["steps"], "export_s": round(time.perf_counter() - t, 2),
            "baseline_select_all_s": round(select_s, 2), "baseline_rows": raw}


async def _prepare(db: Path) -> None:
    store = Store(db)
    await store.open()
    await store.upsert_participant("p", "catch", {})
    await store.close()


def run() -> dict:
    work = Path(tempfile.mkdtemp(prefix="coplay-ingest-"))
    write_experiment(work / "exps", "catch")
    server = start_server(work, experiments_dir=work / "exps")
    try:
        realistic = _in_thread(_realistic(server.url, participants=50, seconds=15, per_second=30))
        saturated = _in_thread(_saturate(server.url, participants=50, batch=500, seconds=15))
    finally:
        server.stop()
    direct = _in_thread(_direct(work / "direct.sqlite", batch=500, seconds=10))
    results = {"realistic_50x30": realistic, "socketio_max": saturated, "direct_store_max": direct,
               "export_1m": export_million(work)}
    results.update(postgres(work))
    return results


def postgres(work: Path) -> dict:
    """The same two ingest figures with the database setting a postgresql:// URL: a real
    local Postgres (tests/postgres.py) with its default, crash-safe settings."""
    from tests.postgres import start_postgres

    pg = start_postgres(durable=True)
    try:
        database = pg.create_database("coplay_bench")
        server = start_server(work, experiments_dir=work / "exps", database=database)
        try:
            saturated = _in_thread(_saturate(server.url, participants=50, batch=500, seconds=15))
        finally:
            server.stop()
        direct = _in_thread(_direct(pg.create_database("coplay_direct"), batch=500, seconds=10))
    finally:
        pg.stop()
    return {"socketio_max_postgres": saturated, "direct_store_max_postgres": direct}
