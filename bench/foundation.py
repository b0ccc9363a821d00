"""Issue 3 figures: boot time and main-thread stalls, STEP and BATCH round trips —
worker vs ?worker=0 (Pyodide on the main thread), side by side."""

from __future__ import annotations

import json

from bench.common import runs_summary, summary
from tests.e2e.browser import STALL_PROBE, longest_stall, marks, wait_stage

MODES = {"worker": "", "main_thread": "?worker=0"}


def boot_once(browser, url: str) -> dict:
    ctx = browser.new_context()
    page = ctx.new_page()
    page.add_init_script(STALL_PROBE)
    page.goto(url)
    stage = wait_stage(page, "ready", "error", timeout=120)
    if stage != "ready":
        raise RuntimeError(f"{url}: page ended in {stage}: {page.inner_text('#error')}")
    m = marks(page)
    out = {
        "pyodide_ready_ms": m["worker-ready"],
        "env_ready_ms": m["env-ready"],
        "init_stall_ms": longest_stall(page, 0, m["env-ready"]),
        "init_stall_after_main_ms": longest_stall(page, m["main-start"], m["env-ready"]),
        "disconnects": int(page.get_attribute("body", "data-disconnects")),
    }
    ctx.close()
    return out


def channel_bench(browser, url: str) -> dict:
    ctx = browser.new_context()
    page = ctx.new_page()
    page.goto(url + ("&" if "?" in url else "?") + "bench=1")
    if wait_stage(page, "done", "error", timeout=240) != "done":
        raise RuntimeError(f"bench page failed: {page.inner_text('#error')}")
    data = json.loads(page.get_attribute("body", "data-bench"))
    ctx.close()
    return data


def run(browser, base_url: str, runs: int) -> dict:
    boots: dict[str, list[dict]] = {m: [] for m in MODES}
    for _ in range(runs):
        for mode, query in MODES.items():  # interleaved so drift hits both alike
            boots[mode].append(boot_once(browser, base_url + query))
    channel = {mode: channel_bench(browser, base_url + query) for mode, query in MODES.items()}
    figures: dict[str, dict] = {}
    for key in ("pyodide_ready_ms", "env_ready_ms", "init_stall_ms", "init_stall_after_main_ms",
                "disconnects"):
        figures[key] = {m: runs_summary([b[key] for b in boots[m]]) for m in MODES}
    figures["step_rtt_ms"] = {m: summary(channel[m]["step_rtt_ms"]) for m in MODES}
    figures["step_in_worker_ms"] = {m: summary(channel[m]["step_worker_ms"]) for m in MODES}
    figures["batch8_rtt_ms"] = {m: summary(channel[m]["batch"]["plain8"]["rtt_ms"]) for m in MODES}
    figures["batch8_in_worker_ms"] = {m: summary(channel[m]["batch"]["plain8"]["worker_ms"]) for m in MODES}
    return figures
