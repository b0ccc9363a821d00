"""The live picture of every study, built from memory each second: participants per scene,
waiting rooms with their wait times, playing rooms seat by seat, and the problems worth a
look, merged with what the database says (server/monitor/records.py). Pure: it reads the
relay's rooms and the presence registry and changes nothing, so it is unit-testable.

With several processes each one builds the part it holds (its sockets, its rooms, and on the
matchmaker the waiting rooms), and the monitor merges every process's part (merge_parts)."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from server.monitor.presence import Presence
from server.multiplayer.rooms import Matchmaker, Room, room_key, split_key

STALL_S = 3.0  # a playing room whose newest input is this old is stalled


class StallWatch:
    """When each room's newest recorded frame last moved (the server's own clock)."""

    def __init__(self, clock=time.monotonic) -> None:
        self.clock = clock
        self.seen: dict[str, tuple[int, float]] = {}

    def still_for(self, room: Room) -> float:
        now = self.clock()
        frame, since = self.seen.get(room.id, (-1, now))
        if room.newest != frame:
            frame, since = room.newest, now
        self.seen[room.id] = (frame, since)
        return now - since

    def forget_except(self, ids: set[str]) -> None:
        for rid in [r for r in self.seen if r not in ids]:
            del self.seen[rid]


def add_vitals(view: dict[str, Any], vitals: dict[str, Any] | None, age_s: float) -> None:
    """A playing seat's figures from its page's vitals (wherever its socket is)."""
    if view["status"] != "playing" or not vitals:
        return
    minutes = max(age_s / 60.0, 1 / 60)
    view.update(rtt_ms=vitals.get("rtt_ms"), frame=vitals.get("frame"),
                rollbacks_per_min=round(vitals.get("rollbacks", 0) / minutes, 1),
                hidden=vitals.get("hidden", False))


def _seat_view(room: Room, player: str, presence: Presence, now: float) -> dict[str, Any]:
    seat = room.seats[player]
    status = "stand_in" if seat.stand_in else "away" if seat.away else "playing"
    view: dict[str, Any] = {"player": player, "participant": seat.participant_id, "status": status}
    visitor = None if seat.stand_in or seat.away else presence.of(seat.sid)
    add_vitals(view, visitor.vitals if visitor is not None else None, now - room.created)
    return view


def live_picture(names: list[str], mm: Matchmaker, presence: Presence, closed: set[str],
                 records: dict[str, Any], stalls: StallWatch, rtt_limit_ms: float,
                 now: float | None = None) -> dict[str, Any]:
    """The picture of one process, with what the database says."""
    return add_records(local_part(names, mm, presence, closed, stalls, rtt_limit_ms, now), records)


def local_part(names: list[str], mm: Matchmaker, presence: Presence, closed: set[str], stalls: StallWatch,
               rtt_limit_ms: float, now: float | None = None, process: str | None = None) -> dict[str, Any]:
    """What this process holds: its participants, its rooms (each tagged with `process`, the
    one to ask to end it), its waiting rooms, and its participants' vitals."""
    now = time.time() if now is None else now
    mono = time.monotonic()
    studies: dict[str, dict[str, Any]] = {
        name: {"closed": name in closed, "scenes": {}, "waiting": [], "rooms": [], "problems": []}
        for name in names}
    vitals: dict[str, dict[str, Any]] = {}
    scenes: dict[str, Counter] = {name: Counter() for name in names}
    for sid, visitor in presence.visitors.items():
        if visitor.experiment not in scenes:
            continue
        scenes[visitor.experiment][visitor.scene_id or "end"] += 1
        if visitor.vitals:
            vitals[visitor.participant_id] = visitor.vitals
        rtt = visitor.vitals.get("rtt_ms") or 0
        if rtt > rtt_limit_ms:  # in a room or alone: whoever's page reports it
            studies[visitor.experiment]["problems"].append({
                "kind": "rtt", "participant": visitor.participant_id, "room": mm.room_of_sid.get(sid),
                "detail": f"RTT {rtt:.0f} ms (limit {rtt_limit_ms:.0f})"})
    for name, counter in scenes.items():
        studies[name]["scenes"] = dict(sorted(counter.items()))
    for queue, seats in mm.queues.items():
        experiment, condition, scene = split_key(room_key(queue))
        if experiment not in studies or not seats:
            continue
        studies[experiment]["waiting"].append({
            "scene": scene, "condition": condition, "returning": "#" in queue,
            "participants": [{"sid": s.sid, "participant": s.participant_id,
                              "waited_s": round(mono - s.joined, 1)} for s in seats]})
    live = set()
    for room in mm.rooms.values():
        experiment, condition, scene = split_key(room.experiment)
        if experiment not in studies or room.status != "playing":
            continue
        live.add(room.id)
        seats = [_seat_view(room, p, presence, now) for p in room.seats]
        still = stalls.still_for(room)
        studies[experiment]["rooms"].append({
            "id": room.id, "scene": scene, "condition": condition, "frame": room.newest,
            "age_s": round(now - room.created, 1), "seats": seats, "ai": dict(room.hosts),
            "desyncs": len(room.desyncs), "process": process})
        problems = studies[experiment]["problems"]
        if room.desyncs:
            problems.append({"kind": "desync", "room": room.id,
                             "detail": f"hashes differ at frame {room.desyncs[0]['frame']}"})
        if still >= STALL_S:
            problems.append({"kind": "stall", "room": room.id,
                             "detail": f"no new input for {still:.0f} s (frame {room.newest})"})
    stalls.forget_except(live)
    return {"t": now, "studies": studies, "vitals": vitals}


def merge_parts(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """One picture of the parts of several processes. A seat whose socket is on another
    process than its room gets its figures from that process's vitals."""
    merged: dict[str, dict[str, Any]] = {}
    vitals: dict[str, dict[str, Any]] = {}
    for part in parts:
        vitals.update(part.get("vitals", {}))
        for name, study in part["studies"].items():
            into = merged.setdefault(name, {"closed": False, "scenes": {}, "waiting": [], "rooms": [],
                                            "problems": []})
            into["closed"] = into["closed"] or study["closed"]
            for scene, count in study["scenes"].items():
                into["scenes"][scene] = into["scenes"].get(scene, 0) + count
            for key in ("waiting", "rooms", "problems"):
                into[key].extend(study[key])
    for study in merged.values():
        study["scenes"] = dict(sorted(study["scenes"].items()))
        for room in study["rooms"]:
            for seat in room["seats"]:
                if "rtt_ms" not in seat:
                    add_vitals(seat, vitals.get(seat["participant"]), room["age_s"])
    return {"t": max((p["t"] for p in parts), default=time.time()), "studies": merged, "vitals": vitals}


def add_records(picture: dict[str, Any], records: dict[str, Any]) -> dict[str, Any]:
    """The picture with what the database says: outcomes, the last hour's problems, actions."""
    studies = picture["studies"]
    for name, study in studies.items():
        study["outcomes"] = (records.get("counts") or {}).get(name)
    for problem in records.get("problems", []):
        study = studies.get(problem.get("experiment") or "")
        if study is not None:
            study["problems"].append(problem)
    return {"t": picture["t"], "studies": studies, "actions": records.get("actions", [])}
