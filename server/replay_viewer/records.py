"""What the replay viewer plays: a recorded episode or room, read from the store and put in
the viewer's terms. Pure functions (unit-tested) over the rows, plus the read-only queries.

Frames, as the viewer counts them: frame n is the env's state after n steps (frame 0: just
reset), and ``inputs[n]`` are the actions of the step from frame n to n + 1. A single-player
episode stores the step that reached frame n as its steps row ``frame = n`` (1-based); a
room records the inputs of step g under frame g (0-based, the relay's and netcode's
convention), and each of its browsers stores that step as its steps row ``frame = g`` —
so a room's row g is the viewer's frame g + 1."""

from __future__ import annotations

import json
import re
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

MAX_DETAIL_FRAMES = 600  # per-frame rows per request (the page asks for them a chunk at a time)
LIST_LIMIT = 500  # newest episodes and rooms on the experiment's list

ROOM_FIELDS = ("id", "experiment", "condition", "scene_id", "seed", "players", "created", "ended", "status",
               "end_frame", "final_hashes", "replay_hash", "desyncs", "inputs", "end_reason", "replay_error")
EPISODE_FIELDS = ("id", "participant_id", "experiment", "seed", "started", "ended", "status", "frames",
                  "total_reward", "client", "scene_id", "episode_index")
DETAIL_FIELDS = ("frame", "actions", "rewards", "done", "info", "metrics", "t_client", "t_sent",
                 "t_worker_start", "t_worker_end", "t_received", "t_server")

GET_ROOM = text(f"SELECT {', '.join(ROOM_FIELDS)} FROM rooms WHERE id = :id AND experiment = :e")
GET_EPISODE = text(f"SELECT {', '.join(EPISODE_FIELDS)} FROM episodes WHERE id = :id AND experiment = :e")
EPISODE_CONDITION = text("SELECT condition FROM participants WHERE id = :pid AND experiment = :e")
EPISODE_ACTIONS = text("SELECT frame, actions FROM steps WHERE episode_id = :id ORDER BY frame")
EPISODE_ERRORS = text("SELECT payload FROM events WHERE episode_id = :id AND kind = 'worker_error'"
                      " ORDER BY id")
DETAILS = text(f"SELECT {', '.join(DETAIL_FIELDS)} FROM steps WHERE episode_id = :id"
               " AND frame >= :lo AND frame < :hi ORDER BY frame")
# a room's browsers' episodes name it in their client record ({"room": ..., "player": ...});
# LIKE narrows them down, the JSON decides
ROOM_EPISODES = text("SELECT id, client FROM episodes WHERE experiment = :e AND client LIKE :pattern")
LIST_ROOMS = text("SELECT id, scene_id, condition, status, created, ended, end_frame, players, end_reason"
                  " FROM rooms WHERE experiment = :e ORDER BY created DESC LIMIT :n")
LIST_EPISODES = text("SELECT id, participant_id, scene_id, episode_index, status, started, frames,"
                     " total_reward, client FROM episodes WHERE experiment = :e"
                     " ORDER BY started DESC LIMIT :n")


def _loads(value: str | None, default: Any) -> Any:
    return json.loads(value) if value else default


# -- rooms ----------------------------------------------------------------------------------------

def room_length(inputs: dict[str, dict[str, Any]], players: list[str], end_frame: int | None) -> int:
    """Frames a room's record covers: up to its end (a room that ended with hashes), or, for
    one that ended early (abandoned, interrupted), as far as every seat's inputs go."""
    if end_frame is not None:
        return end_frame + 1
    reach = [max((int(f) for f in inputs.get(p, {})), default=-1) for p in players]
    return max(0, min(reach, default=-1) + 1)


def room_inputs(inputs: dict[str, dict[str, Any]], players: list[str], frames: int,
                default: Any) -> list[dict[str, Any]]:
    """Every step's actions, as the server's replay plays them: a frame without a recorded
    input (the input-delay frames at the start) gets the default action."""
    return [{p: inputs.get(p, {}).get(str(g), default) for p in players} for g in range(frames)]


REPLAY_STAGE = re.compile(r"\((frame (\d+)|reset|loading the env|hashing the final state)\)\s*$")


