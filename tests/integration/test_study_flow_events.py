"""hello / scene_done over real Socket.IO: progress only moves forward one scene at a
time, survey answers are checked before they are stored, resends are harmless."""

from __future__ import annotations

import json

import pytest

from tests.e2e.test_study_flow import SCENES
from tests.integration.conftest import participant
from tests.servers import start_server, write_experiment


@pytest.fixture(scope="module")
def study_server(tmp_path_factory):
    work = tmp_path_factory.mktemp("study")
    write_experiment(work / "experiments", "study", scenes=SCENES)
    running = start_server(work, experiments_dir=work / "experiments")
    yield running
    running.stop()


def done(index, scene_id, **extra):
    return {"index": index, "scene_id": scene_id, **extra}


@pytest.mark.asyncio
async def test_progress_moves_one_scene_at_a_time_and_survives_reconnects(study_server):
    async with participant(study_server.url, "walker", "study") as p:
        assert (await p.call("hello", {}))["scene_index"] == 0
        skip = await p.call("scene_done", done(2, "game-2"))
        assert skip["ok"] is False and "current scene (0)" in skip["error"]
        wrong = await p.call("scene_done", done(0, "game-2"))
        assert wrong["ok"] is False and "consent-0" in wrong["error"]
        assert (await p.call("scene_done", done(0, "consent-0", outcome="agreed")))["scene_index"] == 1
        resend = await p.call("scene_done", done(0, "consent-0", outcome="agreed"))
        assert resend == {"ok": True, "scene_index": 1}
    async with participant(study_server.url, "walker", "study") as again:
        assert (await again.call("hello", {}))["scene_index"] == 1  # a reload resumes here


@pytest.mark.asyncio
async def test_each_page_load_is_a_session_with_its_browser(study_server):
    firefox = {"user_agent": "Mozilla/5.0 (X11) Firefox/140.0", "screen": "1920x1080"}
    async with participant(study_server.url, "loader", "study") as p:
        assert (await p.call("hello", {"stream": "1700000000000-aaaaaaaa", "client": firefox}))["ok"]
        assert (await p.call("hello", {"stream": "1700000000000-aaaaaaaa", "client": firefox}))["ok"]
        assert (await p.call("hello", {"stream": "1700000099999-bbbbbbbb", "client": {}}))["ok"]
        bad = await p.call("hello", {"stream": "1700000000000-cccccccc", "client": {"nested": {"a": 1}}})
        assert bad["ok"] is False and "client" in bad["error"]
    rows = study_server.query("SELECT stream, client FROM sessions WHERE participant_id='loader'"
                              " ORDER BY stream")
    assert [(stream, json.loads(client)) for stream, client in rows] == [
        ("1700000000000-aaaaaaaa", firefox), ("1700000099999-bbbbbbbb", {})]


@pytest.mark.asyncio
async def test_bad_survey_answers_store_nothing(study_server):
    async with participant(study_server.url, "answerer", "study") as p:
        for index, scene_id in enumerate(["consent-0", "instructions-1", "game-2"]):
            assert (await p.call("scene_done", done(index, scene_id)))["ok"]
        bad = ({"hand": "Left"}, {"fun": "9", "hand": "Left"}, {"fun": "3", "hand": "Left", "x": "1"})
        for answers in bad:
            ack = await p.call("scene_done", done(3, "survey-3", answers=answers))
            assert ack["ok"] is False
        stored = "SELECT count(*) FROM survey_responses WHERE participant_id='answerer'"
        assert study_server.query(stored) == [(0,)]
        ok = await p.call("scene_done", done(3, "survey-3", answers={"fun": "3", "hand": "Left"}))
        assert ok == {"ok": True, "scene_index": 4}
        rows = study_server.query(
            "SELECT question_id, answer FROM survey_responses WHERE participant_id='answerer' ORDER BY 1")
        assert rows == [("fun", '"3"'), ("hand", '"Left"')]
        assert len(p.server_errors) >= 3


SURVEY = {"type": "survey", "id": "post", "questions": [{"id": "fun", "kind": "likert", "prompt": "Fun?"}]}


@pytest.mark.asyncio
async def test_a_condition_can_reorder_and_reuse_scenes(tmp_path):
    survey_first = [SURVEY, {"type": "game"}, {"type": "end"}]
    write_experiment(tmp_path / "experiments", "order", scenes=[{"type": "game"}, SURVEY, {"type": "end"}],
                     conditions=[{"name": "game-first"}, {"name": "survey-first", "scenes": survey_first}])
    srv = start_server(tmp_path, experiments_dir=tmp_path / "experiments")
    try:
        async with participant(srv.url, "first", "order") as a, participant(srv.url, "second", "order") as b:
            ha, hb = await a.call("hello", {}), await b.call("hello", {})
            assert (ha["condition"], hb["condition"]) == ("game-first", "survey-first")
            assert [s["id"] for s in ha["scenes"]] == ["game-0", "post", "end-2"]
            assert [s["id"] for s in hb["scenes"]] == ["post", "game-1", "end-2"]
            answer = {"answers": {"fun": "4"}}
            assert (await a.call("scene_done", done(0, "post", **answer)))["ok"] is False
            assert (await b.call("scene_done", done(0, "post", **answer)))["scene_index"] == 1
            assert (await a.call("scene_done", done(0, "game-0")))["scene_index"] == 1
        assert srv.query("SELECT participant_id, scene_id FROM survey_responses") == [("second", "post")]
    finally:
        srv.stop()
