"""RGB frames figures: a 600×400 RGB frame every step at 30 fps (STEP sent → frame drawn
p50/p99, dropped frames) beside the same scene drawn from 25 rect drawables, in one run
in one browser. The scene is bench/frames_env.py; the page side is pages/bench_frames.py."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

from bench.common import summary
from tests.e2e.browser import launch, wait_stage
from tests.servers import start_server, write_experiment

ENV = Path(__file__).resolve().parent / "frames_env.py"
# column -> (experiment, query); the RGB frame also through ?worker=0, which must carry the
# same binary format over its MessageChannel
SIDES = {"rgb": ("frames_rgb", ""), "rects": ("frames_rects", ""),
         "rgb_main_thread": ("frames_rgb", "&worker=0")}


def write_experiments(exps: Path) -> None:
    for name, mode in (("frames_rgb", "rgb"), ("frames_rects", "rects")):
        write_experiment(exps, name, env_source=ENV.read_text(), env_config={"mode": mode},
                         canvas=(600, 400), fps=30, max_steps=100000)


def one_page(browser, url: str, init_script: str | None = None, read=None) -> dict:
    """Play one bench page to its end; its data-bench figures, plus what ``read(page, data)``
    takes from the page before it closes."""
    ctx = browser.new_context()
    page = ctx.new_page()
    if init_script:
        page.add_init_script(init_script)
    page.goto(url)
    if wait_stage(page, "done", "error", timeout=240) != "done":
        raise RuntimeError(f"{url}: {page.inner_text('#error')}")
    data = json.loads(page.get_attribute("body", "data-bench"))
    if read is not None:
        read(page, data)
    ctx.close()
    return data


def run(runs: int = 2) -> dict:
    work = Path(tempfile.mkdtemp(prefix="coplay-bench-frames-"))
    exps = work / "experiments"
    write_experiments(exps)
    server = start_server(work, experiments_dir=exps)
    samples: dict[str, dict[str, list[float]]] = {s: {} for s in SIDES}
    frame_ms = 0.0
    try:
        with sync_playwright() as pw:
            browser = launch(pw)
            for _ in range(runs):
                for side, (name, query) in SIDES.items():  # interleaved so drift hits all alike
                    data = one_page(browser, f"{server.url}/x/{name}?bench=1&frames=1{query}")
                    frame_ms = data["frame_ms"]
                    for key in ("total_ms", "worker_ms", "draw_ms", "late_ms"):
                        samples[side].setdefault(key, []).extend(data[key])
            browser.close()
    finally:
        server.stop()
    out = {"frame": "600x400", "fps": round(1000 / frame_ms), "runs": runs}
    for side, s in samples.items():
        out[side] = {"total_ms": summary(s["total_ms"]), "worker_ms": summary(s["worker_ms"]),
                     "draw_ms": summary(s["draw_ms"]), "frames": len(s["late_ms"]),
                     "dropped": sum(1 for late in s["late_ms"] if late > frame_ms),
                     "max_late_ms": round(max(s["late_ms"]), 2)}
    return out
