"""Which scene follows which: one rule shared by the server (which records progress) and
the page (which moves on without waiting for the server). MicroPython-safe."""


def next_scene(types, index, outcome):
    """The index after scene `index` of a path whose scene types are `types`. Declining
    consent skips to the end scene (or past the last scene when there is none)."""
    if types[index] == "consent" and outcome == "declined":
        return len(types) - 1 if types[-1] == "end" else len(types)
    return index + 1
