"""Scene definitions are validated with precise errors; survey answers are checked
against their questions before anything is stored."""

from __future__ import annotations

import pytest

from server.study.experiment import ExperimentError, load_experiment
from server.study.flow import check_answers
from server.study.scenes import Survey
from server.transport.sockets import Rejected
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
    ([{"type": "game"}, {"type": "end", "shuffle": "g"}], "end scene cannot be in a shuffle group"),
    ([{"type": "game", "shuffle": "Not A Name"}], "scenes.0.game.shuffle"),
    ([{"type": "game"}, {"type": "survey", "questions": [
        {"id": "q", "kind": "text", "prompt": "?"}, {"id": "q", "kind": "text", "prompt": "?"}]}], "unique"),
    # more questions than one scene_done may answer: the participant's answers would be refused
    ([{"type": "game"}, {"type": "survey", "questions": [
        {"id": f"q{i}", "kind": "text", "prompt": "?"} for i in range(201)]}], "scenes.1.survey.questions"),
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


def test_condition_assignment_is_balanced_and_sticky(tmp_path):
    import asyncio

    from server.data.storage import Store

    async def scenario():
        store = Store(tmp_path / "c.sqlite")
        await store.open()
        names = ["easy", "hard", "mixed"]
        got = []
        for i in range(10):
            await store.upsert_participant(f"p{i}", "exp", {})
            got.append(await store.assign_condition(f"p{i}", "exp", names))
        again = await store.assign_condition("p3", "exp", names)
        await store.close()
        return got, again

    got, again = asyncio.run(scenario())
    assert got == ["easy", "hard", "mixed"] * 3 + ["easy"]  # least-used first, ties in listed order
    assert again == got[3]  # a returning participant keeps their condition
    assert max(got.count(n) for n in set(got)) - min(got.count(n) for n in set(got)) <= 1


def test_condition_env_config_overrides_the_experiment(tmp_path):
    exp = load_experiment(write_experiment(tmp_path, "c", env_config={"lives": 3, "speed": 1}, conditions=[
        {"name": "fast", "env_config": {"speed": 9}}, {"name": "slow"}]) / "experiment.py")
    assert exp.game("fast").env_config == {"lives": 3, "speed": 9}
    assert exp.game("slow").env_config == {"lives": 3, "speed": 1}
    assert exp.game(None).env_config == {"lives": 3, "speed": 1}
    with pytest.raises(ExperimentError, match="condition names must be unique"):
        load_experiment(write_experiment(tmp_path, "d", conditions=[{"name": "a"}, {"name": "a"}])
                        / "experiment.py")


def test_markdown_scenes_are_rendered_to_html(tmp_path):
    exp = load(tmp_path, [
        {"type": "consent", "format": "markdown", "html": "You will **play** a game.\n\n- fun\n- short"},
        {"type": "instructions", "format": "markdown", "pages": ["# Page one", "Use *arrows*"]},
        {"type": "game"},
    ])
    consent, instructions = exp.scenes[0], exp.scenes[1]
    assert "<strong>play</strong>" in consent.html and "<li>fun</li>" in consent.html
    assert instructions.pages == ["<h1>Page one</h1>", "<p>Use <em>arrows</em></p>"]


SHUFFLED = [{"type": "consent", "html": "x"},
            {"type": "instructions", "pages": ["a"], "id": "a", "shuffle": "blocks"},
            {"type": "instructions", "pages": ["b"], "id": "b", "shuffle": "blocks"},
            {"type": "game"},
            {"type": "instructions", "pages": ["c"], "id": "c", "shuffle": "blocks"},
            {"type": "end"}]


def test_shuffle_groups_trade_places_per_participant_and_stay_put_across_visits(tmp_path):
    exp = load(tmp_path, SHUFFLED)
    orders = {}
    for n in range(60):
        path = [s.id for s in exp.scenes_for(None, f"p{n}")]
        assert path == [s.id for s in exp.scenes_for(None, f"p{n}")]  # a reload sees the same path
        # only the group's own positions (1, 2, 4) move
        assert (path[0], path[3], path[5]) == ("consent-0", "game-3", "end-5")
        assert sorted(path[i] for i in (1, 2, 4)) == ["a", "b", "c"]
        orders[tuple(path[i] for i in (1, 2, 4))] = orders.get(tuple(path[i] for i in (1, 2, 4)), 0) + 1
    assert len(orders) == 6  # every order of three occurs among 60 participants
    assert [s.id for s in exp.scenes_for(None)] == ["consent-0", "a", "b", "game-3", "c", "end-5"]