def first_bad(status: str, desyncs: list[dict], final_hashes: dict[str, str], replay_hash: str | None,
              replay_error: str | None, frames: int) -> dict | None:
    """Where a room that went wrong should open: the first frame whose state hashes
    disagree (a desync checkpoint, else the final state), or, for ``replay_error``, the
    frame the server's replay raised stepping from (the last state it reached)."""
    if status == "desync":
        if desyncs:
            report = min(desyncs, key=lambda d: d["frame"])
            hashes = ", ".join(f"{p} {h}" for p, h in sorted(report["hashes"].items()))
            return {"frame": report["frame"], "kind": "desync",
                    "reason": f"the browsers' state hashes disagree at frame {report['frame']}: {hashes}"}
        hashes = ", ".join(f"{p} {h}" for p, h in sorted(final_hashes.items()))
        return {"frame": frames, "kind": "desync",
                "reason": f"the final state hashes disagree: {hashes}; the server's replay: {replay_hash}"}
    if status == "replay_error" and replay_error:
        match = REPLAY_STAGE.search(replay_error)
        stage = match.group(1) if match else ""
        if match and match.group(2) is not None:
            g = int(match.group(2))
            frame = min(g, frames)
            reason = f"the server's CPython replay raised stepping from frame {g} to {g + 1}: {replay_error}"
        else:
            frame = frames if stage == "hashing the final state" else 0
            reason = f"the server's CPython replay could not run: {replay_error}"
        return {"frame": frame, "kind": "replay_error", "reason": reason}
    return None


def room_record(row: dict[str, Any], default_action: Any, player_order: list[str]) -> dict:
    """A room row (JSON columns decoded) as the viewer plays it."""
    players = [p for p in player_order if p in row["players"]] or sorted(row["players"])
    recorded = row["inputs"] or {}
    frames = room_length(recorded, players, row["end_frame"])
    return {
        "kind": "room", "id": row["id"], "experiment": row["experiment"], "scene_id": row["scene_id"],
        "condition": row["condition"], "status": row["status"], "seed": row["seed"], "players": players,
        "participants": row["players"], "created": row["created"], "ended": row["ended"],
        "end_frame": row["end_frame"], "end_reason": row["end_reason"], "frames": frames,
        "inputs": room_inputs(recorded, players, frames, default_action),
        "final_hashes": row["final_hashes"] or {}, "replay_hash": row["replay_hash"],
        "recorded_hash": row["replay_hash"] or _agreed(row["final_hashes"] or {}),
        "desyncs": row["desyncs"] or [], "replay_error": row["replay_error"],
        "first_bad": first_bad(row["status"], row["desyncs"] or [], row["final_hashes"] or {},
                               row["replay_hash"], row["replay_error"], frames),
    }


def _agreed(hashes: dict[str, str]) -> str | None:
    """The browsers' final hash when they all reported the same one (no server replay to compare)."""
    values = set(hashes.values())
    return values.pop() if len(values) == 1 else None


# -- single-player episodes ------------------------------------------------------------------------

def episode_inputs(steps: list[tuple[int, Any]]) -> tuple[list[Any], int | None]:
    """(actions of each step, in order; the first missing frame or None). A record with a gap
    is played up to the gap: what came after it cannot be reached."""
    inputs = []
    for expected, (frame, actions) in enumerate(steps, start=1):
        if frame != expected:
            return inputs, expected
        inputs.append(actions)
    return inputs, None


def episode_first_bad(status: str, errors: list[dict], frames: int, gap: int | None) -> dict | None:
    """An episode that failed in the browser opens at the last frame it reached (its
    ``worker_error`` event says which)."""
    if status == "error":
        for error in errors:
            detail = error.get("detail") or {}
            if isinstance(detail.get("frame"), int):
                frame = min(detail["frame"], frames)
                return {"frame": frame, "kind": "env_error",
                        "reason": f"the env raised in the participant's browser after frame {frame}: "
                                  f"{detail.get('message', '')}"}
        return {"frame": frames, "kind": "env_error", "reason": "the episode ended with an error"}
    if gap is not None:
        return {"frame": frames, "kind": "gap",
                "reason": f"the record has no step for frame {gap}: it plays up to frame {frames}"}
    return None


# -- reading ----------------------------------------------------------------------------------------

async def read_room(conn: AsyncConnection, experiment: str, room_id: str) -> dict | None:
    row = (await conn.execute(GET_ROOM, {"id": room_id, "e": experiment})).first()
    if row is None:
        return None
    out = dict(zip(ROOM_FIELDS, row, strict=True))
    for key, default in (("players", {}), ("final_hashes", {}), ("desyncs", []), ("inputs", {})):
        out[key] = _loads(out[key], default)
    return out


