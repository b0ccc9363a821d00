"""The replay viewer in Chromium: a signed-in researcher watches recorded games again, played
in the page's Pyodide worker from the seed and the recorded inputs.

Recorded once for the module, by real participant pages: a single-player catch episode and a
two-player kitchen room; and by python-socketio clients (as the relay's integration tests
play), a room that ended ``desync`` and one that ended ``replay_error``. Checked: the viewer's
final state hash equals the recorded one (the room's replay hash and both browsers' final
hashes; for the episode a CPython replay of its stored steps, computed here); seeking back and
forth shows exactly the frame playing straight through showed; a bad room opens at its first
bad frame; nobody but an admin gets the viewer or its data; the page requests nothing outside
the server's origin."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

import pytest

from server.admin.password import hash_password
from server.multiplayer.replay import replay
from server.replay_viewer.routes import VIEWER_CSP
from tests.e2e.browser import PageWatch, body, wait_stage, wait_until
from tests.e2e.test_multiplayer import mash_keys
from tests.integration.test_multiplayer_relay import clients, pair_up, send_inputs
from tests.servers import ROOT, RunningServer, start_server, write_experiment, write_kitchen

PASSWORD = "viewer test password"
TOKEN = "viewer-token-for-tests-only-0123"
CATCH_SOURCE = (ROOT / "experiments" / "catch" / "env.py").read_text()
KITCHEN_SOURCE = (ROOT / "experiments" / "kitchen" / "env.py").read_text()

# Raises in the server's replay only (its processes have FRAGILE_REPLAY set; the browser's
# Pyodide and this test's own CPython do not): a room of it ends replay_error at frame 24.
FRAGILE = '''
import os


class Env:
    def reset(self, seed=None):
        self.t = 0
        self.x = {"p0": 40, "p1": 200}
        return dict(self.x), {}

    def step(self, actions):
        self.t += 1
        if self.t == 25 and os.environ.get("FRAGILE_REPLAY"):
            raise RuntimeError("only in the server's replay")
        for p, a in actions.items():
            self.x[p] = (self.x[p] + {"left": -4, "right": 4}.get(a, 0)) % 240
        return dict(self.x), {"p0": 0, "p1": 0}, False, False, {"t": self.t}

    def render(self):
        return [{"type": "rect", "x": self.x[p], "y": 40 + 80 * i, "w": 20, "h": 20, "color": "#8cf"}
                for i, p in enumerate(("p0", "p1"))]


def create_env(config):
    return Env()
'''

# Reads its step limit from a file beside it: recorded under a generous limit, then the file is
# edited, so the viewer's own run of the env raises (as an env changed since the study would).
BRITTLE = '''
import os


class Env:
    def __init__(self):
        with open(os.path.join(os.path.dirname(__file__), "limit.txt")) as fh:
            self.limit = int(fh.read())

    def reset(self, seed=None):
        self.t, self.x = 0, 100
        return self.x, {}

    def step(self, actions):
        self.t += 1
        if self.t > self.limit:
            raise RuntimeError("past the limit of " + str(self.limit))
        self.x += {"left": -3, "right": 3}.get(actions["p0"], 0)
        return self.x, 0, False, False, {"t": self.t}

    def render(self):
        return [{"type": "rect", "x": self.x, "y": 100, "w": 10, "h": 10, "color": "#fc8"}]


def create_env(config):
    return Env()
'''

# what each drawn frame showed, by frame: the page puts {"frame", "render"} on data-render
RENDER_RECORDER = """
(() => {
  window.__shown = {};
  const note = () => {
    const r = document.body && document.body.dataset.render;
    if (r) window.__shown[JSON.parse(r).frame] = r;
  };
  new MutationObserver(note).observe(document, {subtree: true, attributes: true,
                                                attributeFilter: ['data-render']});
})();
"""


@dataclass
class Site:
    server: RunningServer
    episode: str = ""
    brittle: str = ""
    room: str = ""
    desync_room: str = ""
    fragile_room: str = ""
    fragile_hash: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def replay_hash(source: str, config: dict, players: list[str], seed: int, inputs: dict, end: int) -> str:
    return replay(source, config, players, seed, inputs, end, "noop")["hash"]


async def socket_rooms(site: Site) -> None:
    """A kitchen room whose browsers' hashes disagree at frame 30, and a fragile room."""
    server = site.server
    async with clients(server, "kitchen", 2) as (c0, c1):
        start = await pair_up(c0, c1)
        frames = range(2, 61)
        await asyncio.gather(send_inputs(c0, frames, "right"), send_inputs(c1, frames, "left"))
        inputs = {"p0": dict.fromkeys(frames, "right"), "p1": dict.fromkeys(frames, "left")}
        good = replay_hash(KITCHEN_SOURCE, {}, ["p0", "p1"], start["seed"], inputs, 60)
        await c0.call("state_hash", {"frame": 30, "hash": "1111111111111111"})
        await c1.call("state_hash", {"frame": 30, "hash": "2222222222222222"})
        await c0.call("state_hash", {"frame": 61, "hash": good, "final": True})
        await c1.call("state_hash", {"frame": 61, "hash": "0123456789abcdef", "final": True})
        assert (await c0.wait_for("room_result", timeout=30))[0]["status"] == "desync"
        site.desync_room = start["room"]
    async with clients(server, "fragile", 2) as (c0, c1):
        start = await pair_up(c0, c1)
        frames = range(0, 60)
        await asyncio.gather(send_inputs(c0, frames, "right"), send_inputs(c1, frames, "left"))
        inputs = {"p0": dict.fromkeys(frames, "right"), "p1": dict.fromkeys(frames, "left")}
        digest = replay_hash(FRAGILE, {}, ["p0", "p1"], start["seed"], inputs, 59)  # what a browser reports
        for c in (c0, c1):
            await c.call("state_hash", {"frame": 60, "hash": digest, "final": True})
        result = (await c0.wait_for("room_result", timeout=30))[0]
        assert result["status"] == "replay_error" and "(frame 24)" in result["replay_error"], result
        site.fragile_room, site.fragile_hash = start["room"], digest


