"""RGB frames in the worker: worker/frames.py, EnvHost.render and the Dispatcher's binary
replies, protocol.messages.image_items (CPython)."""

import itertools
import json

import numpy as np
import pytest

from protocol import messages as m
from worker.dispatcher import Dispatcher
from worker.frames import EXPECTED, FrameError, rgb_frame, to_rgba

RED, BLUE = b"\xff\x00\x00", b"\x00\x00\xff"
# 2 rows × 3 columns: red, red, blue / blue, blue, red
TWO_BY_THREE = RED + RED + BLUE + BLUE + BLUE + RED


def rgba_of(rgb):
    return b"".join(rgb[i:i + 3] + b"\xff" for i in range(0, len(rgb), 3))


@pytest.mark.parametrize("shape", [[2, 3], (2, 3), [2, 3, 3]])
@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_bytes_form(kind, shape):
    w, h, rgb = rgb_frame({"rgb": kind(TWO_BY_THREE), "shape": shape})
    assert (w, h) == (3, 2)
    assert bytes(to_rgba(rgb, w, h)) == rgba_of(TWO_BY_THREE)


def test_numpy_form_keeps_row_order():
    array = np.frombuffer(TWO_BY_THREE, dtype=np.uint8).reshape(2, 3, 3)
    w, h, rgb = rgb_frame(array)
    assert (w, h) == (3, 2) and bytes(to_rgba(rgb, w, h)) == rgba_of(TWO_BY_THREE)
    # a transposed (non-contiguous) view is read in its own row order, not memory order
    view = array.transpose(1, 0, 2)
    w, h, rgb = rgb_frame(view)
    assert (w, h) == (2, 3)
    assert bytes(to_rgba(rgb, w, h)) == rgba_of(np.ascontiguousarray(view).tobytes())


def test_large_frame_converts_exactly():
    h, w = 400, 600
    array = (np.arange(h * w * 3, dtype=np.uint32) % 251).astype(np.uint8).reshape(h, w, 3)
    width, height, rgb = rgb_frame(array)
    assert (width, height) == (w, h)
    rgba = np.frombuffer(bytes(to_rgba(rgb, w, h)), dtype=np.uint8).reshape(h, w, 4)
    assert (rgba[:, :, :3] == array).all() and (rgba[:, :, 3] == 255).all()


def test_drawables_are_not_frames():
    assert rgb_frame([{"type": "rect", "x": 0, "y": 0, "w": 1, "h": 1}]) is None
    assert rgb_frame({"score": 3}) is None


@pytest.mark.parametrize("value, says", [
    (np.zeros((2, 3, 3), dtype=np.float32), "dtype float32"),
    (np.zeros((2, 3), dtype=np.uint8), "shape (2, 3)"),
    (np.zeros((2, 3, 4), dtype=np.uint8), "shape (2, 3, 4)"),
    (np.zeros((0, 3, 3), dtype=np.uint8), "shape (0, 3, 3)"),
    ({"rgb": TWO_BY_THREE[:-1], "shape": [2, 3]}, "17 bytes for shape [2, 3] (18 expected)"),
    ({"rgb": TWO_BY_THREE, "shape": [3, 2, 4]}, "3 channels expected"),
    ({"rgb": TWO_BY_THREE, "shape": [18]}, "shape [18]"),
    ({"rgb": TWO_BY_THREE}, "shape None"),
    ({"rgb": TWO_BY_THREE, "shape": [2.0, 3]}, "shape [2.0, 3]"),
    ({"rgb": list(TWO_BY_THREE), "shape": [2, 3]}, '"rgb" of type list'),
    (TWO_BY_THREE, "bare bytes without a shape"),
])
def test_bad_frames_name_the_expected_form(value, says):
    with pytest.raises(FrameError) as err:
        rgb_frame(value)
    assert says in str(err.value) and EXPECTED in str(err.value)


# -- through the dispatcher -------------------------------------------------------------

