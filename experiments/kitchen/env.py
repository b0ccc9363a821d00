"""Kitchen: a tiny two-player Overcooked. Bring three onions to the pot, let the soup
cook, scoop it into a dish and deliver it at the serving window (+20 for both cooks).

Deterministic and integer-only: the map and the start positions are fixed, so the env
needs no randomness at all (the seed is accepted and ignored). The static map is a
module constant; the mutable state is a few ints, short lists and item names, so
get_state()/set_state() are cheap for rollback (see README "Writing an env").

Map (x to the right, y down)::

    ##OPO##     # counter (items can be put down and picked up)
    #.....#     O onion dispenser      P pot (holds 3 onions)
    D..#..S     D dish dispenser       S serving window
    #.....#     . floor                p0 starts at (1, 1), p1 at (5, 3)
    #######

Rules, per step: interactions first (p0 then p1), then simultaneous moves, then the pot
cooks one frame. A move always turns the player; it only moves onto an empty floor
tile, not into the cell the other player occupies at the start of the step, and not
when both players head for the same cell (so swaps and collisions leave both in place).
"""

MAP = (
    "##OPO##",
    "#.....#",
    "D..#..S",
    "#.....#",
    "#######",
)
COLS, ROWS = len(MAP[0]), len(MAP)
PLAYERS = ("p0", "p1")
START = ((1, 1), (5, 3))  # both face up
DIRS = ((0, -1), (0, 1), (-1, 0), (1, 0))  # index = facing: up, down, left, right
MOVES = {"up": 0, "down": 1, "left": 2, "right": 3}
ONION, DISH, SOUP = "onion", "dish", "soup"
ITEM_CODE = {None: 0, ONION: 1, DISH: 2, SOUP: 3}
POT_SIZE = 3
COUNTERS = tuple((x, y) for y, row in enumerate(MAP) for x, tile in enumerate(row) if tile == "#")
COUNTER_INDEX = {xy: i for i, xy in enumerate(COUNTERS)}
POT_XY = next((x, y) for y, row in enumerate(MAP) for x, tile in enumerate(row) if tile == "P")

# -- drawing ------------------------------------------------------------------
W, H = 480, 480
TILE = 64
OX, OY = (W - COLS * TILE) // 2, 80
COLORS = {
    "bg": "#1b1d26", "counter": "#8a6a4a", "floor": "#d9cfb8", "O": "#5f7f34", "P": "#4a4a4a",
    "D": "#3f6f8f", "S": "#2e7d4f", ONION: "#f2c94c", DISH: "#f4f4f4", SOUP: "#e8743b",
    "pot": "#202020", "bar": "#303030", "cooking": "#e8743b", "ready": "#5fd35f",
    "p0": "#3d8bff", "p1": "#ff5a5a", "face": "#10131a", "text": "#ffffff",
}


def _tile_xy(x, y):
    return OX + x * TILE, OY + y * TILE


def _static_drawables():
    out = [
        {"type": "rect", "x": 0, "y": 0, "w": W, "h": H, "color": COLORS["bg"]},
        {"type": "rect", "x": OX, "y": OY, "w": COLS * TILE, "h": ROWS * TILE, "color": COLORS["counter"]},
    ]
    for y, row in enumerate(MAP):  # floor: one rect per horizontal run
        x = 0
        while x < COLS:
            if row[x] != ".":
                x += 1
                continue
            end = x
            while end < COLS and row[end] == ".":
                end += 1
            px, py = _tile_xy(x, y)
            out.append({"type": "rect", "x": px, "y": py, "w": (end - x) * TILE, "h": TILE,
                        "color": COLORS["floor"]})
            x = end
    for y, row in enumerate(MAP):
        for x, tile in enumerate(row):
            if tile in ".#":
                continue
            px, py = _tile_xy(x, y)
            cx, cy = px + TILE // 2, py + TILE // 2
            out.append({"type": "rect", "x": px + 2, "y": py + 2, "w": TILE - 4, "h": TILE - 4,
                        "color": COLORS[tile]})
            if tile == "O":
                out.append({"type": "circle", "x": cx, "y": cy, "r": 14, "color": COLORS[ONION]})
            elif tile == "P":
                out.append({"type": "circle", "x": cx, "y": cy - 4, "r": 24, "color": COLORS["pot"]})
            elif tile == "D":
                out.append({"type": "circle", "x": cx, "y": cy, "r": 18, "color": COLORS[DISH]})
                out.append({"type": "circle", "x": cx, "y": cy, "r": 11, "color": COLORS["D"]})
            elif tile == "S":
                out.append({"type": "text", "x": cx, "y": cy + 5, "text": "SERVE", "size": 14,
                            "align": "center", "color": COLORS["text"]})
    out.append({"type": "text", "x": W // 2, "y": OY + ROWS * TILE + 40, "size": 14, "align": "center",
                "text": "3 onions → pot → wait → dish → soup → SERVE", "color": "#b8bcc8"})
    return tuple(out)


