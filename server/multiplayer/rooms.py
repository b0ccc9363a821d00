"""Matchmaking and room state. Pure bookkeeping (no sockets), so it is unit-testable;
server/multiplayer/relay.py wires it to Socket.IO."""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import asdict, dataclass, field
from typing import Any

MAX_INPUT_BYTES = 256


class RoomError(ValueError):
    """A client tried something its room does not allow; the message says what, `reason`
    the key it is counted under (GET /stats)."""

    def __init__(self, message: str, reason: str = "refused"):
        super().__init__(message)
        self.reason = reason


@dataclass
class Seat:
    sid: str
    participant_id: str
    episode_id: str
    net: dict[str, float]
    joined: float = field(default_factory=time.monotonic)
    ip: str = "unknown"  # the client address, for the per-address limit on games
    # the secret a reconnecting page shows to get this seat back (never a client-chosen id)
    token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    away: bool = False  # disconnected, inside the reconnect window
    stand_in: bool = False  # dropped out; a scripted stand-in plays this seat
    # the page's round trip to the server measured just before joining (None: unknown), for
    # latency-aware matching (LatencyRule)
    rtt_ms: float | None = None


@dataclass(frozen=True)
class LatencyRule:
    """Latency-aware matching (``multiplayer.match_rtt_ms``/``match_fallback_s``): a room is
    formed only of seats whose RTTs sum to at most ``max_rtt_ms``; a seat that has waited
    ``fallback_s`` seconds (None: never) is grouped first come first served with anyone."""

    max_rtt_ms: float
    fallback_s: float | None = None

    def is_fallback(self, seat: Seat, now: float) -> bool:
        return self.fallback_s is not None and now - seat.joined >= self.fallback_s

    def pick(self, queue: list[Seat], size: int, now: float) -> tuple[list[Seat], str] | None:
        """The seats of the next room, in arrival order, and how they were matched; None:
        everyone waits. First the lowest-RTT set of known RTTs that fits (earliest arrivals
        break ties); else the longest-waiting fallback seat with the earliest other arrivals."""
        if len(queue) < size:
            return None
        order = {id(s): i for i, s in enumerate(queue)}
        known = sorted((s for s in queue if s.rtt_ms is not None), key=lambda s: (s.rtt_ms, order[id(s)]))
        best = known[:size]
        if len(best) == size and sum(s.rtt_ms for s in best) <= self.max_rtt_ms:
            return sorted(best, key=lambda s: order[id(s)]), "latency"
        fallen = next((s for s in queue if self.is_fallback(s, now)), None)
        if fallen is None:
            return None
        others = [s for s in queue if s is not fallen][: size - 1]
        return sorted([fallen, *others], key=lambda s: order[id(s)]), "fallback"


@dataclass
class Room:
    id: str
    experiment: str
    seed: int
    players: list[str]
    seats: dict[str, Seat]  # player id -> seat
    horizon: int  # how far past the newest recorded frame an input may be
    created: float = field(default_factory=time.time)
    inputs: dict[str, dict[int, Any]] = field(default_factory=dict)
    checkpoints: dict[int, dict[str, str]] = field(default_factory=dict)
    final: dict[str, tuple[int, str]] = field(default_factory=dict)
    desyncs: list[dict] = field(default_factory=list)
    status: str = "playing"
    newest: int = 0
    # AI seat -> the player whose browser decides for it and sends its inputs (an AI
    # partner, or the stand-in policy of a person who dropped out)
    hosts: dict[str, str] = field(default_factory=dict)
    # how the room was matched under a LatencyRule: {"by": "latency" | "fallback", "rtt_ms":
    # {player: ms or None}, "waited_s": {player: s}}; empty for first come first served
    matching: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for p in self.players:
            self.inputs.setdefault(p, {})

    def player_of(self, sid: str) -> str | None:
        for player, seat in self.seats.items():
            if seat.sid == sid:
                return player
        return None

    def peers_of(self, player: str) -> list[Seat]:
        """Everyone who must hear of `player`'s inputs: not itself, nor the browser hosting it."""
        return [seat for p, seat in self.seats.items() if p != player and p != self.hosts.get(player)]

    def reporting(self) -> list[str]:
        """Players whose pages report state hashes: everyone but stand-ins."""
        return [p for p, seat in self.seats.items() if not seat.stand_in]

    def record_inputs(self, player: str, inputs: list[tuple[int, Any]]) -> list[tuple[int, Any]]:
        """Store a player's inputs (idempotent). Returns the ones that were new.
        Refuses frames out of range, oversized values and rewrites of a frame."""
        mine = self.inputs[player]
        fresh: dict[int, Any] = {}
        # check the whole message before storing any of it: a refused message changes nothing
        for frame, value in inputs:
            if frame in mine:  # a redundant resend (pages repeat their last inputs): checked when stored
                if mine[frame] != value:
                    raise RoomError(f"frame {frame} already has a different input", "replayed")
                continue
            if frame < 0 or frame > self.newest + self.horizon:
                raise RoomError(f"frame {frame} is out of range (newest {self.newest})", "out_of_range")
            try:
                size = len(json.dumps(value, allow_nan=False))
            except (ValueError, TypeError, RecursionError):
                raise RoomError("input value is not plain JSON", "validation") from None
            if size > MAX_INPUT_BYTES:
                raise RoomError("input value too large", "oversized")
            if fresh.get(frame, value) != value:
                raise RoomError(f"frame {frame} already has a different input", "replayed")
            fresh[frame] = value
        mine.update(fresh)
        if fresh:
            self.newest = max(self.newest, *fresh)
        return sorted(fresh.items())

    def inputs_since(self, frame: int) -> dict[str, list[tuple[int, Any]]]:
        return {p: sorted((f, v) for f, v in rec.items() if f >= frame) for p, rec in self.inputs.items()}

    def add_checkpoint(self, player: str, frame: int, digest: str) -> dict | None:
        """Record a state hash; returns a desync report once all players reported the
        frame and they disagree."""
        hashes = self.checkpoints.setdefault(frame, {})
        hashes[player] = digest
        if len(hashes) >= len(self.reporting()):
            del self.checkpoints[frame]
            if len(set(hashes.values())) > 1:
                report = {"frame": frame, "hashes": dict(hashes)}
                self.desyncs.append(report)
                return report
        return None


