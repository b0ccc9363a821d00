"""A whole study as a crowdsourced participant meets it: consent, instructions, game,
survey, end with a redirect carrying their id; a reload resumes where they were."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

from tests.e2e.browser import STAGE_RECORDER, body, wait_stage, wait_until
from tests.servers import ROOT, write_experiment

SCENES = [
    {"type": "consent", "html": "<p>You will play a short game. <b>Data is anonymous.</b></p>"},
    {"type": "instructions", "pages": ["<p>Catch the fruit.</p>", "<p>Use ← and →.</p>"]},
    {"type": "game"},
    {"type": "survey", "title": "About the game", "questions": [
        {"id": "fun", "kind": "likert", "prompt": "How fun was it?"},
        {"id": "hand", "kind": "choice", "prompt": "Which hand did you use?", "options": ["Left", "Right"]},
        {"id": "comments", "kind": "text", "prompt": "Anything else?", "required": False},
    ]},
    {"type": "end", "html": "<p>All done.</p>", "completion_code": "C0DE42",
     "redirect": "/healthz?pid={PROLIFIC_PID}&code={completion_code}", "redirect_after": 1},
]
IDS = "PROLIFIC_PID=abc123&STUDY_ID=study9&SESSION_ID=sess7"


def study(tmp_path, **fields):
    exps = tmp_path / "experiments"
    write_experiment(exps, "study", scenes=SCENES, max_steps=150, auto_start=True,
                     env_config={"lives": 99}, **fields)
    return exps


def test_consent_to_redirect_with_a_reload_mid_game(tmp_path, servers, new_page):
    server = servers(experiments_dir=study(tmp_path))
    page, watch = new_page(STAGE_RECORDER)
    page.goto(f"{server.url}/x/study?{IDS}")
    assert wait_stage(page, "consent", "error") == "consent", watch.dump()
    assert "Data is anonymous" in page.inner_text("#scene")
    page.click("#consent-agree")
    assert wait_stage(page, "instructions") == "instructions"
    page.click("#instructions-next")
    page.wait_for_selector("body[data-page='2']", state="attached")
    page.click("#instructions-next")
    assert wait_stage(page, "playing", "error", timeout=60) == "playing", watch.dump()
    page.wait_for_function("Number(document.body.dataset.frame) > 20")

    page.reload()  # mid-game: back to the game, not to consent
    assert wait_stage(page, "playing", "error", timeout=60) == "playing", watch.dump()
    assert "consent" not in page.evaluate("window.__coplaySeen")["stages"]

    assert wait_stage(page, "survey", "error", timeout=60) == "survey", watch.dump()
    page.click("#survey-submit")  # nothing answered yet
    page.wait_for_selector("body[data-missing='fun,hand']", state="attached")
    assert "Please answer" in page.inner_text("#scene-note")
    page.check("input[name=fun][value='5']")
    page.check("input[name=hand][value='Right']")
    page.fill("textarea[name=comments]", "more levels please")
    page.click("#survey-submit")
    assert wait_stage(page, "end", "error") == "end"
    assert page.inner_text("#completion-code") == "C0DE42"
    assert body(page, "redirect") == "/healthz?pid=abc123&code=C0DE42"
    page.wait_for_url(f"{server.url}/healthz?pid=abc123&code=C0DE42", timeout=10000)

    # everything is stored, keyed by the crowdsourcing id
    (url_params,) = server.query("SELECT url_params FROM participants WHERE id='abc123'")[0]
    assert json.loads(url_params) == {"PROLIFIC_PID": "abc123", "STUDY_ID": "study9", "SESSION_ID": "sess7"}
    answers = dict(server.query("SELECT question_id, answer FROM survey_responses"))
    assert answers == {"fun": '"5"', "hand": '"Right"', "comments": '"more levels please"'}
    assert server.query("SELECT scene_index FROM progress WHERE participant_id='abc123'") == [(4,)]
    episodes = server.query("SELECT id, status, frames FROM episodes ORDER BY started")
    assert [e[1] for e in episodes][-1] == "completed" and episodes[-1][2] == 150
    assert server.query("SELECT count(*) FROM steps WHERE episode_id=?", episodes[-1][0]) == [(150,)]

    # the export has every step of the finished episode and the survey answers
    out = tmp_path / "export"
    subprocess.run([sys.executable, "-m", "server.data.export", "study", "--database", str(server.database),
                    "--experiments-dir", str(tmp_path / "experiments"), "--out", str(out)],
                   check=True, cwd=ROOT, capture_output=True)
    with (out / "study" / "steps.csv").open(newline="") as fh:
        steps = [r for r in csv.DictReader(fh) if r["episode_id"] == episodes[-1][0]]
    assert [int(r["frame"]) for r in steps] == list(range(1, 151))
    with (out / "study" / "survey_responses.csv").open(newline="") as fh:
        exported = {r["question_id"]: json.loads(r["answer"]) for r in csv.DictReader(fh)}
    assert exported == {"fun": "5", "hand": "Right", "comments": "more levels please"}

    # a participant who finished sees the end scene again, not a second run
    page2, _ = new_page()
    page2.goto(f"{server.url}/x/study?{IDS}")
    assert wait_stage(page2, "end", "error") == "end"
    assert wait_until(lambda: len(server.query("SELECT id FROM episodes")) == len(episodes), 2)


def test_declining_consent_ends_politely_without_playing(tmp_path, servers, new_page):
    server = servers(experiments_dir=study(tmp_path))
    page, watch = new_page()
    page.goto(f"{server.url}/x/study?PROLIFIC_PID=nope1")
    assert wait_stage(page, "consent", "error") == "consent", watch.dump()
    page.click("#consent-decline")
    assert wait_stage(page, "end", "error") == "end"
    assert server.query("SELECT scene_index, outcome FROM progress") == [(4, "declined")]
    assert server.query("SELECT count(*) FROM episodes") == [(0,)]


def test_conditions_are_assigned_in_balance_and_change_the_env(tmp_path, servers, new_page):
    exps = tmp_path / "experiments"
    write_experiment(exps, "cond", max_steps=40, auto_start=True, env_config={"lives": 99},
                     conditions=[{"name": "fast", "env_config": {"basket_speed": 30}},
                                 {"name": "slow", "env_config": {"basket_speed": 2}}])
    server = servers(experiments_dir=exps)
    for pid in ("alice", "bob"):
        page, watch = new_page()
        page.goto(f"{server.url}/x/cond?participant_id={pid}")
        page.wait_for_selector("body[data-stage=playing]", state="attached", timeout=60000)
        page.keyboard.down("ArrowLeft")
        assert wait_stage(page, "done", "error", timeout=30) == "done", watch.dump()
        page.keyboard.up("ArrowLeft")
    conditions = dict(server.query("SELECT id, condition FROM participants"))
    assert conditions == {"alice": "fast", "bob": "slow"}
    for pid, speed in (("alice", 30), ("bob", 2)):
        xs = [json.loads(info)["basket_x"] for (info,) in server.query(
            "SELECT s.info FROM steps s JOIN episodes e ON e.id = s.episode_id "
            "WHERE e.participant_id = ? ORDER BY s.frame", pid)]
        moves = {a - b for a, b in zip(xs, xs[1:], strict=False) if a != b}
        assert speed in moves, (pid, sorted(moves))