STATIC = _static_drawables()  # shared, never mutated (the worker serializes a copy)


def _item_drawables(item, cx, cy, r):
    if item == SOUP:
        return [{"type": "circle", "x": cx, "y": cy, "r": r, "color": COLORS[DISH]},
                {"type": "circle", "x": cx, "y": cy, "r": r - 4, "color": COLORS[SOUP]}]
    return [{"type": "circle", "x": cx, "y": cy, "r": r, "color": COLORS[item]}]


class KitchenEnv:
    def __init__(self, config):
        self.episode_frames = int(config.get("episode_frames", 1800))
        self.cook_frames = int(config.get("cook_frames", 60))
        self.reward = int(config.get("delivery_reward", 20))
        self.fps = int(config.get("fps", 30))  # only for the "time left" display
        self.reset()

    # -- state -----------------------------------------------------------------
    def reset(self, seed=None):
        self.frame = 0
        self.deliveries = 0
        self.players = [[x, y, 0, None] for x, y in START]  # [x, y, facing, held item or None]
        self.pot = [0, 0]  # [onions, frames cooked]
        self.counters = [None] * len(COUNTERS)  # item on each COUNTERS tile
        return self._obs(), self._info()

    def get_state(self):
        p0, p1 = self.players
        return {"frame": self.frame, "deliveries": self.deliveries, "players": [p0[:], p1[:]],
                "pot": self.pot[:], "counters": self.counters[:]}

    def set_state(self, state):
        self.frame = state["frame"]
        self.deliveries = state["deliveries"]
        self.players = [list(p) for p in state["players"]]
        self.pot = list(state["pot"])
        self.counters = list(state["counters"])

    # -- stepping ----------------------------------------------------------------
    def step(self, actions):
        players = self.players
        reward = 0
        moves = [-1, -1]
        for i in (0, 1):
            action = actions.get(PLAYERS[i], "noop")
            if type(action) is not str:
                continue
            if action == "interact":
                reward += self._interact(players[i])
            else:
                moves[i] = MOVES.get(action, -1)
        if moves[0] >= 0 or moves[1] >= 0:
            self._move(moves)
        pot = self.pot
        if pot[0] == POT_SIZE and pot[1] < self.cook_frames:
            pot[1] += 1
        self.frame += 1
        terminated = self.frame >= self.episode_frames
        return self._obs(), {"p0": reward, "p1": reward}, terminated, False, self._info()

    def _move(self, moves):
        a, b = self.players
        targets = [None, None]
        for i, p in ((0, a), (1, b)):
            d = moves[i]
            if d < 0:
                continue
            p[2] = d
            dx, dy = DIRS[d]
            x, y = p[0] + dx, p[1] + dy
            if MAP[y][x] == ".":
                targets[i] = (x, y)
        ta, tb = targets
        go_a = ta is not None and ta != (b[0], b[1]) and ta != tb
        go_b = tb is not None and tb != (a[0], a[1]) and tb != ta
        if go_a:
            a[0], a[1] = ta
        if go_b:
            b[0], b[1] = tb

    def _interact(self, p):
        dx, dy = DIRS[p[2]]
        x, y = p[0] + dx, p[1] + dy
        tile = MAP[y][x]
        held = p[3]
        if tile == "#":
            i = COUNTER_INDEX[(x, y)]
            item = self.counters[i]
            if held is None and item is not None:
                p[3], self.counters[i] = item, None
            elif held is not None and item is None:
                p[3], self.counters[i] = None, held
        elif tile == "O":
            if held is None:
                p[3] = ONION
        elif tile == "D":
            if held is None:
                p[3] = DISH
        elif tile == "P":
            pot = self.pot
            if held == ONION and pot[0] < POT_SIZE:
                pot[0] += 1
                p[3] = None
            elif held == DISH and pot[0] == POT_SIZE and pot[1] >= self.cook_frames:
                pot[0] = pot[1] = 0
                p[3] = SOUP
        elif tile == "S":
            if held == SOUP:
                p[3] = None
                self.deliveries += 1
                return self.reward
        return 0  # floor (or the other player): nothing to do

    # -- observations ------------------------------------------------------------
    def _obs(self):
        code = ITEM_CODE
        p0, p1 = self.players
        return {"p0": [p0[0], p0[1], p0[2], code[p0[3]]], "p1": [p1[0], p1[1], p1[2], code[p1[3]]],
                "pot": self.pot[:], "counters": [code[c] for c in self.counters], "frame": self.frame}

    def _info(self):
        onions, cooked = self.pot
        full = onions == POT_SIZE
        return {
            "score": self.deliveries * self.reward,
            "deliveries": self.deliveries,
            "frame": self.frame,
            "pot": {"onions": onions, "cooked": cooked, "cooking": full and cooked < self.cook_frames,
                    "ready": full and cooked >= self.cook_frames},
            "holding": {"p0": self.players[0][3], "p1": self.players[1][3]},
        }

    # -- drawing -----------------------------------------------------------------
    def render(self):
        out = list(STATIC)
        # pot contents and cooking progress
        px, py = _tile_xy(*POT_XY)
        cx, cy = px + TILE // 2, py + TILE // 2 - 4
        onions, cooked = self.pot
        if onions == POT_SIZE and cooked >= self.cook_frames:
            out.append({"type": "circle", "x": cx, "y": cy, "r": 16, "color": COLORS[SOUP]})
        else:
            for k in range(onions):
                out.append({"type": "circle", "x": cx - 12 + 12 * k, "y": cy, "r": 6, "color": COLORS[ONION]})
        if onions == POT_SIZE:
            bar_w = TILE - 12
            done = bar_w if cooked >= self.cook_frames else bar_w * cooked // max(1, self.cook_frames)
            color = COLORS["ready"] if cooked >= self.cook_frames else COLORS["cooking"]
            out.append({"type": "rect", "x": px + 6, "y": py + TILE - 12, "w": bar_w, "h": 7,
                        "color": COLORS["bar"]})
            out.append({"type": "rect", "x": px + 6, "y": py + TILE - 12, "w": done, "h": 7, "color": color})
        # items put down on counters
        for i, item in enumerate(self.counters):
            if item is not None:
                tx, ty = _tile_xy(*COUNTERS[i])
                out.extend(_item_drawables(item, tx + TILE // 2, ty + TILE // 2, 12))
        # players: body, facing line, held item at the facing side, label
        for name, (x, y, d, held) in zip(PLAYERS, self.players, strict=True):
            tx, ty = _tile_xy(x, y)
            cx, cy = tx + TILE // 2, ty + TILE // 2
            dx, dy = DIRS[d]
            out.append({"type": "circle", "x": cx, "y": cy, "r": 20, "color": COLORS[name]})
            out.append({"type": "line", "x1": cx, "y1": cy, "x2": cx + 28 * dx, "y2": cy + 28 * dy,
                        "width": 5, "color": COLORS["face"]})
            if held is not None:
                out.extend(_item_drawables(held, cx + 24 * dx, cy + 24 * dy, 10))
            out.append({"type": "text", "x": cx - 10 * dx, "y": cy + 5 - 10 * dy, "text": name, "size": 13,
                        "align": "center", "color": COLORS["text"]})
        left = max(0, self.episode_frames - self.frame)
        out.append({"type": "text", "x": OX, "y": 48, "text": "Score " + str(self.deliveries * self.reward),
                    "size": 22, "align": "left", "color": COLORS["text"]})
        out.append({"type": "text", "x": W - OX, "y": 48, "size": 22, "align": "right",
                    "text": "Time " + str((left + self.fps - 1) // max(1, self.fps)) + "s",
                    "color": COLORS["text"]})
        return out


def create_env(config):
    return KitchenEnv(config)
