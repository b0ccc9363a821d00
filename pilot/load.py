"""The pilot's load mode (``python -m pilot EXPERIMENT --load ROOMS [--url URL]``) and the
driver of the load benchmark's Coplay levels (bench/load.py): ROOMS two-player rooms of
simulated participants playing at once, measured.

Each participant is the pilot's own (pilot/participant.py): it connects like a page, walks
the study to its multiplayer game scene, is matched, and plays on the page's rollback netcode
(pages/netcode.py) with the env stepped in CPython by the worker's dispatcher, reporting
state hashes, so a room ends ``completed`` once the server's replay agrees. Participants run
in a few bot processes (``python -m pilot.load --bot``), each one event loop (uvloop) driving
many of them; both participants of a room are in the same bot process, so the relay's one-way
latency is measured on one perf_counter clock: an input message's emit by one seat to its
arrival at the other.

What a level measures (hooks of pilot/participant.py, in the first multiplayer episode of
every participant; the rooms' first frames wait for a common start so the window sees every
room playing): inputs sent (input messages emitted in the window) vs relayed (arrived at the
partner) vs refused (a ``server_error`` for an input) vs lost (the rest); the relay one-way
latency p50/p99; rooms completed; the bots' own CPU and event-loop lag (a saturated bot
inflates latency: its figures are suspect). Given the server's process ids (a server on this
machine), each process's CPU over the window and per relayed input.

Pairing: the two participants of a room join its waiting room one after the other, under a
lock shared by the bot processes (a file lock), so nobody else joins between them: rooms are
formed as the driver placed them (both seats in one bot process, and with several server URLs,
by default both on the same server process, as a sticky load balancer would place them).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fcntl
import json
import os
import queue
import random
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp

from pilot.local import ROOT
from pilot.participant import Hooks, Options, SimulatedParticipant, page_config
from pilot.report import summary

TARGET_P99_MS = 20.0
BOT_SATURATED_PERCENT = 85.0
CLK_TCK = os.sysconf("SC_CLK_TCK")
NEVER = (float("inf"), float("inf"))


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


def pin(pid: int, cpus: set[int]) -> None:
    """Every thread of `pid` (the ASGI server's I/O threads included) onto `cpus`."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):  # a thread that just ended
            os.sched_setaffinity(int(task.name), cpus)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


# -- inside a bot process: the participants' hooks ---------------------------------------------
class Pair:
    """The two participants the driver placed in one room."""

    def __init__(self, first: Any, second: Any):
        self.first, self.second = first, second
        self.arrived = 0
        self.both = asyncio.Event()  # both are at their waiting room's door
        self.first_in = asyncio.Event()  # the first one's join is answered
        self.broken = False  # one of them left (or failed) before the room
        self.locked = False
        self.seated = False


class LoadProbe(Hooks):
    def __init__(self, lock_path: str | None = None):
        self.pairs: dict[str, Pair] = {}
        self._lock = asyncio.Lock()  # the file lock is per open file: one holder in this process
        self._fd = os.open(lock_path, os.O_RDWR | os.O_CREAT) if lock_path else None
        self.total = 0  # participants
        self.gated: set[str] = set()  # at (or past) the start of their measured room
        self.left: set[str] = set()  # done with the study, or failed
        self.ready = asyncio.Event()
        self.go = asyncio.Event()
        self.start = 0.0
        self.window = NEVER
        self.measured: dict[str, str] = {}  # participant -> its measured room
        self.rooms: dict[str, str] = {}  # participant -> room, while it plays its measured room
        self.sent_at: dict[tuple, float] = {}
        self.latency_ms: list[float] = []
        self.loop_lag_ms: list[float] = []
        self.inputs_sent = self.inputs_relayed = self.inputs_refused = 0
        self.errors: list[dict] = []
        self.made: dict[str, dict[str, list[int]]] = {}  # room -> seat -> [first frame, inputs made]
        self.ended: dict[str, float] = {}  # room -> when its frames were played (perf_counter)

    # -- pairing -----------------------------------------------------------------------------
    async def _acquire(self, pair: Pair) -> None:
        await self._lock.acquire()
        if self._fd is not None:
            await asyncio.to_thread(fcntl.flock, self._fd, fcntl.LOCK_EX)
        pair.locked = True

    def _release(self, pair: Pair) -> None:
        if pair.locked:
            pair.locked = False
            if self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            self._lock.release()

    @contextlib.asynccontextmanager
    async def joining(self, bot: Any, scene_id: str, episode: int):
        pair = self.pairs.get(bot.pid)
        if pair is None or pair.seated:  # a later episode: as a page joins
            yield
            return
        pair.arrived += 1
        if pair.arrived == 2:
            pair.both.set()
        await pair.both.wait()
        if pair.broken:
            raise RuntimeError("the partner the load test placed with this participant left before the room")
        if bot is pair.first:
            await self._acquire(pair)
            try:
                yield
            except BaseException:
                pair.broken = True
                self._release(pair)
                raise
            finally:
                pair.first_in.set()
            return
        await pair.first_in.wait()
        try:
            if pair.broken:
                raise RuntimeError("the partner the load test placed with this participant could not join")
            yield
        finally:
            pair.seated = True
            self._release(pair)

    def finished(self, bot: Any) -> None:
        """A participant's walk ended (the study done, or an error): its partner must not wait."""
        self.left.add(bot.pid)
        pair = self.pairs.get(bot.pid)
        if pair is not None and not pair.seated:
            pair.broken = True
            pair.both.set()
            pair.first_in.set()
            if bot is pair.first:
                self._release(pair)
        self._check_ready()

    # -- the common start ------------------------------------------------------------------------
    def _check_ready(self) -> None:
        if len(self.gated | self.left) >= self.total:
            self.ready.set()

    def rooms_ready(self) -> int:
        return len(set(self.measured.values()))

    def open(self, start: float, warmup: float, seconds: float) -> None:
        self.start = start
        self.window = (start + warmup, start + warmup + seconds)
        self.go.set()

    async def playing(self, bot: Any, room: dict[str, Any]) -> None:
        if bot.pid in self.gated:  # a later room: not measured
            self.rooms.pop(bot.pid, None)
            return
        self.gated.add(bot.pid)
        self.measured[bot.pid] = self.rooms[bot.pid] = room["room"]
        self._check_ready()
        await self.go.wait()
        await asyncio.sleep(max(0.0, self.start - time.perf_counter()))

    def played(self, bot: Any, room: dict[str, Any], outcome: str) -> None:
        if self.rooms.pop(bot.pid, None) is not None:
            self.ended.setdefault(room["room"], time.perf_counter())

    # -- the meter -----------------------------------------------------------------------------
    def sending(self, bot: Any, seat: str, message: dict[str, Any], fresh: list) -> None:
        room = self.rooms.get(bot.pid)
        if room is None:
            return
        if fresh:
            self.made.setdefault(room, {}).setdefault(seat, [fresh[0][0], 0])[1] += len(fresh)
        now = time.perf_counter()
        key = (room, seat, message["frame"])
        if self.window[0] <= now < self.window[1] and key not in self.sent_at:
            self.sent_at[key] = now
            self.inputs_sent += 1

    def received(self, bot: Any, message: dict[str, Any]) -> None:
        room = self.rooms.get(bot.pid)
        if room is None:
            return
        stamp = self.sent_at.pop((room, message.get("player"), message.get("frame")), None)
        if stamp is not None:
            self.latency_ms.append((time.perf_counter() - stamp) * 1000)
            self.inputs_relayed += 1

    def server_error(self, bot: Any, error: dict[str, Any]) -> None:
        self.errors.append(error)
        if error.get("event") == "input" and self.window[0] <= time.perf_counter() < self.window[1]:
            self.inputs_refused += 1

    async def loop_lag(self) -> None:
        """How late this process's event loop wakes a 10 ms sleep during the window."""
        while time.perf_counter() < self.window[1]:
            before = time.perf_counter()
            await asyncio.sleep(0.01)
            if self.window[0] <= before < self.window[1]:
                self.loop_lag_ms.append((time.perf_counter() - before - 0.01) * 1000)


# -- a bot process ------------------------------------------------------------------------------------
def placements(conf: dict, rng: random.Random) -> list[tuple[str, str]]:
    """The server URL of each seat of each room this process drives: by default both seats
    of a room on one server (sticky, rooms spread round robin); ``random``: each seat its own."""
    urls = conf["urls"]
    out = []
    for k in range(conf["rooms"]):
        if conf.get("placement") == "random":
            out.append((rng.choice(urls), rng.choice(urls)))
        else:
            url = urls[(conf.get("first_room", 0) + k) % len(urls)]
            out.append((url, url))
    return out


async def drive(conf: dict, conn: Any) -> dict:
    """One bot process: ``conf["rooms"]`` rooms of simulated participants, measured."""
    probe = LoadProbe(conf.get("lock"))
    probe.total = 2 * conf["rooms"]
    files = tempfile.mkdtemp(prefix="coplay-load-files-")
    base = Options(
        url=conf["urls"][0],
        experiment=conf["experiment"],
        run_id=conf["run_id"],
        policy=conf.get("policy"),
        speed=conf.get("speed", 1.0),
        files_root=files,
        hooks=probe,
        net=conf.get("net"),
        fast_json=True,
    )
    cfg = await asyncio.to_thread(page_config, base.url, base.experiment)
    arrive_every = conf.get("arrive_every", 0.01)
    try:
        async with aiohttp.ClientSession() as http:
            bots = []
            for k, seats in enumerate(placements(conf, random.Random(conf["run_id"]))):
                pair = [
                    SimulatedParticipant(2 * k + j, dataclasses.replace(base, url=url), cfg, http)
                    for j, url in enumerate(seats)
                ]
                probe.pairs[pair[0].pid] = probe.pairs[pair[1].pid] = Pair(*pair)
                bots += pair

            async def one(i: int, bot: SimulatedParticipant):
                await asyncio.sleep(i * arrive_every)
                try:
                    return await bot.run()
                finally:
                    probe.finished(bot)

            walking = [asyncio.create_task(one(i, b)) for i, b in enumerate(bots)]
            await probe.ready.wait()
            conn.send(["ready", probe.rooms_ready()])
            start_wall, warmup, seconds = await asyncio.to_thread(conn.recv)
            # the coordinator's wall-clock start -> this process's perf_counter
            probe.open(time.perf_counter() + (start_wall - time.time()), warmup, seconds)
            lag = asyncio.create_task(probe.loop_lag())
            until = probe.window[1] - time.perf_counter() + conf.get("finish_timeout", 600.0)
            _, stuck = await asyncio.wait(walking, timeout=max(1.0, until))
            for bot, task in zip(bots, walking, strict=True):
                if task in stuck:  # a finding, not a reason to hang: where it waits, then on
                    where = " < ".join(
                        f"{f.f_code.co_name} ({Path(f.f_code.co_filename).name}:{f.f_lineno})"
                        for f in reversed(task.get_stack())
                    )
                    print(f"{bot.pid} stuck after the window: {where}", file=sys.stderr, flush=True)
                    bot.result.outcome, bot.result.error = "error", f"stuck after the window in {where}"
                    task.cancel()
            await asyncio.gather(*walking, return_exceptions=True)
            outcomes = [bot.result for bot in bots]
            lag.cancel()
    finally:
        shutil.rmtree(files, ignore_errors=True)
    status: dict[str, str | None] = {}
    for o in outcomes:
        for e in o.episodes:
            if e.get("room") in probe.measured.values():
                status[e["room"]] = status.get(e["room"]) or e.get("room_status")
    for room in probe.measured.values():
        status.setdefault(room, None)
    return {
        "latency_ms": probe.latency_ms,
        "loop_lag_ms": probe.loop_lag_ms,
        "sent": probe.inputs_sent,
        "relayed": probe.inputs_relayed,
        "refused": probe.inputs_refused,
        "errors": len(probe.errors),
        "error_sample": probe.errors[:3],
        "rooms": status,
        "made": probe.made,
        "ended_in_window": sum(t < probe.window[1] for t in probe.ended.values()),
        "participants": dict(Counter(o.outcome for o in outcomes)),
        "participant_errors": [f"{o.participant}: {o.error}" for o in outcomes if o.error][:3],
    }


class Stdio:
    """A bot's side of its pipe to the coordinator: one JSON value per line."""

    def send(self, value) -> None:
        # written whole, with os.write on a blocking descriptor: once a big result (30 rooms'
        # latencies) reached the coordinator cut at 131,072 characters
        data = memoryview((json.dumps(value) + "\n").encode())
        fd = sys.stdout.fileno()
        os.set_blocking(fd, True)
        while data:
            data = data[os.write(fd, data) :]

    def recv(self):
        return json.loads(sys.stdin.readline())


def bot_main(bot=drive) -> None:
    """A bot process: reads its config line, drives its rooms with ``bot(conf, conn)``."""
    from server.transport import serving

    conn = Stdio()
    try:
        conn.send(["done", serving.run(bot(conn.recv(), conn))])  # uvloop, like the server
    except BaseException as exc:  # report, never hang the coordinator
        conn.send(["error", f"{type(exc).__name__}: {exc}"])


class BotProcess:
    """A bot process (``python -m MODULE --bot``); its stdout lines are read by a thread into a queue."""

    def __init__(self, module: str, conf: dict, log: Path):
        self.log = log.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", module, "--bot"],
            cwd=ROOT,
            text=True,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
        )
        self.pid = self.process.pid
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.send(conf)

    def _read(self) -> None:
        for line in self.process.stdout:
            try:
                self.lines.put(json.loads(line))
            except ValueError:  # said at once, not after the coordinator's timeout
                self.lines.put(["error", f"unreadable line from the bot ({len(line)} chars): {line[:120]!r}"])
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