@pytest.fixture(scope="module")
def site(browser, tmp_path_factory):
    work = tmp_path_factory.mktemp("viewer")
    exps = work / "experiments"
    write_experiment(exps, "catch", env_config={"lives": 99}, max_steps=150, auto_start=True)
    write_kitchen(exps, max_steps=240, multiplayer={"network_from_url": True, "hash_every": 30})
    write_experiment(exps, "fragile", env_source=FRAGILE, players=["p0", "p1"],
                     controls={"ArrowLeft": "left", "ArrowRight": "right"}, start_key="Enter")
    brittle = write_experiment(exps, "brittle", env_source=BRITTLE, env="env.py", max_steps=60,
                               auto_start=True)
    (brittle / "limit.txt").write_text("1000")
    server = start_server(work, experiments_dir=exps, env={
        "COPLAY_ADMIN_PASSWORD_HASH": hash_password(PASSWORD, n=2 ** 12), "COPLAY_ADMIN_TOKEN": TOKEN,
        "COPLAY_SECRET_KEY": "k" * 40, "FRAGILE_REPLAY": "1"})
    found = Site(server)
    contexts = []
    try:
        # the participants: one plays catch alone, two play the kitchen together
        pages = []
        for path in ("/x/catch", "/x/kitchen", "/x/kitchen", "/x/brittle"):
            ctx = browser.new_context()
            contexts.append(ctx)
            page = ctx.new_page()
            page.goto(server.url + path, wait_until="commit")
            pages.append((page, PageWatch(page)))
        (solo, _), *pair, (brittle_page, _) = pages
        for page, watch in pair:
            assert wait_stage(page, "ready", "error", timeout=120) == "ready", watch.dump()
        for page, _ in pair:
            page.keyboard.press("Enter")
        for page, watch in pair:
            assert wait_stage(page, "playing", "error", timeout=30) == "playing", watch.dump()
        for k in range(20):  # everyone presses keys: the records have inputs worth replaying
            solo.keyboard.press("ArrowLeft" if k % 3 else "ArrowRight")
            brittle_page.keyboard.press("ArrowRight" if k % 3 else "ArrowLeft")
            mash_keys(pair[k % 2:] + pair[:k % 2], rounds=1)
        for page, watch in pages:
            assert wait_stage(page, "done", "error", timeout=120) == "done", watch.dump()
        pair[0][0].wait_for_selector("body[data-room-status=completed]", state="attached", timeout=30000)
        found.room = body(pair[0][0], "room")
        found.extra["room_hashes"] = [body(page, "state-hash") for page, _ in pair]
        assert wait_until(lambda: body(solo, "saved") == "150", 15)
        stored = "SELECT episode_id FROM steps GROUP BY episode_id"
        assert wait_until(lambda: len(server.query(stored)) == 4, 15)
        found.episode = server.query("SELECT id FROM episodes WHERE experiment = 'catch'")[0][0]
        found.brittle = server.query("SELECT id FROM episodes WHERE experiment = 'brittle'")[0][0]
        (brittle / "limit.txt").write_text("20")  # the env as edited after the study
        # (Playwright's sync API holds this thread's event loop: the clients get a thread of their own)
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, socket_rooms(found)).result(timeout=120)
        yield found
    finally:
        for ctx in contexts:
            ctx.close()
        server.stop()


