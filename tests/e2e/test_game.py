"""A participant opens the experiment, plays with the keyboard, and every step lands in SQLite."""

from __future__ import annotations

import json

from tests.e2e.browser import STAGE_RECORDER, body, wait_stage, wait_until
from tests.servers import write_experiment


def test_keyboard_play_is_recorded_in_sqlite(tmp_path, servers, new_page):
    exps = tmp_path / "experiments"
    write_experiment(exps, "catch", max_steps=150, env_config={"lives": 99}, upload_every=20)
    server = servers(experiments_dir=exps)
    page, watch = new_page(STAGE_RECORDER)
    page.goto(server.url + "/x/catch")

    assert wait_stage(page, "ready", "error") == "ready", watch.dump()
    assert body(page, "frame") == "0"
    page.keyboard.press(" ")
    wait_stage(page, "playing")
    page.keyboard.down("ArrowLeft")
    page.wait_for_timeout(1200)
    page.keyboard.up("ArrowLeft")
    page.keyboard.down("ArrowRight")
    page.wait_for_timeout(2000)
    page.keyboard.up("ArrowRight")
    assert wait_stage(page, "done", "error", timeout=30) == "done", watch.dump()
    assert body(page, "frame") == "150"
    assert wait_until(lambda: body(page, "saved") == "150", 10), body(page, "saved")

    rows = server.query("SELECT frame, actions, info, t_sent, t_worker_start, t_worker_end, t_received "
                        "FROM steps ORDER BY frame")
    assert [r[0] for r in rows] == list(range(1, 151))  # every frame, once, in order
    actions = [json.loads(r[1])["p0"] for r in rows]
    xs = [json.loads(r[2])["basket_x"] for r in rows]
    lefts = [i for i, a in enumerate(actions) if a == "left"]
    rights = [i for i, a in enumerate(actions) if a == "right"]
    assert len(lefts) > 10 and len(rights) > 10, actions
    # holding a key moved the basket that way (it starts centred at x=240)
    assert xs[lefts[-1]] < 240
    assert xs[rights[-1]] > xs[rights[0] - 1]
    # t_sent/t_recv are the page's clock, t_start/t_end the worker's (each timeOrigin + now()):
    # the two may differ by a constant of a millisecond or two (seen: 1-2 ms in a CI run), so one
    # constant offset must put every step's worker interval inside its page round trip
    for _, _, _, t_sent, t_start, t_end, t_recv in rows:
        assert t_sent <= t_recv and t_start <= t_end
    low = max(t_sent - t_start for *_, t_sent, t_start, _, _ in rows)
    high = min(t_recv - t_end for *_, _, _, t_end, t_recv in rows)
    assert low <= high + 0.05, (low, high)  # 0.05 ms: the clocks' resolution
    assert -5 < low and high < 5, (low, high)  # and the two clocks agree within a few ms

    seen = page.evaluate("window.__coplaySeen")
    assert seen["stages"] == ["loading", "installing", "ready", "playing", "done"]
    messages = seen["messages"]
    assert messages[0].startswith("Loading Pyodide…")
    assert any(m.startswith("Loading environment…") for m in messages)
    percents = [int(m.rsplit(" ", 1)[1].rstrip("%")) for m in messages]
    assert percents == sorted(percents) and percents[-1] == 100  # progress only moves forward

    episode = server.query("SELECT status, frames FROM episodes")
    assert episode == [("completed", 150)]
    assert not watch.errors, watch.errors


def test_everything_comes_from_the_server_origin(tmp_path, servers, new_page):
    exps = tmp_path / "experiments"
    write_experiment(exps, "catch", max_steps=30, auto_start=True)
    server = servers(experiments_dir=exps)
    for mode in ("", "?worker=0"):
        page, watch = new_page()
        page.goto(server.url + "/x/catch" + mode)
        assert wait_stage(page, "done", "error", timeout=90) == "done", watch.dump()
        assert len(watch.requests) > 10  # the recorder saw the page load
        assert watch.foreign_requests(server.url) == [], mode
