"""Steps a page could not deliver (the server went away mid-episode) are kept in the
browser's outbox and delivered once the server is back: while the tab stays open, or by
the next page load when the participant closed it. None lost, none twice."""

from __future__ import annotations

from tests.e2e.browser import PageWatch, body, wait_stage, wait_until
from tests.servers import start_server, write_experiment


def _outage_mid_episode(tmp_path, new_page):
    exps = tmp_path / "experiments"
    write_experiment(exps, "catch", max_steps=150, auto_start=True, env_config={"lives": 99}, upload_every=10)
    workdir = tmp_path / "srv"
    workdir.mkdir()
    server = start_server(workdir, experiments_dir=exps)
    page, watch = new_page()
    page.goto(server.url + "/x/catch")
    assert wait_stage(page, "playing", "error", timeout=60) == "playing", watch.dump()
    page.wait_for_function("Number(document.body.dataset.frame) > 40")
    server.stop()  # mid-episode: the game goes on in the browser
    page.wait_for_selector("body[data-saving=waiting]", state="attached", timeout=60000)
    page.wait_for_function("document.body.dataset.frame === '150'")
    saved_offline = int(body(page, "saved") or 0)
    assert saved_offline < 150
    # the participant is held on a saving screen, not thanked and let go
    assert wait_stage(page, "saving", "done", "error", timeout=30) == "saving", watch.dump()
    return exps, workdir, server, page, watch, saved_offline


def _frames(server):
    episode = server.query("SELECT id FROM episodes ORDER BY started LIMIT 1")[0][0]
    return [f for (f,) in server.query("SELECT frame FROM steps WHERE episode_id=? ORDER BY frame", episode)]


def test_steps_are_delivered_when_the_server_comes_back_while_the_tab_is_open(tmp_path, new_page):
    exps, workdir, server, page, watch, _ = _outage_mid_episode(tmp_path, new_page)
    server = start_server(workdir, experiments_dir=exps, port=server.port)  # same database
    try:
        assert wait_stage(page, "done", "error", timeout=60) == "done", watch.dump()
        assert body(page, "saving") == "ok" and body(page, "saved") == "150"
        assert wait_until(lambda: _frames(server) == list(range(1, 151)), 10), _frames(server)
        assert server.query("SELECT status, frames FROM episodes") == [("completed", 150)]
        assert page.evaluate("Object.keys(localStorage).filter(k => k.startsWith('coplay:out:')"
                             " || k.startsWith('coplay:open:')).length") == 0
    finally:
        server.stop()


def test_steps_left_in_a_closed_tab_are_delivered_by_the_next_page_load(tmp_path, new_page):
    exps, workdir, server, page, watch, saved_offline = _outage_mid_episode(tmp_path, new_page)
    context = page.context
    page.close()  # the participant gives up while the server is away
    server = start_server(workdir, experiments_dir=exps, port=server.port)  # same database
    try:
        again = context.new_page()  # same browser profile: same localStorage, same participant
        watch = PageWatch(again)
        again.goto(server.url + "/x/catch")
        again.wait_for_selector("body[data-resent]", state="attached", timeout=60000)
        assert int(body(again, "resent")) == 150 - saved_offline
        assert wait_until(lambda: _frames(server) == list(range(1, 151)), 10), _frames(server)
        # the earlier load's scene result went first: this participant has finished
        assert wait_stage(again, "done", "error", timeout=60) == "done", watch.dump()
        assert body(again, "outcome") == "already_completed"
        assert server.query("SELECT status, frames FROM episodes") == [("completed", 150)]
    finally:
        server.stop()


# A browser whose localStorage is full (a long outage can fill a site's quota): every
# setItem of ours throws QuotaExceededError, as Chromium does at the quota.
FULL_STORAGE = """
const realSetItem = Storage.prototype.setItem;
Storage.prototype.setItem = function (key, value) {
  if (String(key).startsWith('coplay:out:') || String(key).startsWith('coplay:open:')) {
    throw new DOMException('The quota has been exceeded.', 'QuotaExceededError');
  }
  return realSetItem.call(this, key, value);
};
"""


def test_a_full_storage_quota_neither_stops_the_game_nor_loses_a_step(tmp_path, servers, new_page):
    exps = tmp_path / "experiments"
    write_experiment(exps, "catch", max_steps=90, auto_start=True, env_config={"lives": 99}, upload_every=10)
    server = servers(experiments_dir=exps)
    page, watch = new_page(FULL_STORAGE)
    page.goto(server.url + "/x/catch")
    assert wait_stage(page, "done", "error", timeout=90) == "done", watch.dump()
    assert int(body(page, "spilled")) > 0  # our writes were refused and kept in memory instead
    assert body(page, "saved") == "90"
    assert wait_until(lambda: _frames(server) == list(range(1, 91)), 10), _frames(server)
    assert server.query("SELECT status, frames FROM episodes") == [("completed", 90)]
