"""The waiting rooms (on the matchmaker, with several processes): joins, first come first
served or latency-aware matching, returning partners, the wait timeout and its fallback, and
the hand-over of each room formed to the process that will own it."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from server.multiplayer.owners import ADOPT, GONE_PLAYING
from server.multiplayer.rooms import (
    LatencyRule,
    Room,
    RoomError,
    Seat,
    group_queue,
    pick_owner,
    queue_key,
    room_to_wire,
    split_key,
)
from server.study.experiment import Experiment
from server.study.games import GameSpec
from server.transport.events import MpJoin
from server.transport.sockets import Rejected

log = logging.getLogger("coplay.relay")


def latency_rule(mp: Any) -> LatencyRule | None:
    """The scene's latency-aware matching (``match_rtt_ms``), or None: first come first served."""
    if mp.match_rtt_ms is None:
        return None
    return LatencyRule(mp.match_rtt_ms, mp.match_fallback_s)


class WaitingRooms:
    """Matchmaking, mixed into server/multiplayer/relay.py Relay (it shares the relay's state)."""

    def _partners(self, exp: Experiment, condition: str | None, pid: str, game: GameSpec) -> dict | None:
        """The partners this participant must play with again: those of their last room, when
        it was an earlier episode of this scene or the scene right before it on their path
        (and the scene does not ask for a rematch)."""
        last = self.mm.partners.get(pid)
        if game.rematch or last is None or len(last[1]) != len(game.humans):
            return None
        last_key, members = last
        previous = split_key(last_key)[2]
        if previous == game.scene_id:
            return members
        path = [s.id for s in exp.scenes_for(condition, pid)]
        consecutive = previous in path and game.scene_id in path and \
            path.index(game.scene_id) == path.index(previous) + 1
        return members if consecutive else None

    async def join(self, sid: str, session: dict, p: MpJoin) -> dict:
        exp = self.experiments[session["experiment"]]
        condition = await self.store.get_condition(session["participant_id"], exp.name)
        try:
            game = exp.game(condition, p.scene)
        except (KeyError, StopIteration):
            raise Rejected(f"{exp.name} has no game scene {p.scene!r}") from None
        if not game.is_multiplayer:
            raise Rejected(f"{exp.name}: scene {game.scene_id!r} is a single-player game")
        mp = game.multiplayer
        net = mp.network.model_dump()
        if p.net is not None:
            if not mp.network_from_url:
                raise Rejected("network shaping from the URL is disabled for this experiment")
            net = p.net.model_dump()
        ip = session.get("ip", "unknown")
        elsewhere = sum(owner is not None and at == ip for _, owner, at in self.placed.values())
        if self.mm.seats_from(ip) + elsewhere >= self.max_rooms_per_ip:
            raise Rejected(f"too many games from your address (at most {self.max_rooms_per_ip} at once)",
                           "ip_limit")
        seat = Seat(sid, session["participant_id"], p.episode_id, net, ip=ip, rtt_ms=p.rtt_ms)
        key = queue_key(exp.name, condition, game.scene_id)
        group = self._partners(exp, condition, session["participant_id"], game)
        queue = group_queue(key, group) if group else key
        rule = None if group else latency_rule(mp)  # returning partners wait for each other
        try:
            room = self.mm.join(key, seat, game.players, horizon=mp.input_delay + mp.max_prediction + 90,
                                group=group, ai=list(game.partners), rule=rule)
        except RoomError as exc:
            raise Rejected(str(exc), exc.reason) from None
        self.placed.pop(sid, None)
        if not any(s is seat for s in (room.seats.values() if room else ())):
            # waiting (under a rule, others may have been matched)
            self.wait_timers[sid] = asyncio.create_task(self._wait_timeout(sid, queue, group))
            if rule is not None and rule.fallback_s is not None:
                self.fallback_timers[sid] = asyncio.create_task(self._fallback(sid, key, seat.joined))
        if room is not None:
            await self._place(room, queue)
            if rule is not None:  # a fallback seat's time may have come meanwhile: more rooms
                await self._match_more(key)
        if sid in self.placed:
            return {"ok": True, "status": "matched", "room": self.placed[sid][0]}
        await self._announce_waiting(queue)
        return {"ok": True, "status": "waiting", "count": len(self.mm.waiting(queue)),
                "size": len(game.humans)}

    async def _match_more(self, key: str, now: float | None = None) -> None:
        """Latency-aware matching again for a waiting room (not a group's): start every room
        its waiting seats now make."""
        game = self._game(key)
        mp = game.multiplayer
        rule = latency_rule(mp)
        while rule is not None:
            room = self.mm.match(key, game.players, horizon=mp.input_delay + mp.max_prediction + 90,
                                 ai=list(game.partners), rule=rule, now=now)
            if room is None:
                return
            await self._place(room, key)

    async def _fallback(self, sid: str, key: str, joined: float) -> None:
        """A waiting seat's fallback time has come: it may now be grouped with anyone."""
        fallback_s = self._game(key).multiplayer.match_fallback_s
        await asyncio.sleep(max(0.0, joined + fallback_s - time.monotonic()))
        self.fallback_timers.pop(sid, None)
        if any(s.sid == sid for s in self.mm.waiting(key)):
            # not a moment before its time, whatever the timer's resolution
            await self._match_more(key, now=max(time.monotonic(), joined + fallback_s))

    async def _place(self, room: Room, queue: str) -> None:
        """The matchmaker formed a room: it is played on the process holding most of its
        people's sockets (this one on a single process), which starts it."""
        for s in room.seats.values():
            self._cancel_wait(s.sid)
        if room.matching:  # latency-aware matching: how, with which RTTs and waits
            self.stats["matched_" + room.matching["by"]] += 1
            await self.store.add_event(None, None, "match", {"room": room.id, **room.matching})
        owner = None
        if self.cluster is not None:
            me = self.cluster.me
            owner = pick_owner(room, self._homes(room))
            if self.cluster.here(owner) or not await self._hand_over(room, owner):
                owner = None  # played here (or its owner could not take it)
            self._token_owner_is(room, owner or me)
        for s in room.seats.values():
            if not s.stand_in:
                self.placed[s.sid] = (room.id, owner, s.ip)
        if owner is None:
            await self.open_room(room)
        await self._announce_waiting(queue)

    def _token_owner_is(self, room: Room, process: str) -> None:
        for s in room.seats.values():
            s.token = f"{process}.{s.token.rpartition('.')[2]}"

    async def _hand_over(self, room: Room, owner: str) -> bool:
        """Give a room just formed here to the process `owner`; False if it could not take it."""
        self._token_owner_is(room, owner)
        wire = {**room_to_wire(room), "homes": self._homes(room)}
        try:
            await self.cluster.forward(owner, ADOPT, "", {}, wire)
        except Rejected as exc:
            log.warning("process %s could not take room %s (%s): it is played here", owner, room.id, exc)
            return False
        self.mm.close(room)  # it lives on its owner now
        return True

    async def _announce_waiting(self, key: str) -> None:
        queue = self.mm.waiting(key)
        size = len(self._game(key).humans)
        for seat in queue:
            await self._emit("waiting", {"count": len(queue), "size": size}, seat.sid)

    async def _wait_timeout(self, sid: str, key: str, group: dict[str, str] | None = None) -> None:
        game = self._game(key)
        mp = game.multiplayer
        await asyncio.sleep(mp.wait_timeout)
        self.wait_timers.pop(sid, None)
        self._cancel_wait(sid)
        if group and mp.dropout == "stand_in" and any(s.sid == sid for s in self.mm.waiting(key)):
            # partners who did not come back: stand-ins play their seats, as for a dropout
            room = self.mm.start_with_stand_ins(key, group, game.players,
                                                horizon=mp.input_delay + mp.max_prediction + 90,
                                                ai=list(game.partners))
            await self._place(room, key)
            return
        await self._send_away(sid, key, group)

    async def _send_away(self, sid: str, key: str, group: dict[str, str] | None = None,
                         by: str = "timeout") -> bool:
        """A waiting participant leaves the waiting room for the wait timeout's fallback
        (its message or redirect). False when they were not waiting there."""
        seat = next((s for s in self.mm.waiting(key) if s.sid == sid), None)
        if seat is None or self.mm.leave_queue(sid) is None:
            return False
        mp = self._game(key).multiplayer
        await self.store.add_event(seat.participant_id, seat.episode_id, "wait_timeout",
                                   {"queue": key, "waited_s": round(time.monotonic() - seat.joined, 1),
                                    "by": by})
        if group:  # waiting for partners who did not come: the dropout policy's end
            await self._emit("wait_timeout", {"message": mp.dropout_message, "redirect": None,
                                              "reason": "partner_left",
                                              "completion_code": mp.dropout_completion_code}, sid)
        else:
            await self._emit("wait_timeout", {"message": mp.wait_timeout_message,
                                              "redirect": mp.wait_timeout_redirect}, sid)
        await self._announce_waiting(key)
        return True

    async def send_to_fallback(self, sid: str) -> bool:
        """Send a waiting participant to the wait timeout's fallback now."""
        key = next((q for q, seats in self.mm.queues.items() if any(s.sid == sid for s in seats)), None)
        if key is None:
            return False
        self._cancel_wait(sid)
        group = None
        if "#" in key:  # a group's waiting room: its members' earlier seats
            pid = next(s.participant_id for s in self.mm.queues[key] if s.sid == sid)
            group = self.mm.partners.get(pid, (None, None))[1]
        return await self._send_away(sid, key, group, by="researcher")

    def _cancel_wait(self, sid: str) -> None:
        """A seat leaves the waiting room (matched, timed out or gone): its timers stop."""
        for timers in (self.wait_timers, self.fallback_timers):
            timer = timers.pop(sid, None)
            if timer is not None and timer is not asyncio.current_task():
                timer.cancel()

    async def gone_waiting(self, sid: str, session: dict, payload: dict | None) -> dict:
        """The matchmaker's part of a closed socket."""
        self._cancel_wait(sid)
        key = self.mm.leave_queue(sid)
        placed = self.placed.pop(sid, None)
        if key is not None:
            await self._announce_waiting(key)
        elif placed is not None and payload is not None and placed[1] is not None \
                and placed[1] != payload["owner"]:
            # it closed before its process heard where its room went: its owner hears it from here
            await self._to(placed[1], GONE_PLAYING, sid, None)
        if self.cluster is not None:
            self.cluster.home.pop(sid, None)
        return {"ok": True}