def admin_page(browser, server: RunningServer, init_script: str | None = None):
    """A researcher's browser, signed in through the login form."""
    ctx = browser.new_context()
    page = ctx.new_page()
    watch = PageWatch(page)
    page.goto(server.url + "/admin/login")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/admin/")
    if init_script:
        page.add_init_script(init_script)
    return ctx, page, watch


def open_viewer(page, watch, server, path: str):
    response = page.goto(server.url + path)
    assert response.status == 200
    assert wait_stage(page, "ready", "error", timeout=120) == "ready", watch.dump() + page.inner_text("body")
    return response


def seek(page, frame: int) -> None:
    before = int(body(page, "seeks") or 0)
    page.fill("#goto", str(frame))
    page.click("#go")
    assert wait_until(lambda: int(body(page, "seeks") or 0) > before, 10), (frame, body(page, "frame"))
    assert body(page, "frame") == str(frame)


def play_to_end(page, speed: str = "8") -> None:
    page.select_option("#speed", speed)
    page.click("#play")
    assert wait_until(lambda: body(page, "playing") == "1", 5)
    def at_end():
        return body(page, "playing") == "0" and body(page, "frame") == body(page, "frames")

    assert wait_until(at_end, 60), (body(page, "frame"), body(page, "frames"))


def test_a_recorded_episode_plays_through_to_its_recorded_hash(browser, site):
    server = site.server
    [(seed,)] = server.query("SELECT seed FROM episodes WHERE id = ?", site.episode)
    rows = server.query("SELECT frame, actions FROM steps WHERE episode_id = ? ORDER BY frame", site.episode)
    assert [f for f, _ in rows] == list(range(1, 151))
    inputs = {"p0": {f - 1: json.loads(a)["p0"] for f, a in rows}}
    expected = replay_hash(CATCH_SOURCE, {"lives": 99}, ["p0"], seed, inputs, 149)  # CPython, here

    ctx, page, watch = admin_page(browser, server)
    page.goto(server.url + "/admin/replay/catch/")
    page.click(f"tr[data-episode='{site.episode}'] a")
    assert wait_stage(page, "ready", "error", timeout=120) == "ready", watch.dump()
    assert (body(page, "frame"), body(page, "frames"), body(page, "opened-at")) == ("0", "150", "0")
    assert body(page, "final-hash") == expected  # the first pass, through every frame
    assert body(page, "recorded-hash") == expected and body(page, "hash-match") == "1"
    play_to_end(page)
    assert body(page, "state-hash") == expected  # played to the end
    assert "equals the server's replay" in page.inner_text("#notes")
    assert "p0" in page.inner_text("#frame-data")
    assert watch.foreign_requests(server.url) == [] and not watch.errors, watch.dump()
    ctx.close()


