"""Issue 6 figure: hostile load against the real server while a well-behaved two-player room
plays, beside the same room with nobody attacking (the baseline, in the same run).

Attackers run in another process (no shared GIL with the good room's clients): each of
``attackers`` connections sends hypothesis-generated malformed events (the strategies of
tests/integration/test_fuzz.py) at ``per_client`` events/s, under the default rate limit,
so the server has to validate and refuse every one; a connection the server drops for
abuse (too many refused events) reconnects, as an attacker would. Reported: events/s the
server refused while the room played, the room's relay latency (p0's input → p1, one way)
with and without the attack, whether the room completed, and crashes (must be 0).

Beside each latency, what became of the inputs it measures (``relay_delivery``: sent,
arrived, refused with an error ack, lost) and every refused or unacknowledged event of the
good room; it sends ~32 events/s per connection, within the server's rate limit, so none
should be refused. The attackers' refusals are the point: ``attacker_counts`` has what
they sent, what was refused, accepted, or never answered (the connection dropped first)."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import tempfile
import time
import urllib.request
from pathlib import Path

from bench.common import delivery, summary


def _stats(url: str) -> dict:
    with urllib.request.urlopen(url + "/stats", timeout=10) as resp:
        return json.loads(resp.read())


def _events(count: int, episodes: list[str]) -> list[tuple[str, tuple]]:
    """`count` hostile events from the fuzz test's strategies (deterministic)."""
    from hypothesis import HealthCheck, Phase, given, settings

    from tests.integration.test_fuzz import hostile_event

    pool: list[tuple[str, tuple]] = []

    @settings(max_examples=count, deadline=None, derandomize=True, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(hostile_event(episodes))
    def collect(event):
        pool.append(event)

    collect()
    return pool


async def _attack(url: str, attackers: int, per_client: float, pool: list, stop) -> dict:
    import socketio

    counts = {"sent": 0, "refused": 0, "accepted": 0, "reconnects": 0}

    async def one(k: int) -> None:
        i = k
        while not stop.is_set():
            c = socketio.AsyncClient(reconnection=False, handle_sigint=False)
            try:
                auth = {"participant_id": f"attacker-{k}-{time.time_ns()}", "experiment": "kitchen"}
                await c.connect(url, auth=auth, transports=["websocket"], wait_timeout=10)
            except socketio.exceptions.ConnectionError:
                await asyncio.sleep(0.2)
                continue
            t0 = time.monotonic()
            sent = 0
            while c.connected and not stop.is_set():
                event, args = pool[i % len(pool)]
                i += attackers

                def answered(*a) -> None:
                    ack = a[0] if a else None
                    counts["accepted" if isinstance(ack, dict) and ack.get("ok") else "refused"] += 1

                try:
                    await c.emit(event, args, callback=answered)
                except socketio.exceptions.SocketIOError:
                    break
                sent += 1
                counts["sent"] += 1
                await asyncio.sleep(max(0.0, t0 + sent / per_client - time.monotonic()))
            if not stop.is_set():
                counts["reconnects"] += 1
            if c.connected:
                await c.disconnect()

    await asyncio.gather(*(one(k) for k in range(attackers)))
    counts["unanswered"] = counts["sent"] - counts["refused"] - counts["accepted"]
    return counts


def _attacker_process(url: str, attackers: int, per_client: float, episodes: list[str], ready, go, stop,
                      out) -> None:
    pool = _events(400, episodes)
    ready.set()
    go.wait()
    out.put(asyncio.run(_attack(url, attackers, per_client, pool, stop)))


def run(frames: int = 450, attackers: int = 10, per_client: float = 100.0) -> dict:
    from tests.integration.test_fuzz import KITCHEN_CONFIG, GoodRoom
    from tests.servers import start_server, write_kitchen

    work = Path(tempfile.mkdtemp(prefix="coplay-fuzz-"))
    write_kitchen(work / "exps", max_steps=frames + 300, env_config=KITCHEN_CONFIG)
    server = start_server(work, experiments_dir=work / "exps")
    try:
        quiet = GoodRoom(server.url, min_frames=frames, max_frames=frames, tag="quiet").start().finish()

        ctx = multiprocessing.get_context("spawn")
        ready, go, stop, out = ctx.Event(), ctx.Event(), ctx.Event(), ctx.Queue()
        room = GoodRoom(server.url, min_frames=frames, max_frames=frames, tag="attacked")
        proc = ctx.Process(target=_attacker_process, args=(server.url, attackers, per_client, room.episodes,
                                                           ready, go, stop, out), daemon=True)
        proc.start()
        if not ready.wait(120):
            raise RuntimeError("the attacker process did not start")
        room.start()  # matched, episodes started: the attack (which knows their ids) begins now
        before, t0 = _stats(server.url), time.monotonic()
        go.set()
        attacked = room.finish()
        after, seconds = _stats(server.url), time.monotonic() - t0
        stop.set()
        counts = out.get(timeout=60)
        proc.join(30)
        alive = server.process.poll() is None
        rejected = after["rejected"] - before["rejected"]
        by_reason = {r: n - before["rejections"].get(r, 0) for r, n in after["rejections"].items()
                     if n != before["rejections"].get(r, 0)}
        return {
            "frames": frames, "attackers": attackers, "offered_per_client_per_s": per_client,
            "rejected_per_s": round(rejected / seconds, 1), "rejected": rejected, "rejections": by_reason,
            "abuse_disconnects": after["abuse_disconnects"] - before["abuse_disconnects"],
            "attacker_counts": counts,
            "relay_one_way_ms": {"quiet": summary(quiet["latency_ms"]),
                                 "attacked": summary(attacked["latency_ms"])},
            "relay_delivery": {side: delivery(r["inputs_sent"], len(r["latency_ms"]), r["inputs_refused"])
                               for side, r in (("quiet", quiet), ("attacked", attacked))},
            "good_room_refused_acks": len(quiet["refused"]) + len(attacked["refused"]),
            "good_room_unanswered": len(quiet["unanswered"]) + len(attacked["unanswered"]),
            "room_status": {"quiet": quiet["outcome"][0]["status"],
                            "attacked": attacked["outcome"][0]["status"]},
            "good_room_errors": len(quiet["errors"]) + len(attacked["errors"]),
            "crashes": 0 if alive else 1,
        }
    finally:
        server.stop()


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
