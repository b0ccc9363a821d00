"""In-play screening in Chromium: while a game runs, the page's RTT pings carry its vitals and
the server decides. A single-player participant whose round trips rise above the limit
(the page's network shaping, switched on mid-game) is warned, plays on, then is excluded; one
whose tab stays hidden is warned, comes back, then is excluded on the next long absence; in a
room the excluded seat goes to the room's dropout policy. Each warning and exclusion is
stored with its reason, figures, frame and episode; the episode ends ``excluded``."""

from __future__ import annotations

import json

import pytest

from tests.e2e.browser import body, wait_stage, wait_until
from tests.e2e.test_multiplayer import HIDE, kitchen, open_pair
from tests.servers import write_experiment

MESSAGE = "This study needs a steady connection and your full attention."


def catch(tmp_path, during_play):
    exps = tmp_path / "experiments"
    write_experiment(exps, "catch", env_config={"lives": 99}, max_steps=3000, upload_every=10,
                     screening={"during_play": during_play, "message": MESSAGE, "completion_code": "OUT-7"},
                     multiplayer={"network_from_url": True})
    return exps


def start(server, new_page):
    page, watch = new_page()
    page.goto(server.url + "/x/catch")
    assert wait_stage(page, "ready", "error", timeout=90) == "ready", watch.dump()
    page.keyboard.press(" ")
    assert wait_stage(page, "playing", "error") == "playing", watch.dump()
    return page, watch


def events(server, kind):
    return [(episode, json.loads(payload)) for episode, payload in server.query(
        "SELECT episode_id, payload FROM events WHERE kind = ? ORDER BY id", kind)]


def assert_excluded(page, watch, server, rule):
    """The page shows the screening's message and code; the server has the exclusion,
    the participant's progress ended and the episode ``excluded`` with its steps."""
    assert wait_stage(page, "done", "error", timeout=30) == "done", watch.dump()
    assert body(page, "outcome") == "screened_out" and body(page, "completion-code") == "OUT-7"
    assert MESSAGE in page.inner_text("#message-text")
    (episode_id, out), = events(server, "inplay_excluded")
    assert out["rule"] == rule and out["reason"].startswith(rule + ":") and out["episode_id"] == episode_id
    (eid, status, frames), = server.query("SELECT id, status, frames FROM episodes")
    assert (eid, status) == (episode_id, "excluded")
    assert out["frame"] > 0 and frames >= out["frame"]
    stored = [f for (f,) in server.query("SELECT frame FROM steps WHERE episode_id = ? ORDER BY frame", eid)]
    assert stored == list(range(1, frames + 1))  # every frame played, once
    assert server.query("SELECT outcome FROM progress") == [("screened_out",)]
    page.reload()  # still out: the progress ended on the server
    assert wait_stage(page, "done", "error", timeout=60) == "done"
    assert body(page, "outcome") == "screened_out" and MESSAGE in page.inner_text("#message-text")
    assert len(server.query("SELECT id FROM episodes")) == 1  # no second game
    return out


def test_a_connection_that_turns_slow_mid_game_is_warned_then_excluded(tmp_path, servers, new_page):
    server = servers(experiments_dir=catch(tmp_path, {"max_rtt_ms": 150, "rtt_window": 2}))
    page, watch = start(server, new_page)
    page.wait_for_timeout(3000)
    assert body(page, "play-warning") is None and body(page, "stage") == "playing"  # fast: nothing
    # the connection turns slow: the page's shaping (?delay=, honoured by this experiment) now
    # holds each ping's acknowledgement 2 x 200 ms on the server
    page.evaluate("history.replaceState(null, '', location.pathname + '?delay=200')")
    assert wait_until(lambda: body(page, "play-warning") == "rtt", 15), watch.dump()
    assert body(page, "stage") == "playing"  # warned, still playing
    assert page.inner_text("#hud").startswith("Your connection is slow")
    warned_at = int(body(page, "frame"))
    out = assert_excluded(page, watch, server, "rtt")
    (episode_id, warning), = events(server, "inplay_warning")
    assert warning["rule"] == "rtt" and warning["episode_id"] == episode_id and warning["frame"] > 0
    for seen in (warning, out):  # the run of round trips that decided it, each over the limit
        assert len(seen["rtt_ms"]) == 2 and min(seen["rtt_ms"]) > 350, seen
        assert seen["max_rtt_ms"] == 150 and seen["rtt_window"] == 2
    assert warning["frame"] <= warned_at < out["frame"]  # played on between the two


