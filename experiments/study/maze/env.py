"""Single-player practice: walk from S to G. A multi-file env: the rules are a sibling
module and the level is a text file read relative to this file, as researchers write them."""

import os

from rules import move, parse_map

CELL = 44


class Maze:
    def __init__(self, config):
        level = config.get("map", "small.txt")
        with open(os.path.join(os.path.dirname(__file__), "maps", level)) as fh:
            self.walls, self.start, self.goal, self.width, self.height = parse_map(fh.read())
        self.pos = self.start
        self.steps = 0

    def reset(self, seed=None):
        self.pos = self.start
        self.steps = 0
        return list(self.pos), {}

    def step(self, actions):
        self.pos = move(self.pos, actions["p0"], self.walls)
        self.steps += 1
        reached = self.pos == self.goal
        return list(self.pos), {"p0": 10.0 if reached else 0.0}, reached, False, {"pos": list(self.pos)}

    def render(self):
        items = [{"type": "rect", "x": 0, "y": 0, "w": self.width * CELL, "h": self.height * CELL,
                  "color": "#f4f1e8"}]
        for x, y in sorted(self.walls):
            items.append({"type": "rect", "x": x * CELL, "y": y * CELL, "w": CELL, "h": CELL,
                          "color": "#3b3b58"})
        gx, gy = self.goal
        items.append({"type": "rect", "x": gx * CELL + 6, "y": gy * CELL + 6, "w": CELL - 12, "h": CELL - 12,
                      "color": "#3fa34d"})
        px, py = self.pos
        items.append({"type": "circle", "x": px * CELL + CELL / 2, "y": py * CELL + CELL / 2, "r": CELL / 3,
                      "color": "#d1495b"})
        items.append({"type": "text", "x": 8, "y": self.height * CELL - 8, "text": "steps " + str(self.steps),
                      "size": 14, "color": "#ffffff"})
        return items


def create_env(config):
    return Maze(config)
