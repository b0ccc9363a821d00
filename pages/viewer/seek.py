"""Seek planning for the replay viewer. Pure Python (MicroPython on the page, CPython under
pytest); the env itself lives in the worker, so every move becomes one BATCH of ops.

Frame n is the env's state after n steps (frame 0: just reset); ``inputs[n]`` are the
actions of the step from frame n to n + 1. The worker keeps a snapshot of every keyframe
(frame 0 and each multiple of ``every``) it has passed; a seek restores the nearest one at
or before the target (or goes on from where the env is, when that is nearer) and replays the
rest, all in one BATCH, snapshotting the keyframes it passes on the way."""

OP_RESTORE = "restore"
OP_STEP = "step"
OP_SNAPSHOT = "snapshot"
OP_HASH = "hash"
OP_RENDER = "render"

MOST_KEYFRAMES = 600  # snapshots the worker keeps at most: a long episode gets them sparser


def keyframe_every(frames, base=30):
    """Snapshot spacing for an episode of ``frames`` steps: every ``base`` frames (one second
    at 30 fps), wider for episodes long enough to need more than MOST_KEYFRAMES of them."""
    every = base
    while frames // every > MOST_KEYFRAMES:
        every += base
    return every


class Timeline:
    def __init__(self, inputs, every):
        self.inputs = inputs
        self.every = every  # 0: no keyframes but frame 0 (replay from the start: the baseline)
        self.last = len(inputs)  # the last frame there is
        self.held = set()  # keyframes the worker holds a snapshot of
        self.frame = None  # the frame the worker's env is at; None: unknown (after a failure)

    def ring_size(self):
        """Snapshots the worker must keep (INIT's ring_size) so that no keyframe is dropped."""
        return (self.last // self.every if self.every else 0) + 2

    def is_key(self, n):
        return n == 0 or (self.every > 0 and n % self.every == 0)

    def start_ops(self):
        """After the RESET (frame 0): keep frame 0."""
        self.frame = 0
        return [{"op": OP_SNAPSHOT, "frame": 0}]

    def clamp(self, target):
        return max(0, min(int(target), self.last))

    def base_for(self, target):
        """Where the replay to ``target`` starts: the env's own frame when it is at or before
        the target and no held keyframe lies between, else the nearest keyframe before."""
        key = 0
        for k in self.held:
            if key < k <= target:
                key = k
        if self.frame is not None and key <= self.frame <= target:
            return self.frame, False
        return key, True

    def plan(self, target, limit=None, render=True, hash_end=False):
        """Ops moving the env to ``target``: restore (if needed), steps, a snapshot at each
        keyframe not yet held, and a render of the last frame. ``limit``: at most that many
        steps (call again until at the target). Nothing changes until ``applied()``."""
        target = self.clamp(target)
        start, restore = self.base_for(target)
        end = target if limit is None else min(target, start + limit)
        ops = []
        if restore:
            ops.append({"op": OP_RESTORE, "frame": start})
        last_step = None
        for n in range(start, end):
            ops.append({"op": OP_STEP, "actions": self.inputs[n], "frame": n + 1})
            last_step = len(ops) - 1
            if self.is_key(n + 1) and (n + 1) not in self.held:
                ops.append({"op": OP_SNAPSHOT, "frame": n + 1})
        if render:
            if last_step is not None:
                ops[last_step]["render"] = True
            else:
                ops.append({"op": OP_RENDER})
        if hash_end:
            ops.append({"op": OP_HASH})
        return ops

    def applied(self, ops):
        """The BATCH of ``ops`` ran: the env is at its last frame and holds its snapshots."""
        for op in ops:
            kind = op["op"]
            if kind == OP_RESTORE:
                self.frame = op["frame"]
            elif kind == OP_STEP:
                self.frame = op["frame"]
            elif kind == OP_SNAPSHOT:
                self.held.add(op["frame"])

    def failed(self, ops, index):
        """The BATCH failed at op ``index``: what ran before it stands, the env's frame is unknown."""
        self.applied([op for op in ops[:index] if op["op"] == OP_SNAPSHOT])
        self.frame = None

    def stop_at(self, frame):
        """The env cannot step past ``frame`` (it raised on the next step): the timeline ends there."""
        self.last = max(0, min(self.last, frame))
        self.held = set(k for k in self.held if k <= self.last)

    def step_results(self, ops, results):
        """[(frame, step result)] of a BATCH's steps, in order."""
        out = []
        for i in range(min(len(ops), len(results))):
            if ops[i]["op"] == OP_STEP:
                out.append((ops[i]["frame"], results[i]))
        return out


def failed_op(message):
    """The index of the op a failed BATCH names ("BATCH op 12 (step) failed: ..."), or None."""
    marker = "BATCH op "
    at = message.find(marker)
    if at < 0:
        return None
    digits = ""
    for ch in message[at + len(marker):]:
        if not ch.isdigit():
            break
        digits += ch
    return int(digits) if digits else None
