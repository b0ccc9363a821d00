"""Rooms spread over several server processes (Redis; server/multiplayer/cluster.py): where
each room event runs (a join on the matchmaker, a room's other events on the process owning
the room), a room handed over by the matchmaker, a closed socket's two parts, a dead process
and a new matchmaker."""

from __future__ import annotations

import logging
from typing import Any

from server.multiplayer.rooms import (
    Room,
    room_from_wire,
)
from server.transport.events import MpJoin, MpRejoin
from server.transport.sockets import Rejected

log = logging.getLogger("coplay.relay")

# events between server processes only (server/multiplayer/cluster.py), never from a page
ADOPT = "__adopt__"  # the matchmaker hands a room to the process that will own it
GONE_WAITING = "__gone_waiting__"  # a socket closed: the matchmaker's part (its waiting room)
GONE_PLAYING = "__gone_playing__"  # a socket closed: its room owner's part


class RoomOwners:
    """Room ownership, mixed into server/multiplayer/relay.py Relay (it shares the relay's state)."""

    def _matchmaker(self, sid: str, payload: Any) -> str | None:
        return self.cluster.leader

    def _owner(self, sid: str, payload: Any) -> str | None:
        """The process owning the room of a socket of this process (None: here, or no room)."""
        if self.mm.room_for(sid) is not None:
            return None
        return self.cluster.owner_of.get(sid)

    def _token_owner(self, sid: str, p: MpRejoin) -> str | None:
        """A seat's token starts with its room owner's id (given at matchmaking)."""
        process, dot, _ = p.token.partition(".")
        return process if dot else None

    def _joined_at(self, join):
        """Remember the sockets of this process left waiting by their join (several processes);
        `join` is the routed join, which _join_again calls again (kept by the wiring)."""
        async def joined(sid: str, session: dict, p: MpJoin) -> dict:
            reply = await join(sid, session, p)
            if reply.get("status") == "waiting":
                self.waiting_here[sid] = (session, p)
            return reply

        return joined

    async def _join_again(self) -> None:
        """The matchmaker changed (the one before died or stopped, its waiting rooms with it):
        the sockets of this process it had waiting join the next one."""
        for sid, (session, p) in list(self.waiting_here.items()):
            try:
                await self._join_routed(sid, session, p)
            except Rejected as exc:
                log.warning("socket %s could not join the new matchmaker: %s", sid, exc)

    async def adopt(self, sid: str, session: dict, wire: dict) -> dict:
        """This process owns a room the matchmaker formed elsewhere: start it here."""
        room = room_from_wire(wire)
        for seat_sid, home in wire["homes"].items():
            if not self.cluster.here(home):
                self.cluster.home[seat_sid] = home
        self.mm.rooms[room.id] = room
        for s in room.seats.values():
            if not s.stand_in:
                self.mm.room_of_sid[s.sid] = room.id
        await self.open_room(room)
        return {"ok": True}

    def _homes(self, room: Room) -> dict[str, str]:
        """The process holding each seat's socket."""
        return {s.sid: self.cluster.home.get(s.sid, self.cluster.me) for s in room.seats.values()}

    async def _gone(self, sid: str) -> None:
        """A socket of this process closed (several processes): the matchmaker takes it out of
        its waiting room, its room's owner marks it away."""
        owner = self._owner(sid, None)
        in_room_here = self.mm.room_for(sid) is not None
        self.cluster.owner_of.pop(sid, None)
        self.waiting_here.pop(sid, None)
        try:
            await self._to(self.cluster.leader, GONE_WAITING, sid, {"owner": owner or self.cluster.me})
            if owner is not None or in_room_here:
                await self._to(owner, GONE_PLAYING, sid, None)
        except Rejected as exc:
            log.warning("the close of socket %s was not heard where it matters: %s", sid, exc)

    async def _to(self, process: str | None, event: str, sid: str, payload: Any) -> None:
        """Run a process-to-process event where it belongs: here, or sent there (no reply)."""
        if self.cluster.here(process):
            _, handler = self.cluster.handlers[event]
            await self.cluster.in_order(sid, handler(sid, {}, payload))
        else:
            await self.cluster.forward(process, event, sid, {}, payload, wait=False)

    async def process_died(self, process: str, matchmaker: bool) -> None:
        """Another server process stopped answering. Seats whose socket it held are gone;
        the matchmaker also drops its waiting seats and ends its rooms as ``interrupted``,
        with the inputs their Redis records had, telling the people still connected."""
        for room in list(self.mm.rooms.values()):
            for seat in list(room.seats.values()):
                if self.cluster.home.get(seat.sid) == process and not (seat.away or seat.stand_in):
                    await self.cluster.in_order(seat.sid, self.gone_playing(seat.sid, {}, None))
        if not matchmaker:
            return
        for key, seats in list(self.mm.queues.items()):
            gone = [s for s in seats if self.cluster.home.get(s.sid) == process]
            for s in gone:
                self._cancel_wait(s.sid)
                self.mm.leave_queue(s.sid)
            if gone:
                await self._announce_waiting(key)
        taken = await self.records.taken_from(process)
        rooms = []
        for wire, inputs in taken:
            room = room_from_wire(wire)
            for player, frame, value in inputs:
                room.inputs.setdefault(player, {})[frame] = value
            for seat in room.seats.values():
                home = wire["homes"].get(seat.sid)
                if home == process:  # its socket went with the process
                    seat.away = True
                elif home is not None and not self.cluster.here(home):
                    self.cluster.home[seat.sid] = home
            rooms.append(room)
        if rooms:
            await self._interrupt(rooms, f"server process {process} stopped")
