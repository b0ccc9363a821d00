"""Sync test (like GGRS's SyncTestSession): how a researcher proves an env is
deterministic. Every frame is simulated, then the last `distance` frames are rolled back
and replayed with the same inputs; every replayed state must hash like the first time.
Pure Python: the page runs it through the worker (Pyodide), pytest and the CLI through
EnvHost (CPython)."""

from protocol import messages as m


class SyncTest:
    def __init__(self, distance):
        self.distance = distance
        self.frame = 0
        self.inputs = {}  # frame -> actions
        self.first = {}   # frame -> hash of snapshot `frame` from the first pass
        self.checked = 0
        self.divergence = None  # first report: {"frame", "expected", "replayed"}

    def start_ops(self):
        return [{"op": "snapshot"}, {"op": "hash", "frame": 0}]

    def ops_for(self, actions):
        """One BATCH: simulate the next frame, then roll back `distance` frames and replay."""
        f = self.frame
        self.inputs[f] = actions
        ops = [{"op": m.OP_STEP, "actions": actions}, {"op": m.OP_SNAPSHOT},
               {"op": m.OP_HASH, "frame": f + 1}]
        start = f + 1 - self.distance
        if start >= 0:
            ops.append({"op": "restore", "frame": start})
            for g in range(start, f + 1):
                ops.append({"op": "step", "actions": self.inputs[g]})
                ops.append({"op": "hash"})
        self.frame = f + 1
        return ops

    def check(self, ops, results):
        """Compare replayed hashes with the first pass; returns the divergence (or None)."""
        replaying = False
        for op, res in zip(ops, results):
            if op["op"] == "restore":
                replaying = True
            elif op["op"] == "hash" and not replaying:
                self.first[res["frame"]] = res["hash"]
            elif op["op"] == "hash" and replaying:
                self.checked += 1
                expected = self.first.get(res["frame"])
                if expected != res["hash"] and self.divergence is None:
                    self.divergence = {"frame": res["frame"], "expected": expected, "replayed": res["hash"]}
        old = self.frame - self.distance - 2
        for g in [g for g in self.inputs if g < old]:
            del self.inputs[g]
        return self.divergence

    def report(self):
        if self.divergence is None:
            return {"ok": True, "frames": self.frame, "checked": self.checked, "distance": self.distance}
        d = self.divergence
        return {"ok": False, "frames": self.frame, "checked": self.checked, "distance": self.distance,
                "first_divergent_frame": d["frame"] - 1, "expected": d["expected"], "replayed": d["replayed"],
                "message": "frame " + str(d["frame"] - 1) + " gives a different state when replayed with the "
                "same inputs: the env is not deterministic (global RNG, time, state outside the env "
                "object, or set/dict iteration order?)"}


async def run_in_page(channel, cfg, ui, distance, frames=300):
    """?synctest=N: the check in the browser's own Pyodide; publishes <body data-synctest>."""
    import json

    import js

    actions = list(cfg["controls"].values()) + [cfg["default_action"]]
    await channel.request(m.RESET, {"seed": 1, "render": False})
    test = SyncTest(distance)
    ops = test.start_ops()
    test.check(ops, (await channel.request(m.BATCH, {"ops": ops}))["results"])
    for _ in range(frames):
        pick = {}
        for p in cfg["players"]:
            pick[p] = actions[int(js.Math.floor(js.Math.random() * len(actions)))]
        ops = test.ops_for(pick)
        if test.check(ops, (await channel.request(m.BATCH, {"ops": ops}))["results"]) is not None:
            break
    ui.attr("synctest", json.dumps(test.report()))
