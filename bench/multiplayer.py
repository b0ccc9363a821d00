"""Issue 4 figures: rollback BATCH cost by depth, rollback rate under injected delay,
relay latency through the server, disconnects while many pages boot at once."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import time

import socketio

from bench.common import summary
from bench.foundation import MODES, channel_bench
from tests.e2e.browser import body, wait_stage

KEYS = ["ArrowRight", "ArrowUp", "ArrowLeft", "ArrowDown", " "]


def rollback_batches(browser, url: str) -> dict:
    data = {mode: channel_bench(browser, url + query) for mode, query in MODES.items()}
    return {depth: {mode: summary(data[mode]["batch"][depth]["rtt_ms"]) for mode in MODES}
            for depth in ("1", "4", "8")}


def _pair(browser, url: str):
    pages = []
    for _ in range(2):
        page = browser.new_context().new_page()
        page.goto(url)
        pages.append(page)
    for page in pages:
        if wait_stage(page, "ready", "error", timeout=120) != "ready":
            raise RuntimeError(page.inner_text("#error"))
    for page in pages:
        page.keyboard.press("Enter")
    return pages


def rollback_rates(browser, server, delays=(0, 50, 150), fps: int = 30) -> dict:
    out = {}
    for delay in delays:
        before = {row[0] for row in server.query("SELECT id FROM episodes")}
        pages = _pair(browser, f"{server.url}/x/kitchen?delay={delay}&jitter=0")
        k = 0
        while not all(body(p, "stage") in ("done", "error") for p in pages):
            for i, page in enumerate(pages):
                page.keyboard.press(KEYS[(k * (i + 2)) % len(KEYS)])
            k += 1
            pages[0].wait_for_timeout(120)
        for page in pages:
            page.wait_for_selector("body[data-room-status]", state="attached", timeout=30000)
        statuses = [body(p, "room-status") for p in pages]
        per_client = []
        for (eid,) in server.query("SELECT id FROM episodes"):
            if eid in before:
                continue
            frames, metrics = server.query(
                "SELECT count(*), (SELECT metrics FROM steps WHERE episode_id=? ORDER BY frame DESC LIMIT 1)"
                " FROM steps WHERE episode_id=?", eid, eid)[0]
            m = json.loads(metrics)
            minutes = frames / fps / 60
            per_client.append({"rollbacks_per_min": m["rollbacks"] / minutes,
                               "mean_depth": m["rollback_frames"] / m["rollbacks"] if m["rollbacks"] else 0.0,
                               "prediction_misses": m["prediction_misses"], "waits": m["waits"]})
        out[str(delay)] = {
            "rollbacks_per_min": round(sum(c["rollbacks_per_min"] for c in per_client) / len(per_client), 1),
            "mean_depth": round(sum(c["mean_depth"] for c in per_client) / len(per_client), 2),
            "clients": per_client, "room_status": statuses,
        }
        for page in pages:
            page.context.close()
    return out


async def _relay_latency(url: str, samples: int, hz: float) -> dict:
    """One input per message at ``hz`` (60: within the server's 120 events/s per connection),
    frames 2 … samples + 1 (within the bench kitchen's max_steps): nothing should be refused.
    Whatever is refused (a server_error) or never arrives is counted and reported beside the
    latency, never silently left out of it."""
    clients = [socketio.AsyncClient() for _ in range(2)]
    refused: list[dict] = []
    clients[0].on("server_error", refused.append)
    started: list[asyncio.Future] = []
    arrivals: dict[int, float] = {}
    loop = asyncio.get_running_loop()
    for i, client in enumerate(clients):
        fut = loop.create_future()
        started.append(fut)
        client.on("room_start", lambda data, fut=fut: fut.set_result(data))
        await client.connect(url, auth={"participant_id": f"bench-{i}-{time.time_ns()}",
                                        "experiment": "kitchen"}, transports=["websocket"])
    clients[1].on("input", lambda data: arrivals.setdefault(data["inputs"][0][0], time.perf_counter()))
    for i, client in enumerate(clients):
        await client.call("mp_join", {"episode_id": f"bench-ep-{i}-{time.time_ns()}"})
    await asyncio.gather(*started)
    sent: dict[int, float] = {}
    for f in range(2, samples + 2):
        sent[f] = time.perf_counter()
        await clients[0].emit("input", {"frame": f, "inputs": [[f, "up"]], "adv": 0})
        await asyncio.sleep(max(0.0, sent[f] + 1 / hz - time.perf_counter()))
    await asyncio.sleep(0.5)
    one_way = [(arrivals[f] - sent[f]) * 1000 for f in sent if f in arrivals]
    direct, direct_refused = [], 0
    for _ in range(samples // 2):  # paced like the inputs: within the rate limit
        t = time.perf_counter()
        ack = await clients[0].call("rtt", {"t": 0.0})
        if isinstance(ack, dict) and ack.get("ok"):
            direct.append((time.perf_counter() - t) * 1000)
        else:
            direct_refused += 1
        await asyncio.sleep(max(0.0, t + 1 / hz - time.perf_counter()))
    for client in clients:
        await client.disconnect()
    refused_inputs = sum(1 for e in refused if isinstance(e, dict) and e.get("event") == "input")
    return {"relay_one_way_ms": summary(one_way), "direct_ack_rtt_ms": summary(direct), "sent": samples,
            "inputs_per_s": hz, "refused": refused_inputs, "lost": samples - len(one_way) - refused_inputs,
            "direct_refused": direct_refused}


def relay_latency(url: str, samples: int = 600, hz: float = 60.0) -> dict:
    # Playwright's sync API owns this thread's event loop; the clients get their own thread.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, _relay_latency(url, samples, hz)).result()


def concurrent_init(browser, url: str, rooms: int, query: str) -> dict:
    t0 = time.monotonic()
    pages = []
    for _ in range(2 * rooms):
        page = browser.new_context().new_page()
        page.goto(url + query, wait_until="commit")
        pages.append(page)
    for page in pages:
        wait_stage(page, "ready", "error", timeout=300)
    ready_s = time.monotonic() - t0
    for page in pages:
        page.keyboard.press("Enter")
    for page in pages:
        wait_stage(page, "done", "error", timeout=300)
    result = {"disconnects": sum(int(body(p, "disconnects") or 0) for p in pages),
              "errors": sum(body(p, "stage") == "error" for p in pages),
              "all_ready_s": round(ready_s, 1)}
    for page in pages:
        page.context.close()
    return result
