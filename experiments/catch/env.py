"""Catch: move the basket to catch falling fruit. A small, deterministic, pure-Python
env written the way a researcher would write one (see README "Writing an env")."""

import random

W, H = 480, 480
BASKET_W, BASKET_H = 80, 16
FRUIT_R = 12
MOVES = {"left": -1, "right": 1, "noop": 0}


class CatchEnv:
    def __init__(self, config):
        self.speed = config.get("basket_speed", 12)
        self.fall = config.get("fall_speed", 5)
        self.lives_at_start = config.get("lives", 3)
        self.player = config.get("player", "p0")

    def reset(self, seed=None):
        self.rng = random.Random(seed)
        self.basket_x = W // 2
        self.fruit = self._new_fruit()
        self.score = 0
        self.lives = self.lives_at_start
        self.t = 0
        return self._obs(), {"basket_x": self.basket_x}

    def _new_fruit(self):
        return [self.rng.randint(FRUIT_R, W - FRUIT_R), FRUIT_R]

    def _obs(self):
        return [self.basket_x, self.fruit[0], self.fruit[1]]

    def step(self, actions):
        move = MOVES.get(actions.get(self.player, "noop"), 0)
        self.basket_x = max(BASKET_W // 2, min(W - BASKET_W // 2, self.basket_x + move * self.speed))
        self.fruit[1] += self.fall + self.t // 300
        self.t += 1
        reward = 0
        if self.fruit[1] >= H - BASKET_H - FRUIT_R:
            if abs(self.fruit[0] - self.basket_x) <= BASKET_W // 2 + FRUIT_R // 2:
                reward = 1
                self.score += 1
            else:
                self.lives -= 1
            self.fruit = self._new_fruit()
        terminated = self.lives <= 0
        info = {"basket_x": self.basket_x, "score": self.score, "lives": self.lives}
        return self._obs(), {self.player: reward}, terminated, False, info

    def render(self):
        return [
            {"type": "rect", "x": 0, "y": 0, "w": W, "h": H, "color": "#10233f"},
            {"type": "circle", "x": self.fruit[0], "y": self.fruit[1], "r": FRUIT_R, "color": "#ff8a3d"},
            {"type": "rect", "x": self.basket_x - BASKET_W // 2, "y": H - BASKET_H, "w": BASKET_W,
             "h": BASKET_H, "color": "#7fd1ff"},
            {"type": "text", "x": 12, "y": 28, "text": "Score " + str(self.score), "color": "#ffffff",
             "size": 20},
            {"type": "text", "x": W - 12, "y": 28, "text": "♥" * self.lives, "color": "#ff5577",
             "size": 20, "align": "right"},
        ]


def create_env(config):
    return CatchEnv(config)
