"""One simulated participant: connects like a page (participant id and crowdsourcing ids in
the auth's URL parameters), says hello, passes screening, and walks the study's scenes in
the order the server gives. Every data message goes through the page's own outbox
(pages/outbox.py, pure Python) so it is sequenced, acknowledged and resent as a page's."""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import math
import random
import re
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import socketio

from pages.outbox import Outbox, Uploader
from pilot.actions import action_source
from pilot.channel import LocalChannel, WorkerError
from protocol import messages as m
from protocol.scenes import next_scene
from server.transport import fastjson

DESKTOP_UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/156.0.0.0 Safari/537.36 CoplayPilot"
)
FEATURES = {"WebAssembly": True, "Worker": True, "SharedArrayBuffer": True, "crossOriginIsolated": True}
CONFIG = re.compile(r'<script type="application/json" id="coplay-config">(.*?)</script>', re.S)


def page_config(url: str, experiment: str) -> dict[str, Any]:
    """What the experiment's page is given (its games, screening, upload size): read from the
    page itself, as a browser would."""
    with urllib.request.urlopen(f"{url}/x/{experiment}", timeout=30) as response:
        page = response.read().decode()
    match = CONFIG.search(page)
    if match is None:
        raise RuntimeError(f"{url}/x/{experiment} is not a Coplay experiment page")
    return json.loads(html.unescape(match.group(1)))


class MemoryStorage:
    """The Web Storage API the outbox writes to, in memory (a bot never reloads)."""

    def __init__(self) -> None:
        self.items: dict[str, str] = {}

    @property
    def length(self) -> int:
        return len(self.items)

    def key(self, i: int) -> str:
        return list(self.items)[i]

    def getItem(self, key: str) -> str | None:  # noqa: N802 - the Web Storage API's names
        return self.items.get(key)

    def setItem(self, key: str, value: str) -> None:  # noqa: N802
        self.items[key] = value

    def removeItem(self, key: str) -> None:  # noqa: N802
        self.items.pop(key, None)


class Hooks:
    """Where a driver of many participants (the load test, pilot/load.py) looks into a room
    episode; by default nothing: a participant plays as a page does."""

    @contextlib.asynccontextmanager
    async def joining(self, bot: Any, scene_id: str, episode: int):
        """Around the participant's mp_join (a driver may order the joins: who plays whom)."""
        yield

    async def playing(self, bot: Any, room: dict[str, Any]) -> None:
        """The room started and the game is set up; its first frame follows."""

    def played(self, bot: Any, room: dict[str, Any], outcome: str) -> None:
        """The room's frames are played (or it was left)."""

    def sending(self, bot: Any, seat: str, message: dict[str, Any], fresh: list) -> None:
        """An input message about to be emitted; ``fresh``: its inputs new with it."""

    def received(self, bot: Any, message: dict[str, Any]) -> None:
        """A partner's input message, as it arrives from the relay."""

    def server_error(self, bot: Any, error: dict[str, Any]) -> None:
        """A ``server_error`` event while in a room (an input refused, say)."""


@dataclass
class Options:
    url: str
    experiment: str
    run_id: str
    decline: float = 0.0  # the share of participants who decline consent
    policy: str | None = None  # an experiment policy for the bots' own seats; None: random
    speed: float = 1.0  # frame rate multiplier (1: the scene's own)
    files_root: str = "/tmp/coplay-pilot"
    net: dict[str, float] | None = None  # the relay's network shaping for rooms, when the study allows it
    hooks: Hooks = field(default_factory=Hooks)
    fast_json: bool = False  # Socket.IO packets through msgspec (the load test: many bots per process)


@dataclass
class Outcome:
    participant: str
    outcome: str = "started"  # the last scene outcome, or "finished"/"declined"/"error"/...
    error: str | None = None
    scenes: list[dict[str, Any]] = field(default_factory=list)  # {id, type, outcome, seconds}
    episodes: list[dict[str, Any]] = field(default_factory=list)  # {id, scene, frames, status, room}
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)  # survey id -> answers
    rejected: list[tuple[str, str]] = field(default_factory=list)  # messages the server refused
    seconds: float = 0.0
    browser: bool = False  # played in a real Chromium page (pilot/browsers.py)
    stages: list[str] = field(default_factory=list)  # a browser page's data-stage changes


