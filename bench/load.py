"""Issue 6 figures: how many two-player rooms one server process holds at 30 frames/s of
relayed inputs on loopback, with the relay's one-way latency (p50/p99), the server
process's CPU and memory per room, and inputs sent vs stored (lost records). Beside it, in
the same run: the same bots against a bare python-socketio relay on the same ASGI server (no
validation, no recording, no matchmaking rules: the cost of our layer), Coplay on hypercorn
(the cost of the other ASGI server), and two Coplay processes sharing rooms through Redis.

Bots are python-socketio AsyncClients (websocket transport, uvloop, msgspec JSON) in separate
worker processes (both seats of a room in the same process, so latency is one perf_counter
clock). A single server process is pinned to core 0 and the bots to the other cores; the
server's CPU is its own (all threads). Each seat sends an input message every 1/30 s like a page
(``{"frame", "inputs": last 8 [[frame, value]], "adv"}``), without an ack; the partner's
arrival time gives the relay's one-way latency. After the measured window each seat
reports a final hash so the room ends and is saved (the bots do not simulate the game, so
rooms end ``desync``; the stored inputs are what counts).

    python -m bench.load [--rooms 50,100,125] [--seconds 20] [--no-baseline]
                         [--hypercorn-rooms 100] [--redis-rooms 50,100]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import queue
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import socketio

from bench.common import summary
from server.transport import fastjson, serving
from tests.redis_server import start_redis
from tests.servers import KITCHEN_CONTROLS, ROOT, free_port, start_server, write_experiment

FPS = 30
REDUNDANT = 8  # pages/multiplayer.py REDUNDANT_INPUTS
INPUT_DELAY = 2
ACTIONS = ["noop", "up", "down", "left", "right", "interact"]
TARGET_P99_MS = 20.0
CLK_TCK = os.sysconf("SC_CLK_TCK")


# -- process statistics (Linux /proc; no psutil needed) --------------------------------------
def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def runqueue_wait_seconds(pid: int) -> float:
    """Time the process's Python (main) thread was runnable but waiting for a CPU (other
    processes had it): a server starved by the rest of the machine shows latency that is not
    its own. The ASGI server's I/O threads are left out: they wait on the main thread's work."""
    try:
        return int(Path(f"/proc/{pid}/task/{pid}/schedstat").read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


# One server process gets one core to itself, the load generators the rest: the figure is then
# what one process holds on one core, not how the bots and the server share a small machine.
SERVER_CPUS = {0}
BOT_CPUS = set(range(1, os.cpu_count() or 1)) or {0}


def pin(pid: int, cpus: set[int]) -> None:
    """Every thread of `pid` (the ASGI server's I/O threads included) onto `cpus`."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        os.sched_setaffinity(int(task.name), cpus)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


# -- bots (worker processes) ------------------------------------------------------------------
class Seat:
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
        a = Seat(conf["url"], conf["experiment"], name + "-a")
        # with two server processes the second seat of every room lands on the other one
        b = Seat(conf.get("url_b", conf["url"]), conf["experiment"], name + "-b")
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
    out = {
        "latency_ms": [x for s in seats for x in s.latency_ms],
        "lag_ms": [x for s in seats for x in s.lag_ms],
        "sent_in_window": sum(s.sent_in_window for s in seats),
        "received_in_window": sum(s.received_in_window for s in seats),
        "errors": sum(len(s.errors) for s in seats),
        "error_sample": [e for s in seats for e in s.errors][:3],
        "results": [s.result["status"] if s.result else None for s in seats[::2]],
    }
    sent: dict[str, dict[str, int]] = {}
    for s in seats:
        sent.setdefault(s.room, {})[s.player] = s.frames_sent
    out["sent_inputs"] = sent
    await asyncio.gather(*[s.sio.disconnect() for s in seats], return_exceptions=True)
    return out


class _Stdio:
    """The bot's side of its pipe to the coordinator: one JSON value per line."""

    def send(self, value) -> None:
        sys.stdout.write(json.dumps(value) + "\n")
        sys.stdout.flush()

    def recv(self):
        return json.loads(sys.stdin.readline())


def bot_main() -> None:
    """``python -m bench.load --bot``: reads its config line, drives its rooms."""
    conn = _Stdio()
    try:
        conn.send(["done", serving.run(_bot(conn.recv(), conn))])  # uvloop, like the server
    except BaseException as exc:  # report, never hang the coordinator
        conn.send(["error", f"{type(exc).__name__}: {exc}"])


class BotProcess:
    """A bot worker process; its stdout lines are read by a thread into a queue."""

    def __init__(self, conf: dict, log: Path):
        self.log = log.open("w")
        self.process = subprocess.Popen([sys.executable, "-m", "bench.load", "--bot"], cwd=ROOT, text=True,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log)
        self.pid = self.process.pid
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.send(conf)

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.put(json.loads(line))
        self.lines.put(["error", f"bot exited with {self.process.wait()}"])

    def send(self, value) -> None:
        self.process.stdin.write(json.dumps(value) + "\n")
        self.process.stdin.flush()

    def recv(self, timeout: float, expect: str):
        try:
            kind, info = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise RuntimeError(f"bot {self.pid}: no {expect!r} within {timeout}s") from None
        if kind != expect:
            raise RuntimeError(f"bot {self.pid} failed: {info}")
        return info

    def stop(self) -> None:
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


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


# -- one load level -------------------------------------------------------------------------------
def _level(urls: list[str], server_pids: list[int], rooms: int, experiments: list[str], tag: str,
           warmup: float, seconds: float, work: Path) -> tuple[dict, dict]:
    """One load level. With one server process, it runs on its own core (SERVER_CPUS) and the
    bots on the others. With two server URLs (Redis), seat a of each room connects to the first
    and seat b to the second, nothing is pinned, and CPU and memory are summed over the server
    processes."""
    pinned = len(server_pids) == 1 and 0 not in BOT_CPUS
    bots = len(experiments)
    shares = [rooms // bots + (i < rooms % bots) for i in range(bots)]
    rss_idle = sum(rss_mb(pid) for pid in server_pids)
    procs = [BotProcess({"url": urls[0], "url_b": urls[-1], "experiment": exp, "rooms": share, "index": i,
                         "tag": tag},
                        work / f"bot-{tag}-{rooms}-{i}.log")
             for i, (exp, share) in enumerate(zip(experiments, shares, strict=True))]
    if pinned:  # the server process (all its threads) on core 0, the bots on the others
        for pid in server_pids:
            pin(pid, SERVER_CPUS)
        for proc in procs:
            pin(proc.pid, BOT_CPUS)
    try:
        for proc in procs:
            proc.recv(180, "ready")
        rss_connected = sum(rss_mb(pid) for pid in server_pids)
        start_wall = time.time() + 0.5
        for proc in procs:
            proc.send([start_wall, warmup, seconds])
        time.sleep(max(0.0, start_wall + warmup - time.time()))
        cpu0, bot0 = sum(cpu_seconds(pid) for pid in server_pids), [cpu_seconds(p.pid) for p in procs]
        t0 = time.perf_counter()
        wait0 = sum(runqueue_wait_seconds(pid) for pid in server_pids)
        rss_samples = []
        while time.perf_counter() - t0 < seconds:
            time.sleep(0.5)
            rss_samples.append(sum(rss_mb(pid) for pid in server_pids))
        elapsed = time.perf_counter() - t0
        cpu = (sum(cpu_seconds(pid) for pid in server_pids) - cpu0) / elapsed * 100
        waited = (sum(runqueue_wait_seconds(pid) for pid in server_pids) - wait0) / elapsed * 100
        bot_cpu = [(cpu_seconds(p.pid) - c) / elapsed * 100 for p, c in zip(procs, bot0, strict=True)]
        outs = [proc.recv(300, "done") for proc in procs]
    finally:
        for proc in procs:
            proc.stop()
    latency = [x for o in outs for x in o["latency_ms"]]
    lag = [x for o in outs for x in o["lag_ms"]]
    sent_w = sum(o["sent_in_window"] for o in outs)
    recv_w = sum(o["received_in_window"] for o in outs)
    rss_load = max(rss_samples) if rss_samples else sum(rss_mb(pid) for pid in server_pids)
    statuses: dict[str, int] = {}
    for o in outs:
        for status in o["results"]:
            statuses[str(status)] = statuses.get(str(status), 0) + 1
    level = {
        "rooms": rooms,
        "relay_one_way_ms": summary(latency) if latency else None,
        "relay_lost_messages": sent_w - recv_w,
        "messages_per_s": round(sent_w / seconds),
        "server_cpu_percent": round(cpu, 1),
        "server_runqueue_wait_percent": round(waited, 1),  # high: the machine, not the server, was busy
        "server_rss_mb": round(rss_load, 1),
        "server_rss_idle_mb": round(rss_idle, 1),
        "rss_per_room_mb": round((rss_load - rss_idle) / rooms, 3),
        "cpu_percent_per_room": round(cpu / rooms, 3),
        # CPU time per relayed input (in + out), and the rooms one fully-used core would hold
        # at that cost: robust to other load on the machine, unlike the latency
        "server_cpu_ms_per_input": round(cpu / 100 * seconds * 1000 / sent_w, 4) if sent_w else None,
        "bot_cpu_percent": [round(c, 1) for c in bot_cpu],
        "bot_send_lag_ms": summary(lag) if lag else None,
        "server_errors": sum(o["errors"] for o in outs),
        "error_sample": [e for o in outs for e in o["error_sample"]][:3],
        "room_results": statuses,  # bots send no real hashes: "desync" is expected, None = not ended
        "rss_connected_mb": round(rss_connected, 1),
    }
    sent = {room: players for o in outs for room, players in o["sent_inputs"].items()}
    return level, sent


def _stored_inputs(server, sent: dict[str, dict[str, int]]) -> dict:
    marks = ",".join("?" * len(sent))
    rows = dict(server.query(f"SELECT id, inputs FROM rooms WHERE id IN ({marks})", *sent))
    sent_total = stored_total = 0
    for room, players in sent.items():
        stored = json.loads(rows.get(room) or "{}")
        for player, count in players.items():
            sent_total += count
            stored_total += len(set(stored.get(player, {})) & {str(f + INPUT_DELAY) for f in range(count)})
    return {"inputs_sent": sent_total, "inputs_stored": stored_total,
            "lost_records": sent_total - stored_total}


def _experiments(directory: Path, bots: int) -> list[str]:
    source = (ROOT / "experiments" / "kitchen" / "env.py").read_text()
    names = [f"load{i}" for i in range(bots)]
    for name in names:
        write_experiment(directory, name, env_source=source, players=["p0", "p1"], default_action="noop",
                         controls=KITCHEN_CONTROLS, start_key="Enter", max_steps=100_000)
    return names


def within_target(level: dict) -> bool:
    lat = level.get("relay_one_way_ms")
    return bool(lat) and lat["p99"] <= TARGET_P99_MS and level.get("lost_records", 0) == 0 \
        and level["relay_lost_messages"] == 0 and level["server_errors"] == 0


def run(rooms: tuple[int, ...] = (25, 50, 100, 150), seconds: float = 20.0, warmup: float = 3.0,
        bots: int = 2, baseline: bool = True, redis_rooms: tuple[int, ...] = (),
        hypercorn_rooms: tuple[int, ...] = ()) -> dict:
    """Rooms per process at 30 Hz: per level (rooms), Coplay's relay and the bare baseline.

    Returns {"coplay": {"<rooms>": level}, "baseline": {"<rooms>": level}, "max_rooms_within_target",
    "projected_rooms_per_core": {"coplay", "baseline"}, "target": {...}, "settings": {...}}; a level
    has rooms, relay_one_way_ms {p50, p99, mean, n}, relay_lost_messages, messages_per_s,
    server_cpu_percent, server_runqueue_wait_percent, server_rss_mb, server_rss_idle_mb,
    rss_connected_mb, rss_per_room_mb, cpu_percent_per_room, server_cpu_ms_per_input,
    bot_cpu_percent, bot_send_lag_ms, server_errors, error_sample, room_results, within_target,
    and (Coplay only) inputs_sent, inputs_stored, lost_records."""
    work = Path(tempfile.mkdtemp(prefix="coplay-load-"))
    names = _experiments(work / "experiments", bots)
    env = {}
    # every bot is 127.0.0.1: lift the per-address caps
    env["COPLAY_MAX_CONNECTIONS_PER_IP"] = env["COPLAY_MAX_ROOMS_PER_IP"] = "100000"
    results: dict = {"coplay": {}, "coplay_hypercorn": {}, "baseline": {}, "two_processes_redis": {},
                     "settings": {"fps": FPS, "seconds": seconds, "warmup": warmup, "bot_processes": bots,
                                  "cores": os.cpu_count(), "one_process_server_cpus": sorted(SERVER_CPUS),
                                  "one_process_bot_cpus": sorted(BOT_CPUS)},
                     "target": {"relay_p99_ms": TARGET_P99_MS, "rooms": 100, "lost_records": 0}}
    # Coplay on its default ASGI server (granian), and on hypercorn: the measured reason for the default
    sides = (("coplay", rooms, "granian"), ("coplay_hypercorn", hypercorn_rooms, "hypercorn"))
    for side, counts, asgi in sides:
        for n in counts:
            workdir = work / f"{side}-{n}"
            workdir.mkdir()
            server = start_server(workdir, experiments_dir=work / "experiments",
                                  env={**env, "COPLAY_ASGI_SERVER": asgi})
            try:
                level, sent = _level([server.url], [server.process.pid], n, names, side[0], warmup, seconds,
                                     workdir)
            finally:
                server.stop()  # SIGTERM: a room still open is saved as interrupted, with its inputs
            level.update(_stored_inputs(server, sent))
            level["within_target"] = within_target(level)
            results[side][str(n)] = level
            print(f"load: {side} {n} rooms: {json.dumps(level)}", file=sys.stderr, flush=True)
    for n in redis_rooms:
        redis = start_redis()
        workdir = work / f"redis-{n}"
        workdir.mkdir()
        pair = []
        try:
            pair = [start_server(workdir, experiments_dir=work / "experiments",
                                 env={**env, "COPLAY_REDIS_URL": redis.url}) for _ in range(2)]
            level, sent = _level([s.url for s in pair], [s.process.pid for s in pair], n, names, "r",
                                 warmup, seconds, workdir)
        finally:
            for server in pair:
                server.stop()
            redis.stop()
        level.update(_stored_inputs(pair[0], sent))
        level["within_target"] = within_target(level)
        results["two_processes_redis"][str(n)] = level
        print(f"load: 2 processes + redis {n} rooms: {json.dumps(level)}", file=sys.stderr, flush=True)
    if baseline:
        for n in rooms:
            relay = Baseline(work)
            try:
                level, _ = _level([relay.url], [relay.process.pid], n, names, "b", warmup, seconds, work)
            finally:
                relay.stop()
            level["within_target"] = within_target(level)
            results["baseline"][str(n)] = level
            print(f"load: baseline {n} rooms: {json.dumps(level)}", file=sys.stderr, flush=True)
    held = [int(n) for n, level in results["coplay"].items() if within_target(level)]
    results["max_rooms_within_target"] = max(held) if held else 0
    # CPU per relayed input at the largest load within target (or the lightest) -> one core's rooms
    for side in ("coplay", "baseline"):
        levels = [results[side][str(n)] for n in sorted(rooms)] if results[side] else []
        fitting = [lv for lv in levels if lv["within_target"]] or levels[:1]
        cost = fitting[-1]["server_cpu_ms_per_input"] if fitting else None
        projected = results.setdefault("projected_rooms_per_core", {})
        projected[side] = round(1000 / (cost * 2 * FPS)) if cost else None
    return results


def levels(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(",") if x)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rooms", default="25,50,100,150")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--bots", type=int, default=2)
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--redis-rooms", default="", help="levels for 2 server processes + Redis")
    parser.add_argument("--hypercorn-rooms", default="", help="levels for Coplay on hypercorn")
    parser.add_argument("--baseline-server", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--bot", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bot:
        bot_main()
        return 0
    if args.baseline_server:
        serve_baseline(args.baseline_server)
        return 0
    out = run(levels(args.rooms), args.seconds, args.warmup, args.bots,
              not args.no_baseline, levels(args.redis_rooms), levels(args.hypercorn_rooms))
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
