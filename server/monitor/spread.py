"""The live monitor with several processes (Redis): each room is owned by one process and each
socket is held by one, so every process shares the part of the picture it holds
(server/monitor/picture.py local_part) in Redis each second while a monitor is open anywhere,
and the process a monitor page is connected to merges all of them. Studies closed or
reopened on one process are closed or reopened on all (a broadcast)."""

from __future__ import annotations

from typing import Any

from server.multiplayer.cluster import PROCESSES, Cluster
from server.transport import fastjson

WATCHED = "coplay:monitor:watched"  # set while some process has a monitor page connected
PART = "coplay:monitor:part:"  # + process id: its part of the picture
KEEP_MS = 3000  # a part (or the watched flag) not renewed within this is stale
DOORS = "doors"  # the broadcast of a study closed or reopened


class SpreadPicture:
    def __init__(self, cluster: Cluster):
        self.cluster = cluster

    async def wanted(self, watched_here: bool) -> bool:
        """Whether a monitor is open on any process (this one says so if one is open here)."""

        async def work(r):
            if watched_here:
                await r.set(WATCHED, self.cluster.me, px=KEEP_MS)
                return True
            return bool(await r.exists(WATCHED))

        return bool(await self.cluster.run(work))

    async def put(self, part: dict[str, Any]) -> None:
        await self.cluster.run(lambda r: r.set(PART + self.cluster.me, fastjson.dumps(part), px=KEEP_MS))

    async def parts(self) -> list[dict[str, Any]]:
        """The parts every living process shared (this one's included, if it shared it)."""

        async def work(r):
            members = sorted(await r.smembers(PROCESSES))
            found = await r.mget([PART + p for p in members]) if members else []
            return [fastjson.loads(raw) for raw in found if raw]

        return await self.cluster.run(work) or []
