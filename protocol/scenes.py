"""Which scene follows which: one rule shared by the server (which records progress) and
the page (which moves on without waiting for the server), and which policies a game's
worker loads (the page and the pilot's simulated participants). MicroPython-safe."""


def next_scene(types, index, outcome):
    """The index after scene `index` of a path whose scene types are `types`. Declining
    consent skips to the end scene (or past the last scene when there is none)."""
    if types[index] == "consent" and outcome == "declined":
        return len(types) - 1 if types[-1] == "end" else len(types)
    return index + 1


def seat_policies(game):
    """The AI seats' policies, and in a room the stand-in policy for every person's seat
    (this browser may have to host it if that person drops out)."""
    partners = dict(game["partners"] or {})
    stand_in = game.get("stand_in")
    if stand_in and game["multiplayer"] is not None:
        for seat in game["humans"]:
            partners[seat] = stand_in
    return partners or None
