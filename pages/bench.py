"""In-page channel benchmark (``?bench=1``): after the env is ready, time STEP and
8-step BATCH round trips through the real channel and publish the raw samples on
<body data-bench>. Read by ``nox -s bench``; never used in a study."""

import json

import js

from pages.jsbridge import sleep_ms
from protocol import messages as m


async def run_channel_bench(channel, cfg, ui, steps=1000, batches=300, depths=(8, 1, 4)):
    if js.URLSearchParams.new(js.window.location.search).get("frames") == "1":
        from pages.bench_frames import run_frames_bench  # frames benchmark (bench/frames.py)

        await run_frames_bench(channel, cfg, ui)
        return
    player = cfg["players"][0]
    actions = {player: cfg["default_action"]}
    await channel.request(m.RESET, {"seed": 1})
    step_rtt, step_worker, to_worker, from_worker = [], [], [], []
    for _ in range(steps):
        r = await channel.request(m.STEP, {"actions": actions})
        step_rtt.append(r["t_received"] - r["t_sent"])
        step_worker.append(r["t_worker_end"] - r["t_worker_start"])
        to_worker.append(r["t_worker_start"] - r["t_sent"])
        from_worker.append(r["t_received"] - r["t_worker_end"])
    await sleep_ms(50)
    base = (await channel.request(m.BATCH, {"ops": [{"op": m.OP_SNAPSHOT}]}))["results"][0]["frame"]
    out = {"runtime": channel.ready["runtime"], "step_rtt_ms": step_rtt, "step_worker_ms": step_worker,
           "step_to_worker_ms": to_worker, "step_from_worker_ms": from_worker, "batch": {}}
    shapes = {}
    # the brief's rollback: restore, replay 8 frames, snapshot, hash
    plain = [{"op": m.OP_RESTORE, "frame": base}]
    for i in range(8):
        plain.append({"op": m.OP_STEP, "actions": actions, "render": i == 7})
    shapes["plain8"] = plain + [{"op": m.OP_SNAPSHOT}, {"op": m.OP_HASH}]
    # as the netcode sends it: a snapshot after every replayed frame (any of them may be
    # rolled back to later), the last one drawn, a checkpoint hashed
    for depth in depths:
        ops = [{"op": m.OP_RESTORE, "frame": base}]
        for i in range(depth):
            ops.append({"op": m.OP_STEP, "actions": actions, "render": i == depth - 1})
            ops.append({"op": m.OP_SNAPSHOT})
        shapes[str(depth)] = ops + [{"op": m.OP_HASH, "frame": base}]
    for name in shapes:
        rtt, inside = [], []
        for _ in range(batches):
            r = await channel.request(m.BATCH, {"ops": shapes[name]})
            rtt.append(r["t_received"] - r["t_sent"])
            inside.append(r["t_worker_end"] - r["t_worker_start"])
        out["batch"][name] = {"rtt_ms": rtt, "worker_ms": inside}
    ui.attr("bench", json.dumps(out))
