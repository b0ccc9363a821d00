"""In-page frames benchmark (``?bench=1&frames=1``): play the env at the experiment's
frame rate, STEP + draw every frame like the game loop, and publish per-frame timings on
<body data-bench>. Read by ``nox -s bench`` (bench/frames.py); never used in a study."""

import json

from js import document

from pages.jsbridge import now_ms, sleep_ms
from pages.renderer import CanvasRenderer
from protocol import messages as m


async def run_frames_bench(channel, cfg, ui, frames=300):
    renderer = CanvasRenderer(document.getElementById("canvas"), cfg["asset_base"])
    ui.playing()  # a visible canvas, so the page composites what it draws
    actions = {}
    for player in cfg["players"]:
        actions[player] = cfg["default_action"]
    renderer.draw((await channel.request(m.RESET, {"seed": 1}))["render"])
    frame_ms = 1000 / cfg["fps"]
    total, inside, draw, late, to_worker, from_worker = [], [], [], [], [], []
    decide, held = [], 0  # AI seats: observation -> action, and actions older than the frame before
    started = now_ms()
    due = started + frame_ms
    for _ in range(frames):
        wait = due - now_ms()
        if wait > 1:
            await sleep_ms(wait)
        sent = now_ms()
        reply = await channel.request(m.STEP, {"actions": actions})
        received = now_ms()
        renderer.draw(reply["render"])
        drawn = now_ms()
        total.append(drawn - sent)
        inside.append(reply["t_worker_end"] - reply["t_worker_start"])
        draw.append(drawn - received)
        to_worker.append(reply["t_worker_start"] - sent)
        from_worker.append(received - reply["t_worker_end"])
        # how far past its slot the frame reached the screen; over one frame = dropped
        late.append(drawn - due)
        due = max(due + frame_ms, drawn)  # like the game loop: running late drops the debt
        for seat in (reply.get("partners") or {}).values():
            decide.append(seat["decide_ms"])
            if seat["from"] != reply["frame"] - 1:
                held += 1
    ui.attr("bench", json.dumps({"runtime": channel.ready["runtime"], "frame_ms": frame_ms,
                                 "total_ms": total, "worker_ms": inside, "draw_ms": draw,
                                 "late_ms": late, "to_worker_ms": to_worker,
                                 "from_worker_ms": from_worker, "decide_ms": decide, "held": held,
                                 "t_start": started, "t_end": now_ms()}))