def room_to_wire(room: Room) -> dict[str, Any]:
    """A room as plain JSON, without its inputs: how the matchmaker hands a room to the
    process that will own it, and how an owner leaves a record of it in Redis."""
    seats = {p: {k: v for k, v in asdict(s).items() if k != "joined"} for p, s in room.seats.items()}
    return {"id": room.id, "experiment": room.experiment, "seed": room.seed, "players": room.players,
            "horizon": room.horizon, "created": room.created, "hosts": room.hosts, "matching": room.matching,
            "seats": seats}


def room_from_wire(data: dict[str, Any]) -> Room:
    return Room(id=data["id"], experiment=data["experiment"], seed=data["seed"],
                players=list(data["players"]), seats={p: Seat(**s) for p, s in data["seats"].items()},
                horizon=data["horizon"], created=data["created"], hosts=dict(data["hosts"]),
                matching=dict(data["matching"]))


def pick_owner(room: Room, home_of: dict[str, str]) -> str:
    """The process to play a room on: the one holding most of its people's sockets (their
    inputs then never cross processes), ties going to the earliest arrival's."""
    homes = [home_of[s.sid] for s in sorted(room.seats.values(), key=lambda s: s.joined) if not s.stand_in]
    return max(homes, key=lambda h: (homes.count(h), -homes.index(h)))


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


def group_queue(key: str, group: dict[str, str]) -> str:
    """The waiting room of one group of partners (they play the next room together)."""
    return key + "#" + ",".join(sorted(group))


def seat_rank(group: dict[str, str], players: list[str], pid: str) -> int:
    """Where a returning partner sits: the seat they had (when the scene has that player id)."""
    player = group.get(pid)
    return players.index(player) if player in players else len(players)


def room_key(queue: str) -> str:
    return queue.split("#", 1)[0]


