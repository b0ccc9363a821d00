"""`nox -s bench`: the figures the issues name, each beside its baseline in the same run;
writes bench/results.json, bench/results.png and the table in README.md.

Foundation (issue 3), worker vs ?worker=0 (Pyodide on the main thread): boot time,
longest main-thread stall while booting, STEP and 8-step BATCH round trips.
Multiplayer (issue 4): rollback BATCH by depth (worker vs ?worker=0), rollbacks/min
and mean depth under 0/50/150 ms injected delay, relay latency vs a direct ack round
trip, Socket.IO disconnects while 1/3/6 rooms boot at once (worker vs ?worker=0).
Ingest (issue 5): step records through Socket.IO vs straight into the store, SQLite and
Postgres; ack latency; export of a million rows.
Scale (issues 6, 14): two-player rooms of the pilot's simulated participants at 30 Hz on 1, 2
and 3 processes (+ Redis), vs a bare python-socketio relay (bare input bots); relay p50/p99,
inputs sent/relayed/refused/lost, rooms completed, CPU per relayed input per process, rooms per
fully used core per setup, memory per room, lost records.
Fuzz (issue 6): a good room's relay latency with and without hostile clients, refusals/s,
crashes.
Scenes (issue 11): a game scene's start to playable, the visit's first game vs a later one
prepared in the same worker during the scene before it, vs that game on a page of its own.
Frames (issue 11): a 600×400 RGB frame every step at 30 fps vs the same scene as rect
drawables: STEP sent → frame drawn p50/p99, dropped frames. Run it alone with
``--sections frames``.
Replay (issue 11): relay p99 while 20 rooms finish within one second (900-frame replays
each) vs the same load quiet, replays in the process pool vs on a thread (the old way).
Policies (issue 12): an ONNX partner (MLP, GRU) deciding every frame at 30 fps in the worker
vs no AI, beside the MUG-style baseline (the same models on the main thread): decision
latency, frame time, dropped frames, main-thread stall, session create + warm-up.
Reload (issue 13): a page reloaded 30 s into a two-player episode: reload -> playing again,
of which the rebuild from the room's record, beside the same page's first boot.
Monitor (issue 13): one process's CPU at 100 rooms with nobody watching vs an admin's live
monitor receiving the picture every second (interleaved trials), relay p99 beside each.
Viewer (issue 13): the replay viewer's seek to frame 1,800 of a recorded 1,860-frame room
(keyframe snapshots: restore + replay the rest), beside the same viewer replaying from frame 0.

Run one part alone with ``--sections NAME`` (the others keep their last results).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

from bench import (
    foundation,
    frames,
    fuzz,
    ingest,
    load,
    monitor,
    multiplayer,
    policies,
    reload,
    replay_burst,
    scenes,
    viewer,
)
from bench.common import machine
from bench.report import plot, update_readme
from server.vendor import versions
from tests.e2e.browser import launch
from tests.servers import ROOT, start_server, write_experiment, write_kitchen

OUT = Path(__file__).resolve().parent


SECTIONS = ("foundation", "multiplayer", "ingest", "scale", "capacity", "fuzz", "scenes", "frames", "replay",
            "policies", "reload", "monitor", "viewer")


def browser_sections(args, work: Path, results: dict) -> None:
    exps = work / "experiments"
    write_experiment(exps, "catch", env_config={"lives": 3})
    write_kitchen(exps, max_steps=900)
    server = start_server(work, experiments_dir=exps)
    try:
        with sync_playwright() as pw:
            browser = launch(pw)
            if "foundation" in args.sections:
                results["figures"] = foundation.run(browser, server.url + "/x/catch", args.runs)
                results["runs_per_mode"] = args.runs
            if "scenes" in args.sections:
                results["scenes"] = scenes.run(browser, work, args.runs)
            if "multiplayer" in args.sections:
                mp = {"rollback_batch_ms": multiplayer.rollback_batches(browser, server.url + "/x/kitchen"),
                      "rollback_rate": multiplayer.rollback_rates(browser, server),
                      "relay": multiplayer.relay_latency(server.url), "concurrent_init": {}}
                for n in [int(x) for x in args.rooms.split(",")]:
                    for mode, query in foundation.MODES.items():
                        rexps = work / f"rooms-{n}-{mode}"
                        write_kitchen(rexps, max_steps=90)
                        workdir = work / f"srv-{n}-{mode}"
                        workdir.mkdir()
                        srv = start_server(workdir, experiments_dir=rexps)
                        try:
                            mp["concurrent_init"].setdefault(str(n), {})[mode] = multiplayer.concurrent_init(
                                browser, srv.url + "/x/kitchen", n, query)
                        finally:
                            srv.stop()
                results["multiplayer"] = mp
            browser.close()
    finally:
        server.stop()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3, help="page boots per mode")
    parser.add_argument("--rooms", default="1,3,6", help="concurrent room counts")
    # a simulated participant costs its bot process about 0.7 % of a core: on 2 cores the bots
    # drive about 40 rooms beside the servers; bare input bots cost far less
    parser.add_argument("--load-rooms", default="10,20,30,40", help="rooms (scale: simulated participants)")
    parser.add_argument("--bare-rooms", default="50,100,150", help="rooms (scale: bare input bots)")
    parser.add_argument("--processes", default="1,1r,2,3",
                        help="scale setups: server processes, Redis beyond 1; 1r: one process + Redis")
    parser.add_argument("--placement", choices=("sticky", "random"), default="sticky",
                        help="a room's participants on one process, or each on any (scale)")
    parser.add_argument("--hypercorn-rooms", default="20,40", help="rooms on hypercorn (scale)")
    parser.add_argument("--sections", default=",".join(SECTIONS),
                        help="which to run; the others keep their last results")
    args = parser.parse_args()
    args.sections = args.sections.split(",")
    path = OUT / "results.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    work = Path(tempfile.mkdtemp(prefix="coplay-bench-"))
    if {"foundation", "multiplayer", "scenes"} & set(args.sections):
        browser_sections(args, work, results)
    if "ingest" in args.sections:
        results["ingest"] = ingest.run()
    if "scale" in args.sections:
        results["scale"] = load.run(load.levels(args.load_rooms), seconds=15.0,
                                    processes=load.setups(args.processes), placement=args.placement,
                                    hypercorn_rooms=load.levels(args.hypercorn_rooms),
                                    bare_rooms=load.levels(args.bare_rooms))
    if "capacity" in args.sections:
        results["capacity"] = load.capacity(setups=load.setups(args.processes))
    if "fuzz" in args.sections:
        results["fuzz"] = fuzz.run()
    if "frames" in args.sections:
        results["frames"] = frames.run()
    if "replay" in args.sections:
        results["replay_burst"] = replay_burst.run()
    if "policies" in args.sections:
        results["policies"] = policies.run()
    if "reload" in args.sections:
        results["reload"] = reload.run()
    if "monitor" in args.sections:
        results["monitor"] = monitor.run()
    if "viewer" in args.sections:
        results["viewer"] = viewer.run()
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    dates = results.setdefault("dates", {s: results.get("date", now) for s in SECTIONS if s in results
                                         or (s == "foundation" and "figures" in results)})
    for section in args.sections:
        dates[section] = now
    results.update({
        "date": now,
        "sections_run": args.sections,
        "machine": machine(),
        "versions": versions(),
        "targets": {"init_stall_after_main_ms.worker": "<= 50", "step_rtt_ms.worker.p50": "<= 1",
                    "step_rtt_ms.worker.p99": "<= 4", "batch8_rtt_ms.worker.p50": "<= 2",
                    "rollback_batch_ms.8.worker.p50": "<= 3", "concurrent_init.6.worker.disconnects": "0",
                    "relay.relay_one_way_ms.p99": "<= 2 (overhead)",
                    "ingest.socketio_max.records_per_s": ">= 50000",
                    "scale.max_rooms_within_target": ">= 100 (relay p99 <= 20 ms, 0 lost)",
                    "scale.setups.*.capacity_vs_one_process": ">= 0.9 (2+ processes)",
                    "capacity.capacity_vs_one_process.*": ">= 0.9 (2+ processes, median of trials)",
                    "fuzz.crashes": "0", "scenes.later.median": "<= 150 ms",
                    "frames.rgb.total_ms.p99": "<= 8", "frames.rgb.dropped": "0",
                    "replay_burst.pool.p99_ratio": "<= 2 (burst p99 / quiet p99)",
                    "policies.mlp.worker.decide_ms": "p50 <= 1, p99 <= 5",
                    "policies.gru.worker.decide_ms": "p50 <= 1, p99 <= 5",
                    "policies.*.worker.dropped": "no more than policies.none.worker.dropped",
                    "reload.reload_to_playing_s.median": "<= 5"},
    })
    path.write_text(json.dumps(results, indent=2) + "\n")
    plot(results, OUT / "results.png")
    update_readme(results, ROOT / "README.md")
    shown = ("figures", "multiplayer", "ingest", "fuzz", "frames", "replay_burst")
    print(json.dumps({k: results.get(k) for k in shown}, indent=1)[:6000])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
