"""The frames benchmark's scene: 600×400 pixels, a background and 24 blocks moving every
step. ``env_config["mode"]`` picks how it is drawn: ``"rgb"`` returns the frame as RGB
bytes (``{"rgb", "shape"}``), ``"rects"`` the same scene as 25 rect drawables. Pure
Python: it runs in the browser's Pyodide, which has no numpy."""

W, H = 600, 400
BLOCKS = 24
BLOCK_W, BLOCK_H = 40, 30
BACKGROUND = (20, 24, 36)


def _hex(rgb):
    return "#{:02x}{:02x}{:02x}".format(*rgb)


class Scene:
    def __init__(self, config):
        self.mode = config.get("mode", "rgb")
        self.t = 0
        self.colors = [((37 * i) % 256, (91 * i + 60) % 256, (53 * i + 120) % 256) for i in range(BLOCKS)]

    def reset(self, seed=None):
        self.t = 0
        return 0, {}

    def step(self, actions):
        self.t += 1
        return self.t, 0.0, False, False, {}

    def blocks(self):
        for i in range(BLOCKS):
            x = (i * 97 + self.t * (3 + i % 5)) % (W - BLOCK_W)
            y = (i * 61 + self.t * (2 + i % 3)) % (H - BLOCK_H)
            yield x, y, self.colors[i]

    def render(self):
        if self.mode == "rects":
            out = [{"type": "rect", "x": 0, "y": 0, "w": W, "h": H, "color": _hex(BACKGROUND)}]
            for x, y, color in self.blocks():
                out.append({"type": "rect", "x": x, "y": y, "w": BLOCK_W, "h": BLOCK_H, "color": _hex(color)})
            return out
        frame = bytearray(bytes(BACKGROUND) * (W * H))
        for x, y, color in self.blocks():
            run = bytes(color) * BLOCK_W
            for row in range(y, y + BLOCK_H):
                start = (row * W + x) * 3
                frame[start:start + BLOCK_W * 3] = run
        return {"rgb": frame, "shape": [H, W]}


def create_env(config):
    return Scene(config)
