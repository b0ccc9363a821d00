"""An env as researchers write it: `env.py` imports its sibling `rules.py` and opens a map
file relative to itself. Played in Chromium (the worker lays the experiment's files out in
its file system), and replayed in CPython from the recorded actions: the same positions,
frame by frame. Only the env's files are served: experiment.py is not."""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.request

from server.multiplayer.replay import replay
from tests.e2e.browser import wait_stage, wait_until
from tests.servers import ROOT

MAZE = ROOT / "experiments" / "study" / "maze"


def test_multi_file_env_plays_in_the_browser_and_replays_in_cpython(tmp_path, servers, new_page):
    exps = tmp_path / "experiments"
    folder = exps / "walker"
    shutil.copytree(MAZE, folder / "levels")  # any folder name: imports follow the env file
    definition = {"env": "levels/env.py", "env_config": {"map": "small.txt"}, "auto_start": True,
                  "max_steps": 90, "default_action": "noop",
                  "controls": {"ArrowRight": "right", "ArrowDown": "down", "ArrowLeft": "left",
                               "ArrowUp": "up"}}
    (folder / "experiment.py").write_text(f"EXPERIMENT = {definition!r}\n# SECRET-IN-DEFINITION\n")
    server = servers(experiments_dir=exps)
    page, watch = new_page()
    page.goto(server.url + "/x/walker")
    assert wait_stage(page, "playing", "error", timeout=60) == "playing", watch.dump()
    for key in ["ArrowDown"] * 4 + ["ArrowRight"] * 2 + ["ArrowDown"] * 2 + ["ArrowLeft"] * 3:
        page.keyboard.press(key)
        page.wait_for_timeout(70)
    assert wait_stage(page, "done", "error", timeout=60) == "done", watch.dump()
    rows = wait_until(lambda: len(server.query("SELECT frame FROM steps")) == 90 and
                      server.query("SELECT frame, actions, info FROM steps ORDER BY frame"), 15)
    assert rows
    actions = {"p0": {frame - 1: json.loads(a)["p0"] for frame, a, _ in rows}}
    moved = [json.loads(i)["pos"] for _, _, i in rows]
    assert len({tuple(p) for p in moved}) > 3  # the walker went somewhere, through rules.move
    source = (folder / "levels" / "env.py").read_text()
    again = replay(source, {"map": "small.txt"}, ["p0"], 0, actions, 89, "noop",
                   str(folder / "levels" / "env.py"), [str(folder / "levels"), str(folder)], trajectory=True)
    assert [s["info"]["pos"] for s in again["trajectory"]] == moved
    # the browser fetched the env's files from our origin, and only those
    fetched = [u for u in watch.requests if "/x/walker/files/" in u]
    assert any(u.split("?")[0].endswith("/files/levels/rules.py") for u in fetched)
    assert any(u.split("?")[0].endswith("/files/levels/maps/small.txt") for u in fetched)
    assert watch.foreign_requests(server.url) == []
    for private in ("experiment.py", "../walker/experiment.py", "levels/../experiment.py"):
        try:
            urllib.request.urlopen(f"{server.url}/x/walker/files/{private}", timeout=5)
            raise AssertionError(f"{private} was served")
        except urllib.error.HTTPError as exc:
            assert exc.code == 404
