"""An env whose render() returns RGB bytes is played in Chromium: the frames cross the
channel as binary, are drawn scaled onto the canvas, and the canvas pixels read back are
the colours the env produced — single player (worker and ?worker=0) and in a two-player
room, where frames come back inside rollback BATCH replies."""

from __future__ import annotations

import pytest

from tests.e2e.browser import body, wait_stage
from tests.e2e.test_multiplayer import open_pair
from tests.servers import write_experiment

# 8×4 pixels: top-left quarter red, bottom-left white, right half blue on even frames and
# green on odd ones. Pure Python (the browser has no numpy).
FRAMES_ENV = """
W, H = 8, 4
RED, WHITE, BLUE, GREEN = b"\\xff\\x00\\x00", b"\\xff\\xff\\xff", b"\\x00\\x00\\xff", b"\\x00\\xff\\x00"


class Frames:
    def __init__(self, config):
        self.t = 0

    def reset(self, seed=None):
        self.t = 0
        return 0, {}

    def step(self, actions):
        self.t += 1
        return self.t, 0.0, False, False, {"t": self.t}

    def render(self):
        right = (GREEN if self.t % 2 else BLUE) * (W // 2)
        top = RED * (W // 2) + right
        bottom = WHITE * (W // 2) + right
        return {"rgb": top * (H // 2) + bottom * (H // 2), "shape": [H, W]}


def create_env(config):
    return Frames(config)
"""

RED, WHITE, BLUE, GREEN = [255, 0, 0, 255], [255, 255, 255, 255], [0, 0, 255, 255], [0, 255, 0, 255]

# The canvas is 480×240, so each env pixel is a 60×60 block. Reading the frame number and
# the pixels in one evaluate is atomic: the page draws and sets data-frame without yielding.
READ = """() => {
  const c = document.getElementById('canvas');
  const ctx = c.getContext('2d');
  const px = (x, y) => Array.from(ctx.getImageData(x, y, 1, 1).data);
  return {frame: Number(document.body.dataset.frame), size: [c.width, c.height],
          topLeft: px(60, 30), bottomLeft: px(60, 210), right: px(420, 120),
          lastLeft: px(239, 30), firstRight: px(240, 30), lastTop: px(60, 119), firstBottom: px(60, 120)};
}"""


def experiment(tmp_path, **fields):
    exps = tmp_path / "experiments"
    write_experiment(exps, "frames", env_source=FRAMES_ENV, canvas=(480, 240), **fields)
    return exps


def sample(page, times=12, every_ms=170):
    seen = []
    for _ in range(times):
        seen.append(page.evaluate(READ))
        page.wait_for_timeout(every_ms)
    return seen


def check_layout(shot):
    assert shot["size"] == [480, 240]
    assert shot["topLeft"] == RED and shot["bottomLeft"] == WHITE
    assert shot["right"] in (BLUE, GREEN)
    # scaled without smoothing: the block edges are sharp, no blended pixel in between
    assert shot["lastLeft"] == RED and shot["firstRight"] == shot["right"]
    assert shot["lastTop"] == RED and shot["firstBottom"] == WHITE


@pytest.mark.parametrize("query", ["", "?worker=0"], ids=["worker", "main-thread"])
def test_rgb_frames_are_drawn_on_the_canvas(tmp_path, servers, new_page, query):
    server = servers(experiments_dir=experiment(tmp_path, max_steps=150, auto_start=True))
    page, watch = new_page()
    page.goto(server.url + "/x/frames" + query)
    assert wait_stage(page, "playing", "error", timeout=90) == "playing", watch.dump()
    shots = sample(page)
    assert wait_stage(page, "done", "error", timeout=30) == "done", watch.dump()
    for shot in shots:
        check_layout(shot)
        # the frame on the canvas is the one the page just stepped to
        assert shot["right"] == (GREEN if shot["frame"] % 2 else BLUE), shot
    assert {shot["frame"] % 2 for shot in shots if shot["frame"]} == {0, 1}, shots
    assert len({shot["frame"] for shot in shots}) > 6  # it was playing, not stuck
    assert watch.foreign_requests(server.url) == []
    assert not watch.errors, watch.errors


def test_rgb_frames_in_rollback_batches_of_a_two_player_room(tmp_path, servers, new_page):
    exps = experiment(tmp_path, players=["p0", "p1"], max_steps=150, start_key="Enter",
                      multiplayer={"hash_every": 30})
    server = servers(experiments_dir=exps)
    pages = open_pair(server, new_page, timeout=120, experiment="frames")
    shots = {i: sample(page, times=8) for i, (page, _) in enumerate(pages)}
    for page, watch in pages:
        assert wait_stage(page, "done", "error", timeout=60) == "done", watch.dump()
        page.wait_for_selector("body[data-room-status]", state="attached", timeout=15000)
    for i, (page, watch) in enumerate(pages):
        for shot in shots[i]:
            check_layout(shot)
        assert {tuple(s["right"]) for s in shots[i]} == {tuple(BLUE), tuple(GREEN)}, shots[i]
        assert body(page, "room-status") == "completed"
        assert body(page, "state-hash") == body(page, "replay-hash")
        assert watch.foreign_requests(server.url) == []
        assert not watch.errors, watch.errors
