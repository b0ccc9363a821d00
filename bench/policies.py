"""Issue 12: AI partners deciding every frame at 30 fps. In the env's worker: decision
latency (observation to action, the inference awaited) for an MLP (32-64-64-6) and a GRU
(hidden 64), frame time (STEP sent to frame drawn) p50/p99, dropped frames and the main
thread's longest stall during play, beside the same scene with no AI. The MUG-style
baseline runs the same models on the main thread (``?worker=0``: Pyodide and onnxruntime-web
on the page's own thread). Also: the ONNX session's create + warm-up time while the page
loads. The page side is pages/bench_frames.py."""

from __future__ import annotations

import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

from bench import frames
from bench.common import summary
from tests.e2e.browser import STALL_PROBE, launch, longest_stall
from tests.policy_models import gru_model, mlp_model
from tests.servers import start_server

ENV = Path(__file__).resolve().parent / "policy_env.py"
ACTIONS = ["noop", "up", "down", "left", "right", "stay"]
MODELS = {"none": None, "mlp": mlp_model, "gru": gru_model}
MODES = {"worker": "", "main_thread": "&worker=0"}


def write_experiments(exps: Path) -> None:
    for name, build in MODELS.items():
        folder = exps / f"ai_{name}"
        folder.mkdir(parents=True)
        (folder / "env.py").write_text(ENV.read_text())
        definition = {"env": "env.py", "players": ["p0", "p1"], "default_action": "noop",
                      "controls": {"ArrowLeft": "left"}, "fps": 30, "max_steps": 100000}
        if build is not None:
            build(folder / "model.onnx", n_in=32, n_out=len(ACTIONS), hidden=64, seed=0)
            policy = {"onnx": "model.onnx", "obs": "env.py:encode", "actions": ACTIONS}
            if name == "gru":
                policy.update(input="obs", state={"h_in": "h_out"})
            definition.update(policies={name: policy}, partners={"p1": name})
        (folder / "experiment.py").write_text(f"EXPERIMENT = {definition!r}\n")


def read_page(page, data: dict) -> None:
    """The main thread's longest stall during play, and the AI seats' set-up figures."""
    origin = page.evaluate("performance.timeOrigin")
    data["stall_ms"] = longest_stall(page, data["t_start"] - origin, data["t_end"] - origin)
    setup = page.get_attribute("body", "data-partners-ms-game-0")
    data["setup_ms"] = float(setup) if setup is not None else None
    run = page.get_attribute("body", "data-model-run-ms-game-0")
    data["model_run_ms"] = float(run) if run is not None else None


def one_page(browser, url: str) -> dict:
    return frames.one_page(browser, url, STALL_PROBE, read_page)


def run(runs: int = 2) -> dict:
    work = Path(tempfile.mkdtemp(prefix="coplay-bench-policies-"))
    exps = work / "experiments"
    write_experiments(exps)
    server = start_server(work, experiments_dir=exps)
    pages: dict[str, list[dict]] = {}
    try:
        with sync_playwright() as pw:
            browser = launch(pw)
            for _ in range(runs):
                for model in MODELS:  # interleaved so drift hits all alike
                    for mode, query in MODES.items():
                        url = f"{server.url}/x/ai_{model}?bench=1&frames=1{query}"
                        pages.setdefault(f"{model}.{mode}", []).append(one_page(browser, url))
            browser.close()
    finally:
        server.stop()
    out: dict = {"fps": 30, "frames_per_page": 300, "runs": runs, "obs": 32, "actions": len(ACTIONS)}
    for key, datas in pages.items():
        model, mode = key.split(".")
        frame_ms = datas[0]["frame_ms"]
        late = [v for d in datas for v in d["late_ms"]]
        entry = {"total_ms": summary([v for d in datas for v in d["total_ms"]]),
                 "frames": len(late), "dropped": sum(1 for v in late if v > frame_ms),
                 "stall_ms": round(max(d["stall_ms"] for d in datas), 1)}
        decide = [v for d in datas for v in d["decide_ms"]]
        if decide:
            entry["decide_ms"] = summary(decide)
            entry["held"] = sum(d["held"] for d in datas)  # frames that played an older decision
            entry["setup_ms"] = [round(d["setup_ms"], 1) for d in datas]
            # the model's own awaited run, back to back at load: what a decision costs beyond
            # waiting for the frame's reply and the thread's wake-ups
            entry["model_run_ms"] = [round(d["model_run_ms"], 3) for d in datas if d["model_run_ms"]]
        out.setdefault(model, {})[mode] = entry
    return out
