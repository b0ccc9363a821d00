"""What a process owning rooms keeps in Redis (with several processes), so that if it dies
another process can end its rooms as ``interrupted`` with the inputs they had: per owner, a
hash of its open rooms (each without its inputs, with the process holding each seat's
socket), and per room a list of the inputs recorded since it opened, appended about once a
second in one pipeline for all rooms. A room's records are deleted when it ends."""

from __future__ import annotations

import asyncio
from typing import Any

from server.multiplayer.cluster import Cluster
from server.multiplayer.rooms import Room, room_to_wire
from server.transport import fastjson

ROOMS = "coplay:rooms:"  # + owner: room id -> the room as JSON (rooms.room_to_wire) + "homes"
INPUTS = "coplay:inputs:"  # + room id: JSON chunks [[player, frame, value], ...]
CHECKPOINT_S = 1.0  # at most this much of a room's play is lost with its process
KEEP_MS = 6 * 3600 * 1000  # records of a room nobody ended expire


class RoomRecords:
    def __init__(self, cluster: Cluster):
        self.cluster = cluster
        self.open: set[str] = set()
        self._fresh: dict[str, list[list[Any]]] = {}
        self._flushing: asyncio.Task | None = None
        self._tasks: set[asyncio.Task] = set()

    def opened(self, room: Room, homes: dict[str, str]) -> None:
        """A room is played here from now on (or its seats moved): record it."""
        self.open.add(room.id)
        entry = fastjson.dumps({**room_to_wire(room), "homes": homes})
        self._spawn(self.cluster.run(lambda r: r.hset(ROOMS + self.cluster.me, room.id, entry)))
        if self._flushing is None:
            self._flushing = asyncio.create_task(self._flush_while_open())

    def recorded(self, room: Room, player: str, fresh: list[tuple[int, Any]]) -> None:
        if fresh and room.id in self.open:
            self._fresh.setdefault(room.id, []).extend([player, f, v] for f, v in fresh)

    def closed(self, room: Room) -> None:
        if room.id not in self.open:
            return
        self.open.discard(room.id)
        self._fresh.pop(room.id, None)

        async def forget(r):
            async with r.pipeline(transaction=False) as pipe:
                await pipe.hdel(ROOMS + self.cluster.me, room.id).delete(INPUTS + room.id).execute()

        self._spawn(self.cluster.run(forget))

    async def taken_from(self, process: str) -> list[tuple[dict[str, Any], list[list[Any]]]]:
        """The open rooms of a dead process, each with the inputs it had recorded, and their
        records deleted (whoever calls this ends them)."""

        async def take(r):
            rooms = await r.hgetall(ROOMS + process)
            found = []
            for room_id, entry in rooms.items():
                chunks = await r.lrange(INPUTS + room_id, 0, -1)
                found.append((fastjson.loads(entry), [i for c in chunks for i in fastjson.loads(c)]))
                await r.delete(INPUTS + room_id)
            await r.delete(ROOMS + process)
            return found

        return await self.cluster.run(take) or []

    async def _flush_while_open(self) -> None:
        try:
            while self.open:
                await asyncio.sleep(CHECKPOINT_S)
                fresh, self._fresh = self._fresh, {}
                if not fresh:
                    continue

                async def append(r, fresh=fresh):
                    async with r.pipeline(transaction=False) as pipe:
                        for room_id, inputs in fresh.items():
                            pipe.rpush(INPUTS + room_id, fastjson.dumps(inputs))
                            pipe.pexpire(INPUTS + room_id, KEEP_MS)
                        await pipe.execute()

                await self.cluster.run(append)
        finally:
            self._flushing = None

    def _spawn(self, work) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
