"""Entry screening in Chromium: before the first scene the page reports what it runs on and
the server decides; a phone is screened out with the experiment's message, so is a
participant whose pings are slow (the relay's network shaping), and both are stored with
the reason; a reload shows the message again; a desktop on a fast connection goes on."""

from __future__ import annotations

import json

from tests.e2e.browser import PageWatch, body, wait_stage
from tests.servers import write_experiment

PHONE = ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
         "Chrome/156.0.0.0 Mobile Safari/537.36")
RULES = {"mobile": False, "max_ping_ms": 150, "pings": 3, "min_window": [600, 400],
         "message": "This study needs a computer with a steady connection.", "completion_code": "SCREENED-1"}


def screened_experiment(tmp_path):
    exps = tmp_path / "experiments"
    write_experiment(exps, "catch", env_config={"lives": 3}, max_steps=30, auto_start=True,
                     screening=RULES, multiplayer={"network_from_url": True})
    return exps


def open_with(browser, url, **context):
    ctx = browser.new_context(**context)
    page = ctx.new_page()
    watch = PageWatch(page)
    page.goto(url)
    return ctx, page, watch


def screened(server):
    return [json.loads(p)["reason"] for (p,) in server.query(
        "SELECT payload FROM events WHERE kind = 'screened_out' ORDER BY id")]


def test_a_phone_and_a_slow_connection_are_screened_out_with_the_reason_stored(tmp_path, servers, browser):
    server = servers(experiments_dir=screened_experiment(tmp_path))
    ctx, phone, watch = open_with(browser, server.url + "/x/catch", user_agent=PHONE)
    assert wait_stage(phone, "done", "error", timeout=60) == "done", watch.dump()
    assert body(phone, "outcome") == "screened_out" and body(phone, "completion-code") == "SCREENED-1"
    assert RULES["message"] in phone.inner_text("#message-text")
    phone.reload()  # still out: the server remembers
    assert wait_stage(phone, "done", "error", timeout=60) == "done"
    assert body(phone, "outcome") == "screened_out"
    ctx.close()
    ctx, slow, watch = open_with(browser, server.url + "/x/catch?delay=200")
    assert wait_stage(slow, "done", "error", timeout=60) == "done", watch.dump()
    assert body(slow, "outcome") == "screened_out"
    ctx.close()
    reasons = screened(server)
    assert reasons[0] == "device: phone or tablet" and reasons[1].startswith("connection: median ping")
    assert len(reasons) == 2  # the reload was not screened (or stored) twice
    ctx, fine, watch = open_with(browser, server.url + "/x/catch")
    assert wait_stage(fine, "done", "error", timeout=90) == "done", watch.dump()
    assert body(fine, "outcome") != "screened_out"
    assert len(server.query("SELECT id FROM episodes")) == 1  # only the admitted one played
    ctx.close()