class Matchmaker:
    """Fills rooms in arrival order, one queue per experiment."""

    def __init__(self) -> None:
        self.queues: dict[str, list[Seat]] = {}
        self.rooms: dict[str, Room] = {}
        self.room_of_sid: dict[str, str] = {}
        # participant -> (key of their last room, {participant: player} of its seats), so the
        # next episode or the next multiplayer scene can bring the same partners together
        self.partners: dict[str, tuple[str, dict[str, str]]] = {}

    def waiting(self, experiment: str) -> list[Seat]:
        return self.queues.get(experiment, [])

    def join(self, experiment: str, seat: Seat, players: list[str], horizon: int,
             group: dict[str, str] | None = None, ai: list[str] | tuple[str, ...] = (),
             rule: LatencyRule | None = None, now: float | None = None) -> Room | None:
        """Queue a seat for a room of `experiment` (the room key). With `group` (participant ->
        player of an earlier room), the seat waits for exactly those partners, each given its
        earlier player id back; otherwise the first arrivals fill the room, or with `rule`
        (latency-aware matching; not for a group) the seats it picks at `now` (monotonic).
        `ai`: seats played by AI partners, hosted by the room's first person. Returns the room
        formed, if any (under a rule, it need not hold `seat`)."""
        queue_name = group_queue(experiment, group) if group else experiment
        if seat.sid in self.room_of_sid or any(s.sid == seat.sid for s in self.waiting(queue_name)):
            raise RoomError("already waiting or playing")
        self.queues.setdefault(queue_name, []).append(seat)
        return self.match(experiment, players, horizon, group=group, ai=ai, rule=None if group else rule,
                          now=now)

    def match(self, experiment: str, players: list[str], horizon: int, group: dict[str, str] | None = None,
              ai: list[str] | tuple[str, ...] = (), rule: LatencyRule | None = None,
              now: float | None = None) -> Room | None:
        """Form the next room of a queue from its waiting seats, if one can be formed (see
        join). Under a rule, call it again when a seat's fallback time comes: time alone may
        make a room."""
        ai_seats = list(ai)
        everyone, players = list(players), [p for p in players if p not in ai_seats]
        queue_name = group_queue(experiment, group) if group else experiment
        queue = self.queues.get(queue_name, [])
        matching: dict[str, Any] = {}
        if rule is not None:
            now = time.monotonic() if now is None else now
            picked = rule.pick(queue, len(players), now)
            if picked is None:
                return None
            taken, by = picked
            self.queues[queue_name] = [s for s in queue if all(s is not t for t in taken)]
            seated = list(zip(players, taken, strict=True))
            matching = {"by": by, "rtt_ms": {p: s.rtt_ms for p, s in seated},
                        "waited_s": {p: round(now - s.joined, 3) for p, s in seated}}
        else:
            if len(queue) < len(players):
                return None
            taken, self.queues[queue_name] = queue[: len(players)], queue[len(players):]
        if group:  # everyone back in the seat they had
            taken.sort(key=lambda s: seat_rank(group, players, s.participant_id))
        room = Room(id=secrets.token_hex(8), experiment=experiment, seed=secrets.randbelow(2**31),
                    players=everyone, seats=dict(zip(players, taken, strict=True)), horizon=horizon,
                    hosts={a: players[0] for a in ai_seats}, matching=matching)
        self.rooms[room.id] = room
        members = {s.participant_id: p for p, s in room.seats.items()}
        for s in taken:
            self.room_of_sid[s.sid] = room.id
            self.partners[s.participant_id] = (experiment, members)
        return room

    def start_with_stand_ins(self, queue_name: str, group: dict[str, str], players: list[str],
                             horizon: int, ai: list[str] | tuple[str, ...] = ()) -> Room:
        """The partners who came are seated now; a stand-in takes each seat of a group
        member who did not come back (the dropout policy ``stand_in``)."""
        ai_seats = list(ai)
        everyone, players = list(players), [p for p in players if p not in ai_seats]
        came = {s.participant_id: s for s in self.queues.pop(queue_name, [])}
        template = next(iter(came.values()))
        members = sorted(group, key=lambda pid: seat_rank(group, players, pid))
        seats = [came.get(pid) or Seat(f"stand-in:{secrets.token_hex(6)}", pid, f"stand-in-{pid}",
                                       dict(template.net), stand_in=True) for pid in members]
        room = Room(id=secrets.token_hex(8), experiment=room_key(queue_name), seed=secrets.randbelow(2**31),
                    players=everyone, seats=dict(zip(players, seats, strict=True)), horizon=horizon)
        present = [p for p, s in room.seats.items() if not s.stand_in]
        room.hosts = {a: present[0] for a in ai_seats}
        self.rooms[room.id] = room
        for seat in came.values():
            self.room_of_sid[seat.sid] = room.id
            self.partners[seat.participant_id] = (room.experiment, dict(group))
        return room

    def leave_queue(self, sid: str) -> str | None:
        """Remove a waiting sid; returns its experiment if it was waiting."""
        for experiment, queue in self.queues.items():
            for seat in queue:
                if seat.sid == sid:
                    queue.remove(seat)
                    return experiment
        return None

    def seats_from(self, ip: str) -> int:
        """Seats taken from one client address: waiting, or in a room still playing."""
        waiting = sum(seat.ip == ip for queue in self.queues.values() for seat in queue)
        playing = sum(seat.ip == ip and not seat.stand_in for room in self.rooms.values()
                      if room.status == "playing" for seat in room.seats.values())
        return waiting + playing

    def seat_by_token(self, token: str) -> tuple[Room, str] | None:
        """The open room and player a reconnect token belongs to."""
        for room in self.rooms.values():
            for player, seat in room.seats.items():
                if secrets.compare_digest(seat.token, token):
                    return room, player
        return None

    def rebind(self, room: Room, player: str, sid: str) -> None:
        """A reconnected page takes its seat back under its new socket id."""
        seat = room.seats[player]
        self.room_of_sid.pop(seat.sid, None)
        seat.sid = sid
        seat.away = False
        self.room_of_sid[sid] = room.id

    def room_for(self, sid: str) -> Room | None:
        rid = self.room_of_sid.get(sid)
        return self.rooms.get(rid) if rid else None

    def close(self, room: Room) -> None:
        self.rooms.pop(room.id, None)
        for seat in room.seats.values():
            self.room_of_sid.pop(seat.sid, None)
