"""An experiment's own pyscript.toml: two browsers install the wheel it lists (from
/pkgs/x/<experiment>/, our origin only), play a two-player env that imports it, and the
room ends ``completed`` — the server's CPython replay imported the same wheel (unpacked
from the same file) and reached the hash both browsers reported."""

from __future__ import annotations

import json

from tests.e2e.browser import body, wait_stage
from tests.e2e.test_multiplayer import open_pair
from tests.servers import write_experiment
from tests.wheels import build_wheel

# the wheel decides every state change: a replay without it fails, one with another differs
ENV = '''
import scoring


class Env:
    def reset(self, seed=None):
        self.score = seed % 1009
        return self.score, {}

    def step(self, actions):
        for player in sorted(actions):
            self.score = scoring.update(self.score, actions[player])
        return self.score, {"p0": 0, "p1": 0}, False, False, {"score": self.score}

    def render(self):
        return [{"type": "text", "x": 20, "y": 40, "text": f"{scoring.LABEL} {self.score}", "size": 20,
                 "align": "left", "color": "#222"}]


def create_env(config):
    return Env()
'''
SCORING = ("LABEL = 'score'\n\n"
           "def update(score, action):\n"
           "    return (score * 33 + {'left': 1, 'right': 2}.get(action, 0)) % 1000003\n")


def test_two_browsers_and_the_replay_import_the_experiments_own_wheel(tmp_path, servers, new_page):
    exps = tmp_path / "experiments"
    exp = write_experiment(exps, "pkgs", env_source=ENV, players=["p0", "p1"], default_action="noop",
                           controls={"ArrowLeft": "left", "ArrowRight": "right"}, start_key="Enter",
                           max_steps=150, multiplayer={"hash_every": 30})
    wheel = build_wheel(exp / "wheels", "scoring", "1.0", {"scoring": SCORING})
    (exp / "pyscript.toml").write_text(f'packages = ["./wheels/{wheel.name}"]\n')
    global_toml = tmp_path / "pyscript.toml"
    global_toml.write_text("packages = []\n")  # nothing server-wide: the experiment's own list only
    server = servers(experiments_dir=exps, pyscript_toml=global_toml)

    pages = open_pair(server, new_page, experiment="pkgs")
    for k in range(20):
        for i, (page, _) in enumerate(pages):
            page.keyboard.press(["ArrowLeft", "ArrowRight"][(k + i) % 2])
        pages[0][0].wait_for_timeout(80)
    for page, watch in pages:
        assert wait_stage(page, "done", "error", timeout=120) == "done", watch.dump()
        page.wait_for_selector("body[data-room-status]", state="attached", timeout=15000)

    a, b = ({k: body(page, k) for k in ("state-hash", "replay-hash", "room-status")} for page, _ in pages)
    assert a["room-status"] == b["room-status"] == "completed", (a, b)
    assert a["state-hash"] == b["state-hash"] == a["replay-hash"] == b["replay-hash"]
    [(status, finals, replay_hash, replay_error)] = server.query(
        "SELECT status, final_hashes, replay_hash, replay_error FROM rooms")
    assert (status, replay_error) == ("completed", None)
    assert set(json.loads(finals).values()) == {replay_hash} == {a["state-hash"]}
    for _, watch in pages:
        assert any(f"/pkgs/x/pkgs/wheels/{wheel.name}" in u for u in watch.requests), watch.dump()
        assert watch.foreign_requests(server.url) == []
