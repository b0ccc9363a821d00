"""ONNX partners in Chromium: onnxruntime-web in the env's worker, offline (every request
same-origin), its decisions awaited between frames. The AI's actions are stored with the
frame each was decided from, and the CPython parity check (server/policies/parity.py,
onnxruntime) re-makes every one of them; a recurrent policy starts every episode from a
zero state; a policy that fails shows its error and keeps the steps played."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import numpy as np
import onnxruntime

from tests.e2e.browser import wait_stage, wait_until
from tests.policy_models import gru_model
from tests.servers import KITCHEN_CONTROLS, ROOT
from tests.unit.test_policies import COUNTER_ENV

ACTIONS = ["a", "b", "c", "d", "e", "f"]
BC_DIR = ROOT / "experiments" / "kitchen_ai"
KITCHEN_ENV = ROOT / "experiments" / "kitchen" / "env.py"
FEATURES = '''
def encode(obs, info, seat):
    t = obs[seat]
    if t == FAIL_AT:
        raise KeyError("pot")
    return [((t * (i + 3)) % 7) / 3.0 - 1.0 for i in range(8)]

FAIL_AT = {fail_at}
'''


def write_experiment(tmp_path, policy, fail_at=-1, **game):
    folder = tmp_path / "experiments" / "withmodel"
    folder.mkdir(parents=True)
    (folder / "env.py").write_text(COUNTER_ENV)
    (folder / "features.py").write_text(FEATURES.format(fail_at=fail_at))
    gru_model(folder / "gru.onnx", n_in=8, n_out=len(ACTIONS), hidden=16, seed=3)
    definition = {"env": "env.py", "players": ["p0", "p1"], "default_action": "noop", "controls": {"x": "x"},
                  "auto_start": True, "seed": 7, "policies": {"gru": policy}, "partners": {"p1": "gru"},
                  "scenes": [{"type": "game", "id": "play", **game}]}
    (folder / "experiment.py").write_text(f"EXPERIMENT = {definition!r}\n")
    return folder


GRU = {"onnx": "gru.onnx", "obs": "features.py:encode", "actions": ACTIONS, "input": "obs",
       "state": {"h_in": "h_out"}}


def episodes_steps(server):
    episodes = server.query("SELECT id, episode_index, status FROM episodes ORDER BY episode_index")
    return episodes, {e: [(json.loads(a), json.loads(m)) for a, m in server.query(
        "SELECT actions, metrics FROM steps WHERE episode_id = ? ORDER BY frame", e)] for e, _, _ in episodes}


def test_a_recurrent_onnx_partner_starts_every_episode_from_a_zero_state(tmp_path, servers, new_page):
    folder = write_experiment(tmp_path, GRU, episodes=2, max_steps=40, auto_advance=0.2)
    server = servers(experiments_dir=folder.parent)
    page, watch = new_page()
    page.goto(server.url + "/x/withmodel")
    assert wait_stage(page, "done", "error", timeout=90) == "done", watch.dump()
    rows = wait_until(lambda: len(server.query("SELECT frame FROM steps")) == 80 and episodes_steps(server),
                      15)
    assert rows
    episodes, steps = rows
    assert [(i, s) for _, i, s in episodes] == [(0, "completed"), (1, "completed")]
    first, second = (steps[e] for e, _, _ in episodes)
    played = [[a["p1"] for a, _ in first], [a["p1"] for a, _ in second]]
    assert played[0] == played[1]  # same seed, state zeroed: the same actions, frame for frame
    assert len(set(played[0])) > 1
    assert all(m["partners"]["p1"]["policy"] == "gru" and m["partners"]["p1"]["decide_ms"] >= 0
               for _, m in first + second)
    # the parity check re-makes every decision in CPython onnxruntime, state carried frame to frame
    assert parity(server, folder) == [(40, 0), (40, 0)]
    # and the state matters: carried over from episode 1 instead, episode 2 would start otherwise
    assert carried_over_first_actions(folder, 40, 6) != played[1][:6]
    assert watch.foreign_requests(server.url) == []
    assert any("/onnxruntime/ort-wasm-simd-threaded.wasm" in r for r in watch.requests)


def parity(server, folder):
    """The researcher's parity check, as they run it: (AI actions checked, mismatches) per episode."""
    proc = subprocess.run([sys.executable, "-m", "server.policies.parity", folder.name, "--database",
                           str(server.database), "--experiments-dir", str(folder.parent)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    found = re.findall(r"(\d+) AI actions, \d+ decisions re-made, (\d+) mismatches", proc.stdout)
    return [(int(a), int(b)) for a, b in found]


def carried_over_first_actions(folder, frames, n):
    session = onnxruntime.InferenceSession(str(folder / "gru.onnx"))
    namespace: dict = {}
    exec(FEATURES.format(fail_at=-1), namespace)
    h = np.zeros((1, 1, 16), np.float32)
    out = []
    for episode in range(2):
        for t in range(frames):  # obs t chooses the action of frame t + 1
            x = np.asarray([namespace["encode"]({"p1": t}, {}, "p1")], np.float32)
            logits, h = session.run(["logits", "h_out"], {"obs": x, "h_in": h})
            if episode == 1:
                out.append(ACTIONS[int(np.argmax(logits[0]))])
    return out[:n]


def test_an_obs_function_that_raises_in_the_browser_shows_the_error_and_keeps_the_steps(
        tmp_path, servers, new_page):
    folder = write_experiment(tmp_path, GRU, fail_at=12, max_steps=60)
    server = servers(experiments_dir=folder.parent)
    page, watch = new_page()
    page.goto(server.url + "/x/withmodel")
    assert wait_stage(page, "error", "done", timeout=90) == "error", watch.dump()
    message = page.inner_text("#error-message")
    assert "policy 'gru' (seat p1) raised at frame 12: KeyError: 'pot'" in message, message
    rows = wait_until(lambda: server.query("SELECT status, frames FROM episodes"), 15)
    assert rows and rows[0][0] == "error"
    frames = [f for (f,) in server.query("SELECT frame FROM steps ORDER BY frame")]
    assert frames == list(range(1, 13)) or frames == list(range(1, 14))  # every step played is kept
    # the episode's record says what failed
    (episode,) = server.query("SELECT id FROM episodes")[0]
    recorded = [json.loads(p) for (p,) in server.query(
        "SELECT payload FROM events WHERE kind = 'worker_error' AND episode_id = ?", episode)]
    assert recorded and "policy 'gru' (seat p1) raised at frame 12" in recorded[0]["message"]


def test_a_person_plays_a_full_episode_with_the_behaviour_cloned_cook_and_parity_holds(
        tmp_path, servers, new_page):
    folder = tmp_path / "experiments" / "withbc"
    folder.mkdir(parents=True)
    for name in ("bc_cook.onnx", "features.py"):
        shutil.copy(BC_DIR / name, folder / name)
    definition = {"env": str(KITCHEN_ENV), "players": ["p0", "p1"], "max_steps": 300,
                  "env_config": {"episode_frames": 300, "cook_frames": 30, "delivery_reward": 20},
                  "default_action": "noop", "controls": KITCHEN_CONTROLS, "auto_start": True,
                  "policies": {"bc": {"onnx": "bc_cook.onnx", "obs": "features.py:encode",
                                      "actions": ["noop", "up", "down", "left", "right", "interact"]}},
                  "partners": {"p1": "bc"}}
    (folder / "experiment.py").write_text(f"EXPERIMENT = {definition!r}\n")
    server = servers(experiments_dir=folder.parent)
    page, watch = new_page()
    page.goto(server.url + "/x/withbc")
    assert wait_stage(page, "playing", "error", timeout=90) == "playing", watch.dump()
    for key in ["ArrowDown", "ArrowDown", "ArrowRight"]:  # the person moves, then leaves it to the AI
        page.keyboard.press(key)
        page.wait_for_timeout(100)
    assert wait_stage(page, "done", "error", timeout=60) == "done", watch.dump()
    rows = wait_until(lambda: len(server.query("SELECT frame FROM steps")) == 300 and
                      server.query("SELECT actions, metrics, info FROM steps ORDER BY frame"), 15)
    assert rows
    actions = [json.loads(a) for a, _, _ in rows]
    partners = [json.loads(m)["partners"]["p1"] for _, m, _ in rows]
    assert {p["policy"] for p in partners} == {"bc"} and all(p["decide_ms"] > 0 for p in partners)
    assert len({a["p1"] for a in actions}) > 2 and any(a["p0"] != "noop" for a in actions)
    assert json.loads(rows[-1][2])["deliveries"] >= 1  # the clone cooked
    assert server.query("SELECT status FROM episodes") == [("completed",)]
    assert parity(server, folder) == [(300, 0)]  # onnxruntime in CPython makes the same choices
    assert watch.foreign_requests(server.url) == []
