"""A scripted cook: an AI partner for the kitchen (experiments/kitchen/env.py), seated by
experiments/kitchen_ai/experiment.py.

``create_policy(config)`` returns a policy with ``reset(seed)`` (start of every episode) and
``act(obs, info) -> action`` (once per frame, with what the env's reset()/step() returned for
this seat). ``config["seat"]`` is the player it controls ("p1" unless told otherwise).

What it does each frame, decided afresh from obs/info (so it copes with a partner who does
anything): with nothing in hand it brings onions to the pot until the pot has 3 (counting an
onion the partner is carrying), then takes a dish (unless the partner already has one: then it
fetches the next soup's first onion), waits at the pot for the soup, scoops it and serves it.
A cook holding an item it cannot use yet waits on a parking tile out of the others' way, or
puts it down on a counter when nobody else is going to unblock it. It walks shortest paths
(BFS over the static floor, avoiding the partner's current cell when known, distance maps
cached), turns to face the tile it wants and presses "interact".

What it is given: the kitchen's obs has "p0" and "p1" keys, so the platform passes only this
seat's ``[x, y, facing, item code]`` (worker/policies.py ``for_seat``), and the whole info
(no player keys at its top level): the pot ("onions", "cooked", "ready") and what both hold
("holding"). The partner's position and the counters are not in that view: a move that fails
marks the cell in front as taken for a few frames, and the counters it used are remembered.
Given the whole obs instead (both players, "pot", "counters"), it also steers around the
partner's cell and sees items on counters.

Pure Python, standard library only, no randomness and no clock: the same obs/info sequence
gives the same actions (Pyodide and CPython alike). It reads nothing from the env object.
"""

from collections import deque

# Mirrors MAP in experiments/kitchen/env.py (x to the right, y down).
MAP = (
    "##OPO##",
    "#.....#",
    "D..#..S",
    "#.....#",
    "#######",
)
PLAYERS = ("p0", "p1")
DIRS = ((0, -1), (0, 1), (-1, 0), (1, 0))  # index = facing: up, down, left, right
MOVE_NAMES = ("up", "down", "left", "right")
NONE, ONION, DISH, SOUP = 0, 1, 2, 3  # the env's item codes (ITEM_CODE)
ITEM_CODE = {None: NONE, "onion": ONION, "dish": DISH, "soup": SOUP}
POT_SIZE = 3
COOK_FRAMES = 60  # env default; only used when info does not say whether the soup is ready
DROP_PATIENCE = 8  # frames a dish waits for the partner to bring onions before it is put down
AVOID_FRAMES = 4  # how long a cell a move failed into counts as taken


def _tiles(kind):
    return tuple((x, y) for y, row in enumerate(MAP) for x, tile in enumerate(row) if tile == kind)


FLOOR = frozenset(_tiles("."))
COUNTERS = _tiles("#")  # same order as the env's COUNTERS (obs["counters"] index)
ONIONS, DISHES, POTS, SERVES = _tiles("O"), _tiles("D"), _tiles("P"), _tiles("S")
PARKING = ((1, 1), (5, 1))  # floor tiles no shortest route between stations needs


def _neighbours(cell):
    x, y = cell
    return [(d, (x + dx, y + dy)) for d, (dx, dy) in enumerate(DIRS)]


