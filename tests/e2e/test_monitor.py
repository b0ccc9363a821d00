"""The live monitor in Chromium, as a researcher uses it: signed in, they watch a room of
two real participant pages appear with each seat's RTT, end it with a reason (both pages
are told and the room is stored `ended` with it), and close the study (a new arrival sees
the closed message) and reopen it (the next arrival plays)."""

from __future__ import annotations

import json

from server.admin.password import hash_password
from tests.e2e.browser import body, wait_stage, wait_until
from tests.e2e.test_multiplayer import kitchen, open_pair

PASSWORD = "monitor test password"
HASH = hash_password(PASSWORD, n=2 ** 12)
REASON = "a participant asked to stop"


def sign_in(new_page, server):
    page, watch = new_page()
    page.goto(server.url + "/admin/login")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(server.url + "/admin/")
    page.goto(server.url + "/admin/monitor")
    page.wait_for_function("Number(document.body.dataset.pushes) >= 1", timeout=60_000)
    return page, watch


def pushes(page) -> int:
    return int(body(page, "pushes") or 0)


def test_a_researcher_watches_ends_a_room_and_closes_the_study(tmp_path, servers, new_page):
    server = servers(experiments_dir=kitchen(tmp_path, max_steps=20_000),
                     env={"COPLAY_ADMIN_PASSWORD_HASH": HASH})
    admin, watch = sign_in(new_page, server)
    study = "section[data-study=kitchen]"
    assert admin.locator(f"{study} tr[data-room]").count() == 0

    # a room appears live, each seat with the RTT its page reports
    pages = open_pair(server, new_page)
    admin.wait_for_selector(f"{study} tr[data-room]", timeout=15_000)
    room_id = admin.get_attribute(f"{study} tr[data-room]", "data-room")
    assert room_id == body(pages[0][0], "room") == body(pages[1][0], "room")
    admin.wait_for_function(
        "document.querySelectorAll('section[data-study=kitchen] tr[data-room] li[data-seat]').length == 2"
        " && [...document.querySelectorAll('li[data-seat]')].every(li => li.textContent.includes('RTT'))",
        timeout=15_000)
    before = pushes(admin)
    wait_until(lambda: pushes(admin) >= before + 2, timeout=10)  # pushed every second, unasked

    # end it, with a reason: both pages are told, the room is stored with the reason
    admin.once("dialog", lambda dialog: dialog.accept(REASON))
    admin.click(f"{study} tr[data-room] button[data-action=end_room]")
    for page, page_watch in pages:
        assert wait_stage(page, "done", "error", timeout=30) == "done", page_watch.dump()
        assert body(page, "outcome") == "partner_left"
        assert "researcher ended this game" in page.inner_text("#message-text")
    admin.wait_for_selector(f"{study} tr[data-room]", state="detached", timeout=10_000)
    assert body(admin, "last-action") == "end_room:ok"
    assert server.query("SELECT status, end_reason FROM rooms WHERE id = ?", room_id) == \
        [("ended", f"researcher: {REASON}")]

    # close the study: a new arrival is turned away with the closed message
    admin.click(f"{study} button[data-action=close_study]")
    admin.wait_for_selector(f"{study}[data-closed='1']", timeout=10_000)
    late, late_watch = new_page()
    late.goto(server.url + "/x/kitchen")
    assert wait_stage(late, "done", "error", timeout=60) == "done", late_watch.dump()
    assert body(late, "outcome") == "closed"
    assert "not taking new participants" in late.inner_text("#message-text")

    # reopen: the next arrival is let in
    admin.click(f"{study} button[data-action=reopen_study]")
    admin.wait_for_selector(f"{study}[data-closed='0']", timeout=10_000)
    again, again_watch = new_page()
    again.goto(server.url + "/x/kitchen")
    assert wait_stage(again, "ready", "error", timeout=90) == "ready", again_watch.dump()

    actions = [json.loads(p) for (p,) in server.query(
        "SELECT payload FROM events WHERE kind = 'admin_action' ORDER BY id")]
    assert [a["action"] for a in actions] == ["end_room", "close_study", "reopen_study"]
    assert actions[0]["room"] == room_id and actions[0]["reason"] == REASON
    assert all(a["admin"] and a["at"] > 0 for a in actions)
    assert watch.foreign_requests(server.url) == []
    assert not watch.errors, watch.dump()
    assert not [m for m in watch.console if "Content Security Policy" in m], watch.dump()
