"""In-play screening (server/study/inplay.py): the RTT window and the tab-away thresholds,
each warning before excluding; the settings' errors name their field; an exclusion is
stored with its reason and figures and ends the participant's progress and episode."""

from __future__ import annotations

import asyncio
import json
import sqlite3

import pytest

from server.data.storage import Store
from server.study.experiment import load_experiment
from server.study.inplay import InPlay, Watch
from server.study.screening import DuringPlay
from tests.servers import write_experiment
from tests.unit.test_game_scenes import error_of


def rtts(watch, rules, values, episode="e1"):
    """The findings of a run of pings, as (action, rule) per ping (None: nothing)."""
    out = []
    for value in values:
        found = watch.observe(rules, {"rtt_ms": value, "hidden": False, "episode_id": episode}, 0.0)
        out.append(tuple((f.action, f.rule) for f in found) or None)
    return out


def test_a_window_of_slow_pings_in_a_row_warns_and_the_next_one_excludes():
    rules = DuringPlay(max_rtt_ms=200, rtt_window=3)
    watch = Watch()
    seen = rtts(watch, rules, [50, 250, 300, 120,  # a fast ping breaks the run: nothing yet
                               201, 400, 500,  # three in a row: the warning
                               300, 300, 100, 300, 300,  # broken again
                               300])  # the second run of three: excluded
    assert seen == [None] * 6 + [(("warn", "rtt"),)] + [None] * 5 + [(("exclude", "rtt"),)]


def test_the_limit_itself_is_not_a_violation_and_the_figures_are_the_run():
    rules = DuringPlay(max_rtt_ms=200, rtt_window=2)
    watch = Watch()
    assert rtts(watch, rules, [200, 200, 200]) == [None, None, None]
    watch.observe(rules, {"rtt_ms": 250.04}, 0.0)
    (warning,) = watch.observe(rules, {"rtt_ms": 610}, 0.0)
    assert warning.figures == {"rtt_ms": [250.0, 610], "max_rtt_ms": 200, "rtt_window": 2}
    assert warning.reason == "rtt: 2 pings in a row over 200 ms (median 610 ms)"


def test_the_rtt_warning_holds_across_episodes_but_the_run_starts_afresh():
    rules = DuringPlay(max_rtt_ms=100, rtt_window=2)
    watch = Watch()
    assert rtts(watch, rules, [500, 500], "e1")[-1] == (("warn", "rtt"),)
    assert rtts(watch, rules, [500], "e1") == [None]
    # a new episode: the half-run is forgotten, the warning is not
    assert rtts(watch, rules, [500, 500], "e2") == [None, (("exclude", "rtt"),)]


def test_without_max_rtt_nothing_is_counted():
    watch = Watch()
    assert rtts(watch, DuringPlay(tab_away_warn_s=5), [9000] * 20) == [None] * 20


def away(watch, rules, pings, episode="e1"):
    """pings: (time, hidden) pairs -> the findings per ping."""
    out = []
    for now, hidden in pings:
        found = watch.observe(rules, {"hidden": hidden, "rtt_ms": 1.0, "episode_id": episode}, now)
        out.append([(f.action, f.figures["hidden_s"]) for f in found] or None)
    return out


def test_a_tab_hidden_past_the_warning_then_past_the_exclusion():
    rules = DuringPlay(tab_away_warn_s=3, tab_away_exclude_s=6)
    watch = Watch()
    seen = away(watch, rules, [(0, False), (1, True), (2, True), (3.9, True), (4, True), (5, True),
                               (6.9, True), (7, True)])
    # timed from the first ping that saw it hidden (t=1): warned once at 3 s, excluded at 6 s
    assert seen == [None, None, None, None, [("warn", 3.0)], None, None, [("exclude", 6.0)]]


