"""Multiplayer over Socket.IO: the input relay, desync checks, and the end of a room (final
hashes checked against a server-side CPython replay). The server never runs the game while
it is played; it records the confirmed input stream. Relay is made of four parts sharing its
state: this module (wiring and play), server/multiplayer/waiting.py (the waiting rooms),
seats.py (leaving and coming back) and owners.py (rooms spread over several processes)."""

from __future__ import annotations

import asyncio
import logging
import random
import time

from server.data.storage import Store
from server.monitor.presence import Presence
from server.multiplayer.cluster import Cluster
from server.multiplayer.owners import ADOPT, GONE_PLAYING, GONE_WAITING, RoomOwners
from server.multiplayer.replay import ReplayFailed
from server.multiplayer.replay_pool import Replays
from server.multiplayer.room_records import RoomRecords
from server.multiplayer.rooms import (
    Matchmaker,
    Room,
    RoomError,
    Seat,
    others_inputs,
    room_key,
    room_record,
    split_key,
)
from server.multiplayer.seats import Exclusion, Seats
from server.multiplayer.waiting import WaitingRooms
from server.study.experiment import Experiment
from server.study.games import GameSpec
from server.study.inplay import InPlay
from server.transport.events import FetchInputs, InputMsg, MpJoin, MpLeave, MpRejoin, Rtt, StateHash
from server.transport.socket_server import SocketServer
from server.transport.sockets import Rejected, SocketHandlers

log = logging.getLogger("coplay.relay")

INTERRUPTED = "The game was interrupted by a server problem. Your data has been saved — thank you!"














