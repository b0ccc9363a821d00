"""Step batches sent out of order, twice, and across a server restart (the real process
stopped and started on the same database) are stored exactly once each."""

from __future__ import annotations

import pytest

from tests.integration.conftest import participant
from tests.servers import start_server


def batch(frames):
    return [{"frame": f, "actions": {"p0": "left"}, "rewards": {"p0": 0}, "done": False, "info": {"f": f}}
            for f in frames]


@pytest.mark.asyncio
async def test_out_of_order_duplicated_and_restarted_batches_store_each_record_once(tmp_path, any_database):
    first = start_server(tmp_path, database=any_database)
    try:
        async with participant(first.url, "keeper") as p:
            assert (await p.call("episode_start", {"episode_id": "ep-keep", "seed": 1}))["ok"]
            later = await p.call("steps", {"episode_id": "ep-keep", "records": batch(range(30, 60))})
            earlier = await p.call("steps", {"episode_id": "ep-keep", "records": batch(range(0, 30))})
            assert later["stored"] == earlier["stored"] == 30
            dup = await p.call("steps", {"episode_id": "ep-keep", "records": batch(range(0, 30))})
            assert dup == {"ok": True, "stored": 0, "received": 30}
    finally:
        first.stop()

    second = start_server(tmp_path, database=any_database)  # a new process, the same database
    try:
        assert second.database == first.database
        async with participant(second.url, "keeper") as p:
            overlap = await p.call("steps", {"episode_id": "ep-keep", "records": batch(range(50, 90))})
            assert overlap["ok"] and overlap["stored"] == 30  # 50-59 were already there
        rows = second.query("SELECT frame FROM steps WHERE episode_id=? ORDER BY frame", "ep-keep")
        frames = [f for (f,) in rows]
        assert frames == list(range(90))
    finally:
        second.stop()


@pytest.mark.asyncio
async def test_concurrent_participants_each_get_their_own_exact_count(tmp_path, any_database):
    import asyncio

    server = start_server(tmp_path, database=any_database)
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


@pytest.mark.asyncio
async def test_sequenced_messages_are_stored_once_per_stream_and_seq_across_a_restart(tmp_path):
    """What the page's outbox relies on: every data message carries (stream, seq); a
    resend of one the server has, even as JSON text and after a restart, changes nothing,
    while the same seq in another stream (another page load) is a different message."""
    import json

    first = start_server(tmp_path)
    stream = "1700000000000-aaaaaaaa"
    event = {"kind": "focus", "detail": {"hidden": True}, "stream": stream, "seq": 2}
    try:
        async with participant(first.url, "seq-keeper") as p:
            start = {"episode_id": "ep-seq", "seed": 1, "stream": stream, "seq": 1}
            assert (await p.call("episode_start", start))["ok"]
            assert await p.call("client_event", event) == {"ok": True}
            assert await p.call("client_event", json.dumps(event)) == {"ok": True, "duplicate": True}
    finally:
        first.stop()
    second = start_server(tmp_path)
    try:
        async with participant(second.url, "seq-keeper") as p:
            assert await p.call("client_event", event) == {"ok": True, "duplicate": True}
            steps = {"episode_id": "ep-seq", "records": batch(range(5)), "stream": stream, "seq": 3}
            assert (await p.call("steps", json.dumps(steps)))["stored"] == 5
            assert await p.call("steps", json.dumps(steps)) == {"ok": True, "duplicate": True}
            other_load = {**event, "stream": "1700000099999-bbbbbbbb"}
            assert await p.call("client_event", other_load) == {"ok": True}
            bad = await p.call("client_event", {**event, "seq": 0})
            assert not bad["ok"] and "seq" in bad["error"]
        assert second.query("SELECT count(*) FROM events WHERE kind='focus'") == [(2,)]
        assert second.query("SELECT count(*) FROM steps WHERE episode_id='ep-seq'") == [(5,)]
        assert second.query("SELECT stream, seq FROM receipts WHERE participant_id='seq-keeper'"
                            " ORDER BY stream, seq") == [(stream, 1), (stream, 2), (stream, 3),
                                                         ("1700000099999-bbbbbbbb", 2)]
    finally:
        second.stop()
