"""`nox -s bench`: measures the figures the issues name, each beside its baseline in the
same run, and writes bench/results.json and bench/results.png.

Foundation (issue 3), worker vs ?worker=0 (Pyodide on the main thread):
  pyodide_ready_ms        navigation -> READY from the env runtime
  env_ready_ms            navigation -> env loaded (packages + env code)
  init_stall_ms           longest main-thread gap, navigation -> env ready
  init_stall_after_main_ms  the same, from the first line of our main-thread code
  step_rtt_ms             STEP round trip (page -> worker -> page), 1,000 sequential
  batch8_rtt_ms           8-step rollback-shaped BATCH (restore + 8 steps + hash)
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

from server.vendor import versions
from tests.e2e.browser import CHROMIUM, STALL_PROBE, launch, longest_stall, marks, wait_stage
from tests.servers import start_server, write_experiment

OUT = Path(__file__).resolve().parent
MODES = {"worker": "", "main_thread": "?worker=0"}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    idx = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[idx]


def summary(values: list[float]) -> dict:
    return {"p50": round(percentile(values, 50), 3), "p99": round(percentile(values, 99), 3),
            "mean": round(statistics.fmean(values), 3), "n": len(values)}


def runs_summary(values: list[float]) -> dict:
    return {"median": round(statistics.median(values), 1), "runs": [round(v, 1) for v in values]}


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
    if wait_stage(page, "done", "error", timeout=180) != "done":
        raise RuntimeError(f"bench page failed: {page.inner_text('#error')}")
    data = json.loads(page.get_attribute("body", "data-bench"))
    ctx.close()
    return data


def machine() -> dict:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    chromium = subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True).stdout.strip()
    return {"cpu": cpu, "cores": os.cpu_count(), "os": platform.platform(),
            "python": platform.python_version(), "browser": chromium}


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    f = results["figures"]
    panels = [
        ("Pyodide ready (ms)", {m: f["pyodide_ready_ms"][m]["median"] for m in MODES}),
        ("Longest main-thread stall\nduring init (ms)", {m: f["init_stall_ms"][m]["median"] for m in MODES}),
        ("STEP round trip p50 / p99 (ms)", {f"{m}\np50": f["step_rtt_ms"][m]["p50"] for m in MODES}
         | {f"{m}\np99": f["step_rtt_ms"][m]["p99"] for m in MODES}),
        ("8-step BATCH round trip p50 / p99 (ms)", {f"{m}\np50": f["batch8_rtt_ms"][m]["p50"] for m in MODES}
         | {f"{m}\np99": f["batch8_rtt_ms"][m]["p99"] for m in MODES}),
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(16, 4))
    for ax, (title, data) in zip(axes, panels, strict=True):
        colors = ["#2a7de1" if k.startswith("worker") else "#e1702a" for k in data]
        bars = ax.bar(list(data), list(data.values()), color=colors)
        ax.bar_label(bars, fmt="%.2f" if max(data.values()) < 10 else "%.0f", fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.tick_params(axis="x", labelsize=8)
    fig.suptitle(f"Coplay foundation benchmark — {results['date']} — blue: worker, orange: ?worker=0")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


ROWS = [
    ("Pyodide ready (navigation → READY), median ms", "pyodide_ready_ms", "median", ""),
    ("Env ready (navigation → env loaded), median ms", "env_ready_ms", "median", ""),
    ("Longest main-thread stall, navigation → env ready, median ms", "init_stall_ms", "median", ""),
    ("Longest main-thread stall, our code start → env ready, median ms", "init_stall_after_main_ms",
     "median", "≤ 50 (worker)"),
    ("Socket.IO disconnects during init", "disconnects", "median", "0"),
    ("STEP round trip p50, ms (1,000 steps)", "step_rtt_ms", "p50", "≤ 1"),
    ("STEP round trip p99, ms", "step_rtt_ms", "p99", "≤ 4"),
    ("STEP time inside the env runtime p50, ms", "step_in_worker_ms", "p50", ""),
    ("8-step BATCH round trip p50, ms (300 batches)", "batch8_rtt_ms", "p50", "≤ 2"),
    ("8-step BATCH round trip p99, ms", "batch8_rtt_ms", "p99", ""),
    ("8-step BATCH inside the env runtime p50, ms", "batch8_in_worker_ms", "p50", ""),
]


def markdown(results: dict) -> str:
    m = results["machine"]
    lines = [
        f"Measured {results['date']} on {m['cpu']} ({m['cores']} cores), {m['browser']}, "
        f"{results['runs_per_mode']} page loads per mode, by `nox -s bench` "
        "(raw figures: `bench/results.json`, plot: `bench/results.png`).",
        "",
        "| figure | worker (default) | `?worker=0` (Pyodide on main thread) | target |",
        "|---|---:|---:|---|",
    ]
    for label, key, stat, target in ROWS:
        fig = results["figures"][key]
        lines.append(f"| {label} | {fig['worker'][stat]:g} | {fig['main_thread'][stat]:g} | {target} |")
    return "\n".join(lines)


def update_readme(results: dict, readme: Path) -> None:
    text = readme.read_text()
    start, end = "<!-- bench:start -->", "<!-- bench:end -->"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        tail = rest.split(end, 1)[1]
        readme.write_text(f"{head}{start}\n{markdown(results)}\n\n![benchmark](bench/results.png)\n{end}{tail}")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3, help="page boots per mode")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="coplay-bench-"))
    exps = work / "experiments"
    write_experiment(exps, "catch", env_config={"lives": 3})
    server = start_server(work, experiments_dir=exps)
    boots: dict[str, list[dict]] = {m: [] for m in MODES}
    channel: dict[str, dict] = {}
    try:
        with sync_playwright() as pw:
            browser = launch(pw)
            for _ in range(args.runs):
                for mode, query in MODES.items():  # interleaved so drift hits both alike
                    boots[mode].append(boot_once(browser, server.url + "/x/catch" + query))
            for mode, query in MODES.items():
                channel[mode] = channel_bench(browser, server.url + "/x/catch" + query)
            browser.close()
    finally:
        server.stop()

    figures: dict[str, dict] = {}
    for key in ("pyodide_ready_ms", "env_ready_ms", "init_stall_ms", "init_stall_after_main_ms",
                "disconnects"):
        figures[key] = {m: runs_summary([b[key] for b in boots[m]]) for m in MODES}
    for key, src in (("step_rtt_ms", "step_rtt_ms"), ("step_in_worker_ms", "step_worker_ms"),
                     ("batch8_rtt_ms", "batch_rtt_ms"), ("batch8_in_worker_ms", "batch_worker_ms")):
        figures[key] = {m: summary(channel[m][src]) for m in MODES}
    results = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "versions": versions(),
        "env": "experiments/catch (render list of 5 shapes per step)",
        "runs_per_mode": args.runs,
        "figures": figures,
        "targets": {"init_stall_after_main_ms.worker": "<= 50", "step_rtt_ms.worker.p50": "<= 1",
                    "step_rtt_ms.worker.p99": "<= 4", "batch8_rtt_ms.worker.p50": "<= 2"},
    }
    (OUT / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    plot(results, OUT / "results.png")
    update_readme(results, OUT.parent / "README.md")
    print(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
