"""Issue 6 and 14 figures: how many two-player rooms a Coplay server holds at 30 frames/s
on loopback, on 1 process and on 2 or 3 processes sharing one database and one Redis (as
behind a load balancer), with the relay's one-way latency (p50/p99), inputs sent vs relayed
vs refused vs lost, rooms completed, each server process's CPU per relayed input, memory per
room, and inputs made vs stored (lost records).

The Coplay levels are driven by the pilot's simulated participants (pilot/load.py): each
connects like a page, walks the load experiment (consent, the two-player game, a survey, the
end) and plays the game on the page's own rollback netcode with the env stepped in CPython
(a light env, LIGHT_ENV, so the bots' CPU is the protocol's, not game logic's): inputs like
pages/multiplayer.py's, state hashes, step records uploaded through the outbox; rooms end
``completed`` when the server's replay agrees. So a level's server CPU is a study's, not only
the relay's. The bots are a few processes (``--bots``), each one uvloop event loop driving
many participants; both seats of a room are in one bot process (one perf_counter clock for
the one-way latency); a participant costs its bot process about 0.7 % of a core, so ``--bots``
defaults to one per core the server processes leave (at least 2), and a level whose bots ran
above 85 % CPU is flagged ``bots_saturated`` (its latency is the bots' as much as the
server's). A room's two participants connect to the same server process (sticky
load balancing; rooms spread round robin), or each to a random one (``--placement random``).

Setups (``--processes 1,1r,2,3``, all in one run): each level on 1 process, on 1 process with
Redis on (the multi-process layer's own cost), then on 2 and 3 processes + Redis. When the
machine has more cores than server processes, each server process is pinned to a core of its
own and the bots to the others; otherwise the server processes share every core but the last
and the bots have that one (the run-queue wait then tells how much a server waited for a CPU).
``capacity()`` measures the setups at one load in interleaved trials (bench section capacity).
Per setup: the most rooms within target (relay p99 <= 20 ms, no input lost or refused, no
record lost, every room completed), each process's CPU ms per relayed input at that level, and
the rooms one fully used core would hold: rooms / the sum of the server processes' CPU
fractions (Redis's CPU is reported beside it). The target (issue 14): per-core capacity with 2+
processes >= 90 % of one process's.

Beside them in the same run: Coplay on hypercorn (``--hypercorn-rooms``, pilot-driven, 1
process), and the bare python-socketio relay baseline (no validation, no recording, no
matchmaking rules: the cost of our layer). The baseline speaks no study (no hello, scenes,
episodes or replay), so its levels use bare input bots (Seat: an input message every 1/30 s
like a page, ``{"frame", "inputs": last 8 [[frame, value]], "adv"}``, nothing simulated, a
junk final hash: their rooms end ``desync``), and so does a like-for-like Coplay column
(``coplay_bare_bots``) at the same levels.

    python -m bench.load [--rooms 25,50,100,150] [--seconds 20] [--warmup 3] [--bots N]
                         [--processes 1,2,3] [--placement sticky|random]
                         [--hypercorn-rooms 100] [--no-baseline]

A researcher's own deployment is load-tested by the pilot: ``python -m pilot EXPERIMENT
--load ROOMS --url URL`` (pilot/load.py; README "Piloting a study").
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import socketio

from pilot.load import TARGET_P99_MS, bot_main, pin, run_level, within_target
from server.transport import fastjson, serving
from tests.redis_server import start_redis
from tests.servers import KITCHEN_CONTROLS, ROOT, free_port, start_server, write_experiment

FPS = 30
REDUNDANT = 8  # pages/multiplayer.py REDUNDANT_INPUTS
INPUT_DELAY = 2
ACTIONS = ["noop", "up", "down", "left", "right", "interact"]
CORES = os.cpu_count() or 1
LOAD_EXPERIMENT = "load"
# every bot is 127.0.0.1: lift the per-address caps
LIFTED_CAPS = {"COPLAY_MAX_CONNECTIONS_PER_IP": "100000", "COPLAY_MAX_ROOMS_PER_IP": "100000"}

# the load experiment's game: two dots walking a 64x64 torus, deterministic, next to no work per step
LIGHT_ENV = """
MOVES = {"up": (0, -1), "down": (0, 1), "left": (-1, 0), "right": (1, 0)}