async def room_episodes(conn: AsyncConnection, experiment: str, room_id: str) -> dict[str, str]:
    """player -> the episode its browser stored for the room."""
    pattern = "%" + json.dumps({"room": room_id})[1:-1].replace(" ", "") + "%"
    found = {}
    for eid, client in (await conn.execute(ROOM_EPISODES, {"e": experiment, "pattern": pattern})).all():
        client = _loads(client, {})
        if client.get("room") == room_id and isinstance(client.get("player"), str):
            found[client["player"]] = eid
    return found


async def read_episode(conn: AsyncConnection, experiment: str, episode_id: str) -> dict | None:
    row = (await conn.execute(GET_EPISODE, {"id": episode_id, "e": experiment})).first()
    if row is None:
        return None
    out = dict(zip(EPISODE_FIELDS, row, strict=True))
    out["client"] = _loads(out["client"], {})
    found = (await conn.execute(EPISODE_CONDITION, {"pid": out["participant_id"], "e": experiment})).first()
    out["condition"] = found[0] if found else None
    return out


async def episode_record(conn: AsyncConnection, row: dict[str, Any], players: list[str]) -> dict:
    steps = [(f, json.loads(a)) for f, a in (await conn.execute(EPISODE_ACTIONS, {"id": row["id"]})).all()]
    inputs, gap = episode_inputs(steps)
    errors = [_loads(p, {}) for (p,) in (await conn.execute(EPISODE_ERRORS, {"id": row["id"]})).all()]
    return {
        "kind": "episode", "id": row["id"], "experiment": row["experiment"], "scene_id": row["scene_id"],
        "condition": row["condition"], "status": row["status"], "seed": row["seed"], "players": players,
        "participants": {"participant": row["participant_id"]}, "episode_index": row["episode_index"],
        "created": row["started"], "ended": row["ended"], "total_reward": row["total_reward"],
        "frames": len(inputs), "inputs": inputs, "recorded_hash": None,
        "first_bad": episode_first_bad(row["status"], errors, len(inputs), gap),
    }


def detail_row(row: tuple, frame: int) -> dict:
    out = dict(zip(DETAIL_FIELDS, row, strict=True))
    for key in ("actions", "rewards", "info", "metrics"):
        out[key] = _loads(out[key], {} if key != "rewards" else 0)
    out["done"] = bool(out["done"])
    out["frame"] = frame
    return out


async def frame_details(conn: AsyncConnection, episodes: dict[str, str], offset: int, lo: int,
                        hi: int) -> list[dict]:
    """The recorded rows of viewer frames lo..hi-1: [{"frame": n, "records": {label: row}}],
    ``episodes`` naming each recording (label -> episode id), whose row ``n - offset`` is frame n."""
    frames: dict[int, dict] = {}
    for label, eid in sorted(episodes.items()):
        params = {"id": eid, "lo": lo - offset, "hi": hi - offset}
        for row in (await conn.execute(DETAILS, params)).all():
            n = row[0] + offset
            frames.setdefault(n, {"frame": n, "records": {}})["records"][label] = detail_row(row, n)
    return [frames[n] for n in sorted(frames)]


async def listing(conn: AsyncConnection, experiment: str, limit: int = LIST_LIMIT) -> dict[str, list[dict]]:
    rooms = []
    for row in (await conn.execute(LIST_ROOMS, {"e": experiment, "n": limit})).all():
        rid, scene, condition, status, created, ended, end_frame, players, reason = row
        rooms.append({"id": rid, "scene_id": scene, "condition": condition, "status": status,
                      "created": created, "ended": ended, "end_frame": end_frame,
                      "participants": _loads(players, {}), "end_reason": reason})
    episodes = []
    for row in (await conn.execute(LIST_EPISODES, {"e": experiment, "n": limit})).all():
        eid, pid, scene, index, status, started, frames, reward, client = row
        client = _loads(client, {})
        episodes.append({"id": eid, "participant_id": pid, "scene_id": scene, "episode_index": index,
                         "status": status, "started": started, "frames": frames, "total_reward": reward,
                         "room": client.get("room"), "player": client.get("player")})
    return {"rooms": rooms, "episodes": episodes}
