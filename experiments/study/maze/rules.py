"""Movement rules of the maze, in a module of its own: the env imports it as a sibling,
in the browser's Pyodide and in the server's CPython alike."""

MOVES = {"up": (0, -1), "down": (0, 1), "left": (-1, 0), "right": (1, 0), "noop": (0, 0)}


def parse_map(text):
    """'#' walls, 'S' start, 'G' goal, '.' floor -> (walls, start, goal, width, height)."""
    rows = [line for line in text.splitlines() if line.strip()]
    walls, start, goal = set(), None, None
    for y, row in enumerate(rows):
        for x, ch in enumerate(row):
            if ch == "#":
                walls.add((x, y))
            elif ch == "S":
                start = (x, y)
            elif ch == "G":
                goal = (x, y)
    return walls, start, goal, max(len(r) for r in rows), len(rows)


def move(position, action, walls):
    dx, dy = MOVES.get(action, (0, 0))
    target = (position[0] + dx, position[1] + dy)
    return position if target in walls else target
