"""People leaving and coming back: leaving on purpose, a dropped connection and its reconnect
window, a page that takes its seat back (reconnect or reload), the dropout policy (the room
ends, or a stand-in plays on), in-play exclusion, and a room ended by the researcher."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from server.multiplayer.rooms import (
    Room,
    others_inputs,
    room_record,
)
from server.transport.events import MpLeave, MpRejoin, Strict
from server.transport.sockets import Rejected

log = logging.getLogger("coplay.relay")

ENDED_BY_RESEARCHER = "The researcher ended this game. Your data has been saved — thank you!"


class Exclusion(Strict):
    """In-play screening excluded the participant of a socket (server/study/inplay.py): not a
    page's event, only routed to the process holding the rooms."""
    reason: str


class Seats:
    """Seats of a room, mixed into server/multiplayer/relay.py Relay (it shares the relay's state)."""

    async def leave(self, sid: str, session: dict, p: MpLeave) -> dict:
        await self._abandon(sid, p.reason)
        return {"ok": True}

    async def disconnected(self, sid: str) -> None:
        """A socket closed (one process): out of its waiting room, or away from its room."""
        await self.gone_waiting(sid, {}, None)
        await self.gone_playing(sid, {}, None)

    async def gone_playing(self, sid: str, session: dict, payload: Any) -> dict:
        """The room owner's part of a closed socket: its seat is away (or, with no reconnect
        window, the room ends)."""
        room = self.mm.room_for(sid)
        if room is not None and room.status == "playing":
            player = room.player_of(sid)
            mp = self._game(room.experiment).multiplayer
            if player is None or mp.reconnect_timeout <= 0:
                await self._abandon(sid, "disconnected")
            else:
                await self._away(room, player, mp.reconnect_timeout)
        if self.cluster is not None and room is None:
            self.cluster.home.pop(sid, None)
        return {"ok": True}

    async def _away(self, room: Room, player: str, window: float) -> None:
        """A player's connection dropped: hold the seat for `window` seconds. Inputs from the
        others are still recorded; the returning page gets them from the record."""
        seat = room.seats[player]
        seat.away = True
        self.mm.room_of_sid.pop(seat.sid, None)
        self.stats["away"] += 1
        self.away_timers[(room.id, player)] = asyncio.create_task(self._dropout_after(room, player, window))
        await self._tell_peers(room, player, "partner_away", {"player": player, "seconds": window})

    async def rejoin(self, sid: str, session: dict, p: MpRejoin) -> dict:
        """A page that lost its connection takes its seat back (shown by its token, from the
        same participant), hands over the inputs it made meanwhile and gets the others'."""
        found = self.mm.seat_by_token(p.token)
        if found is None:
            raise Rejected("no open room holds this seat (the reconnect window may have passed)",
                           "not_in_room")
        room, player = found
        seat = room.seats[player]
        if seat.participant_id != session["participant_id"]:
            raise Rejected("this seat belongs to another participant", "spoof")
        if seat.stand_in or room.status != "playing":
            raise Rejected("the seat was given up after the reconnect window", "not_in_room")
        timer = self.away_timers.pop((room.id, player), None)
        if timer is not None:
            timer.cancel()
        self.mm.rebind(room, player, sid)
        if self.cluster is not None:  # its socket may be on another process now
            self.cluster.claim(sid)
            self.records.opened(room, self._homes(room))
        if p.inputs:
            self._record(room, player, p.inputs)
            await self._relay(room, player, max(f for f, _ in p.inputs), p.inputs)
        await self._tell_peers(room, player, "partner_back", {"player": player})
        self.stats["rejoined"] += 1
        since = room.inputs_since(p.from_frame)
        ack = {"ok": True, "room": room.id, "player": player, "players": room.players, "seed": room.seed,
               "inputs": others_inputs(room, player, since)}
        if p.reload:
            mine = [q for q in since if q not in ack["inputs"]]  # its own seat and the AI seats it hosts
            ack.update(own={q: since[q] for q in mine}, ai=room.hosts, token=seat.token,
                       episode_id=seat.episode_id)
            self.stats["resumed"] += 1
            await self.store.add_event(seat.participant_id, seat.episode_id, "resume",
                                       {"room": room.id, "player": player, "newest": room.newest,
                                        "own_upto": max(room.inputs[player], default=-1)})
        return ack

    async def _dropout_after(self, room: Room, player: str, window: float) -> None:
        await asyncio.sleep(window)
        self.away_timers.pop((room.id, player), None)
        if room.status != "playing" or not room.seats[player].away:
            return
        mp = self._game(room.experiment).multiplayer
        if mp.dropout == "stand_in" and room.reporting() != [player]:
            await self._stand_in(room, player)
            return
        notice = {"player": player, "reason": "dropped_out", "message": mp.dropout_message}
        if mp.dropout_completion_code:
            notice["completion_code"] = mp.dropout_completion_code
        await self._end_room(room, player, f"{player}: dropped out", notice)

    async def _stand_in(self, room: Room, player: str) -> None:
        """The dropped player's seat is played on from here by a scripted stand-in: the server
        answers every frame the others play with the stand-in's input, recorded like any
        other (so the replay still checks the room)."""
        seat = room.seats[player]
        seat.away = False
        seat.stand_in = True
        self.stats["stand_ins"] += 1
        policy = self._game(room.experiment).multiplayer.stand_in
        await self.store.add_event(seat.participant_id, seat.episode_id, "stand_in",
                                   {"room": room.id, "player": player, "from_frame": room.newest + 1,
                                    "policy": policy})
        await self._tell_peers(room, player, "partner_replaced", {"player": player, "policy": policy})
        # the AI seats it hosted, and with a stand-in policy its own seat, go to a browser that stays
        moving = [a for a, host in room.hosts.items() if host == player] + ([player] if policy else [])
        present = room.reporting()
        if moving and present:
            for ai in moving:
                room.hosts[ai] = present[0]
                mine = room.inputs[ai]
                notice = {"seat": ai, "host": present[0], "from_frame": max(mine) + 1 if mine else 0,
                          "policy": policy if ai == player else None}
                for other in present:
                    await self._emit("ai_host", notice, room.seats[other].sid)
        await self._stand_ins_follow(room, room.newest)

    def stand_in_input(self, room: Room, player: str, frame: int):
        """What a server stand-in plays at `frame`: the experiment's default action (a stand-in
        policy, ``multiplayer.stand_in``, is hosted by a browser instead: it sees the game)."""
        return self._game(room.experiment).default_action

    async def _stand_ins_follow(self, room: Room, upto: int) -> None:
        """Give every stand-in seat an input for each frame after its last one, up to `upto`."""
        for player, seat in room.seats.items():
            if not seat.stand_in or player in room.hosts:  # a hosted stand-in: its browser decides
                continue
            mine = room.inputs[player]
            first = max(mine) + 1 if mine else 0
            fresh = [[f, self.stand_in_input(room, player, f)] for f in range(first, upto + 1)]
            if not fresh:
                continue
            self._record(room, player, fresh)
            for chunk in range(0, len(fresh), 32):  # an input message carries at most 32
                await self._relay(room, player, upto, fresh[chunk:chunk + 32])

    async def exclude_seat(self, sid: str, session: dict, p: Exclusion) -> dict:
        """In-play screening excluded this socket's participant: their seat, if they are in a
        room, goes to the room's dropout policy, as for a partner who did not come back — a
        stand-in plays it on (``stand_in``), or the room ends for everyone (``end``) and the
        others are told with the dropout message. Nothing more of theirs is recorded."""
        room = self.mm.room_for(sid)
        player = room.player_of(sid) if room is not None else None
        if room is None or player is None or room.status != "playing":
            return {"ok": True}
        self.stats["excluded"] += 1
        mp = self._game(room.experiment).multiplayer
        if mp.dropout == "stand_in" and room.reporting() != [player]:
            self.mm.room_of_sid.pop(sid, None)  # its page's inputs are refused from now on
            await self._stand_in(room, player)
            return {"ok": True}
        notice = {"player": player, "reason": "excluded", "message": mp.dropout_message}
        if mp.dropout_completion_code:
            notice["completion_code"] = mp.dropout_completion_code
        await self._end_room(room, player, f"{player}: excluded ({p.reason})", notice)
        return {"ok": True}

    async def _abandon(self, sid: str, reason: str) -> None:
        """A player is gone mid-episode: end the room for everyone, keep its inputs."""
        room = self.mm.room_for(sid)
        if room is None or room.status != "playing":
            return
        player = room.player_of(sid)
        await self._end_room(room, player, f"{player}: {reason}", {"player": player, "reason": reason})

    async def _end_room(self, room: Room, player: str, end_reason: str, notice: dict) -> None:
        """`player` is gone for good: the room ends for everyone (inputs kept), the others hear why."""
        room.status = "abandoned"
        self._close(room)
        await self.store.save_room(room_record(room, ended=time.time(), end_reason=end_reason))
        await self._tell_peers(room, player, "partner_left", notice)

    async def _tell_peers(self, room: Room, player: str, event: str, data: dict) -> None:
        """A notice about `player` to everyone else still seated. Not through the network
        shaping of _deliver: a page can fetch a lost input, but not a lost notice."""
        for seat in room.peers_of(player):
            if not (seat.away or seat.stand_in):
                await self._emit(event, data, seat.sid)

    async def end_room_by_researcher(self, room_id: str, reason: str) -> bool:
        """End a playing room for everyone now, inputs kept, with the researcher's reason."""
        room = self.mm.rooms.get(room_id)
        if room is None or room.status != "playing":
            return False
        for player in room.players:
            timer = self.away_timers.pop((room.id, player), None)
            if timer is not None:
                timer.cancel()
        room.status = "ended"
        self._close(room)
        await self.store.save_room(room_record(room, ended=time.time(), end_reason=f"researcher: {reason}"))
        notice = {"player": None, "reason": "ended_by_researcher", "message": ENDED_BY_RESEARCHER}
        for seat in room.seats.values():
            if not (seat.away or seat.stand_in):
                await self._emit("partner_left", notice, seat.sid)
        return True
