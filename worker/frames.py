"""RGB frames returned by an env's render(): recognise them, check them, and turn them into
the RGBA bytes a canvas ImageData takes.

Two forms are accepted: an H×W×3 uint8 numpy array (what Gymnasium's
``render_mode="rgb_array"`` returns) and ``{"rgb": bytes, "shape": [H, W]}`` for envs
without numpy (the browser has none unless the experiment opts in to the CDN). numpy is
never imported: arrays are recognised by their type's module, so this runs anywhere.
"""

EXPECTED = ('an RGB frame must be an H×W×3 uint8 numpy array or {"rgb": bytes, "shape": [H, W]} '
            "with H*W*3 bytes (rows top to bottom, R, G, B per pixel)")


class FrameError(ValueError):
    """render() returned something that looks like a frame but is not a valid one."""


def _bad(what):
    return FrameError("render() returned " + what + "; " + EXPECTED)


def _size(shape):
    if not isinstance(shape, (list, tuple)) or len(shape) not in (2, 3):
        raise _bad("shape " + repr(shape))
    if len(shape) == 3 and shape[2] != 3:
        raise _bad("shape " + repr(shape) + " (3 channels expected)")
    h, w = shape[0], shape[1]
    for n in (h, w):
        if type(n) is not int or n < 1:  # a 0-sized ImageData throws in the page
            raise _bad("shape " + repr(shape))
    return w, h


def rgb_frame(value):
    """``(w, h, rgb)`` if ``value`` is an RGB frame, None if it is anything else
    (drawables). Raises FrameError, naming the expected form, for a malformed frame."""
    if isinstance(value, dict) and "rgb" in value:
        data = value["rgb"]
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise _bad('"rgb" of type ' + type(data).__name__)
        w, h = _size(value.get("shape"))
        if isinstance(data, memoryview):
            data = data.tobytes()  # strided slices below need a plain buffer
        if len(data) != w * h * 3:
            raise _bad(str(len(data)) + " bytes for shape " + repr(value.get("shape"))
                       + " (" + str(w * h * 3) + " expected)")
        return w, h, data
    if type(value).__module__ == "numpy" and hasattr(value, "shape"):
        shape = tuple(int(n) for n in value.shape)
        if len(shape) != 3 or shape[2] != 3 or str(value.dtype) != "uint8":
            raise _bad("a numpy array of shape " + repr(shape) + " and dtype " + str(value.dtype))
        w, h = _size(shape)
        return w, h, value.tobytes()  # C order: row by row, pixel by pixel
    if isinstance(value, (bytes, bytearray, memoryview)):
        raise _bad("bare bytes without a shape")
    return None


def to_rgba(rgb, w, h):
    """RGB bytes -> RGBA bytearray (opaque). Three strided slice copies run in C: no
    per-pixel Python loop, a few milliseconds for 600×400 even in Pyodide."""
    rgba = bytearray(b"\xff") * (w * h * 4)
    rgba[0::4] = rgb[0::3]
    rgba[1::4] = rgb[1::3]
    rgba[2::4] = rgb[2::3]
    return rgba