def test_a_room_opens_its_frames_and_plays_to_the_replays_hash(browser, site):
    server = site.server
    [(replay_digest, finals)] = server.query("SELECT replay_hash, final_hashes FROM rooms WHERE id = ?",
                                             site.room)
    assert set(json.loads(finals).values()) == {replay_digest} == set(site.extra["room_hashes"])
    ctx, page, watch = admin_page(browser, server)
    open_viewer(page, watch, server, f"/admin/replay/kitchen/room/{site.room}")
    assert (body(page, "frame"), body(page, "frames"), body(page, "opened-at")) == ("0", "240", "0")
    assert body(page, "final-hash") == replay_digest and body(page, "hash-match") == "1"
    page.keyboard.press("ArrowRight")
    assert wait_until(lambda: body(page, "frame") == "1", 5)
    # beside the canvas: the step's actions, and what each browser recorded, netcode metrics too
    panel = wait_until(lambda: "recorded by p1" in (text := page.inner_text("#frame-data")) and text, 10)
    assert "recorded by p0's browser" in panel and "rollbacks" in panel and "rtt_ms" in panel, panel
    seek(page, 120)
    play_to_end(page)
    assert body(page, "state-hash") == replay_digest
    # the episode a room's browser stored leads to the room
    [(eid,)] = server.query("SELECT id FROM episodes WHERE client LIKE ? LIMIT 1", f'%"{site.room}"%')
    page.goto(server.url + "/admin/replay/kitchen/")
    link = page.get_attribute(f"tr[data-episode='{eid}'] a", "href")
    assert link == f"/admin/replay/kitchen/room/{site.room}"
    assert watch.foreign_requests(server.url) == [] and not watch.errors, watch.dump()
    ctx.close()