def test_each_absence_is_timed_and_warned_of_afresh():
    rules = DuringPlay(tab_away_warn_s=3, tab_away_exclude_s=10)
    watch = Watch()
    # a background tab's throttled pings: hidden at t=10, seen again only at t=18, back at t=19
    assert away(watch, rules, [(10, True), (18, True), (19, False)]) == [None, [("warn", 8.0)], None]
    # short absences add nothing up: each starts from zero
    assert away(watch, rules, [(20, True), (22, True), (23, False)] * 3) == [None] * 9
    assert away(watch, rules, [(30, True), (33, True), (40, True)]) == \
        [None, [("warn", 3.0)], [("exclude", 10.0)]]


def test_without_a_warning_threshold_a_long_absence_excludes_at_once():
    rules = DuringPlay(tab_away_exclude_s=10)
    watch = Watch()
    assert away(watch, rules, [(0, True), (9.5, True), (12, True)]) == [None, None, [("exclude", 12.0)]]


def test_a_new_episode_starts_the_absence_afresh():
    rules = DuringPlay(tab_away_exclude_s=5)
    watch = Watch()
    assert away(watch, rules, [(0, True), (4, True)], "e1") == [None, None]
    assert away(watch, rules, [(6, True), (9, True)], "e2") == [None, None]


@pytest.mark.parametrize("during_play, field", [
    ({"max_rtt_ms": 0}, "screening.during_play.max_rtt_ms"),
    ({"rtt_window": 0}, "screening.during_play.rtt_window"),
    ({"tab_away_warn_s": -1}, "screening.during_play.tab_away_warn_s"),
    ({"tab_away_warn_s": 10, "tab_away_exclude_s": 5}, "screening.during_play.tab_away_exclude_s"),
    ({"max_rtt": 100}, "screening.during_play.max_rtt"),
])
def test_a_bad_during_play_setting_names_the_field(tmp_path, during_play, field):
    from tests.unit.test_policies import write

    message = error_of(write(tmp_path, {}, {}, screening={"during_play": during_play}))
    assert field in message, message


class Seats:
    def __init__(self):
        self.excluded = []

    async def __call__(self, sid, session, reason):
        self.excluded.append((sid, reason))


def test_an_exclusion_is_stored_and_ends_the_progress_and_the_episode(tmp_path):
    db = tmp_path / "inplay.sqlite"
    path = write_experiment(tmp_path, "catch", screening={
        "during_play": {"max_rtt_ms": 100, "rtt_window": 1, "tab_away_warn_s": 2},
        "message": "Sorry.", "completion_code": "OUT-1"}) / "experiment.py"
    exp = load_experiment(path)
    clock = iter([0.0, 1.0, 2.5, 3.0, 4.0, 5.0, 6.0])

    async def run():
        store = Store(db)
        await store.open()
        seats = Seats()
        inplay = InPlay(store, {"catch": exp}, seats, clock=lambda: next(clock))
        session = {"participant_id": "p1", "experiment": "catch"}
        await store.upsert_participant("p1", "catch", {})
        await store.start_episode("ep1", "p1", "catch", 7, {}, "game-0", 0)
        vitals = {"scene": "game-0", "episode_id": "ep1", "frame": 40, "rtt_ms": 5.0, "hidden": True}
        replies = [await inplay.check("s1", session, vitals)]  # hidden from t=0
        replies.append(await inplay.check("s1", session, {**vitals, "frame": 70}))  # 1 s: nothing yet
        replies.append(await inplay.check("s1", session, {**vitals, "frame": 100}))  # 2.5 s: warned
        replies.append(await inplay.check("s1", {"participant_id": "p1", "experiment": "catch"},
                                          {"rtt_ms": 900.0}))  # not a game's ping: never checked
        replies.append(await inplay.check("s1", session, {**vitals, "hidden": False, "frame": 130}))
        replies.append(await inplay.check("s1", session, {**vitals, "rtt_ms": 300.0, "hidden": False,
                                                          "frame": 160}))  # slow: the RTT warning
        replies.append(await inplay.check("s1", session, {**vitals, "rtt_ms": 301.0, "hidden": False,
                                                          "frame": 190}))  # slow again: excluded
        await store.close()
        return replies, seats.excluded

    replies, excluded = asyncio.run(run())
    assert [r and r["action"] for r in replies] == [None, None, "warn", None, None, "warn", "exclude"]
    assert replies[2]["rule"] == "tab_away" and replies[5]["rule"] == "rtt"
    assert replies[5]["message"].startswith("Your connection is slow")
    assert {k: replies[6][k] for k in ("message", "completion_code", "redirect")} == \
        {"message": "Sorry.", "completion_code": "OUT-1", "redirect": None}
    assert excluded == [("s1", "rtt: 1 pings in a row over 100 ms (median 301 ms)")]
    with sqlite3.connect(db) as conn:
        events = conn.execute("SELECT kind, episode_id, payload FROM events ORDER BY id").fetchall()
        progress = conn.execute("SELECT scene_index, outcome FROM progress").fetchall()
        episode = conn.execute("SELECT status, frames FROM episodes").fetchall()
    assert [(k, e) for k, e, _ in events] == [("inplay_warning", "ep1"), ("inplay_warning", "ep1"),
                                              ("inplay_excluded", "ep1")]
    tab, slow, out = (json.loads(p) for _, _, p in events)
    assert (tab["rule"], tab["hidden_s"], tab["frame"], tab["scene"]) == ("tab_away", 2.5, 100, "game-0")
    assert (slow["rule"], slow["rtt_ms"], slow["frame"]) == ("rtt", [300.0], 160)
    assert out["reason"].startswith("rtt: 1 pings") and out["frame"] == 190 and out["episode_id"] == "ep1"
    assert progress == [(1, "screened_out")]
    assert episode == [("excluded", 190)]


