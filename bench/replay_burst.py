"""Issue 11 figure: the relay's p99 while 20 rooms finish in the same second, each end
triggering the server's CPython replay of 900 frames of the kitchen env, against the same
load with no room finishing, in one run (one server). Once with the replays in the process
pool (the default, ``replay_workers = 2``) and once on a thread of the server process
(``replay_workers = 0``, the old ``asyncio.to_thread``) as the baseline.

Quiet rooms play at 30 inputs/s per seat throughout (their partner's arrival times give the
relay's one-way latency). The finishing rooms first record 900 frames of inputs each (sent
in bursts of 32, before the measurement), then all report their final hashes — the hashes
a browser would, computed here with the same replay — at random moments within one second.
One room is finished before the quiet window, so the pool's workers exist (a running
server's steady state; their start-up is not what is measured). The finishing rooms' clients
run in a process of their own, so their work never delays the measuring clients' clock.
Nothing is pinned: server, replay workers and both client processes share the cores.

Beside each latency, what became of the inputs it measures (sent in the window, arrived,
refused with a server_error, lost), and of the finishing rooms' results (rooms, results
back, refused final hashes, lost): every client sends within the server's rate limit (30
inputs/s per seat; a finishing room's 29 recorded messages per seat, each awaited), so
nothing should be refused.

    python -m bench.replay_burst [--rooms 20] [--quiet-rooms 20] [--frames 900]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import random
import runpy
import sys
import tempfile
import time
from pathlib import Path

from bench.common import add_delivery, delivery, summary
from bench.load import ACTIONS, FPS, LIFTED_CAPS, Seat
from server.multiplayer.replay import replay
from server.transport import serving
from tests.servers import KITCHEN_CONTROLS, ROOT, start_server, write_experiment

KITCHEN = ROOT / "experiments" / "kitchen"
EXPERIMENT = "burst"
CHUNK = 32  # inputs per message (the relay's limit)


class TimedSeat(Seat):
    """A seat that keeps every relayed input's (sent, received) perf_counter pair."""

    def __init__(self, url: str, pid: str):
        super().__init__(url, EXPERIMENT, pid)
        self.samples: list[tuple[float, float]] = []
        self.seed = 0
        self.result_at = 0.0
        self.refusals: list[float] = []  # perf_counter when a server_error about an input came
        self.sio.on("server_error", self.on_error)

    def on_error(self, data) -> None:
        self.errors.append(data)
        if isinstance(data, dict) and data.get("event") == "input":
            self.refusals.append(time.perf_counter())

    def on_start(self, data: dict) -> None:
        super().on_start(data)
        self.seed = data["seed"]

    def on_result(self, data: dict) -> None:
        super().on_result(data)
        self.result_at = time.perf_counter()

    def on_input(self, data: dict) -> None:
        now = time.perf_counter()
        sent = self.partner.sent_at.pop(data["frame"], None) if self.partner else None
        if sent is not None:
            self.samples.append((sent, now))


async def _pair(url: str, tag: str, i: int) -> tuple[TimedSeat, TimedSeat]:
    a, b = TimedSeat(url, f"{tag}-{i}-a"), TimedSeat(url, f"{tag}-{i}-b")
    a.partner, b.partner = b, a
    for s in (a, b):
        await s.sio.connect(url, auth=s.auth, transports=["websocket"], wait_timeout=30)
    for s, want in ((a, "waiting"), (b, "matched")):
        ack = await s.sio.call("mp_join", {"episode_id": f"ep-{s.auth['participant_id']}"}, timeout=30)
        if ack.get("status") != want:
            raise RuntimeError(f"matchmaking failed: {ack}")
    await asyncio.wait_for(asyncio.gather(a.started.wait(), b.started.wait()), 30)
    return a, b


async def _record(pair: tuple[TimedSeat, TimedSeat], frames: int, rng: random.Random) -> dict[str, dict]:
    """Record ``frames`` frames of random inputs for both seats; returns them by player."""
    inputs: dict[str, dict[int, str]] = {}
    for s in pair:
        inputs[s.player] = {f: rng.choice(ACTIONS) for f in range(frames)}
    for start in range(0, frames, CHUNK):
        for s in pair:
            chunk = [[f, inputs[s.player][f]] for f in range(start, min(frames, start + CHUNK))]
            ack = await s.sio.call("input", {"frame": chunk[-1][0], "inputs": chunk, "adv": 0.0}, timeout=30)
            if not ack.get("ok"):
                raise RuntimeError(f"input refused: {ack}")
    return inputs


