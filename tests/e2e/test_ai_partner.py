"""A person plays the kitchen in Chromium beside the scripted cook (a Python policy in the
env's worker). The AI's actions are stored beside the person's, with the policy's name and
decision time; re-running the same policy in CPython over the recorded episode makes
exactly the recorded choices (determinism by construction). Offline: every request
same-origin."""

from __future__ import annotations

import json
import shutil

from tests.e2e.browser import body, wait_stage, wait_until
from tests.servers import KITCHEN_CONTROLS, ROOT
from worker.env_host import EnvHost, forget_search_path
from worker.policies import build_seats

KITCHEN_ENV = ROOT / "experiments" / "kitchen" / "env.py"
COOK = ROOT / "experiments" / "kitchen_ai" / "cook.py"
CONFIG = {"episode_frames": 1800, "cook_frames": 30, "delivery_reward": 20}
PARTNERS = {"p1": {"name": "cook", "kind": "python", "file": "cook.py", "config": {"seat": "p1"}, "every": 1}}


def test_a_person_and_the_scripted_cook_play_and_the_record_replays_exactly(tmp_path, servers, new_page):
    exps = tmp_path / "experiments"
    folder = exps / "withcook"
    folder.mkdir(parents=True)
    shutil.copy(COOK, folder / "cook.py")
    definition = {"env": str(KITCHEN_ENV), "players": ["p0", "p1"], "env_config": CONFIG, "max_steps": 240,
                  "default_action": "noop", "controls": KITCHEN_CONTROLS, "auto_start": True,
                  "policies": {"cook": {"python": "cook.py", "config": {"seat": "p1"}}},
                  "partners": {"p1": "cook"}}
    (folder / "experiment.py").write_text(f"EXPERIMENT = {definition!r}\n")
    server = servers(experiments_dir=exps)
    page, watch = new_page()
    page.goto(server.url + "/x/withcook")
    assert wait_stage(page, "playing", "error", timeout=60) == "playing", watch.dump()
    # the person takes a few steps, then leaves the kitchen to the cook (a person mashing keys
    # could carry the onions away, and the delivery check below would test the person)
    for key in ["ArrowDown", "ArrowDown", "ArrowRight"]:
        page.keyboard.press(key)
        page.wait_for_timeout(100)
    assert wait_stage(page, "done", "error", timeout=60) == "done", watch.dump()
    assert body(page, "room") is None  # one person and an AI: no room, no waiting
    rows = wait_until(lambda: len(server.query("SELECT frame FROM steps")) == 240 and
                      server.query("SELECT frame, actions, metrics, info FROM steps ORDER BY frame"), 15)
    assert rows
    actions = [json.loads(a) for _, a, _, _ in rows]
    metrics = [json.loads(m) for _, _, m, _ in rows]
    assert all(set(a) == {"p0", "p1"} for a in actions)
    assert {m["partners"]["p1"]["policy"] for m in metrics} == {"cook"}
    assert all(m["partners"]["p1"]["decide_ms"] >= 0 for m in metrics)
    assert len({a["p1"] for a in actions}) > 2  # the cook walked and worked
    assert any(a["p0"] != "noop" for a in actions)  # the person's keys are recorded beside it
    assert json.loads(rows[-1][3])["deliveries"] >= 1  # it cooked at least one soup
    # parity: the same policy, re-run in CPython over the recorded episode, makes the recorded
    # choices, frame by frame (its decisions come from the frame before, as in the worker)
    (seed,) = server.query("SELECT seed FROM episodes")[0]
    host = EnvHost()
    host.set_globals({"env_config": CONFIG, "players": ["p0", "p1"]})
    host.load(KITCHEN_ENV.read_text(), str(KITCHEN_ENV))
    host.set_partners(build_seats(PARTNERS, str(folder)))
    try:
        host.reset(seed=seed, render=False)
        again = [host.step({"p0": a["p0"]}, render=False)["partner_actions"]["p1"] for a in actions]
    finally:
        forget_search_path([str(folder)])
    assert again == [a["p1"] for a in actions]
    assert watch.foreign_requests(server.url) == []
