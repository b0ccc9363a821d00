"""Sync test: a deterministic env passes; one with state outside the env object is caught,
with the first diverging frame named."""

from __future__ import annotations

from pathlib import Path

from server.multiplayer.synctest import main, run_synctest

ROOT = Path(__file__).resolve().parents[2]

LEAKY_ENV = '''
calls = [0]   # module state: not part of the env object, so a rollback cannot restore it

class Leaky:
    def reset(self, seed=None):
        self.x = 0
        return 0, {}

    def step(self, actions):
        calls[0] += 1
        self.x += actions["p0"] + (1 if calls[0] > 50 else 0)
        return self.x, {"p0": 0}, False, False, {}

    def render(self):
        return []

def create_env(config):
    return Leaky()
'''


def test_kitchen_env_is_deterministic_under_rollback():
    source = (ROOT / "experiments/kitchen/env.py").read_text()
    report = run_synctest(source, {"episode_frames": 1800}, ["p0", "p1"],
                          ["up", "down", "left", "right", "interact", "noop"], frames=300, distance=8)
    assert report["ok"] and report["checked"] == (300 - 7) * 8


def test_state_outside_the_env_is_caught_at_the_first_diverging_frame():
    report = run_synctest(LEAKY_ENV, {}, ["p0"], [0, 1], frames=200, distance=4)
    assert not report["ok"]
    # frames 0-2 step once, later frames 1 + 4 (replay) times: call 51 is the replay of
    # frame 10 (in frame 12's batch), the first step whose result differs.
    assert report["first_divergent_frame"] == 10
    assert "not deterministic" in report["message"]


def test_cli_exit_codes(tmp_path, capsys):
    assert main([str(ROOT / "experiments/catch"), "--frames", "120"]) == 0
    exp = tmp_path / "leaky"
    exp.mkdir()
    (exp / "env.py").write_text(LEAKY_ENV)
    (exp / "experiment.py").write_text(
        "EXPERIMENT = {'env': 'env.py', 'controls': {'ArrowRight': 1}, 'default_action': 0}\n")
    assert main([str(exp), "--frames", "120", "--distance", "4"]) == 1
    assert "first_divergent_frame" in capsys.readouterr().out