async def _finish(pair: tuple[TimedSeat, TimedSeat], digest: str, frames: int, delay: float) -> None:
    await asyncio.sleep(delay)
    for s in pair:
        await s.sio.emit("state_hash", {"frame": frames, "hash": digest, "final": True})


def _window(seats: list[TimedSeat], start: float, end: float) -> tuple[list[float], dict]:
    """The relay's one-way latencies of the seats' inputs sent within [start, end), and what
    became of those inputs: arrived, refused (a server_error about an input carries no frame:
    counted by when it came back) and lost (neither). Call it once the last ones are in."""
    ms = [(got - sent) * 1000 for s in seats for sent, got in s.samples if start <= sent < end]
    unarrived = sum(1 for s in seats for sent in s.sent_at.values() if start <= sent < end)
    refused = sum(1 for s in seats for t in s.refusals if start <= t < end)
    return ms, delivery(len(ms) + unarrived, len(ms), refused)


def kitchen_config() -> dict:
    return runpy.run_path(str(KITCHEN / "experiment.py"))["EXPERIMENT"]["env_config"]


async def _finishing_rooms(url: str, rooms: int, frames: int, conn) -> None:
    """The finishing rooms, in a process of their own (so their clients' work never delays
    the measuring clients): record, then on "warm" finish one room and on "burst" the rest
    at random moments within one second; report when their results came back."""
    rng = random.Random(11)
    source, config = (KITCHEN / "env.py").read_text(), kitchen_config()
    finishing = [await _pair(url, "finish", i) for i in range(rooms + 1)]  # the first warms the pool
    hashes = []
    for pair in finishing:  # what each browser would report: the same replay, here
        inputs = await _record(pair, frames, rng)
        hashes.append(replay(source, config, ["p0", "p1"], pair[0].seed, inputs, frames - 1, "noop")["hash"])
    conn.send("ready")
    assert await asyncio.to_thread(conn.recv) == "warm"
    warm = finishing.pop(0)
    await _finish(warm, hashes.pop(0), frames, 0)
    while warm[0].result is None:  # the pool is up once the first replay is back
        await asyncio.sleep(0.01)
    conn.send("warm")
    burst_s = await asyncio.to_thread(conn.recv)
    burst_start = time.perf_counter()
    await asyncio.gather(*[_finish(pair, digest, frames, rng.uniform(0, 1.0))
                           for pair, digest in zip(finishing, hashes, strict=True)])
    while any(pair[0].result is None for pair in finishing) and time.perf_counter() < burst_start + burst_s:
        await asyncio.sleep(0.01)
    ended = all(pair[0].result is not None for pair in finishing)
    statuses: dict[str, int] = {}
    for pair in finishing:
        status = pair[0].result["status"] if pair[0].result else "none"
        statuses[status] = statuses.get(status, 0) + 1
    last = max(pair[0].result_at for pair in finishing) - burst_start if ended else None
    back = sum(pair[0].result is not None for pair in finishing)
    refused = sum(1 for pair in finishing if pair[0].result is None and any(  # a final hash refused
        isinstance(e, dict) and e.get("event") == "state_hash" for s in pair for e in s.errors))
    conn.send({"statuses": statuses, "last_result_s": last,
               "delivery": delivery(len(finishing), back, refused)})
    assert await asyncio.to_thread(conn.recv) == "stop"
    for s in [s for pair in [*finishing, warm] for s in pair]:
        await s.sio.disconnect()


def _finisher_process(url: str, rooms: int, frames: int, conn) -> None:
    serving.run(_finishing_rooms(url, rooms, frames, conn))