class Walk:
    def __init__(self, players):
        self.players = list(players)

    def reset(self, seed=None):
        self.t = 0
        self.pos = {p: [8 * i, 8 * i] for i, p in enumerate(self.players)}
        return self.t, {}

    def step(self, actions):
        self.t += 1
        for p, action in actions.items():
            dx, dy = MOVES.get(action, (0, 0))
            xy = self.pos[p]
            xy[0], xy[1] = (xy[0] + dx) % 64, (xy[1] + dy) % 64
        return self.t, {p: 0 for p in self.players}, False, False, {}

    def render(self):
        return []


def create_env(config):
    return Walk(players)
"""


def cores_for(servers: int) -> tuple[list[set[int]] | None, set[int] | None]:
    """One core per server process and the rest for the bots, when the machine has that many;
    else the server processes share all cores but the last, and the bots have that one. Why
    not leave them unpinned: on 2 cores, 2 server processes sharing both cores with the bots
    cost 0.206 ms CPU per input at 30 rooms, against 0.172-0.182 pinned together apart from
    the bots and 0.158-0.165 for one process (session 8's measurement) -- the bots' cache and
    run-queue interference, which a deployment with a core per process does not have."""
    if CORES > servers:
        return [{i} for i in range(servers)], set(range(servers, CORES))
    if CORES < 2:
        return None, None
    shared = set(range(CORES - 1))
    return [shared] * servers, {CORES - 1}


def pinning(servers: int) -> str:
    """How `cores_for` places `servers` processes, in words for the results."""
    if CORES > servers:
        return "own core each, bots apart"
    return "none" if CORES < 2 else f"sharing {CORES - 1} core(s), bots apart"


def setup_processes(setup: str) -> tuple[int, bool]:
    """A setup name: "1" (one process), "1r" (one process + Redis: the cluster layer's own
    cost), "2", "3"... (that many processes + Redis) -> (processes, with Redis)."""
    count = int(setup.rstrip("r"))
    return count, count > 1 or setup.endswith("r")


# -- bare input bots (the baseline's; bench/monitor.py's and bench/replay_burst.py's too) -------
class Seat:
    """A seat that sends inputs like a page but simulates nothing (bench/replay_burst.py,
    bench/monitor.py, and the levels against the bare relay, which speaks no study)."""

    def __init__(self, url: str, experiment: str, pid: str):
        self.url = url
        self.auth = {"participant_id": pid, "experiment": experiment}
        # msgspec JSON: on 2 shared cores the bots' own CPU is half the machine
        self.sio = socketio.AsyncClient(reconnection=False, handle_sigint=False, json=fastjson)
        self.partner: Seat | None = None
        self.room = ""
        self.player = ""
        self.sent_at: dict[int, float] = {}  # message frame -> perf_counter at emit (this seat)
        self.frames_sent = 0
        self.latency_ms: list[float] = []
        self.window = (0.0, 0.0)
        self.sent_in_window = 0
        self.received_in_window = 0
        self.errors: list = []
        self.result: dict | None = None
        self.started = asyncio.Event()
        self.lag_ms: list[float] = []
        self.sio.on("input", self.on_input)
        self.sio.on("room_start", self.on_start)
        self.sio.on("room_result", self.on_result)
        self.sio.on("server_error", self.errors.append)

    def on_start(self, data: dict) -> None:
        self.room, self.player = data["room"], data["player"]
        self.started.set()

    def on_result(self, data: dict) -> None:
        self.result = data

    def on_input(self, data: dict) -> None:
        now = time.perf_counter()
        sent = self.partner.sent_at.pop(data["frame"], None) if self.partner else None
        if sent is not None and self.window[0] <= sent < self.window[1]:
            self.latency_ms.append((now - sent) * 1000)
            self.received_in_window += 1

    async def play(self, start: float, end: float, phase: float, rng: random.Random) -> None:
        """One input message per frame from ``start`` (perf_counter) until ``end``."""
        recent: list[list] = []
        frame = 0
        while True:
            due = start + phase + frame / FPS
            if due >= end:
                return
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            now = time.perf_counter()
            if self.window[0] <= now < self.window[1]:  # the partner counts by the same stamp
                self.lag_ms.append((now - due) * 1000)
                self.sent_in_window += 1
            recent = (recent + [[frame + INPUT_DELAY, rng.choice(ACTIONS)]])[-REDUNDANT:]
            self.sent_at[frame] = now
            await self.sio.emit("input", {"frame": frame, "inputs": recent, "adv": 0.0})
            self.frames_sent = frame + 1
            frame += 1


async def _bot(conf: dict, conn) -> dict:
    rng = random.Random(conf["index"])
    seats: list[Seat] = []
    for r in range(conf["rooms"]):
        name = f"load-{conf['tag']}-{conf['index']}-{r}"
        a = Seat(conf["urls"][0], conf["experiment"], name + "-a")
        # with two server URLs the second seat of every room lands on the other one
        b = Seat(conf["urls"][-1], conf["experiment"], name + "-b")
        a.partner, b.partner = b, a
        seats += [a, b]
    for i in range(0, len(seats), 20):  # connect in small waves
        await asyncio.gather(*[s.sio.connect(s.url, auth=s.auth, transports=["websocket"], wait_timeout=30)
                               for s in seats[i:i + 20]])
    for i in range(0, len(seats), 2):  # p0 waits, p1 matches: both seats of a room in this process
        first = await seats[i].sio.call("mp_join", {"episode_id": f"ep-{seats[i].auth['participant_id']}"},
                                        timeout=30)
        second = await seats[i + 1].sio.call("mp_join",
                                             {"episode_id": f"ep-{seats[i + 1].auth['participant_id']}"},
                                             timeout=30)
        if first.get("status") != "waiting" or second.get("status") != "matched":
            raise RuntimeError(f"matchmaking failed: {first} {second}")
    await asyncio.wait_for(asyncio.gather(*[s.started.wait() for s in seats]), 30)
    conn.send(["ready", len(seats) // 2])
    start_wall, warmup, seconds = await asyncio.to_thread(conn.recv)
    # the coordinator's wall-clock start -> this process's perf_counter
    start = time.perf_counter() + (start_wall - time.time())
    window = (start + warmup, start + warmup + seconds)
    end = window[1] + 0.25
    for s in seats:
        s.window = window
    await asyncio.gather(*[s.play(start, end, rng.uniform(0, 1 / FPS), rng) for s in seats])
    await asyncio.sleep(1.0)  # the last relayed messages
    for s in seats:
        final = {"frame": s.frames_sent + INPUT_DELAY, "hash": "0" * 16, "final": True}
        await s.sio.emit("state_hash", final)
    deadline = time.monotonic() + conf.get("end_timeout", 30)
    while any(s.result is None for s in seats) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    errors = [e for s in seats for e in s.errors]
    made: dict[str, dict[str, list[int]]] = {}
    for s in seats:
        made.setdefault(s.room, {})[s.player] = [INPUT_DELAY, s.frames_sent]
    await asyncio.gather(*[s.sio.disconnect() for s in seats], return_exceptions=True)
    return {  # as pilot/load.py drive() reports
        "latency_ms": [x for s in seats for x in s.latency_ms],
        "lag_ms": [x for s in seats for x in s.lag_ms],
        "sent": sum(s.sent_in_window for s in seats),
        "relayed": sum(s.received_in_window for s in seats),
        "refused": sum(e.get("event") == "input" for e in errors),
        "errors": len(errors),
        "error_sample": errors[:3],
        "rooms": {s.room: s.result["status"] if s.result else None for s in seats[::2]},
        "made": made,
    }


def _stdio_bot() -> None:
    """``python -m bench.load --bot``: bare input bots."""
    bot_main(_bot)


# -- the bare relay baseline --------------------------------------------------------------------
def baseline_app() -> socketio.ASGIApp:
    """A plain python-socketio relay: pairs joiners in arrival order, forwards each input to
    the partner, ends a room when both sent a final hash. No validation, no storage."""
    sio = socketio.AsyncServer(async_mode="asgi")
    waiting: dict[str, list[str]] = {}  # experiment -> sids
    experiment_of: dict[str, str] = {}
    partner: dict[str, tuple[str, str]] = {}  # sid -> (partner sid, own player id)
    finals: dict[str, int] = {}
    rooms = iter(range(1, 10**9))

    @sio.on("connect")
    async def connect(sid, environ, auth):
        experiment_of[sid] = (auth or {}).get("experiment", "")

    @sio.on("mp_join")
    async def join(sid, data):
        queue = waiting.setdefault(experiment_of[sid], [])
        if not queue:
            queue.append(sid)
            return {"ok": True, "status": "waiting"}
        other = queue.pop()
        room = f"r{next(rooms)}"
        partner[other], partner[sid] = (sid, "p0"), (other, "p1")
        for to, player in ((other, "p0"), (sid, "p1")):
            await sio.emit("room_start", {"room": room, "player": player, "players": ["p0", "p1"], "seed": 1},
                           to=to)
        return {"ok": True, "status": "matched", "room": room}

    @sio.on("input")
    async def relay(sid, data):
        other, player = partner[sid]
        await sio.emit("input", {"player": player, "frame": data["frame"], "inputs": data["inputs"],
                                 "adv": data["adv"]}, to=other)
        return {"ok": True}

    @sio.on("state_hash")
    async def state_hash(sid, data):
        other, _ = partner[sid]
        finals[sid] = data["frame"]
        if other in finals:
            for s in (sid, other):
                await sio.emit("room_result", {"status": "completed"}, to=s)
        return {"ok": True}

    @sio.on("disconnect")
    async def gone(sid, reason=None):
        queue = waiting.get(experiment_of.pop(sid, ""), [])
        if sid in queue:
            queue.remove(sid)
        partner.pop(sid, None)
        finals.pop(sid, None)

    return socketio.ASGIApp(sio)


def serve_baseline(port: int) -> None:
    """The bare relay on the same ASGI server and event loop as Coplay (server/transport/serving.py)."""
    async def forever() -> None:
        await asyncio.Event().wait()

    print("baseline: ready", flush=True)
    serving.run(serving.serve(baseline_app(), "127.0.0.1", port, "granian", forever))


class Baseline:
    def __init__(self, work: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = (work / f"baseline-{self.port}.log").open("w")
        args = [sys.executable, "-m", "bench.load", "--baseline-server", str(self.port)]
        self.process = subprocess.Popen(args, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT,
                                        env={**os.environ, "PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("baseline relay did not start")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


# -- levels ---------------------------------------------------------------------------------------
def _level(urls: list[str], server_pids: list[int], rooms: int, experiments: list[str], tag: str,
           warmup: float, seconds: float, work: Path) -> tuple[dict, dict]:
    """A level of bare input bots (one bot process per experiment; bench/monitor.py's too). With
    one server process, it runs on a core of its own and the bots on the others. With two
    server URLs, seat a of each room connects to the first and seat b to the second. Returns
    the level and the inputs made, {room: {player: [first frame, count]}}."""
    server_cpus, bot_cpus = cores_for(len(server_pids))
    for pid, cpus in zip(server_pids, server_cpus or [], strict=False):
        pin(pid, cpus)
    level = run_level(urls, rooms, experiments, work, bots=len(experiments), warmup=warmup, seconds=seconds,
                      server_pids=server_pids, bot_cpus=bot_cpus, module="bench.load", tag=tag)
    return level, level.pop("made")


def _stored_inputs(server, made: dict[str, dict[str, list[int]]]) -> dict:
    """Inputs the bots made vs those the server's record of each room holds."""
    if not made:
        return {"inputs_made": 0, "inputs_stored": 0, "lost_records": 0}
    marks = ",".join("?" * len(made))
    rows = dict(server.query(f"SELECT id, inputs FROM rooms WHERE id IN ({marks})", *made))
    made_total = stored_total = 0
    for room, players in made.items():
        stored = json.loads(rows.get(room) or "{}")
        for player, (first, count) in players.items():
            made_total += count
            stored_total += len(set(stored.get(player, {})) & {str(f) for f in range(first, first + count)})
    return {"inputs_made": made_total, "inputs_stored": stored_total,
            "lost_records": made_total - stored_total}


def _experiments(directory: Path, bots: int) -> list[str]:
    """One kitchen experiment per bare-input bot process (its own waiting room)."""
    source = (ROOT / "experiments" / "kitchen" / "env.py").read_text()
    names = [f"load{i}" for i in range(bots)]
    for name in names:
        write_experiment(directory, name, env_source=source, players=["p0", "p1"], default_action="noop",
                         controls=KITCHEN_CONTROLS, start_key="Enter", max_steps=100_000)
    return names


def _load_experiment(directory: Path, warmup: float, seconds: float) -> str:
    """The simulated participants' study: consent, the two-player light game (long enough to
    outlast the measured window from the common start), a survey, the end."""
    frames = math.ceil(FPS * (warmup + seconds + 1.5))
    scenes = [
        {"type": "consent", "id": "consent", "html": "<p>A load test.</p>"},
        {"type": "game", "id": "play", "fps": FPS, "max_steps": frames, "multiplayer": {"wait_timeout": 60}},
        {"type": "survey", "id": "survey", "questions": [
            {"id": "fun", "kind": "likert", "prompt": "Fun?"},
            {"id": "why", "kind": "text", "prompt": "Why?", "required": False}]},
        {"type": "end", "id": "end"},
    ]
    write_experiment(directory, LOAD_EXPERIMENT, env_source=LIGHT_ENV, players=["p0", "p1"],
                     default_action="noop", controls=KITCHEN_CONTROLS, start_key="Enter", scenes=scenes)
    return LOAD_EXPERIMENT


def _setup_level(setup: str, rooms: int, work: Path, env: dict, *, warmup: float, seconds: float,
                 bots: int, placement: str, asgi: str = "granian", trial: int = 0) -> dict:
    """A level of simulated participants on a setup's server processes (see setup_processes)."""
    processes, with_redis = setup_processes(setup)
    workdir = work / f"{asgi}-p{setup}-{rooms}{f'-t{trial}' if trial else ''}"
    workdir.mkdir()
    redis = start_redis() if with_redis else None
    servers = []
    try:
        server_env = {**env, "COPLAY_ASGI_SERVER": asgi, **({"COPLAY_REDIS_URL": redis.url} if redis else {})}
        # the same database for all, as behind a load balancer
        servers = [start_server(workdir, experiments_dir=work / "experiments", env=server_env)
                   for _ in range(processes)]
        server_cpus, bot_cpus = cores_for(processes)
        for server, cpus in zip(servers, server_cpus or [], strict=False):
            pin(server.process.pid, cpus)
        if redis is not None and bot_cpus:  # off the server processes' cores
            pin(redis.process.pid, bot_cpus)
        level = run_level([s.url for s in servers], rooms, LOAD_EXPERIMENT, workdir, bots=bots, warmup=warmup,
                          seconds=seconds, placement=placement, server_pids=[s.process.pid for s in servers],
                          other_pids={"redis": redis.process.pid} if redis else None, bot_cpus=bot_cpus,
                          tag=f"p{setup}", finish_timeout=60.0)
    finally:
        for server in servers:
            server.stop()  # SIGTERM: a room still open is saved as interrupted, with its inputs
        if redis is not None:
            redis.stop()
    level.update(_stored_inputs(servers[0], level.pop("made")))
    level["processes"] = processes
    level["pinned"] = server_cpus is not None
    level["pinning"] = pinning(processes)
    level["redis"] = with_redis
    level["within_target"] = within_target(level)
    return level


def setup_summary(levels: dict[str, dict]) -> dict:
    """A setup's capacity: the most rooms within target, each process's CPU per relayed input
    there, and the rooms one fully used core would hold (rooms / the processes' CPU fractions)."""
    ordered = [levels[n] for n in sorted(levels, key=int)]
    fitting = [lv for lv in ordered if lv["within_target"]]
    basis = (fitting or ordered[:1] or [None])[-1]
    out = {"rooms_within_target": fitting[-1]["rooms"] if fitting else 0, "projection_rooms": None,
           "projection_within_target": bool(fitting), "server_cpu_percent_by_process": None,
           "server_cpu_ms_per_input_by_process": None, "projected_rooms_per_core": None}
    if basis is not None and basis.get("server_cpu_percent"):
        out.update(projection_rooms=basis["rooms"],
                   server_cpu_percent_by_process=basis["server_cpu_percent_by_process"],
                   server_cpu_ms_per_input_by_process=basis["server_cpu_ms_per_input_by_process"],
                   projected_rooms_per_core=round(basis["rooms"] / (basis["server_cpu_percent"] / 100)))
        if "redis" in basis.get("other_cpu_percent", {}):
            out["redis_cpu_percent"] = basis["other_cpu_percent"]["redis"]
    return out


def default_bots(processes: tuple[str, ...] = ("1",)) -> int:
    """One bot process per core the server processes leave (at least 2): a simulated participant
    costs its bot process about 0.7 % of a core at 30 fps, so one bot process holds ~60 rooms."""
    return max(2, CORES - max((setup_processes(p)[0] for p in processes), default=1))


def run(rooms: tuple[int, ...] = (25, 50, 100, 150), seconds: float = 20.0, warmup: float = 3.0,
        bots: int | None = None, baseline: bool = True, processes: tuple[str, ...] = ("1",),
        hypercorn_rooms: tuple[int, ...] = (), placement: str = "sticky",
        bare_rooms: tuple[int, ...] | None = None) -> dict:
    """Rooms per setup at 30 Hz: per level (rooms), Coplay on each number of processes (its
    simulated participants), Coplay on hypercorn, and the bare relay vs Coplay with bare bots.

    Returns {"processes": {"<P>": {"<rooms>": level}}, "setups": {"<P>": setup},
    "coplay_hypercorn": {...}, "baseline": {...}, "coplay_bare_bots": {...},
    "max_rooms_within_target" (1 process), "projected_rooms_per_core": {"coplay", "baseline",
    "coplay_bare_bots"}, "target": {...}, "settings": {...}}.

    A level has rooms, rooms_ready (rooms formed), relay_one_way_ms {p50, p99, mean, n},
    inputs_sent, inputs_relayed, inputs_refused, inputs_lost (input messages in the window:
    emitted, arrived at the partner, refused with a server_error, neither), relay_lost_messages
    (sent - relayed), messages_per_s, room_results {status: rooms}, server_errors, error_sample,
    bot_cpu_percent (per bot process), bot_loop_lag_ms or (bare bots) bot_send_lag_ms,
    server_cpu_percent (summed over the processes), server_cpu_percent_by_process,
    server_idle_cpu_percent_by_process (over 1 s before anyone connected),
    server_cpu_ms_per_input (server CPU per relayed input, summed) and
    server_cpu_ms_per_input_by_process, server_runqueue_wait_percent, server_rss_mb,
    server_rss_idle_mb, rss_connected_mb, rss_per_room_mb, cpu_percent_per_room, inputs_made,
    inputs_stored, lost_records, within_target; with several processes other_cpu_percent
    {"redis"}; the simulated participants' levels also processes, pinned, rooms_completed,
    rooms_ended_in_window (should be 0), participants {outcome: count}, participant_errors.
    A setup has rooms_within_target, projection_rooms (the level the projection is taken at: the
    largest within target, else the lightest), projection_within_target,
    server_cpu_percent_by_process, server_cpu_ms_per_input_by_process,
    projected_rooms_per_core, capacity_vs_one_process (its projection / 1 process's),
    capacity_vs_one_process_same_rooms (/ 1 process's at the same rooms, when measured) and,
    with Redis, redis_cpu_percent."""
    bots = bots or default_bots(processes)
    work = Path(tempfile.mkdtemp(prefix="coplay-load-"))
    names = _experiments(work / "experiments", bots)
    _load_experiment(work / "experiments", warmup, seconds)
    env = dict(LIFTED_CAPS)
    results: dict = {"processes": {}, "setups": {}, "coplay_hypercorn": {}, "baseline": {},
                     "coplay_bare_bots": {},
                     "settings": {"fps": FPS, "seconds": seconds, "warmup": warmup, "bot_processes": bots,
                                  "cores": CORES, "placement": placement, "processes": list(processes),
                                  "light_env": True},
                     "target": {"relay_p99_ms": TARGET_P99_MS, "rooms": 100, "lost_records": 0,
                                "capacity_vs_one_process": 0.9}}
    opts = {"warmup": warmup, "seconds": seconds, "bots": bots, "placement": placement}
    for count in processes:
        side = results["processes"].setdefault(count, {})
        for n in rooms:
            side[str(n)] = level = _setup_level(count, n, work, env, **opts)
            print(f"load: {count} process(es), {n} rooms: {json.dumps(level)}", file=sys.stderr, flush=True)
    for n in hypercorn_rooms:
        level = _setup_level("1", n, work, env, asgi="hypercorn", **opts)
        results["coplay_hypercorn"][str(n)] = level
        print(f"load: hypercorn {n} rooms: {json.dumps(level)}", file=sys.stderr, flush=True)
    if baseline:  # bare input bots: against the bare relay, and against Coplay like for like
        for n in bare_rooms or rooms:  # bare bots cost far less than simulated participants
            for side in ("baseline", "coplay_bare_bots"):
                server = Baseline(work) if side == "baseline" else None
                workdir = work / f"{side}-{n}"
                workdir.mkdir()
                if server is None:
                    server = start_server(workdir, experiments_dir=work / "experiments", env=env)
                try:
                    level, made = _level([server.url], [server.process.pid], n, names, side[0], warmup,
                                         seconds, workdir)
                finally:
                    server.stop()
                if side == "coplay_bare_bots":
                    level.update(_stored_inputs(server, made))
                level["within_target"] = within_target(level)
                results[side][str(n)] = level
                print(f"load: {side} {n} rooms: {json.dumps(level)}", file=sys.stderr, flush=True)
    for count, levels in results["processes"].items():
        results["setups"][count] = setup_summary(levels)
    one = results["setups"].get("1", {}).get("projected_rooms_per_core")
    for setup in results["setups"].values():
        mine = setup["projected_rooms_per_core"]
        setup["capacity_vs_one_process"] = round(mine / one, 3) if mine and one else None
        # the same, against one process at the same number of rooms (a process's fixed cost, its
        # share of the cluster's housekeeping, weighs less at more rooms)
        alone = results["processes"].get("1", {}).get(str(setup["projection_rooms"]), {})
        if alone.get("server_cpu_percent") and mine:
            setup["capacity_vs_one_process_same_rooms"] = round(
                mine / (setup["projection_rooms"] / (alone["server_cpu_percent"] / 100)), 3)
    results["max_rooms_within_target"] = results["setups"].get("1", {}).get("rooms_within_target", 0)
    projected = results["projected_rooms_per_core"] = {}
    for side, levels in (("coplay", results["processes"].get("1", {})), ("baseline", results["baseline"]),
                         ("coplay_bare_bots", results["coplay_bare_bots"])):
        projected[side] = setup_summary(levels)["projected_rooms_per_core"] if levels else None
    return results


CAPACITY_FIGURES = ("server_cpu_ms_per_input", "server_cpu_ms_per_input_by_process",
                    "server_cpu_percent_by_process", "server_runqueue_wait_percent", "inputs_lost",
                    "inputs_refused", "lost_records", "rooms_completed", "within_target", "pinning",
                    "bots_saturated")


def capacity(rooms: int = 20, trials: int = 3, setups: tuple[str, ...] = ("1", "1r", "2", "3"),
             seconds: float = 15.0, warmup: float = 3.0, bots: int | None = None) -> dict:
    """Issue 14's capacity target with the noise taken out: every setup at the same rooms,
    `trials` rounds with the setups interleaved (this VM's speed drifts by 10-20 % between
    runs minutes apart, which a single pass per setup mistakes for the setups' difference).
    Per setup: each trial's summed server CPU ms per relayed input, by process, relay p99,
    inputs lost and rooms completed, and the median; capacity = 1 process's median / the
    setup's (rooms per fully used core, relative), target >= 0.9 for 2+ processes."""
    bots = bots or default_bots(setups)
    work = Path(tempfile.mkdtemp(prefix="coplay-capacity-"))
    _experiments(work / "experiments", bots)
    _load_experiment(work / "experiments", warmup, seconds)
    env = dict(LIFTED_CAPS)
    runs: dict[str, list[dict]] = {name: [] for name in setups}
    for trial in range(trials):
        for name in setups:
            level = _setup_level(name, rooms, work, env, warmup=warmup, seconds=seconds, bots=bots,
                                 placement="sticky", trial=trial + 1)
            kept = {k: level.get(k) for k in CAPACITY_FIGURES}
            runs[name].append({**kept, "relay_p99_ms": level["relay_one_way_ms"]["p99"]})
            print(f"capacity: trial {trial + 1}, setup {name}: {json.dumps(runs[name][-1])}", file=sys.stderr,
                  flush=True)
    median = {name: statistics.median(r["server_cpu_ms_per_input"] for r in rs) for name, rs in runs.items()}
    one = median.get("1")
    return {"rooms": rooms, "trials": trials, "seconds": seconds, "bot_processes": bots, "cores": CORES,
            "runs": runs, "median_cpu_ms_per_input": median,
            "capacity_vs_one_process": {name: round(one / m, 3) if one and m else None
                                        for name, m in median.items()},
            "all_within_target": all(r["within_target"] for rs in runs.values() for r in rs),
            "target": {"capacity_vs_one_process": 0.9}}


def levels(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(",") if x)


def setups(text: str) -> tuple[str, ...]:
    """--processes: e.g. "1,1r,2,3" (see setup_processes); a bad name fails here, not mid-run."""
    names = tuple(x for x in text.split(",") if x)
    for name in names:
        setup_processes(name)
    return names


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rooms", default="25,50,100,150")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--bots", type=int, help="bot processes (default: one per free core, >= 2)")
    parser.add_argument("--processes", default="1", help="setups, e.g. 1,1r,2,3 (1r: one process + Redis)")
    parser.add_argument("--placement", choices=("sticky", "random"), default="sticky",
                        help="a room's two participants on one server process (default), or each on any")
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--bare-rooms", default="", help="bare-bot comparison levels (default: --rooms)")
    parser.add_argument("--hypercorn-rooms", default="", help="levels for Coplay on hypercorn")
    parser.add_argument("--baseline-server", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--bot", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bot:
        _stdio_bot()
        return 0
    if args.baseline_server:
        serve_baseline(args.baseline_server)
        return 0
    out = run(levels(args.rooms), args.seconds, args.warmup, args.bots, not args.no_baseline,
              setups(args.processes), levels(args.hypercorn_rooms), args.placement,
              levels(args.bare_rooms) or None)
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
