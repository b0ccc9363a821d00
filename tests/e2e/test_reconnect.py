"""Issue 6: a browser whose connection drops mid-game comes back, takes its seat again
and the room still ends with both browsers' state hash equal to the server's replay.
Playwright routes the page's WebSocket through the test, so the test can cut it (both
ends close, as when a network goes away) and refuse reconnects for a while."""

from __future__ import annotations

from tests.e2e.browser import body, wait_stage
from tests.e2e.test_multiplayer import KEYS, finish, kitchen, mash_keys, open_pair


class Cable:
    def __init__(self):
        self.cut = False
        self.live = []

    def route(self, ws):
        server_side = ws.connect_to_server()
        if self.cut:  # no network: the reconnect attempt fails at once
            server_side.close()
            ws.close()
            return
        self.live.append((ws, server_side))

    def unplug(self):
        self.cut = True
        for page_side, server_side in self.live:
            server_side.close()
            page_side.close()
        self.live = []

    def plug(self):
        self.cut = False


def test_a_dropped_browser_reconnects_and_the_room_ends_in_sync(tmp_path, servers, new_page):
    server = servers(experiments_dir=kitchen(tmp_path, max_steps=300))
    cable = Cable()
    pages = open_pair(server, new_page, sockets=[cable.route])
    (dropped, _), (partner, _) = pages
    mash_keys(pages, rounds=8)
    dropped.wait_for_function("Number(document.body.dataset.frame) > 60")

    cable.unplug()
    partner.wait_for_selector("body[data-partner=reconnecting]", state="attached", timeout=10000)
    dropped.wait_for_selector("body[data-seat=reconnecting]", state="attached", timeout=10000)
    dropped.wait_for_timeout(2000)  # offline for a while: both games stall at the prediction window
    cable.plug()
    dropped.wait_for_selector("body[data-seat=back]", state="attached", timeout=15000)
    partner.wait_for_selector("body[data-partner=back]", state="attached", timeout=10000)
    mash_keys(pages, rounds=8)

    info, rooms = finish(pages, server)
    a, b = info
    assert a["state-hash"] == b["state-hash"] == a["replay-hash"], info
    assert a["room-status"] == b["room-status"] == "completed", info
    assert a["outcome"] == b["outcome"] == "completed", info
    assert int(a["disconnects"]) >= 1 and b["disconnects"] == "0", info
    assert body(dropped, "rejoins") == "1"
    assert rooms[0][0] == "completed" and rooms[0][1] == 299
    counts = server.query("SELECT count(*), min(frame), max(frame) FROM steps GROUP BY episode_id")
    assert sorted(counts) == [(300, 0, 299), (300, 0, 299)]


def test_a_closed_tab_is_replaced_by_a_stand_in_and_the_partner_finishes_in_sync(tmp_path, servers, new_page):
    mp = {"network_from_url": True, "hash_every": 30, "reconnect_timeout": 2, "dropout": "stand_in"}
    server = servers(experiments_dir=kitchen(tmp_path, max_steps=240, multiplayer=mp))
    pages = open_pair(server, new_page)
    mash_keys(pages, rounds=6)
    (leaver, _), (stayer, watch) = pages
    leaver.close()  # the participant closes the tab: no reconnect comes
    stayer.wait_for_selector("body[data-partner=reconnecting]", state="attached", timeout=10000)
    stayer.wait_for_selector("body[data-partner=stand_in]", state="attached", timeout=10000)
    for k in range(8):
        stayer.keyboard.press(KEYS[k % len(KEYS)])
        stayer.wait_for_timeout(90)
    assert wait_stage(stayer, "done", "error", timeout=120) == "done", watch.dump()
    stayer.wait_for_selector("body[data-room-status]", state="attached", timeout=15000)
    assert body(stayer, "outcome") == "completed"
    assert body(stayer, "room-status") == "completed"
    assert body(stayer, "state-hash") == body(stayer, "replay-hash")
    status, end_frame = server.query("SELECT status, end_frame FROM rooms")[0]
    assert (status, end_frame) == ("completed", 239)
    assert server.query("SELECT kind FROM events WHERE kind='stand_in'") == [("stand_in",)]


def test_past_the_window_the_partner_gets_the_message_and_partial_code(tmp_path, servers, new_page):
    mp = {"network_from_url": True, "reconnect_timeout": 2, "dropout": "end",
          "dropout_message": "Your partner left, sorry.", "dropout_completion_code": "PARTIAL-7"}
    server = servers(experiments_dir=kitchen(tmp_path, max_steps=900, multiplayer=mp))
    pages = open_pair(server, new_page)
    mash_keys(pages, rounds=4)
    (leaver, _), (stayer, watch) = pages
    leaver.close()
    assert wait_stage(stayer, "done", "error", timeout=30) == "done", watch.dump()
    assert body(stayer, "outcome") == "partner_left"
    assert body(stayer, "completion-code") == "PARTIAL-7"
    text = stayer.evaluate("document.body.innerText")
    assert "Your partner left, sorry." in text and "PARTIAL-7" in text
    status, reason = server.query("SELECT status, end_reason FROM rooms")[0]
    assert status == "abandoned" and reason.endswith("dropped out")