# -- the coordinator: one load level ----------------------------------------------------------------
def run_level(
    urls: list[str],
    rooms: int,
    experiment: str | list[str],
    work: Path,
    *,
    bots: int = 2,
    warmup: float = 3.0,
    seconds: float = 20.0,
    placement: str = "sticky",
    server_pids: list[int] | tuple[int, ...] = (),
    other_pids: dict[str, int] | None = None,
    bot_cpus: set[int] | None = None,
    module: str = "pilot.load",
    conf: dict | None = None,
    ready_timeout: float = 300.0,
    finish_timeout: float = 600.0,
    tag: str = "l",
) -> dict:
    """``rooms`` rooms driven by ``bots`` bot processes (``module``: this one's simulated
    participants, or bench/load.py's bare input bots), against ``urls``. ``experiment``: one for
    all, or one per bot process. ``server_pids`` (and ``other_pids``, e.g. Redis): processes on
    this machine whose CPU is measured over the window. ``bot_cpus``: the cores the bots are
    pinned to. ``ready_timeout``: for every room to form; ``finish_timeout``: after the window,
    for the participants to finish the study (one still going then is reported stuck, with
    where it waits, in its bot's log and the level's participant_errors). Returns the level's
    figures (see bench/load.py run() for the keys); ``made`` holds, per room and seat, the
    first frame and the number of inputs its bots made."""
    shares = [rooms // bots + (i < rooms % bots) for i in range(bots)]
    run_id = secrets.token_hex(3)
    lock = Path(tempfile.mkdtemp(prefix="coplay-load-lock-")) / "join.lock"
    rss_idle = sum(rss_mb(pid) for pid in server_pids)
    # each server process's CPU with nobody connected: its fixed cost (a cluster's housekeeping)
    idle0, t_idle = [cpu_seconds(pid) for pid in server_pids], time.perf_counter()
    time.sleep(1.0 if server_pids else 0.0)
    idle = [
        (cpu_seconds(pid) - c) / (time.perf_counter() - t_idle) * 100
        for pid, c in zip(server_pids, idle0, strict=True)
    ]
    procs, first = [], 0
    for i, share in enumerate(shares):
        if not share:
            continue
        exp = experiment[i] if isinstance(experiment, list) else experiment
        bot_conf = {
            "urls": urls,
            "experiment": exp,
            "rooms": share,
            "index": i,
            "first_room": first,
            "run_id": f"{tag}{run_id}b{i}",
            "lock": str(lock),
            "placement": placement,
            "tag": tag,
            "finish_timeout": finish_timeout,
            **(conf or {}),
        }
        procs.append(BotProcess(module, bot_conf, work / f"bot-{tag}-{rooms}-{i}.log"))
        first += share
    if bot_cpus:
        for proc in procs:
            pin(proc.pid, bot_cpus)
    watched = {**{str(pid): pid for pid in server_pids}, **(other_pids or {})}
    try:
        ready = sum(proc.recv(ready_timeout, "ready") for proc in procs)
        rss_connected = sum(rss_mb(pid) for pid in server_pids)
        start_wall = time.time() + 0.5
        for proc in procs:
            proc.send([start_wall, warmup, seconds])
        time.sleep(max(0.0, start_wall + warmup - time.time()))
        cpu0 = {name: cpu_seconds(pid) for name, pid in watched.items()}
        bot0 = [cpu_seconds(p.pid) for p in procs]
        wait0 = sum(runqueue_wait_seconds(pid) for pid in server_pids)
        t0 = time.perf_counter()
        rss_samples = []
        while time.perf_counter() - t0 < seconds:
            time.sleep(0.5)
            rss_samples.append(sum(rss_mb(pid) for pid in server_pids))
        elapsed = time.perf_counter() - t0
        cpu = {name: (cpu_seconds(pid) - cpu0[name]) / elapsed * 100 for name, pid in watched.items()}
        waited = (sum(runqueue_wait_seconds(pid) for pid in server_pids) - wait0) / elapsed * 100
        bot_cpu = [(cpu_seconds(p.pid) - c) / elapsed * 100 for p, c in zip(procs, bot0, strict=True)]
        outs = [proc.recv(finish_timeout + 120, "done") for proc in procs]
    finally:
        for proc in procs:
            proc.stop()
        shutil.rmtree(lock.parent, ignore_errors=True)
    return aggregate(
        outs,
        rooms,
        ready,
        seconds,
        [cpu[str(pid)] for pid in server_pids],
        {name: round(cpu[name], 1) for name in other_pids or {}},
        waited,
        bot_cpu,
        rss_idle,
        rss_connected,
        rss_samples,
        idle,
    )


def aggregate(
    outs: list[dict],
    rooms: int,
    ready: int,
    seconds: float,
    server_cpu: list[float],
    other_cpu: dict[str, float],
    waited: float,
    bot_cpu: list[float],
    rss_idle: float,
    rss_connected: float,
    rss_samples: list[float],
    idle_cpu: list[float] = (),
) -> dict:
    latency = [x for o in outs for x in o["latency_ms"]]
    sent = sum(o["sent"] for o in outs)
    relayed = sum(o["relayed"] for o in outs)
    refused = sum(o["refused"] for o in outs)
    statuses = Counter(str(status) for o in outs for status in o["rooms"].values())
    level: dict[str, Any] = {
        "rooms": rooms,
        "rooms_ready": ready,
        "relay_one_way_ms": summary(latency) if latency else None,
        "inputs_sent": sent,
        "inputs_relayed": relayed,
        "inputs_refused": refused,
        "inputs_lost": sent - relayed - refused,
        "relay_lost_messages": sent - relayed,  # refused or lost: never reached the partner
        "messages_per_s": round(sent / seconds),
        "room_results": dict(statuses),
        "server_errors": sum(o["errors"] for o in outs),
        "error_sample": [e for o in outs for e in o["error_sample"]][:3],
        "bot_cpu_percent": [round(c, 1) for c in bot_cpu],
        # a bot process near a full core answers late: the latency is then the bots' as much as the server's
        "bots_saturated": max(bot_cpu, default=0) > BOT_SATURATED_PERCENT,
    }
    loop_lag = [x for o in outs for x in o.get("loop_lag_ms", [])]
    if loop_lag:
        level["bot_loop_lag_ms"] = summary(loop_lag)
    send_lag = [x for o in outs for x in o.get("lag_ms", [])]
    if send_lag:
        level["bot_send_lag_ms"] = summary(send_lag)
    if any("participants" in o for o in outs):  # simulated participants: their rooms end completed
        level["rooms_completed"] = statuses.get("completed", 0)
        level["rooms_ended_in_window"] = sum(o["ended_in_window"] for o in outs)
        level["participants"] = dict(sum((Counter(o["participants"]) for o in outs), Counter()))
        level["participant_errors"] = [e for o in outs for e in o["participant_errors"]][:3]
    if server_cpu:
        total = sum(server_cpu)
        rss_load = max(rss_samples) if rss_samples else rss_connected
        level.update(
            {
                "server_cpu_percent": round(total, 1),
                "server_cpu_percent_by_process": [round(c, 1) for c in server_cpu],
                "server_idle_cpu_percent_by_process": [round(c, 1) for c in idle_cpu],
                # high: the machine, not the server, was busy
                "server_runqueue_wait_percent": round(waited, 1),
                "server_rss_mb": round(rss_load, 1),
                "server_rss_idle_mb": round(rss_idle, 1),
                "rss_connected_mb": round(rss_connected, 1),
                "rss_per_room_mb": round((rss_load - rss_idle) / rooms, 3),
                "cpu_percent_per_room": round(total / rooms, 3),
                # CPU time per relayed input (in + out, with everything else the participants sent
                # meanwhile), per process and summed: robust to other load on the machine, unlike latency
                "server_cpu_ms_per_input": round(total / 100 * seconds * 1000 / relayed, 4)
                if relayed
                else None,
                "server_cpu_ms_per_input_by_process": [
                    round(c / 100 * seconds * 1000 / relayed, 4) if relayed else None for c in server_cpu
                ],
            }
        )
    if other_cpu:
        level["other_cpu_percent"] = other_cpu
    made: dict[str, dict[str, list[int]]] = {}
    for o in outs:
        made.update(o["made"])
    level["made"] = made
    return level


def within_target(level: dict) -> bool:
    """Relay p99 <= 20 ms, no input lost or refused, no record lost, no server error, and
    (simulated participants) every room completed."""
    lat = level.get("relay_one_way_ms")
    completed = level.get("rooms_completed")
    return (
        bool(lat)
        and lat["p99"] <= TARGET_P99_MS
        and level["inputs_lost"] == 0
        and level["inputs_refused"] == 0
        and level.get("lost_records", 0) == 0
        and level["server_errors"] == 0
        and (completed is None or completed == level["rooms"])
    )


# -- the pilot's --load report ------------------------------------------------------------------------
def load_table(experiment: str, level: dict) -> str:
    lat = level["relay_one_way_ms"] or {}
    who = sorted(level.get("participants", {}).items())
    lines = [
        f"Load test of {experiment}: {level['rooms']} two-player rooms ({level['rooms_ready']} formed)",
        "",
        f"relay one way p50 / p99 ms: {lat.get('p50', '–')} / {lat.get('p99', '–')} "
        f"({lat.get('n', 0)} inputs; target p99 <= {TARGET_P99_MS:g})",
        f"inputs: sent {level['inputs_sent']}, relayed {level['inputs_relayed']}, refused "
        f"{level['inputs_refused']}, lost {level['inputs_lost']} ({level['messages_per_s']}/s)",
        "rooms: " + ", ".join(f"{k} {v}" for k, v in sorted(level["room_results"].items())),
        "participants: " + ", ".join(f"{k} {v}" for k, v in who),
        f"server errors: {level['server_errors']}"
        + (f" (e.g. {level['error_sample'][0]})" if level["error_sample"] else ""),
        f"bots' CPU %: {level['bot_cpu_percent']}, event-loop lag p99 "
        f"{level.get('bot_loop_lag_ms', {}).get('p99', '–')} ms"
        + (" -- SATURATED: add --bots, the latency is the bots' too" if level["bots_saturated"] else ""),
    ]
    if "server_cpu_percent" in level:
        lines.append(
            f"server CPU %: {level['server_cpu_percent_by_process']}, ms per relayed input "
            f"{level['server_cpu_ms_per_input_by_process']}"
        )
    if level.get("rooms_ended_in_window"):
        lines.append(
            f"note: {level['rooms_ended_in_window']} room(s) ended before the window did "
            "(episodes shorter than --warmup + --seconds): fewer inputs were measured"
        )
    for error in level.get("participant_errors", []):
        lines.append(f"  - {error}")
    lines += ["", "Within target." if within_target(level) else "NOT within target."]
    return "\n".join(lines)


if __name__ == "__main__":
    if sys.argv[1:] == ["--bot"]:
        bot_main()
    else:
        raise SystemExit("a bot process (--bot); a load test is python -m pilot EXPERIMENT --load N")