def test_a_page_ending_an_excluded_episode_keeps_its_status(tmp_path):
    async def run():
        store = Store(tmp_path / "x.sqlite")
        await store.open()
        await store.upsert_participant("p1", "catch", {})
        await store.start_episode("ep1", "p1", "catch", 7, {}, "game-0", 0)
        await store.exclude_episode("ep1", 50)
        await store.end_episode("ep1", "abandoned", 52, 3.0)
        await store.start_episode("ep2", "p1", "catch", 7, {}, "game-0", 1)
        await store.end_episode("ep2", "completed", 10, 1.0)
        await store.close()

    asyncio.run(run())
    with sqlite3.connect(tmp_path / "x.sqlite") as conn:
        assert conn.execute("SELECT id, status, frames FROM episodes ORDER BY id").fetchall() == \
            [("ep1", "excluded", 52), ("ep2", "completed", 10)]


def test_another_participants_episode_is_not_touched(tmp_path):
    path = write_experiment(tmp_path, "catch", screening={"during_play": {"tab_away_exclude_s": 1}})
    exp = load_experiment(path / "experiment.py")
    clock = iter([0.0, 5.0])

    async def run():
        store = Store(tmp_path / "y.sqlite")
        await store.open()
        for pid in ("p1", "p2"):
            await store.upsert_participant(pid, "catch", {})
        await store.start_episode("theirs", "p2", "catch", 7, {}, "game-0", 0)
        inplay = InPlay(store, {"catch": exp}, Seats(), clock=lambda: next(clock))
        session = {"participant_id": "p1", "experiment": "catch"}
        for _ in range(2):
            reply = await inplay.check("s1", session, {"scene": "game-0", "episode_id": "theirs",
                                                       "hidden": True})
        await store.close()
        return reply

    assert asyncio.run(run())["action"] == "exclude"
    with sqlite3.connect(tmp_path / "y.sqlite") as conn:
        assert conn.execute("SELECT status FROM episodes").fetchall() == [("running",)]
        assert conn.execute("SELECT episode_id FROM events").fetchall() == [(None,)]
