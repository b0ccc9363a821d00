"""An oversized payload costs its sender the connection, nobody else anything; the
server keeps serving and stores nothing from it."""

from __future__ import annotations

import asyncio
import urllib.request

import pytest

from tests.integration.conftest import participant


@pytest.mark.asyncio
async def test_oversized_payload_drops_only_its_sender(server):
    async with participant(server.url, "big-sender") as big, participant(server.url, "bystander") as ok:
        assert (await big.call("episode_start", {"episode_id": "ep-big", "seed": 1}))["ok"]
        assert (await ok.call("episode_start", {"episode_id": "ep-ok", "seed": 1}))["ok"]
        huge = [{"frame": f, "actions": {"p0": "x" * 2000}, "info": {}} for f in range(600)]  # > 1 MB
        await big.sio.emit("steps", {"episode_id": "ep-big", "records": huge})
        for _ in range(100):
            if not big.sio.connected:
                break
            await asyncio.sleep(0.05)
        assert not big.sio.connected  # the server closed that connection
        record = [{"frame": 1, "actions": {"p0": "left"}, "info": {}}]
        assert (await ok.call("steps", {"episode_id": "ep-ok", "records": record}))["stored"] == 1
    with urllib.request.urlopen(server.url + "/healthz", timeout=5) as resp:
        assert resp.status == 200
    assert server.query("SELECT count(*) FROM steps WHERE episode_id='ep-big'") == [(0,)]
