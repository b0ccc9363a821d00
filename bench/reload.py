"""Issue 13: a reload mid-game. Two browsers play the kitchen; 30 s in, one page reloads.
Reported: reload → playing again (the page boots Pyodide, takes its seat back and rebuilds
~900 frames from the room's record), of which the rebuild itself, beside the same page's
first boot (navigation → ready to play) in the same run."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

from bench.common import runs_summary
from tests.e2e.browser import body, launch, wait_stage
from tests.servers import start_server, write_kitchen

PLAY_S = 30.0


def one_run(browser, work: Path, index: int) -> dict:
    exps = work / f"experiments-{index}"
    write_kitchen(exps, max_steps=2400, multiplayer={"network_from_url": True, "reconnect_timeout": 30})
    workdir = work / f"srv-{index}"
    workdir.mkdir()
    server = start_server(workdir, experiments_dir=exps)
    try:
        contexts = [browser.new_context() for _ in range(2)]
        pages = [c.new_page() for c in contexts]
        started = time.monotonic()
        for page in pages:
            page.goto(server.url + "/x/kitchen", wait_until="commit")
        for page in pages:
            if wait_stage(page, "ready", "error", timeout=120) != "ready":
                raise RuntimeError(page.inner_text("#error"))
        boot_s = time.monotonic() - started
        for page in pages:
            page.keyboard.press("Enter")
        for page in pages:
            wait_stage(page, "playing", "error", timeout=30)
        pages[0].wait_for_timeout(PLAY_S * 1000)
        frame = int(body(pages[0], "frame"))
        reloaded = time.monotonic()
        pages[0].reload()
        if wait_stage(pages[0], "playing", "error", timeout=60) != "playing":
            raise RuntimeError(pages[0].inner_text("#error"))
        back_s = time.monotonic() - reloaded
        out = {"frame": frame, "reload_to_playing_s": back_s, "first_boot_s": boot_s,
               "rebuild_ms": float(body(pages[0], "resume-ms")),
               "resumed_at": int(body(pages[0], "resumed-at"))}
        for c in contexts:
            c.close()
        return out
    finally:
        server.stop()


def run(runs: int = 2) -> dict:
    work = Path(tempfile.mkdtemp(prefix="coplay-bench-reload-"))
    with sync_playwright() as pw:
        browser = launch(pw)
        results = [one_run(browser, work, i) for i in range(runs)]
        browser.close()
    return {"played_s": PLAY_S, "frames_at_reload": [r["frame"] for r in results],
            "reload_to_playing_s": runs_summary([r["reload_to_playing_s"] for r in results]),
            "rebuild_ms": runs_summary([r["rebuild_ms"] for r in results]),
            "first_boot_s": runs_summary([r["first_boot_s"] for r in results])}