class SimulatedParticipant:
    def __init__(
        self, index: int, options: Options, page_config: dict[str, Any], http: aiohttp.ClientSession
    ):
        self.index = index
        self.opts = options
        self.cfg = page_config
        self.http = http
        self.pid = f"pilot-{options.run_id}-{index}"
        self.rng = random.Random(f"{options.run_id}/{index}")
        self.ids = {
            "PROLIFIC_PID": self.pid,
            "STUDY_ID": f"pilot-{options.run_id}",
            "SESSION_ID": f"s{index}",
        }
        extra = {"json": fastjson} if options.fast_json else {}
        self.sio = socketio.AsyncClient(reconnection=True, handle_sigint=False, **extra)
        self.result = Outcome(self.pid)
        self.outbox: Outbox | None = None
        # the configured share declines consent, spread evenly over arrivals (exactly
        # floor(N * share) of N participants, so a pilot is reproducible)
        share = options.decline
        self.declines = math.floor((index + 1) * share) > math.floor(index * share)

    # -- socket --------------------------------------------------------------------------
    async def call(self, event: str, payload: Any, timeout: float = 10.0) -> dict[str, Any]:
        try:
            ack = await self.sio.call(event, payload, timeout=timeout)
        except (socketio.exceptions.TimeoutError, socketio.exceptions.BadNamespaceError) as exc:
            return {"ok": False, "error": str(exc), "unreachable": True}
        return ack if isinstance(ack, dict) else {"ok": False, "error": "bad ack"}

    async def _sleep_ms(self, ms: float) -> None:
        await asyncio.sleep(ms / 1000)

    # -- the walk ------------------------------------------------------------------------
    async def run(self) -> Outcome:
        started = time.monotonic()
        try:
            await self._walk()
        except WorkerError as exc:
            self.result.outcome, self.result.error = "error", f"env: {exc}"
        except Exception as exc:  # noqa: BLE001 - the report names it; the other bots go on
            self.result.outcome, self.result.error = "error", f"{type(exc).__name__}: {exc}"
        finally:
            if self.outbox is not None:
                await self.outbox.flush(10_000)
                self.result.rejected = list(self.outbox.rejected)
            if self.sio.connected:
                await self.sio.disconnect()
            self.result.seconds = round(time.monotonic() - started, 2)
        return self.result

    async def _walk(self) -> None:
        await self.sio.connect(
            self.opts.url,
            transports=["websocket"],
            wait_timeout=20,
            auth={"participant_id": self.pid, "experiment": self.opts.experiment, "url_params": self.ids},
        )
        stream = f"{int(time.time() * 1000)}-{uuid.uuid4().hex[:8]}"
        self.outbox = Outbox(MemoryStorage(), self.call, self._sleep_ms, self.pid, stream)
        hello = await self.call(
            "hello", {"stream": stream, "client": {"user_agent": DESKTOP_UA, "viewport": "1280x800"}}
        )
        if not hello.get("ok"):
            raise RuntimeError(f"hello refused: {hello.get('error')}")
        if hello.get("closed"):
            self.result.outcome = "closed"
            return
        if self.cfg.get("screening") and hello["scene_index"] == 0:
            facts = {"user_agent": DESKTOP_UA, "window": [1280, 800], "features": FEATURES}
            pings = self.cfg["screening"].get("pings", 0)
            if pings:  # measured like the page: round trips of the rtt event, their median
                times = []
                for _ in range(pings):
                    sent = time.perf_counter()
                    await self.call("rtt", {"t": sent})
                    times.append((time.perf_counter() - sent) * 1000)
                facts["ping_ms"] = sorted(times)[len(times) // 2]
            verdict = await self.call("screen", facts)
            if not verdict.get("admitted"):
                self.result.outcome = "screened_out"
                self.result.error = verdict.get("reason")
                return
        games = hello.get("games") or self.cfg["games"]
        plan = hello["scenes"]
        types = [s["type"] for s in plan]
        index = hello["scene_index"]
        channel = LocalChannel(self.opts.url, self.http, f"{self.opts.files_root}/{self.index}")
        await channel.request(m.INIT, {"options": {"ring_size": self.cfg.get("ring_size", 9)}})
        while index < len(plan):
            scene = plan[index]
            began = time.monotonic()
            answers = None
            if scene["type"] == "end":
                self.result.outcome = "declined" if self.declines else "finished"
                self.result.scenes.append(
                    {"id": scene["id"], "type": "end", "outcome": "reached", "seconds": 0}
                )
                return
            if scene["type"] == "game":
                from pilot.games import play_scene

                outcome = await play_scene(self, channel, scene, games[scene["id"]])
                if outcome == "wait_timeout":
                    self.result.outcome = "wait_timeout"
                    return
            elif scene["type"] == "consent":
                outcome = "declined" if self.declines else "agreed"
            elif scene["type"] == "instructions":
                outcome = "read"
            else:
                outcome, answers = "submitted", self.answer(scene)
                self.result.answers[scene["id"]] = answers
            self.result.scenes.append(
                {
                    "id": scene["id"],
                    "type": scene["type"],
                    "outcome": outcome,
                    "seconds": round(time.monotonic() - began, 2),
                }
            )
            report: dict[str, Any] = {"index": index, "scene_id": scene["id"], "outcome": outcome}
            if answers is not None:
                report["answers"] = answers
            self.outbox.put("scene_done", report)
            self.result.outcome = outcome
            index = next_scene(types, index, outcome)
        self.result.outcome = "finished" if self.result.outcome != "declined" else "declined"

    def answer(self, survey: dict[str, Any]) -> dict[str, Any]:
        """Valid random answers: an option of each likert or choice question, a sentence for
        a text one; an optional question is left out half the time."""
        out: dict[str, Any] = {}
        for q in survey["questions"]:
            if not q.get("required", True) and self.rng.random() < 0.5:
                continue
            out[q["id"]] = (
                self.rng.choice(q["options"])
                if q["kind"] in ("likert", "choice")
                else f"pilot answer {self.index}"
            )
        return out

    def files(self, channel: LocalChannel) -> str:
        return channel.dispatcher.files_root + "/" + self.opts.experiment

    # -- single-player episodes --------------------------------------------------------------
    async def play_episode(
        self, channel: LocalChannel, game: dict[str, Any], scene_id: str, episode: int, deadline: float | None
    ) -> dict[str, Any]:
        seed = self.cfg.get("seed")
        if seed is None:
            seed = self.rng.randrange(2**31 - 1)
        eid = uuid.uuid4().hex
        self.outbox.put(
            "episode_start",
            {
                "episode_id": eid,
                "seed": seed,
                "scene_id": scene_id,
                "episode_index": episode,
                "client": {"worker": "pilot", "fps": game["fps"]},
            },
        )
        uploader = Uploader(self.outbox, eid, self.cfg.get("upload_every", 30))
        reset = await channel.request(m.RESET, {"seed": seed, "slot": scene_id, "render": False})
        act = action_source(game, game["humans"][0], self.opts.policy, self.rng, seed, self.files(channel))
        act.start(reset, game["players"])
        frame_ms = 1000 / game["fps"] / self.opts.speed
        frame, total, status = 0, 0.0, "completed"
        due = time.monotonic()
        record = {
            "episode": eid,
            "scene": scene_id,
            "frames": 0,
            "status": "running",
            "room": None,
            "uploaded": [],
        }
        self.result.episodes.append(record)
        try:
            while True:
                if deadline is not None and time.monotonic() >= deadline:
                    status = "time_limit"
                    break
                actions = {p: game["default_action"] for p in game["players"]}
                actions[game["humans"][0]] = act.action()
                result = await channel.request(
                    m.STEP, {"actions": actions, "render": False, "include_obs": act.needs_obs}
                )
                frame = result["frame"]
                total += reward_sum(result["rewards"])
                act.saw(result, game["players"])
                step = {
                    "frame": frame,
                    "actions": actions,
                    "rewards": result["rewards"],
                    "done": result["done"],
                    "info": result["info"],
                    "t_sent": result["t_sent"],
                    "t_worker_start": result["t_worker_start"],
                    "t_worker_end": result["t_worker_end"],
                    "t_received": result["t_received"],
                }
                if "partner_actions" in result:
                    actions.update(result["partner_actions"])
                    step["metrics"] = {"partners": result["partners"]}
                uploader.add(step)
                record["uploaded"].append(frame)
                record["frames"] = frame
                if result["done"] or frame >= game["max_steps"]:
                    break
                due += frame_ms / 1000
                await asyncio.sleep(max(0.0, due - time.monotonic()))
        except WorkerError as exc:
            self.outbox.put(
                "client_event",
                {"kind": "worker_error", "episode_id": eid, "detail": {"message": str(exc), "frame": frame}},
            )
            record["status"] = "error"
            await uploader.finish("error", frame, total, timeout_ms=5000)
            raise
        record["status"] = status
        await uploader.finish(status, frame, total)
        return {"outcome": "completed", "total_reward": total, "time_up": status == "time_limit"}


def reward_sum(rewards: Any) -> float:
    if isinstance(rewards, dict):
        return sum(float(v) for v in rewards.values())
    return float(rewards or 0)