async def _measure(url: str, rooms: int, quiet_rooms: int, frames: int, quiet_s: float,
                   burst_s: float) -> dict:
    rng = random.Random(12)
    ours, theirs = multiprocessing.Pipe()
    finisher = multiprocessing.get_context("spawn").Process(
        target=_finisher_process, args=(url, rooms, frames, theirs), daemon=True)
    finisher.start()
    quiet = [await _pair(url, "quiet", i) for i in range(quiet_rooms)]
    assert await asyncio.to_thread(ours.recv) == "ready"
    quiet_seats = [s for pair in quiet for s in pair]
    t0 = time.perf_counter() + 0.2
    end = t0 + 10.0 + quiet_s + burst_s  # plays past the burst window whatever the warm-up took
    players = [asyncio.create_task(s.play(t0, end, rng.uniform(0, 1 / FPS), rng)) for s in quiet_seats]
    ours.send("warm")
    assert await asyncio.to_thread(ours.recv) == "warm"
    await asyncio.sleep(max(1.0, t0 + 2.0 - time.perf_counter()))  # then traffic steady
    quiet_window = (time.perf_counter(), time.perf_counter() + quiet_s)
    await asyncio.sleep(quiet_s)
    burst_start = time.perf_counter()
    ours.send(burst_s)
    report = await asyncio.to_thread(ours.recv)
    await asyncio.sleep(max(0.0, burst_start + burst_s - time.perf_counter()))
    for task in players:
        task.cancel()
    await asyncio.gather(*players, return_exceptions=True)
    ours.send("stop")
    await asyncio.to_thread(finisher.join, 30)
    quiet_ms, quiet_counts = _window(quiet_seats, *quiet_window)
    burst_ms, burst_counts = _window(quiet_seats, burst_start, burst_start + burst_s)
    for s in quiet_seats:
        await s.sio.disconnect()
    quiet_sum, burst_sum = summary(quiet_ms), summary(burst_ms)
    last = report["last_result_s"]
    return {"quiet_ms": quiet_sum, "burst_ms": burst_sum,
            "quiet_delivery": quiet_counts, "burst_delivery": burst_counts,
            "p99_ratio": round(burst_sum["p99"] / quiet_sum["p99"], 2) if quiet_sum["p99"] else None,
            "all_results_within_s": round(last, 3) if last is not None else None,
            "room_results": report["statuses"], "results_delivery": report["delivery"]}


def run(rooms: int = 20, quiet_rooms: int = 20, frames: int = 900, quiet_s: float = 5.0,
        burst_s: float = 5.0, trials: int = 5) -> dict:
    """{"pool": side, "thread": side, "settings", "target"}; a side is its median trial (by
    p99 ratio), with quiet_ms and burst_ms (p50/p99/mean/n of the quiet rooms' relay one
    way), quiet_delivery and burst_delivery (their inputs sent, arrived, refused, lost),
    p99_ratio, all_results_within_s (burst start -> last room_result), room_results (status
    counts), results_delivery (finishing rooms, results back, refused, lost), every trial's
    ratio (a p99 over 5 s on a shared 2-core machine moves from run to run: the trials,
    interleaved, show by how much) and trials_delivery (the counts summed over all trials)."""
    work = Path(tempfile.mkdtemp(prefix="coplay-replay-burst-"))
    write_experiment(work / "experiments", EXPERIMENT, env_source=(KITCHEN / "env.py").read_text(),
                     players=["p0", "p1"], default_action="noop", controls=KITCHEN_CONTROLS,
                     start_key="Enter", max_steps=frames + 1000, env_config=kitchen_config())
    out: dict = {"settings": {"finishing_rooms": rooms, "quiet_rooms": quiet_rooms, "replay_frames": frames,
                              "quiet_window_s": quiet_s, "burst_window_s": burst_s, "fps": FPS},
                 "target": {"burst_p99_over_quiet_p99": 2.0}}
    found: dict[str, list[dict]] = {"pool": [], "thread": []}
    for trial in range(trials):
        for side, workers in (("pool", "2"), ("thread", "0")):  # interleaved: drift hits both
            workdir = work / f"{side}-{trial}"
            workdir.mkdir()
            server = start_server(workdir, experiments_dir=work / "experiments",
                                  env={"COPLAY_REPLAY_WORKERS": workers, **LIFTED_CAPS})
            try:
                result = serving.run(_measure(server.url, rooms, quiet_rooms, frames, quiet_s, burst_s))
            finally:
                server.stop()
            result["replay_workers"] = int(workers)
            found[side].append(result)
            print(f"replay burst: {side}: {json.dumps(result)}", file=sys.stderr, flush=True)
    for side, results in found.items():
        ordered = sorted(results, key=lambda r: r["p99_ratio"])
        out[side] = {**ordered[len(ordered) // 2], "trial_ratios": [r["p99_ratio"] for r in results],
                     "trials_delivery": {key: add_delivery([r[key] for r in results])
                                         for key in ("quiet_delivery", "burst_delivery", "results_delivery")}}
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rooms", type=int, default=20)
    parser.add_argument("--quiet-rooms", type=int, default=20)
    parser.add_argument("--frames", type=int, default=900)
    args = parser.parse_args()
    print(json.dumps(run(args.rooms, args.quiet_rooms, args.frames), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