def test_a_tab_hidden_too_long_is_warned_then_excluded(tmp_path, servers, new_page):
    server = servers(experiments_dir=catch(tmp_path, {"tab_away_warn_s": 2, "tab_away_exclude_s": 5}))
    page, watch = start(server, new_page)
    page.evaluate(HIDE, True)
    assert wait_until(lambda: body(page, "play-warning") == "tab_away", 10), watch.dump()
    page.evaluate(HIDE, False)  # back in time: the warning is on screen, the game goes on
    assert page.inner_text("#hud").startswith("Please keep this tab in front")
    frame = int(body(page, "frame"))
    page.wait_for_timeout(3000)
    assert body(page, "stage") == "playing" and int(body(page, "frame")) > frame + 30
    assert events(server, "inplay_excluded") == []
    page.evaluate(HIDE, True)  # away again, for longer
    out = assert_excluded(page, watch, server, "tab_away")
    warnings = [w for _, w in events(server, "inplay_warning")]
    assert [w["rule"] for w in warnings] == ["tab_away", "tab_away"]  # once per absence
    assert all(2 <= w["hidden_s"] < 5 for w in warnings), warnings
    assert 5 <= out["hidden_s"] < 8 and out["frame"] > warnings[0]["frame"], out


@pytest.mark.parametrize("dropout", ["end", "stand_in"])
def test_an_excluded_player_leaves_the_room_to_its_dropout_policy(tmp_path, servers, new_page, dropout):
    exps = kitchen(tmp_path, max_steps=100000 if dropout == "end" else 450,
                   screening={"during_play": {"tab_away_exclude_s": 3}, "message": MESSAGE},
                   multiplayer={"network_from_url": True, "dropout": dropout,
                                "dropout_message": "Your partner had to leave the study.",
                                "dropout_completion_code": "PARTIAL-2"})
    server = servers(experiments_dir=exps)
    (hider, watch), (partner, partner_watch) = open_pair(server, new_page)
    hider.evaluate(HIDE, True)  # well within focus_loss_timeout (30 s): in-play screening acts first
    assert wait_stage(hider, "done", "error", timeout=20) == "done", watch.dump()
    assert body(hider, "outcome") == "screened_out" and MESSAGE in hider.inner_text("#message-text")
    (episode_id, out), = events(server, "inplay_excluded")
    assert out["rule"] == "tab_away" and out["hidden_s"] >= 3 and out["episode_id"] == episode_id
    player = body(hider, "player")
    if dropout == "end":  # the partner's game ends with the dropout message and code
        assert wait_stage(partner, "done", "error", timeout=20) == "done", partner_watch.dump()
        assert body(partner, "outcome") == "partner_left" and body(partner, "completion-code") == "PARTIAL-2"
        assert "Your partner had to leave the study." in partner.inner_text("#message-text")
        status, reason = server.query("SELECT status, end_reason FROM rooms")[0]
        assert status == "abandoned" and reason.startswith(player + ": excluded (tab_away:"), reason
    else:  # a stand-in plays the seat on, and the room still ends checked against the replay
        assert wait_until(lambda: body(partner, "partner") == "stand_in", 10), partner_watch.dump()
        assert wait_stage(partner, "done", "error", timeout=60) == "done", partner_watch.dump()
        assert body(partner, "outcome") == "completed"
        partner.wait_for_selector("body[data-room-status]", state="attached", timeout=15000)
        assert body(partner, "room-status") == "completed"
        assert body(partner, "state-hash") == body(partner, "replay-hash")
        (stand_in,) = [p for (p,) in server.query("SELECT payload FROM events WHERE kind = 'stand_in'")]
        assert json.loads(stand_in)["player"] == player
    statuses = dict(server.query("SELECT id, status FROM episodes"))
    assert statuses[episode_id] == "excluded"
    progress = server.query("SELECT outcome FROM progress WHERE participant_id = "
                            "(SELECT participant_id FROM episodes WHERE id = ?)", episode_id)
    assert progress == [("screened_out",)]