class Relay(WaitingRooms, Seats, RoomOwners):
    def __init__(self, sio: SocketServer, sockets: SocketHandlers, store: Store,
                 experiments: dict[str, Experiment], cluster: Cluster | None = None,
                 max_rooms_per_ip: int = 100, replays: Replays | None = None,
                 presence: Presence | None = None):
        self.sio = sio
        self.presence = presence or Presence()
        self.replays = replays or Replays(workers=0)
        self.store = store
        self.experiments = experiments
        self.mm = Matchmaker()
        self.wait_timers: dict[str, asyncio.Task] = {}
        # sid -> the timer that re-runs latency-aware matching when its seat may fall back
        self.fallback_timers: dict[str, asyncio.Task] = {}
        self.rng = random.Random()
        self.stats = {"relayed": 0, "dropped": 0, "rooms_started": 0, "rooms_finished": 0, "away": 0,
                      "rejoined": 0, "resumed": 0, "stand_ins": 0, "replay_errors": 0,
                      "matched_latency": 0, "matched_fallback": 0, "excluded": 0}
        self._tasks: set[asyncio.Task] = set()
        self.cluster = cluster
        self.records = RoomRecords(cluster) if cluster is not None else None
        # matchmaker: the room each socket was seated in, the process owning it (None: here) and
        # the socket's address (a seat in a room elsewhere counts toward the address's games)
        self.placed: dict[str, tuple[str, str | None, str]] = {}
        # sockets of this process waiting in the matchmaker's waiting room, with their join: if
        # the matchmaker dies they join again at the next one
        self.waiting_here: dict[str, tuple[dict, MpJoin]] = {}
        self.max_rooms_per_ip = max_rooms_per_ip
        self.away_timers: dict[tuple[str, str], asyncio.Task] = {}  # (room, player) -> dropout timer
        # with several processes (Redis), a join runs on the matchmaker, a room's other events on
        # the process owning the room
        room_events = [("mp_join", MpJoin, self.join, self._matchmaker),
                       ("input", InputMsg, self.input, self._owner),
                       ("fetch_inputs", FetchInputs, self.fetch_inputs, self._owner),
                       ("state_hash", StateHash, self.state_hash, self._owner),
                       ("mp_leave", MpLeave, self.leave, self._owner),
                       ("mp_rejoin", MpRejoin, self.rejoin, self._token_owner),
                       ("inplay_exclude", Exclusion, self.exclude_seat, self._owner)]
        routed = {}
        for event, model, handler, where in room_events:
            if cluster is not None:  # inputs are not acknowledged by pages: no need to wait
                handler = cluster.route(event, model, handler, where, wait=event != "input",
                                        claims=event == "mp_rejoin")
                if event == "mp_join":
                    self._join_routed = handler  # a new matchmaker: _join_again joins again through it
                    handler = self._joined_at(handler)
            routed[event] = handler
            if event != "inplay_exclude":  # not a page's event
                sockets.register(event, model, handler)
        if cluster is not None:
            cluster.refuse = sockets.refuse
            cluster.deliver = self._emit
            cluster.serve(ADOPT, None, self.adopt)
            cluster.serve(GONE_WAITING, None, self.gone_waiting)
            cluster.serve(GONE_PLAYING, None, self.gone_playing)
            cluster.on_dead.append(self.process_died)
            cluster.on_new_leader.append(self._join_again)
        sockets.register("rtt", Rtt, self.rtt)
        exclude = routed["inplay_exclude"]
        self.inplay = InPlay(store, experiments,
                             lambda sid, session, reason: exclude(sid, session, Exclusion(reason=reason)))
        sockets.disconnect_hooks.append(self._gone if cluster else self.disconnected)

    def cluster_stats(self) -> dict | None:
        if self.cluster is None:
            return None
        return {"process": self.cluster.me, "matchmaker": self.cluster.leader,
                "rooms_owned": len(self.mm.rooms), **self.cluster.stats}

    async def _emit(self, event: str, data: dict, sid: str) -> None:
        """Emit to one socket. A socket on this process is written to directly; one on another
        process gets it through the cluster's batched per-process channel, or else through
        python-socketio's client manager."""
        if event in ("room_start", "wait_timeout"):  # out of the waiting room
            self.waiting_here.pop(sid, None)
        if await self.sio.send_to(sid, event, data):
            return
        if self.cluster is not None and self.cluster.emit_remote(sid, event, data):
            return
        await self.sio.emit(event, data, to=sid)

    def _spawn(self, coro) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _game(self, key: str) -> GameSpec:
        """The game scene a room (or a waiting room) plays, by its queue key."""
        name, condition, scene = split_key(room_key(key))
        return self.experiments[name].game(condition, scene)

    async def open_room(self, room: Room) -> None:
        """A room starts on the process that owns it: recorded, its people told."""
        self.stats["rooms_started"] += 1
        await self.store.save_room(room_record(room))
        if self.cluster is not None:
            self.records.opened(room, self._homes(room))
            for s in room.seats.values():
                self.cluster.claim(s.sid)  # ahead of room_start: the page's inputs come here
        for player, s in room.seats.items():
            if not s.stand_in:
                await self._emit("room_start", {"room": room.id, "player": player, "players": room.players,
                                                "seed": room.seed, "token": s.token, "ai": room.hosts}, s.sid)
        for player, seat in room.seats.items():
            if seat.stand_in:  # group partners who did not come back (_wait_timeout)
                self.stats["stand_ins"] += 1
                await self.store.add_event(seat.participant_id, None, "stand_in",
                                           {"room": room.id, "player": player, "from_frame": 0,
                                            "reason": "did not come back"})
                await self._tell_peers(room, player, "partner_replaced", {"player": player})

    # -- play -------------------------------------------------------------------------
    def _record(self, room: Room, player: str, inputs: list) -> None:
        """Store a player's inputs in its room (and, with several processes, in the room's
        Redis record, a second or so later)."""
        try:
            fresh = room.record_inputs(player, inputs)
        except RoomError as exc:
            raise Rejected(str(exc), exc.reason) from None
        if self.records is not None:
            self.records.recorded(room, player, fresh)

    def _close(self, room: Room) -> None:
        """A room owned here ends: nothing more is relayed or recorded in it."""
        self.mm.close(room)
        if self.cluster is not None:
            self.records.closed(room)
            for s in room.seats.values():
                self.cluster.release(s.sid)

    def _room_and_player(self, sid: str) -> tuple[Room, str]:
        room = self.mm.room_for(sid)
        player = room.player_of(sid) if room else None
        if room is None or player is None:
            raise Rejected("not in a room", "not_in_room")
        return room, player

    def _check_frame(self, room: Room, frame: int) -> None:
        """No frame past the end of the game (max_steps) plus the input horizon: a far-future
        frame would grow the room's records and make the end-of-room replay arbitrarily long."""
        limit = self._game(room.experiment).max_steps + room.horizon
        if frame > limit:
            raise Rejected(f"frame {frame} is out of range (past the game's end, {limit})", "out_of_range")

    async def input(self, sid: str, session: dict, p: InputMsg) -> dict:
        room, player = self._room_and_player(sid)
        if p.seat is not None and p.seat != player:  # an AI seat's inputs, from its host
            if room.hosts.get(p.seat) != player:
                raise Rejected(f"seat {p.seat!r} is not an AI seat you host", "not_your_seat")
            player = p.seat
        newest = max(f for f, _ in p.inputs)
        self._check_frame(room, max(p.frame, newest))
        self._record(room, player, p.inputs)
        await self._relay(room, player, p.frame, p.inputs, p.adv)
        await self._stand_ins_follow(room, newest)
        return {"ok": True}

    async def _relay(self, room: Room, player: str, frame: int, inputs: list, adv: float = 0.0) -> None:
        """`player`'s inputs to everyone else in the room, as an ``input`` event."""
        message = {"player": player, "frame": frame, "inputs": inputs, "adv": adv}
        for seat in room.peers_of(player):
            if not seat.stand_in:  # nobody's page behind it
                await self._deliver(seat, "input", message)

    async def _deliver(self, seat: Seat, event: str, data: dict) -> None:
        """Relay to one seat, through its configured network shape. Nothing goes to a seat
        that is away or played by a stand-in: a returning page fetches what it missed."""
        if seat.away or seat.stand_in:
            return
        net = seat.net
        if net["drop"] and self.rng.random() < net["drop"]:
            self.stats["dropped"] += 1
            return
        jitter = net["jitter_ms"]
        delay = net["delay_ms"] + (self.rng.uniform(-jitter, jitter) if jitter else 0)
        self.stats["relayed"] += 1
        if delay <= 0:
            await self._emit(event, data, seat.sid)
        else:
            self._spawn(self._emit_later(delay / 1000, event, data, seat.sid))

    async def _emit_later(self, seconds: float, event: str, data: dict, sid: str) -> None:
        await asyncio.sleep(seconds)
        await self._emit(event, data, sid)

    async def fetch_inputs(self, sid: str, session: dict, p: FetchInputs) -> dict:
        """The recorded inputs of the other players from a frame on: how a client recovers
        inputs the relay dropped."""
        room, player = self._room_and_player(sid)
        since = room.inputs_since(p.from_frame)
        return {"ok": True, "inputs": others_inputs(room, player, since)}

    async def rtt(self, sid: str, session: dict, p: Rtt) -> dict:
        """A page's RTT ping, with its vitals while it plays: kept for the monitor and checked
        by in-play screening, whose decision (a warning or the exclusion) rides on the ack."""
        decision = None
        if p.vitals is not None:
            vitals = p.vitals.model_dump(exclude_none=True)
            self.presence.report(sid, vitals)
            decision = await self.inplay.check(sid, session, vitals)
        if p.shape_ms and self.experiments[session["experiment"]].multiplayer.network_from_url:
            await asyncio.sleep(p.shape_ms / 1000)
        ack = {"ok": True, "t": p.t}
        if decision is not None:
            ack["inplay"] = decision
        return ack

    async def state_hash(self, sid: str, session: dict, p: StateHash) -> dict:
        room, player = self._room_and_player(sid)
        self._check_frame(room, p.frame)
        if p.final:
            room.final[player] = (p.frame, p.hash)
            if len(room.final) >= len(room.reporting()):
                await self._finish(room)
            return {"ok": True}
        report = room.add_checkpoint(player, p.frame, p.hash)
        if report is not None:
            log.warning("desync in room %s: %s", room.id, report)
            await self.store.add_event(None, None, "desync", {"room": room.id, **report})
            for seat in room.seats.values():
                await self._emit("desync", report, seat.sid)
        return {"ok": True}

    async def _finish(self, room: Room) -> None:
        name, condition, scene = split_key(room.experiment)
        exp = self.experiments[name]
        game = exp.game(condition, scene)
        self._close(room)
        end_frame = max(frame for frame, _ in room.final.values()) - 1
        finals = {p: h for p, (_, h) in room.final.items()}
        replay_hash: str | None = None
        replay_error: str | None = None
        try:  # in a worker process: the relay goes on meanwhile
            result = await self.replays.run(exp, game, room.players, room.seed, room.inputs, end_frame)
            replay_hash = result["hash"]
        except ReplayFailed as exc:  # e.g. a browser-only import: record it, keep serving
            log.warning("replay of room %s could not run: %s", room.id, exc)
            replay_error = str(exc)
            self.stats["replay_errors"] += 1
        same_end = len({frame for frame, _ in room.final.values()}) == 1
        browsers_agree = same_end and len(set(finals.values())) == 1
        if replay_error is not None:
            # nothing to compare with: unverified, not a desync (unless the browsers
            # already disagree among themselves, which needs no replay to tell)
            room.status = "replay_error" if browsers_agree else "desync"
        else:
            room.status = "completed" if browsers_agree and replay_hash in finals.values() else "desync"
        self.stats["rooms_finished"] += 1
        await self.store.save_room(room_record(room, ended=time.time(), end_frame=end_frame,
                                               final_hashes=finals, replay_hash=replay_hash,
                                               replay_error=replay_error))
        outcome = {"status": room.status, "final_hashes": finals, "replay_hash": replay_hash,
                   "end_frame": end_frame}
        if replay_error is not None:
            outcome["replay_error"] = replay_error
        for seat in room.seats.values():
            await self._emit("room_result", outcome, seat.sid)

    # -- server shutdown ----------------------------------------------------------------------
    async def shutdown(self, reason: str = "server shutdown") -> int:
        """The server is stopping (server/transport/lifecycle.py): save every open room as ``interrupted``
        with the inputs recorded so far, and close it, so nothing more is relayed or recorded
        in it. Waiting participants stay queued until their connection closes. Returns the
        number of rooms saved."""
        for timers in (self.wait_timers, self.fallback_timers):
            for timer in timers.values():
                timer.cancel()
            timers.clear()
        rooms = [room for room in self.mm.rooms.values() if room.status == "playing"]
        await self._interrupt(rooms, reason, here_too=False)
        return len(rooms)

    async def _interrupt(self, rooms: list[Room], reason: str, here_too: bool = True) -> None:
        """End rooms as ``interrupted`` with the inputs recorded so far, and tell the people
        still seated (but for `here_too` False, those connected to this process: it is
        stopping, their pages hear it from their connection)."""
        ended = time.time()
        records = []
        for room in rooms:  # close them all first: no input is recorded after its snapshot
            room.status = "interrupted"
            self._close(room)
            records.append(room_record(room, ended=ended, end_reason=reason))
        for record in records:
            await self.store.save_room(record)
        if records:
            log.info("saved %d open room(s) as interrupted", len(records))
        notice = {"player": None, "reason": "interrupted", "message": INTERRUPTED}
        for room in rooms:
            for seat in room.seats.values():
                elsewhere = self.cluster is not None and seat.sid in self.cluster.home
                if not (seat.away or seat.stand_in) and (here_too or elsewhere):
                    await self._emit("partner_left", notice, seat.sid)
