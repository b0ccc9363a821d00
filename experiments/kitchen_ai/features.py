"""Observation features for the behaviour-cloned cook (bc_cook.onnx, trained by train_bc.py).

``encode(obs, info, seat)`` turns the kitchen's (experiments/kitchen/env.py) whole obs and info,
as reset()/step() returned them, into the flat list of 0/1 floats the model reads (``N``
of them). ``seat`` is the player the model controls ("p1" in the study); the other seat is the
partner. All entries are one-hot groups or flags, in this order:

=========  ====  ============================================================================
index      size  feature
=========  ====  ============================================================================
0-13       14    own cell, one-hot over the 14 floor cells (row-major: FLOOR below)
14-17      4     own facing: up, down, left, right
18-21      4     own held item: nothing, onion, dish, soup
22-27      6     the tile faced: floor, counter, onion dispenser, dish dispenser, pot, serving
28-31      4     item on the counter faced: nothing, onion, dish, soup (all 0 if not a counter)
32-45      14    partner's cell, one-hot over the floor cells
46-49      4     partner's held item: nothing, onion, dish, soup
50-53      4     onions in the pot: 0, 1, 2, 3
54         1     the soup is cooking (3 onions, not done)
55         1     the soup is ready to scoop
56-103     48    each of the 16 counters (COUNTERS order, as obs["counters"]): onion, dish, soup
=========  ====  ============================================================================

"cooking"/"ready" come from ``info["pot"]``; without them, from ``obs["pot"]`` assuming the
env's default of 60 cooking frames. Pure Python, standard library only (it runs in Pyodide),
no randomness: the same obs/info always give the same list.
"""

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
TILE_KINDS = ".#ODPS"  # floor, counter, onion dispenser, dish dispenser, pot, serving window
POT_SIZE = 3
COOK_FRAMES = 60  # env default; only used when info has no "pot"
FLOOR = tuple((x, y) for y, row in enumerate(MAP) for x, tile in enumerate(row) if tile == ".")
COUNTERS = tuple((x, y) for y, row in enumerate(MAP) for x, tile in enumerate(row) if tile == "#")
FLOOR_INDEX = {xy: i for i, xy in enumerate(FLOOR)}
COUNTER_INDEX = {xy: i for i, xy in enumerate(COUNTERS)}
N = 2 * len(FLOOR) + 4 + 4 + 6 + 4 + 4 + 4 + 2 + 3 * len(COUNTERS)  # 104


def _one_hot(out, size, index):
    start = len(out)
    out.extend([0.0] * size)
    if 0 <= index < size:
        out[start + index] = 1.0


def _player(value):
    if isinstance(value, (list, tuple)) and len(value) >= 4:
        return int(value[0]), int(value[1]), int(value[2]), int(value[3])
    return None


def encode(obs, info, seat="p1"):
    """The feature list (length N) for `seat`, from the env's whole obs and info."""
    obs = obs if isinstance(obs, dict) else {}
    info = info if isinstance(info, dict) else {}
    other = PLAYERS[0] if seat == PLAYERS[1] else PLAYERS[1]
    counters = obs.get("counters")
    if not isinstance(counters, (list, tuple)) or len(counters) != len(COUNTERS):
        counters = [0] * len(COUNTERS)
    out = []

    me = _player(obs.get(seat))
    x, y, facing, held = me if me is not None else (-1, -1, -1, -1)
    _one_hot(out, len(FLOOR), FLOOR_INDEX.get((x, y), -1))
    _one_hot(out, 4, facing)
    _one_hot(out, 4, held)
    faced_kind, faced_item = -1, -1
    if me is not None and 0 <= facing < 4:
        fx, fy = x + DIRS[facing][0], y + DIRS[facing][1]
        if 0 <= fy < len(MAP) and 0 <= fx < len(MAP[0]):
            faced_kind = TILE_KINDS.find(MAP[fy][fx])
            if (fx, fy) in COUNTER_INDEX:
                faced_item = int(counters[COUNTER_INDEX[(fx, fy)]])
    _one_hot(out, 6, faced_kind)
    _one_hot(out, 4, faced_item)

    partner = _player(obs.get(other))
    px, py, _, partner_held = partner if partner is not None else (-1, -1, -1, -1)
    _one_hot(out, len(FLOOR), FLOOR_INDEX.get((px, py), -1))
    _one_hot(out, 4, partner_held)

    pot = obs.get("pot")
    onions = cooked = 0
    if isinstance(pot, (list, tuple)) and len(pot) >= 2:
        onions, cooked = int(pot[0]), int(pot[1])
    full = onions >= POT_SIZE
    cooking, ready = full and cooked < COOK_FRAMES, full and cooked >= COOK_FRAMES
    ipot = info.get("pot")
    if isinstance(ipot, dict):
        onions = int(ipot.get("onions", onions))
        cooking, ready = bool(ipot.get("cooking", cooking)), bool(ipot.get("ready", ready))
    _one_hot(out, POT_SIZE + 1, min(onions, POT_SIZE))
    out.append(1.0 if cooking else 0.0)
    out.append(1.0 if ready else 0.0)

    for code in counters:
        _one_hot(out, 3, int(code) - 1)  # code 0 (nothing): all three 0
    return out
