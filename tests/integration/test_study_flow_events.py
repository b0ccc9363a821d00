"""hello / scene_done over real Socket.IO: progress only moves forward one scene at a
time, survey answers are checked before they are stored, resends are harmless."""

from __future__ import annotations

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