STRIPES_ENV = """
class Stripes:
    # 4x2 frame: left half red, right half blue; green on odd frames instead of blue
    def reset(self, seed=None):
        self.t = 0
        return 0, {}
    def step(self, actions):
        self.t += 1
        if actions["p0"] == "bad":
            self.t = -1
        return self.t, 1.0, False, False, {}
    def render(self):
        if self.t < 0:
            return {"rgb": b"xx", "shape": [2, 4]}
        right = b"\\x00\\xff\\x00" if self.t % 2 else b"\\x00\\x00\\xff"
        row = b"\\xff\\x00\\x00" * 2 + right * 2
        return {"rgb": row * 2, "shape": [2, 4]}

def create_env(config):
    return Stripes()
"""


class FrameWorker:
    def __init__(self):
        self.texts, self.framed = [], []
        self.dispatcher = Dispatcher(self.texts.append, itertools.count(0, 1).__next__,
                                     post_frames=lambda text, frames: self.framed.append((text, frames)))
        self.next_id = 1
        self.request(m.RUN_INIT_CODE, code=STRIPES_ENV)

    def request(self, mtype, **fields):
        self.dispatcher.handle_text(json.dumps({"id": self.next_id, "type": mtype, **fields}))
        self.next_id += 1


def expected_rgba(t):
    right = b"\x00\xff\x00\xff" if t % 2 else b"\x00\x00\xff\xff"
    return (b"\xff\x00\x00\xff" * 2 + right * 2) * 2


def test_step_reply_carries_the_frame_as_binary():
    worker = FrameWorker()
    worker.request(m.RESET, seed=1)
    worker.request(m.STEP, actions={"p0": "noop"})
    assert len(worker.framed) == 2
    text, (pixels,) = worker.framed[1]
    reply = m.decode(text)
    assert reply["type"] == m.STEP_RESULT
    assert reply["render"] == [{"type": "image", "w": 4, "h": 2, "buffer": 0}]
    assert bytes(pixels) == expected_rgba(1)
    assert len(text) < 400  # the pixels are not in the JSON


def test_batch_reply_carries_one_buffer_per_rendered_frame():
    worker = FrameWorker()
    worker.request(m.RESET, seed=1, render=False)
    worker.request(m.BATCH, ops=[{"op": "snapshot"}, {"op": "step", "actions": {"p0": 0}, "render": True},
                                 {"op": "step", "actions": {"p0": 0}}, {"op": "render"}])
    text, frames = worker.framed[-1]
    reply = m.decode(text)
    items = m.image_items(reply)
    assert [item["buffer"] for item in items] == [0, 1]
    assert [bytes(f) for f in frames] == [expected_rgba(1), expected_rgba(2)]


def test_plain_replies_stay_strings_and_a_failed_frame_is_an_error():
    worker = FrameWorker()
    worker.request(m.RESET, seed=1, render=False)
    assert m.decode(worker.texts[-1])["type"] == m.RESET_RESULT and worker.framed == []
    worker.request(m.BATCH, ops=[{"op": "step", "actions": {"p0": 0}, "render": True},
                                 {"op": "step", "actions": {"p0": "bad"}, "render": True}])
    error = m.decode(worker.texts[-1])
    assert error["type"] == m.ERROR and "FrameError" in error["message"] and EXPECTED in error["message"]
    assert worker.framed == []
    worker.request(m.STEP, actions={"p0": 0})  # the failed batch's first frame is not carried over
    text, frames = worker.framed[-1]
    assert len(frames) == 1 and m.decode(text)["render"][0]["buffer"] == 0


def test_image_items_finds_renders_in_every_reply_shape():
    image = {"type": "image", "w": 1, "h": 1, "buffer": 0}
    assert m.image_items({"render": [image]}) == [image]
    assert m.image_items({"render": [{"type": "rect"}]}) == []
    batch = {"results": [{"frame": 1}, {"frame": 2, "render": [dict(image, buffer=1)]}]}
    assert m.image_items(batch) == [dict(image, buffer=1)]
    assert m.image_items({"frame": 3}) == []
