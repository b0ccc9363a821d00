"""Scene definitions are validated with precise errors; survey answers are checked
against their questions before anything is stored."""

from __future__ import annotations

import pytest

from server.experiment import ExperimentError, load_experiment
from server.flow import check_answers
from server.scenes import Survey
from server.sockets import Rejected
from tests.servers import write_experiment


def load(tmp_path, scenes):
    return load_experiment(write_experiment(tmp_path, "s", scenes=scenes) / "experiment.py")


def test_default_study_is_just_the_game(tmp_path):
    exp = load_experiment(write_experiment(tmp_path, "plain") / "experiment.py")
    assert [(s.type, s.id) for s in exp.scenes] == [("game", "game-0")]


def test_scene_ids_default_to_type_and_position(tmp_path):
    exp = load(tmp_path, [{"type": "consent", "html": "x"}, {"type": "game"}, {"type": "end"}])
    assert [s.id for s in exp.scenes] == ["consent-0", "game-1", "end-2"]


@pytest.mark.parametrize("scenes, message", [
    ([{"type": "survey", "questions": []}, {"type": "game"}], "scenes.0.survey.questions"),
    ([{"type": "quiz"}, {"type": "game"}], "scenes.0"),
    ([{"type": "consent"}, {"type": "game"}], "scenes.0.consent.html"),
    ([{"type": "end"}, {"type": "game"}], "an end scene may only be the last scene"),
    ([{"type": "consent", "html": "x"}], "must include a game scene"),
    ([{"type": "game", "id": "a"}, {"type": "consent", "html": "x", "id": "a"}], "used twice"),
    ([{"type": "game"}, {"type": "survey", "questions": [
        {"id": "q", "kind": "choice", "prompt": "?", "options": ["only"]}]}], "at least 2 options"),
    ([{"type": "game"}, {"type": "survey", "questions": [
        {"id": "q", "kind": "text", "prompt": "?"}, {"id": "q", "kind": "text", "prompt": "?"}]}], "unique"),
])
def test_bad_scenes_name_the_field(tmp_path, scenes, message):
    with pytest.raises(ExperimentError) as err:
        load(tmp_path, scenes)
    assert str(tmp_path / "s" / "experiment.py") in str(err.value)
    assert message in str(err.value)


SURVEY = Survey.model_validate({"type": "survey", "questions": [
    {"id": "fun", "kind": "likert", "prompt": "Fun?"},
    {"id": "hand", "kind": "choice", "prompt": "Hand?", "options": ["Left", "Right"]},
    {"id": "note", "kind": "text", "prompt": "Note?", "required": False},
]})


def test_valid_answers_pass_and_optional_ones_may_be_missing():
    assert check_answers(SURVEY, {"fun": "7", "hand": "Left"}) == {"fun": "7", "hand": "Left"}


@pytest.mark.parametrize("answers, message", [
    ({"hand": "Left"}, "'fun' needs an answer"),
    ({"fun": "8", "hand": "Left"}, "not one of its options"),
    ({"fun": "1", "hand": "Both"}, "not one of its options"),
    ({"fun": "1", "hand": "Left", "extra": "x"}, "unknown question"),
    ({"fun": "1", "hand": "Left", "note": "x" * 5001}, "longer than 5000"),
    (None, "needs an answer"),
])
def test_bad_answers_are_refused(answers, message):
    with pytest.raises(Rejected, match=message):
        check_answers(SURVEY, answers)
