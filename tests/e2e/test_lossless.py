"""Steps a page could not deliver (the server went away mid-episode) are kept in the
browser and delivered after the server is back and the page reloads: none lost, none twice."""

from __future__ import annotations

from tests.e2e.browser import body, wait_stage, wait_until
from tests.servers import start_server, write_experiment


def test_steps_survive_a_server_outage_and_a_reload(tmp_path, new_page):
    exps = tmp_path / "experiments"
    write_experiment(exps, "catch", max_steps=150, auto_start=True, env_config={"lives": 99}, upload_every=10)
    workdir = tmp_path / "srv"
    workdir.mkdir()
    server = start_server(workdir, experiments_dir=exps)
    try:
        page, watch = new_page()
        page.goto(server.url + "/x/catch")
        assert wait_stage(page, "playing", "error", timeout=60) == "playing", watch.dump()
        page.wait_for_function("Number(document.body.dataset.frame) > 40")
        server.stop()  # mid-episode: the game goes on in the browser
        page.wait_for_selector("body[data-saving=waiting]", state="attached", timeout=60000)
        assert body(page, "frame") == "150"
        saved_offline = int(body(page, "saved") or 0)
        assert saved_offline < 150

        server = start_server(workdir, experiments_dir=exps, port=server.port)  # same database
        assert wait_stage(page, "done", "error", timeout=60) == "done", watch.dump()
        first_episode = server.query("SELECT id FROM episodes ORDER BY started LIMIT 1")[0][0]
        page.reload()  # the next page load delivers what was kept
        page.wait_for_selector("body[data-resent]", state="attached", timeout=60000)
        assert int(body(page, "resent")) == 150 - saved_offline
        frames = wait_until(lambda: [f for (f,) in server.query(
            "SELECT frame FROM steps WHERE episode_id=? ORDER BY frame", first_episode)], 10)
        assert frames == list(range(1, 151))
        assert page.evaluate("Object.keys(localStorage).filter(k => k.startsWith('coplay:unsent:'))"
                             ".length") <= 1  # only the new episode's in-progress batch, if any
    finally:
        server.stop()
