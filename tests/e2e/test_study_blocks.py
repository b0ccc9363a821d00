"""A study of several game blocks, as researchers run them: consent, a single-player
practice (a multi-file env: a sibling module and map files; 2 episodes), a two-player game
with another env (2 episodes, the same partners both times), a survey, the end. Pyodide
boots once per page; every episode is stored with its scene id and index, and exported so."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys

from tests.e2e.browser import marks, wait_stage, wait_until
from tests.servers import KITCHEN_CONTROLS, ROOT

STUDY_SOURCE = ROOT / "experiments" / "study"


def blocks_experiment(tmp_path):
    exps = tmp_path / "experiments"
    folder = exps / "blocks"
    shutil.copytree(STUDY_SOURCE / "maze", folder / "maze")
    kitchen = ROOT / "experiments" / "kitchen" / "env.py"
    definition = {
        "name": "blocks", "default_action": "noop", "start_key": "Enter",
        "scenes": [
            {"type": "consent", "id": "consent", "html": "<p>ok?</p>"},
            {"type": "game", "id": "practice", "env": "maze/env.py", "env_config": {"map": "open.txt"},
             "episodes": 2, "max_steps": 20, "auto_start": True, "auto_advance": 0.3,
             "controls": {"ArrowRight": "right", "ArrowDown": "down"}},
            {"type": "game", "id": "duo", "env": str(kitchen), "players": ["p0", "p1"],
             "env_config": {"episode_frames": 1800, "cook_frames": 60, "delivery_reward": 20},
             "episodes": 2, "max_steps": 60, "auto_start": True, "auto_advance": 0.3,
             "controls": KITCHEN_CONTROLS},
            {"type": "survey", "id": "survey", "questions": [
                {"id": "fun", "kind": "likert", "prompt": "Fun?"}]},
            {"type": "end", "id": "end", "completion_code": "BLOCKS", "redirect_after": None},
        ],
    }
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "experiment.py").write_text(f"EXPERIMENT = {definition!r}\n")
    return exps


def test_practice_then_two_player_blocks_with_the_same_partner(tmp_path, servers, new_page):
    exps = blocks_experiment(tmp_path)
    server = servers(experiments_dir=exps)
    pages = []
    for _ in range(2):
        page, watch = new_page()
        page.goto(server.url + "/x/blocks")
        pages.append((page, watch))
    for page, watch in pages:
        assert wait_stage(page, "consent", "error") == "consent", watch.dump()
        page.click("#consent-agree")
    for page, _ in pages:
        page.keyboard.down("ArrowRight")  # the practice maze: walk right for a while
    for page, watch in pages:
        assert wait_stage(page, "survey", "error", timeout=120) == "survey", watch.dump()
        page.keyboard.up("ArrowRight")
        page.check("input[name=fun][value='6']")
        page.click("#survey-submit")
        assert wait_stage(page, "end", "error") == "end", watch.dump()
        assert page.inner_text("#completion-code") == "BLOCKS"
        assert watch.foreign_requests(server.url) == []

    for page, _ in pages:
        seen = marks(page)
        # Pyodide booted once; both games' envs were loaded into that one worker, the
        # two-player env while the practice was still running
        assert page.evaluate("performance.getEntriesByName('coplay:worker-ready').length") == 1
        assert {"env-ready:practice", "env-ready:duo", "scene-start:duo", "scene-playable:duo"} <= set(seen)
        assert seen["env-ready:duo"] < seen["scene-start:duo"]

    # every episode stored with its scene and index: 2 practice + 2 duo per participant
    def episodes():
        return server.query("SELECT participant_id, scene_id, episode_index, status, frames FROM episodes"
                            " WHERE status != 'running' ORDER BY participant_id, scene_id, episode_index")
    rows = wait_until(lambda: len(episodes()) == 8 and episodes(), 20)
    assert rows, episodes()
    by_participant = {}
    for pid, scene, index, status, frames in rows:
        by_participant.setdefault(pid, []).append((scene, index, status, frames))
    assert len(by_participant) == 2
    for got in by_participant.values():
        assert [(s, i) for s, i, _, _ in got] == [("duo", 0), ("duo", 1), ("practice", 0), ("practice", 1)]
        assert all(status == "completed" for _, _, status, _ in got)
        assert [f for s, _, _, f in got if s == "practice"] == [20, 20]
    # the practice env read its map and imported its rules module in the browser: the
    # open map lets the walker go right; its position comes from rules.move
    (info,) = server.query("SELECT s.info FROM steps s JOIN episodes e ON e.id = s.episode_id"
                           " WHERE e.scene_id = 'practice' AND s.frame = 3 LIMIT 1")[0:1]
    assert '"pos"' in info[0]

    # the two duo episodes were played by the same two participants, in the same seats
    rooms = wait_until(lambda: len(server.query("SELECT id FROM rooms WHERE status = 'completed'")) == 2
                       and server.query("SELECT players, scene_id, status FROM rooms ORDER BY created"), 20)
    assert rooms and len(rooms) == 2, server.query("SELECT status, replay_hash, final_hashes FROM rooms")
    assert rooms[0][0] == rooms[1][0] and {r[1] for r in rooms} == {"duo"}

    out = tmp_path / "export"
    subprocess.run([sys.executable, "-m", "server.data.export", "blocks", "--database", str(server.database),
                    "--experiments-dir", str(exps), "--out", str(out)], check=True, cwd=ROOT,
                   capture_output=True)
    with (out / "blocks" / "episodes.csv").open(newline="") as fh:
        exported = sorted((r["scene_id"], r["episode_index"]) for r in csv.DictReader(fh))
    assert exported == sorted([("practice", "0"), ("practice", "1"), ("duo", "0"), ("duo", "1")] * 2)


def test_a_scene_time_limit_stops_the_running_episode_and_the_scene(tmp_path, servers, new_page):
    exps = tmp_path / "experiments"
    folder = exps / "timed"
    shutil.copytree(STUDY_SOURCE / "maze", folder / "maze")
    definition = {"name": "timed", "default_action": "noop", "scenes": [
        {"type": "game", "id": "timed", "env": "maze/env.py", "episodes": 3, "max_steps": 900, "fps": 30,
         "time_limit": 1.5, "auto_start": True, "controls": {"ArrowRight": "right"}},
        {"type": "end", "id": "end", "redirect_after": None}]}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "experiment.py").write_text(f"EXPERIMENT = {definition!r}\n")
    server = servers(experiments_dir=exps)
    page, watch = new_page()
    page.goto(server.url + "/x/timed")
    assert wait_stage(page, "end", "error", timeout=60) == "end", watch.dump()
    rows = wait_until(lambda: server.query("SELECT status, frames, episode_index FROM episodes"
                                           " WHERE status != 'running'"), 10)
    assert len(rows) == 1, rows  # the limit ended the scene during its first episode
    status, frames, index = rows[0]
    assert status == "time_limit" and index == 0
    assert 15 <= frames < 900  # stopped at about 1.5 s of 30 fps, far before max_steps
    assert server.query("SELECT count(*) FROM steps") == [(frames,)]
