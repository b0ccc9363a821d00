"""The pilot (python -m pilot) as a researcher runs it before launch: the example study
walked by simulated participants on a server of the pilot's own passes with every data
check; participants who decline consent are counted and their data checked too; an env
that raises mid-episode makes the pilot fail and name the reason."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.servers import ROOT, write_experiment

BOOM_AT_50 = '''
class Boom:
    def __init__(self):
        self.t = 0
    def reset(self, seed=None):
        self.t = 0
        return 0, {}
    def step(self, actions):
        self.t += 1
        if self.t == 50:
            raise ValueError("the env broke at frame 50")
        return self.t, 0, False, False, {"t": self.t}
    def render(self):
        return []

def create_env(config):
    return Boom()
'''


def run_pilot(tmp_path: Path, *args: str, timeout: float = 900) -> tuple[int, dict, str]:
    out = tmp_path / "report.json"
    proc = subprocess.run([sys.executable, "-m", "pilot", *args, "--json", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)
    report = json.loads(out.read_text()) if out.exists() else {}
    return proc.returncode, report, proc.stdout + proc.stderr


def test_the_example_study_passes_its_pilot(tmp_path):
    """20 participants, 2 of them real Chromium pages playing at the page's own pace."""
    code, report, output = run_pilot(tmp_path, "study", "--participants", "20", "--concurrency", "20",
                                     "--speed", "8", "--arrive-every", "0.05", "--browsers", "2")
    assert code == 0, output
    assert report["ok"] and report["outcomes"] == {"finished": 20}, output
    assert report["rooms"] == {"completed": 20}  # 10 pairs, 2 episodes each, every hash equal to the replay
    scenes = report["scenes"]
    assert [scenes[s]["reached"] for s in ("consent", "practice", "duo", "survey", "end")] == [20] * 5
    checks = {c["check"]: c for c in report["checks"]}
    assert all(c["ok"] for c in checks.values()), checks
    steps = checks["every step of every episode stored exactly once"]["detail"]
    assert "of 72 episodes" in steps  # 18 simulated in CPython × (2 practice + 2 duo)
    pages = checks["a browser page's episodes complete, every frame once"]["detail"]
    assert pages == "8 episodes"  # and the 2 pages' 4 each
    assert "steps" in checks["export readable, its counts matching the database"]["detail"]
    assert "The pilot passed" in output


def test_declined_participants_are_counted(tmp_path):
    exps = tmp_path / "experiments"
    write_experiment(exps, "short", max_steps=60, env_config={"lives": 1}, scenes=[
        {"type": "consent", "id": "consent", "html": "<p>ok?</p>"},
        {"type": "game", "id": "play"},
        {"type": "survey", "id": "about", "questions": [
            {"id": "fun", "kind": "likert", "prompt": "Fun?"},
            {"id": "why", "kind": "text", "prompt": "Why?", "required": False}]},
        {"type": "end", "id": "end"}])
    code, report, output = run_pilot(tmp_path, "short", "--experiments-dir", str(exps), "--participants", "8",
                                     "--concurrency", "8", "--decline", "0.5", "--speed", "4")
    assert code == 0, output
    outcomes = report["outcomes"]
    assert outcomes == {"declined": 4, "finished": 4}, outcomes  # half of 8, spread over arrivals
    assert report["scenes"]["play"]["reached"] == outcomes["finished"]
    assert report["scenes"]["about"]["outcomes"] == {"submitted": outcomes["finished"]}
    assert all(c["ok"] for c in report["checks"]), report["checks"]


def test_an_env_that_raises_at_frame_50_fails_the_pilot_with_the_reason(tmp_path):
    exps = tmp_path / "experiments"
    write_experiment(exps, "broken", env_source=BOOM_AT_50, max_steps=200)
    code, report, output = run_pilot(tmp_path, "broken", "--experiments-dir", str(exps),
                                     "--participants", "2", "--concurrency", "2", "--speed", "4")
    assert code == 1, output
    assert not report["ok"]
    assert len(report["errors"]) == 2
    assert all("the env broke at frame 50" in e["error"] for e in report["errors"])
    assert any("the env broke at frame 50" in f for f in report["failures"])
    assert "The pilot FAILED" in output
    # what was played before the error is stored, once, and the episode says how it ended
    checks = {c["check"]: c for c in report["checks"]}
    assert checks["every step of every episode stored exactly once"]["ok"], checks
    assert checks["every episode stored with its scene and how it ended"]["ok"], checks


def test_a_survey_the_server_refuses_fails_the_pilot_with_the_reason(tmp_path):
    exps = tmp_path / "experiments"
    write_experiment(exps, "badsurvey", max_steps=60, scenes=[
        {"type": "game", "id": "play"},
        {"type": "survey", "id": "about", "questions": [
            {"id": "pick", "kind": "choice", "prompt": "Which?", "options": ["only one"]}]},
        {"type": "end", "id": "end"}])
    code, report, output = run_pilot(tmp_path, "badsurvey", "--experiments-dir", str(exps),
                                     "--participants", "2", timeout=120)
    assert code == 1, output
    assert not report["ok"] and report["participants"] == 0
    [failure] = report["failures"]
    assert failure.startswith("check failed: the server takes the experiment: ")
    assert "question 'pick': a choice question needs at least 2 options" in failure
    assert "badsurvey/experiment.py" in failure  # the file to fix
    assert "The pilot FAILED" in output and "Traceback" not in output
