"""Multiplayer over Socket.IO: waiting room, input relay, desync checks, and the end of
a room (final hashes checked against a server-side CPython replay). The server never
runs the game while it is played; it records the confirmed input stream."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import Any

from server.data.storage import Store
from server.monitor.presence import Presence
from server.multiplayer.cluster import Cluster
from server.multiplayer.replay import ReplayFailed
from server.multiplayer.replay_pool import Replays
from server.multiplayer.room_records import RoomRecords
from server.multiplayer.rooms import (
    LatencyRule,
    Matchmaker,
    Room,
    RoomError,
    Seat,
    group_queue,
    pick_owner,
    room_from_wire,
    room_key,
    room_to_wire,
)
from server.study.experiment import Experiment
from server.study.games import GameSpec
from server.study.inplay import InPlay
from server.transport.events import FetchInputs, InputMsg, MpJoin, MpLeave, MpRejoin, Rtt, StateHash, Strict
from server.transport.socket_server import SocketServer
from server.transport.sockets import Rejected, SocketHandlers

log = logging.getLogger("coplay.relay")

ENDED_BY_RESEARCHER = "The researcher ended this game. Your data has been saved — thank you!"
INTERRUPTED = "The game was interrupted by a server problem. Your data has been saved — thank you!"
# events between server processes only (server/multiplayer/cluster.py), never from a page
ADOPT = "__adopt__"  # the matchmaker hands a room to the process that will own it
GONE_WAITING = "__gone_waiting__"  # a socket closed: the matchmaker's part (its waiting room)
GONE_PLAYING = "__gone_playing__"  # a socket closed: its room owner's part


class Exclusion(Strict):
    """In-play screening excluded the participant of a socket (server/study/inplay.py): not a
    page's event, only routed to the process holding the rooms."""
    reason: str


def queue_key(experiment: str, condition: str | None, scene: str) -> str:
    """Participants are matched only with others of the same experiment, condition and
    game scene (a waiting room per scene)."""
    return f"{experiment}/{condition or ''}/{scene}"


def split_key(key: str) -> tuple[str, str | None, str]:
    experiment, condition, scene = key.split("/", 2)
    return experiment, condition or None, scene


def others_inputs(room: Room, player: str, since: dict[str, list]) -> dict[str, list]:
    """What `player`'s page needs of the recorded inputs: not its own, nor its AI seats'."""
    return {q: rec for q, rec in since.items() if q != player and room.hosts.get(q) != player}


def room_record(room: Room, **extra: Any) -> dict:
    experiment, condition, scene = split_key(room.experiment)
    return {
        "id": room.id, "experiment": experiment, "condition": condition, "scene_id": scene, "seed": room.seed,
        "created": room.created,
        "players": {p: seat.participant_id for p, seat in room.seats.items()}, "status": room.status,
        "desyncs": room.desyncs,
        "inputs": {p: {str(f): v for f, v in rec.items()} for p, rec in room.inputs.items()},
        **extra,
    }


def latency_rule(mp: Any) -> LatencyRule | None:
    """The scene's latency-aware matching (``match_rtt_ms``), or None: first come first served."""
    if mp.match_rtt_ms is None:
        return None
    return LatencyRule(mp.match_rtt_ms, mp.match_fallback_s)


class Relay:
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

    # -- where a room event runs (several processes) -------------------------------------------
    def _matchmaker(self, sid: str, payload: Any) -> str | None:
        return self.cluster.leader

    def _joined_at(self, join):
        """Remember the sockets of this process left waiting by their join (several processes)."""
        async def joined(sid: str, session: dict, p: MpJoin) -> dict:
            reply = await join(sid, session, p)
            if reply.get("status") == "waiting":
                self.waiting_here[sid] = (session, p)
            return reply

        self._join_routed = join
        return joined

    async def _join_again(self) -> None:
        """The matchmaker changed (the one before died or stopped, its waiting rooms with it):
        the sockets of this process it had waiting join the next one."""
        for sid, (session, p) in list(self.waiting_here.items()):
            try:
                await self._join_routed(sid, session, p)
            except Rejected as exc:
                log.warning("socket %s could not join the new matchmaker: %s", sid, exc)

    def _owner(self, sid: str, payload: Any) -> str | None:
        """The process owning the room of a socket of this process (None: here, or no room)."""
        if self.mm.room_for(sid) is not None:
            return None
        return self.cluster.owner_of.get(sid)

    def _token_owner(self, sid: str, p: MpRejoin) -> str | None:
        """A seat's token starts with its room owner's id (given at matchmaking)."""
        process, dot, _ = p.token.partition(".")
        return process if dot else None

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

    # -- waiting room -----------------------------------------------------------------
    def _game(self, key: str) -> GameSpec:
        """The game scene a room (or a waiting room) plays, by its queue key."""
        name, condition, scene = split_key(room_key(key))
        return self.experiments[name].game(condition, scene)

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

    def _homes(self, room: Room) -> dict[str, str]:
        """The process holding each seat's socket."""
        return {s.sid: self.cluster.home.get(s.sid, self.cluster.me) for s in room.seats.values()}

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

    # -- the researcher's actions (the live monitor, server/monitor/) ------------------------
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

    # -- leaving ------------------------------------------------------------------------
    async def leave(self, sid: str, session: dict, p: MpLeave) -> dict:
        await self._abandon(sid, p.reason)
        return {"ok": True}

    def _cancel_wait(self, sid: str) -> None:
        """A seat leaves the waiting room (matched, timed out or gone): its timers stop."""
        for timers in (self.wait_timers, self.fallback_timers):
            timer = timers.pop(sid, None)
            if timer is not None and timer is not asyncio.current_task():
                timer.cancel()

    async def disconnected(self, sid: str) -> None:
        """A socket closed (one process): out of its waiting room, or away from its room."""
        await self.gone_waiting(sid, {}, None)
        await self.gone_playing(sid, {}, None)

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
            for seat_sid, home in wire["homes"].items():
                if home == process:  # its socket went with the process
                    room.seats[next(p for p, s in room.seats.items() if s.sid == seat_sid)].away = True
                elif not self.cluster.here(home):
                    self.cluster.home[seat_sid] = home
            rooms.append(room)
        if rooms:
            await self._interrupt(rooms, f"server process {process} stopped")

    # -- reconnecting ---------------------------------------------------------------------
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

    # -- stand-ins -------------------------------------------------------------------------
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
