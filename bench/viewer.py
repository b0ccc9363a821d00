"""Issue 13: the replay viewer's seek time to a frame 1,800 frames in. A two-player kitchen
room of 1,860 frames is recorded (python-socketio clients send seeded random inputs and the
final hash the server's replay agrees with); a signed-in researcher's viewer opens it and
seeks to frame 1,800, alternately from the start and from the end. Reported: the page's own
time from the control to the frame drawn (and the BATCH's time inside the worker), median of
the seeks, for the viewer (keyframe snapshots every 30 frames: restore + replay the rest)
beside the baseline in the same run, the same viewer without snapshots (``?every=0``: every
seek replays from frame 0); also frame 1,829, the farthest from a keyframe, and the first
pass that snapshots the keyframes when the viewer opens."""

from __future__ import annotations

import asyncio
import random
import statistics
import tempfile
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

from server.admin.password import hash_password
from server.multiplayer.replay import replay
from tests.e2e.browser import body, launch, wait_stage, wait_until
from tests.integration.test_multiplayer_relay import clients, pair_up
from tests.servers import ROOT, start_server, write_kitchen

PASSWORD = "bench viewer password"
FRAMES = 1860  # the room's steps: frame 1,800 lies well inside it
TARGETS = (1800, 1829)  # a keyframe, and the frame farthest after one
SEEKS = 8  # per target and mode, alternately from frame 0 and from the last frame
ACTIONS = ["noop", "up", "down", "left", "right", "interact"]
KITCHEN = (ROOT / "experiments" / "kitchen" / "env.py").read_text()


async def record_room(url: str) -> str:
    rng = random.Random(13)
    last = FRAMES - 1
    inputs = {p: {f: rng.choice(ACTIONS) for f in range(2, FRAMES)} for p in ("p0", "p1")}

    class Server:  # what tests.integration's clients() needs of a RunningServer
        def __init__(self, url: str):
            self.url = url

    async with clients(Server(url), "kitchen", 2) as (c0, c1):
        start = await pair_up(c0, c1)

        async def send(client, mine):
            frames = sorted(mine)
            for i in range(0, len(frames), 30):
                chunk = [[f, mine[f]] for f in frames[i:i + 30]]
                assert (await client.call("input", {"frame": chunk[-1][0], "inputs": chunk}))["ok"]

        await asyncio.gather(send(c0, inputs["p0"]), send(c1, inputs["p1"]))
        digest = replay(KITCHEN, {}, ["p0", "p1"], start["seed"], inputs, last, "noop")["hash"]
        for c in (c0, c1):
            await c.call("state_hash", {"frame": last + 1, "hash": digest, "final": True})
        result = (await c0.wait_for("room_result", timeout=60))[0]
        assert result["status"] == "completed", result
        return start["room"]


def seek(page, frame: int) -> tuple[float, float]:
    before = int(body(page, "seeks") or 0)
    page.fill("#goto", str(frame))
    page.click("#go")
    if not wait_until(lambda: int(body(page, "seeks") or 0) > before, 60):
        raise RuntimeError(f"seek to {frame} did not finish")
    assert body(page, "frame") == str(frame)
    return float(body(page, "seek-ms")), float(body(page, "seek-worker-ms"))


def measure(browser, url: str, room: str, query: str) -> dict:
    ctx = browser.new_context()
    page = ctx.new_page()
    page.goto(url + "/admin/login")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/admin/")
    started = time.monotonic()
    page.goto(f"{url}/admin/replay/kitchen/room/{room}{query}")
    if wait_stage(page, "ready", "error", timeout=180) != "ready":
        raise RuntimeError(page.inner_text("#error"))
    out = {"ready_s": round(time.monotonic() - started, 2), "index_ms": float(body(page, "index-ms")),
           "every": int(body(page, "every")), "hash_match": body(page, "hash-match") == "1"}
    for target in TARGETS:
        totals, inside = [], []
        for k in range(SEEKS):
            seek(page, 0 if k % 2 == 0 else FRAMES)  # from the start, then from the end
            total, worker = seek(page, target)
            totals.append(total)
            inside.append(worker)
        out[str(target)] = {"seek_ms": {"median": round(statistics.median(totals), 2),
                                        "runs": [round(v, 2) for v in totals]},
                            "worker_ms": {"median": round(statistics.median(inside), 2)}}
    ctx.close()
    return out


def run() -> dict:
    work = Path(tempfile.mkdtemp(prefix="coplay-bench-viewer-"))
    exps = work / "experiments"
    write_kitchen(exps, max_steps=FRAMES + 100)
    server = start_server(work, experiments_dir=exps, env={
        "COPLAY_ADMIN_PASSWORD_HASH": hash_password(PASSWORD, n=2 ** 12), "COPLAY_SECRET_KEY": "b" * 40})
    try:
        room = asyncio.run(record_room(server.url))
        with sync_playwright() as pw:
            browser = launch(pw)
            viewer = measure(browser, server.url, room, "")
            baseline = measure(browser, server.url, room, "?every=0")
            browser.close()
    finally:
        server.stop()
    return {"frames": FRAMES, "seeks": SEEKS, "targets": list(TARGETS), "viewer": viewer,
            "baseline_no_snapshots": baseline}
