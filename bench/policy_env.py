"""Bench env for AI partners: two dots on a 16x16 grid; each seat's observation is 32
numbers (what a small trained policy sees), the frame drawn as a few rects."""

MOVES = {"noop": (0, 0), "up": (0, -1), "down": (0, 1), "left": (-1, 0), "right": (1, 0), "stay": (0, 0)}


class Dots:
    def __init__(self, config):
        self.pos = {"p0": [3, 3], "p1": [12, 12]}
        self.t = 0

    def reset(self, seed=None):
        self.pos = {"p0": [3, 3], "p1": [12, 12]}
        self.t = 0
        return self._obs(), {}

    def step(self, actions):
        self.t += 1
        for seat, action in actions.items():
            dx, dy = MOVES.get(action, (0, 0))
            x, y = self.pos[seat]
            self.pos[seat] = [min(15, max(0, x + dx)), min(15, max(0, y + dy))]
        return self._obs(), {"p0": 0, "p1": 0}, False, False, {"t": self.t}

    def _obs(self):
        out = {}
        for seat, other in (("p0", "p1"), ("p1", "p0")):
            (x, y), (ox, oy) = self.pos[seat], self.pos[other]
            base = [x / 15, y / 15, ox / 15, oy / 15, (ox - x) / 15, (oy - y) / 15, (self.t % 30) / 30, 1.0]
            out[seat] = base + [((self.t + i) % 7) / 7 for i in range(24)]
        return out

    def render(self):
        out = [{"type": "rect", "x": 0, "y": 0, "w": 480, "h": 480, "color": "#202020"}]
        for seat, color in (("p0", "#3d8bff"), ("p1", "#ff5a5a")):
            x, y = self.pos[seat]
            out.append({"type": "rect", "x": x * 30, "y": y * 30, "w": 30, "h": 30, "color": color})
        return out


def create_env(config):
    return Dots(config)


def encode(obs, info, seat):
    return obs[seat]
