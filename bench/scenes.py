"""Issue 11: time from a game scene's start to playable. The study's first game boots
Pyodide (and its env); a later game's env is loaded into the same worker while the scene
before it runs. Beside them, the same later env opened as a study's only game (a new page
boots Pyodide for it: what a platform with one worker per game would pay each time)."""

from __future__ import annotations

import shutil
from pathlib import Path

from bench.common import runs_summary
from tests.e2e.browser import marks, wait_stage
from tests.servers import ROOT, start_server

MAZE = ROOT / "experiments" / "study" / "maze"
CATCH = ROOT / "experiments" / "catch" / "env.py"


def write_studies(exps: Path) -> None:
    two = exps / "twoscenes"
    shutil.copytree(MAZE, two / "maze")
    shutil.copytree(MAZE, exps / "later_only" / "maze")
    maze = {"type": "game", "id": "later", "env": "maze/env.py", "env_config": {"map": "open.txt"},
            "auto_start": True, "max_steps": 30, "controls": {"ArrowRight": "right"}}
    first = {"type": "game", "id": "first", "env": str(CATCH), "env_config": {"lives": 3},
             "auto_start": True, "max_steps": 60, "controls": {"ArrowLeft": "left"}}
    common = {"default_action": "noop", "controls": {"ArrowLeft": "left"}}
    (two / "experiment.py").write_text(f"EXPERIMENT = {({**common, 'scenes': [first, maze]})!r}\n")
    (exps / "later_only" / "experiment.py").write_text(f"EXPERIMENT = {({**common, 'scenes': [maze]})!r}\n")


def _one(browser, url: str, scenes: list[str]) -> dict:
    ctx = browser.new_context()
    page = ctx.new_page()
    page.goto(url)
    if wait_stage(page, "done", "error", timeout=120) != "done":
        raise RuntimeError(f"{url}: {page.inner_text('#error')}")
    m = marks(page)
    ctx.close()
    out = {}
    for scene in scenes:
        # playable: the episode's first frame is on the canvas
        out[scene] = m[f"scene-first-frame:{scene}"] - m[f"scene-start:{scene}"]
        out[scene + "_from_navigation"] = m[f"scene-first-frame:{scene}"]
    return out


def run(browser, work: Path, runs: int) -> dict:
    exps = work / "scene-experiments"
    write_studies(exps)
    workdir = work / "srv-scenes"
    workdir.mkdir()
    server = start_server(workdir, experiments_dir=exps)
    try:
        samples: dict[str, list[float]] = {"first": [], "later": [], "later_own_page": []}
        for _ in range(runs):
            both = _one(browser, server.url + "/x/twoscenes", ["first", "later"])
            samples["first"].append(both["first_from_navigation"])
            samples["later"].append(both["later"])
            alone = _one(browser, server.url + "/x/later_only", ["later"])
            samples["later_own_page"].append(alone["later_from_navigation"])
    finally:
        server.stop()
    return {name: runs_summary(values) for name, values in samples.items()}