class Cook:
    def __init__(self, config):
        config = config or {}
        self.seat = str(config.get("seat", "p1"))
        self.other = PLAYERS[1] if self.seat == PLAYERS[0] else PLAYERS[0]
        self.cook_frames = int(config.get("cook_frames", COOK_FRAMES))
        self._dist = {}  # (target tile, "adj"|"at", blocked cells) -> {floor cell: steps}
        self.reset()

    def reset(self, seed=None):
        self._last_pos = None
        self._last_move_into = None  # the floor cell the last move meant to enter
        self._stuck = 0
        self._avoid = None
        self._avoid_ttl = 0
        self._no_partner_onion = 0
        self._pending = None  # (counter tile, held code) of the last interact with a counter
        self._memory = {}  # counter tile -> item code put there / found there (sliced view only)

    # -- path finding on the static map ------------------------------------------
    def _dist_map(self, target, mode, blocked):
        key = (target, mode, blocked)
        dist = self._dist.get(key)
        if dist is None:
            if mode == "at":
                starts = [target] if target in FLOOR and target not in blocked else []
            else:  # "adj": the floor cells next to the target tile
                starts = [c for _, c in _neighbours(target) if c in FLOOR and c not in blocked]
            dist = {c: 0 for c in starts}
            queue = deque(starts)
            while queue:
                cell = queue.popleft()
                for _, nxt in _neighbours(cell):
                    if nxt in FLOOR and nxt not in blocked and nxt not in dist:
                        dist[nxt] = dist[cell] + 1
                        queue.append(nxt)
            self._dist[key] = dist
        return dist

    def _nearest(self, pos, targets, mode, blocked):
        best, best_d = None, None
        for target in targets:  # ties: the first in the (fixed) order given
            d = self._dist_map(target, mode, blocked).get(pos)
            if d is not None and (best_d is None or d < best_d):
                best, best_d = target, d
        return best

    def _go(self, pos, facing, targets, blocked, use=True):
        """An action toward the nearest of `targets` (tiles to face and use), or None when
        none can be reached. Next to it: turn to it, then "interact" (or wait, use=False)."""
        target = self._nearest(pos, targets, "adj", blocked)
        if target is None:
            return None
        dist = self._dist_map(target, "adj", blocked)
        d = dist[pos]
        if d == 0:
            want = next(k for k, c in _neighbours(pos) if c == target)
            if facing != want:
                return MOVE_NAMES[want]  # the target is not floor: a move only turns
            if not use:
                return "noop"
            if target in COUNTERS:
                self._pending = (target, None)  # the held code is filled in by act()
            return "interact"
        for k, nxt in _neighbours(pos):
            if dist.get(nxt) == d - 1:
                return MOVE_NAMES[k]
        return None

    def _park(self, pos, blocked):
        target = self._nearest(pos, PARKING, "at", blocked)
        if target is None or target == pos:
            return "noop"
        dist = self._dist_map(target, "at", blocked)
        for k, nxt in _neighbours(pos):
            if dist.get(nxt) == dist[pos] - 1:
                return MOVE_NAMES[k]
        return "noop"

    # -- reading obs / info ------------------------------------------------------------
    def _read(self, obs, info):
        mine, theirs, pot, counters = obs, None, None, None
        if isinstance(obs, dict):
            mine, theirs = obs.get(self.seat), obs.get(self.other)
            pot, counters = obs.get("pot"), obs.get("counters")
        if not isinstance(mine, (list, tuple)) or len(mine) < 4:
            return None
        x, y, facing, held = (int(v) for v in mine[:4])
        partner_pos = partner_held = None
        if isinstance(theirs, (list, tuple)) and len(theirs) >= 4:
            partner_pos, partner_held = (int(theirs[0]), int(theirs[1])), int(theirs[3])
        onions = cooked = 0
        ready = None
        if isinstance(pot, (list, tuple)) and len(pot) >= 2:
            onions, cooked = int(pot[0]), int(pot[1])
        if isinstance(info, dict):
            ipot = info.get("pot")
            if isinstance(ipot, dict):
                onions = int(ipot.get("onions", onions))
                cooked = int(ipot.get("cooked", cooked))
                if "ready" in ipot:
                    ready = bool(ipot["ready"])
            holding = info.get("holding")
            if isinstance(holding, dict):
                if self.other in holding:
                    partner_held = ITEM_CODE.get(holding[self.other], NONE)
        if ready is None:
            ready = onions >= POT_SIZE and cooked >= self.cook_frames
        if isinstance(counters, (list, tuple)) and len(counters) == len(COUNTERS):
            counters = {c: int(v) for c, v in zip(COUNTERS, counters, strict=True)}
        else:
            counters = None
        return (x, y), facing, held, partner_pos, partner_held, onions, ready, counters

    # -- the policy ------------------------------------------------------------------
    def act(self, obs, info=None):
        read = self._read(obs, info)
        if read is None:
            return "noop"
        pos, facing, held, partner_pos, partner_held, onions, ready, counters = read

        # what became of the last frame's interact with a counter (sliced view: remember)
        if self._pending is not None:
            tile, before = self._pending
            self._pending = None
            if before is not None:
                if before != NONE and held == NONE:
                    self._memory[tile] = before  # put down
                elif before == NONE and held != NONE:
                    self._memory.pop(tile, None)  # picked up
                elif before == NONE:
                    self._memory.pop(tile, None)  # nothing there (any more)
                else:
                    self._memory[tile] = -1  # taken by something: cannot put down here

        # a move that did not happen: someone is in that cell (or heading there too)
        if self._last_move_into is not None and pos == self._last_pos:
            self._stuck += 1
            if self._stuck >= (2 if self.seat == PLAYERS[0] else 1):  # p0 keeps right of way
                self._avoid, self._avoid_ttl = self._last_move_into, AVOID_FRAMES
        else:
            self._stuck = 0
        if self._avoid_ttl > 0:
            self._avoid_ttl -= 1
        else:
            self._avoid = None
        if partner_held == ONION:
            self._no_partner_onion = 0
        else:
            self._no_partner_onion += 1

        blocked = []
        if partner_pos is not None and partner_pos != pos:
            blocked.append(partner_pos)
        if self._avoid is not None and self._avoid != pos and self._avoid not in blocked:
            blocked.append(self._avoid)
        blocked = tuple(sorted(blocked))

        action = self._decide(pos, facing, held, partner_held, onions, ready, counters, blocked)
        if self._pending is not None:
            self._pending = (self._pending[0], held)

        self._last_pos = pos
        self._last_move_into = None
        if action in MOVE_NAMES:
            dx, dy = DIRS[MOVE_NAMES.index(action)]
            nxt = (pos[0] + dx, pos[1] + dy)
            if nxt in FLOOR:
                self._last_move_into = nxt
        return action

    def _counter_items(self, counters):
        return counters if counters is not None else self._memory

    def _sources(self, item, dispensers, counters):
        found = self._counter_items(counters)
        return tuple(dispensers) + tuple(c for c in COUNTERS if found.get(c) == item)

    def _put_down(self, pos, facing, counters, blocked):
        found = self._counter_items(counters)
        free = tuple(c for c in COUNTERS if found.get(c, NONE) == NONE)
        return self._go(pos, facing, free, blocked) or "noop"

    def _decide(self, pos, facing, held, partner_held, onions, ready, counters, blocked):
        full = onions >= POT_SIZE
        if held == SOUP:
            return self._go(pos, facing, SERVES, blocked) or "noop"
        if held == DISH:
            if full:  # wait at the pot for the soup, then scoop it
                return self._go(pos, facing, POTS, blocked, use=ready) or "noop"
            if self._no_partner_onion < DROP_PATIENCE:
                return self._park(pos, blocked)  # the partner is filling the pot
            return self._put_down(pos, facing, counters, blocked)  # go and fill it myself
        if held == ONION:
            if not full:
                return self._go(pos, facing, POTS, blocked) or "noop"
            if ready and partner_held not in (DISH, SOUP):
                return self._put_down(pos, facing, counters, blocked)  # free hands for a dish
            return self._park(pos, blocked)  # the next soup's first onion
        if held == NONE:
            soups = self._sources(SOUP, (), counters)  # a soup someone put down: serve it
            if soups and self._nearest(pos, soups, "adj", blocked) is not None:
                return self._go(pos, facing, soups, blocked) or "noop"
            if full:
                want = ONION if partner_held == DISH else DISH
            elif onions + (partner_held == ONION) >= POT_SIZE:
                want = DISH
            else:
                want = ONION
            sources = (self._sources(ONION, ONIONS, counters) if want == ONION
                       else self._sources(DISH, DISHES, counters))
            return self._go(pos, facing, sources, blocked) or self._park(pos, blocked)
        return "noop"


def create_policy(config=None):
    return Cook(config)
