"""A reload never costs a game: a page reloaded mid-episode in a two-player room boots,
takes its seat back by the token kept for its participant, rebuilds the game from the seed
and the room's record, and plays on; its partner keeps playing meanwhile (within the
prediction window), and the room still ends checked against the server's replay."""

from __future__ import annotations

from tests.e2e.browser import STAGE_RECORDER, body, wait_stage, wait_until
from tests.e2e.test_multiplayer import KEYS, finish, kitchen, mash_keys, open_pair
from tests.servers import write_experiment


def test_a_page_reloaded_mid_game_takes_its_seat_back_and_the_room_completes(tmp_path, servers, new_page):
    mp = {"network_from_url": True, "hash_every": 30, "reconnect_timeout": 30}
    server = servers(experiments_dir=kitchen(tmp_path, max_steps=300, multiplayer=mp))
    pages = open_pair(server, new_page, init_script=STAGE_RECORDER)
    mash_keys(pages, rounds=10)
    (reloader, rwatch), (partner, pwatch) = pages
    before = {k: body(reloader, k) for k in ("player", "room")}
    frame_before = int(body(reloader, "frame"))
    reloader.reload()
    assert wait_stage(reloader, "playing", "error", timeout=60) == "playing", rwatch.dump()
    assert {k: body(reloader, k) for k in ("player", "room")} == before  # the same seat in the same room
    assert int(body(reloader, "resumed-at")) >= frame_before - 10
    for k in range(8):
        reloader.keyboard.press(KEYS[k % len(KEYS)])
        partner.keyboard.press(KEYS[(k + 2) % len(KEYS)])
        reloader.wait_for_timeout(90)
    info, rooms = finish(pages, server)
    a, b = info
    assert a["state-hash"] == b["state-hash"] == a["replay-hash"], info
    assert a["room-status"] == b["room-status"] == "completed" and rooms[0][0] == "completed"
    # the partner never left playing: from its first 'playing' on, only 'playing' until 'done'
    seen = partner.evaluate("window.__coplaySeen.stages")
    assert seen[seen.index("playing"):] == ["playing", "done"], seen
    # one episode per participant, every frame stored once; the resume is recorded
    counts = wait_until(lambda: sorted(server.query(
        "SELECT count(*), count(DISTINCT frame), min(frame), max(frame) FROM steps GROUP BY episode_id")), 15)
    assert counts == [(300, 300, 0, 299), (300, 300, 0, 299)], counts
    assert len(server.query("SELECT id FROM episodes")) == 2
    assert len(server.query("SELECT kind FROM events WHERE kind = 'resume'")) == 1
    assert rwatch.foreign_requests(server.url) == []


def test_a_single_player_reload_resumes_the_same_episode_at_the_frame_it_reached(tmp_path, servers, new_page):
    exps = tmp_path / "experiments"
    write_experiment(exps, "catch", env_config={"lives": 99}, max_steps=240, auto_start=True)
    server = servers(experiments_dir=exps)
    page, watch = new_page()
    page.goto(server.url + "/x/catch")
    assert wait_stage(page, "playing", "error", timeout=90) == "playing", watch.dump()
    for k in range(12):
        page.keyboard.press("ArrowLeft" if k % 3 else "ArrowRight")
        page.wait_for_timeout(100)
    reached = int(body(page, "frame"))
    page.reload()
    assert wait_stage(page, "playing", "error", timeout=60) == "playing", watch.dump()
    assert int(body(page, "resumed-at")) >= reached - 30  # at most the steps not yet uploaded
    assert wait_stage(page, "done", "error", timeout=60) == "done", watch.dump()
    tally = "SELECT count(*), count(DISTINCT frame), min(frame), max(frame) FROM steps"
    rows = wait_until(lambda: server.query(tally)[0][0] == 240 and server.query(tally), 15)
    assert rows == [(240, 240, 1, 240)], rows  # one episode, every frame once
    assert server.query("SELECT status FROM episodes") == [("completed",)]
    assert len(server.query("SELECT kind FROM events WHERE kind = 'resume'")) == 1