def test_seeking_back_and_forth_shows_what_playing_straight_through_showed(browser, site):
    server = site.server
    ctx, page, watch = admin_page(browser, server, RENDER_RECORDER)
    open_viewer(page, watch, server, f"/admin/replay/kitchen/room/{site.room}")
    assert body(page, "every") == "30"
    play_to_end(page, speed="2")
    shown = {int(k): v for k, v in page.evaluate("window.__shown").items()}
    assert len(shown) > 60, sorted(shown)  # most frames were drawn on the way
    frames = sorted(shown)
    # backwards, forwards, onto keyframes and between them, the start and the end
    targets = [frames[-1], frames[len(frames) // 2], frames[3], 0, frames[len(frames) * 3 // 4], frames[1],
               frames[-1]] + [f for f in frames if f % 30 == 0][:3]
    for target in targets:
        seek(page, target)
        assert body(page, "render") == shown[target], target
    # a frame back and a frame forward, from the middle of a keyframe interval
    middle = next(f for f in frames if f % 30 == 17 and f - 1 in shown and f + 1 in shown)
    seek(page, middle)
    page.keyboard.press("ArrowLeft")
    assert wait_until(lambda: body(page, "frame") == str(middle - 1), 5)
    assert body(page, "render") == shown[middle - 1]
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    assert wait_until(lambda: body(page, "frame") == str(middle + 1), 5)
    assert body(page, "render") == shown[middle + 1]
    assert float(body(page, "seek-ms")) < 1000
    ctx.close()


def test_a_desync_or_replay_error_room_opens_at_its_first_bad_frame(browser, site):
    server = site.server
    ctx, page, watch = admin_page(browser, server)
    page.goto(server.url + "/admin/replay/kitchen/")
    assert page.inner_text(f"tr[data-room='{site.desync_room}'] td.bad").startswith("desync")
    open_viewer(page, watch, server, f"/admin/replay/kitchen/room/{site.desync_room}")
    assert (body(page, "opened-at"), body(page, "frame"), body(page, "frames")) == ("30", "30", "61")
    assert "state hashes disagree at frame 30" in page.inner_text("#notes")
    assert "disagree at frame 30" in page.inner_text("#frame-data")
    seek(page, 10)
    page.click("#to-problem")
    assert wait_until(lambda: body(page, "frame") == "30", 5)

    open_viewer(page, watch, server, f"/admin/replay/fragile/room/{site.fragile_room}")
    assert (body(page, "opened-at"), body(page, "frame"), body(page, "frames")) == ("24", "24", "60")
    notes = page.inner_text("#notes")
    assert "raised stepping from frame 24 to 25" in notes and "only in the server's replay" in notes, notes
    # the browser's Pyodide plays on past it, to the state the browsers reported
    assert body(page, "final-hash") == site.fragile_hash and body(page, "hash-match") == "1"
    assert watch.foreign_requests(server.url) == [] and not watch.errors, watch.dump()
    ctx.close()


def test_an_env_that_raises_in_the_viewer_ends_the_timeline_there(browser, site):
    server = site.server
    recorded = server.query("SELECT status, frames FROM episodes WHERE id = ?", site.brittle)
    assert recorded == [("completed", 60)]
    ctx, page, watch = admin_page(browser, server)
    open_viewer(page, watch, server, f"/admin/replay/brittle/episode/{site.brittle}")
    assert (body(page, "env-error-at"), body(page, "frames"), body(page, "frame")) == ("20", "20", "0")
    notes = page.inner_text("#notes")
    assert "stepping from frame 20 to 21" in notes and "past the limit of 20" in notes, notes
    assert body(page, "final-hash") is None  # the record's end was never reached
    seek(page, 7)
    page.fill("#goto", "50")
    page.click("#go")
    assert wait_until(lambda: body(page, "frame") == "20", 10)  # as far as the env goes
    seek(page, 3)
    play_to_end(page)
    assert body(page, "frame") == "20" and not watch.errors, watch.dump()
    ctx.close()


def fetch(url: str, headers: dict | None = None) -> tuple[int, Any, bytes]:
    """(status, headers (case-insensitive), body)."""
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def test_only_admins_get_the_viewer_and_its_data(browser, site, tmp_path):
    server = site.server
    base = f"/admin/replay/kitchen/room/{site.room}"
    paths = ["/admin/replay/kitchen/", base, base + "/data.json", base + "/frames.json?from=0&to=10",
             f"/admin/replay/catch/episode/{site.episode}/data.json"]
    for path in paths:  # no session, a forged one, a wrong token
        for headers in ({}, {"Cookie": "coplay_admin=forged.cookie.value"}, {"Authorization": "Bearer nope"}):
            status, _, content = fetch(server.url + path, headers)
            assert status == 401 and site.room.encode() not in content, (path, headers, status)
    # a participant's browser, not signed in
    ctx = browser.new_context()
    page = ctx.new_page()
    assert page.goto(server.url + base).status == 401
    assert body(page, "stage") is None  # no viewer booted
    ctx.close()
    # a script with the bearer token gets the data; unknown records are 404 (only to admins)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    status, headers, content = fetch(server.url + base + "/data.json", auth)
    record = json.loads(content)
    assert status == 200 and record["kind"] == "room"
    assert record["frames"] == len(record["inputs"]) == 240
    assert headers["Cache-Control"] == "no-store"
    status, _, content = fetch(server.url + base + "/frames.json?from=1&to=4", auth)
    assert [f["frame"] for f in json.loads(content)["frames"]] == [1, 2, 3]
    for path in ("/admin/replay/kitchen/room/nope", "/admin/replay/kitchen/room/nope/data.json",
                 f"/admin/replay/catch/room/{site.room}/data.json", "/admin/replay/nope/",
                 f"/admin/replay/kitchen/film/{site.room}"):
        assert fetch(server.url + path, auth)[0] == 404, path
    # the viewer runs PyScript under its own CSP; the other admin pages keep the strict one
    status, headers, _ = fetch(server.url + base, auth)
    assert status == 200 and headers["Content-Security-Policy"] == VIEWER_CSP
    assert "connect-src 'self'" in VIEWER_CSP and "default-src 'none'" in VIEWER_CSP
    status, headers, _ = fetch(server.url + "/admin/replay/kitchen/", auth)
    assert status == 200 and headers["Content-Security-Policy"].startswith("default-src 'none'; style-src")
    # with admin access off, nothing is there at all
    work = tmp_path / "no-admin"
    work.mkdir()
    exps = work / "experiments"
    write_kitchen(exps)
    closed = start_server(work, experiments_dir=exps)
    try:
        for path in paths[:4]:
            assert fetch(closed.url + path)[0] == 404, path
            assert fetch(closed.url + path, auth)[0] == 404, path
    finally:
        closed.stop()
