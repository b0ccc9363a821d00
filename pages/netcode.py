"""GGPO-style rollback bookkeeping for the page's main thread. Pure Python (runs in
MicroPython, and in CPython under pytest); the env state itself lives in the worker,
so every decision here becomes one BATCH of worker ops.

Frames: "frame g" is the step that applies the inputs of frame g; snapshot g is the
state *before* frame g (snapshot 0 is the state after reset). The session keeps:
  confirmed[p][g]  real inputs (local ones the moment they are made),
  used[g]          the inputs frame g was last simulated with (real or predicted),
  frame            the next frame to simulate,
  confirmed_upto   every frame below it has real inputs from everyone.
A real input that differs from what was used marks a rollback from that frame; the
next plan() restores that snapshot and replays to the present, all in one BATCH.
"""

OP_RESTORE = "restore"
OP_STEP = "step"
OP_SNAPSHOT = "snapshot"
OP_HASH = "hash"


class InputConflict(Exception):
    """The same player sent two different inputs for one frame."""


class RollbackSession:
    def __init__(self, players, local_player, input_delay=2, max_prediction=8, default_input=0,
                 last_frame=None, hash_every=30, hosted=()):
        self.players = list(players)
        self.local = local_player
        # AI seats this page decides for: their inputs are made here, like the local one
        self.hosted = list(hosted)
        self.remotes = [p for p in self.players if p != local_player and p not in self.hosted]
        self.delay = input_delay
        self.window = max_prediction
        self.default = default_input
        self.last_frame = last_frame  # frames 0..last_frame are played, at most
        self.hash_every = hash_every
        self.confirmed = {}
        for p in self.players:
            self.confirmed[p] = {}
            for g in range(input_delay):  # nobody can act on the first D frames
                self.confirmed[p][g] = default_input
        self.used = {}
        self.results = {}  # frame -> step result of the current timeline
        self.frame = 0
        self.confirmed_upto = 0
        self._advance_confirmed()
        self.rollback_from = None
        self.emitted_upto = 0  # frames below it were handed out by take_confirmed()
        self.hashed_upto = 0
        self.end_frame = None  # last frame of the episode, once known from confirmed frames
        self.remote_frame = {}  # player -> latest frame that player reported simulating
        self.remote_advantage = {}  # player -> that player's own frame advantage, as it reported
        self.wait_cooldown = 0
        self.stats = {"rollbacks": 0, "rollback_frames": 0, "max_depth": 0, "prediction_misses": 0,
                      "stalls": 0, "waits": 0}

    # -- inputs ----------------------------------------------------------------------
    def local_input(self, value, seat=None):
        """Register the local input (or a hosted AI seat's) for frame `frame + delay`;
        returns [(frame, value)] to send (empty if that frame already has one, e.g. while
        stalled)."""
        target = self.frame + self.delay
        mine = self.confirmed[self.local if seat is None else seat]
        if target in mine:
            return []
        mine[target] = value
        self._advance_confirmed()
        return [(target, value)]

    def host(self, seat, from_frame):
        """Take over AI seat `seat` (its host left): its inputs from `from_frame` up to the
        present are ours to make; those already past are filled with its latest input (a
        rollback corrects the frames played with another prediction). Returns them to send."""
        if seat in self.hosted or seat == self.local:
            return []
        self.remotes = [p for p in self.remotes if p != seat]
        self.hosted.append(seat)
        self.remote_frame.pop(seat, None)
        self.remote_advantage.pop(seat, None)
        return self._fill(seat, from_frame)

    def _fill(self, seat, from_frame):
        known = self.confirmed[seat]
        fresh = []
        g = max(from_frame, self.confirmed_upto)
        while g < self.frame + self.delay:
            if g not in known:
                value = self.predicted(seat, g)
                known[g] = value
                fresh.append((g, value))
                if g < self.frame and self.used[g][seat] != value and \
                        (self.rollback_from is None or g < self.rollback_from):
                    self.rollback_from = g
            g += 1
        self._advance_confirmed()
        return fresh

    # -- a reloaded page ---------------------------------------------------------------
    def load_recorded(self, player, pairs):
        """The server's record of a seat this page plays (its own, an AI seat it hosts):
        after a reload, the inputs it made before."""
        known = self.confirmed[player]
        for frame, value in pairs:
            if frame >= self.frame:
                known[frame] = value
        self._advance_confirmed()

    def catch_up(self, chunk):
        """Ops replaying up to `chunk` frames that everyone's recorded inputs cover (a
        reloaded page rebuilding the state from the seed); [] once it is at the present."""
        limit = min(self.confirmed_upto, self.frame + chunk)
        if self.last_frame is not None and limit > self.last_frame + 1:
            limit = self.last_frame + 1
        ops = []
        last_step = None
        while self.frame < limit:
            ops.extend(self._step_ops(self.frame))
            last_step = len(ops) - 2
            self.frame += 1
            # a checkpoint is hashed right after its snapshot: the ring keeps only the last few
            if self.frame % self.hash_every == 0 and self.frame > self.hashed_upto:
                ops.append({"op": OP_HASH, "frame": self.frame})
                self.hashed_upto = self.frame
        if last_step is not None:
            ops[last_step]["render"] = True
        return ops

    def resume_mine(self):
        """After the catch-up: the frames between my seats' last recorded input and the
        present get their latest input (the page was away for them). Returns {seat: [(frame,
        value)]} to send."""
        out = {}
        for seat in [self.local] + self.hosted:
            out[seat] = self._fill(seat, self.confirmed_upto)
        return out

    def remote_input(self, player, frame, value, sender_frame=None, sender_advantage=None):
        """A real input from another player (duplicates are ignored)."""
        if player not in self.confirmed or player == self.local or player in self.hosted:
            raise InputConflict("unknown remote player " + repr(player))
        if sender_frame is not None and sender_frame > self.remote_frame.get(player, -1):
            self.remote_frame[player] = sender_frame
            if sender_advantage is not None:
                self.remote_advantage[player] = sender_advantage
        known = self.confirmed[player]
        if frame in known:
            if known[frame] != value:
                raise InputConflict(player + " sent two inputs for frame " + str(frame))
            return False
        if frame < self.confirmed_upto:
            return False  # pruned history; cannot differ from what we confirmed
        known[frame] = value
        if frame < self.frame and self.used[frame][player] != value:
            self.stats["prediction_misses"] += 1
            if self.rollback_from is None or frame < self.rollback_from:
                self.rollback_from = frame
        self._advance_confirmed()
        return True

    def _advance_confirmed(self):
        f = self.confirmed_upto
        while all(f in self.confirmed[p] for p in self.players):
            f += 1
        self.confirmed_upto = f

    def predicted(self, player, frame):
        """The real input if known, else the player's latest real input before it."""
        known = self.confirmed[player]
        if frame in known:
            return known[frame]
        g = frame - 1
        while g >= 0:
            if g in known:
                return known[g]
            g -= 1
        return self.default

    def inputs_for(self, frame):
        out = {}
        for p in self.players:
            out[p] = self.predicted(p, frame)
        return out

    def missing_from(self):
        """First frame some remote input is missing for (to ask the server)."""
        return self.confirmed_upto

    # -- simulation ------------------------------------------------------------------
    def finished(self):
        return self.end_frame is not None and self.verified_upto() > self.end_frame

    def can_advance(self):
        if self.end_frame is not None or (self.last_frame is not None and self.frame > self.last_frame):
            return False
        return self.frame - self.confirmed_upto < self.window

    def start_ops(self):
        return [{"op": OP_SNAPSHOT}]

    def plan(self, advance=True):
        """Ops for one BATCH: the rollback (if any) and, if `advance`, the next frame.
        Ends with hash requests for confirmed checkpoints. Returns (ops, depth)."""
        ops = []
        depth = 0
        if self.rollback_from is not None:
            start = self.rollback_from
            depth = self.frame - start
            ops.append({"op": OP_RESTORE, "frame": start})
            for g in range(start, self.frame):
                ops.extend(self._step_ops(g))
            self.rollback_from = None
            self.stats["rollbacks"] += 1
            self.stats["rollback_frames"] += depth
            if depth > self.stats["max_depth"]:
                self.stats["max_depth"] = depth
        if advance:
            ops.extend(self._step_ops(self.frame))
            self.frame += 1
        if ops:
            # only the last step of a batch needs drawing
            for op in reversed(ops):
                if op["op"] == OP_STEP:
                    op["render"] = True
                    break
        for k in self._checkpoints():
            ops.append({"op": OP_HASH, "frame": k})
        return ops, depth

    def _step_ops(self, g):
        inputs = self.inputs_for(g)
        self.used[g] = inputs
        return [{"op": OP_STEP, "actions": inputs, "frame": g}, {"op": OP_SNAPSHOT}]

    def verified_upto(self):
        """Frames below this were simulated with real inputs only (state `verified_upto`
        is final). A pending rollback means frames from it on are not."""
        limit = min(self.confirmed_upto, self.frame)
        if self.rollback_from is not None and self.rollback_from < limit:
            limit = self.rollback_from
        return limit

    def _checkpoints(self):
        limit = self.verified_upto()
        out = []
        k = (self.hashed_upto // self.hash_every + 1) * self.hash_every
        while k <= limit:
            out.append(k)
            k += self.hash_every
        if out:
            self.hashed_upto = out[-1]
        return out

    def apply_results(self, ops, results):
        """Record step results (done flags, rewards, info) per frame; returns the hash
        results [(frame, hash)] and the last step result (for drawing)."""
        hashes = []
        last = None
        for op, res in zip(ops, results):
            if op["op"] == OP_STEP:
                self.results[op["frame"]] = res
                last = res
            elif op["op"] == OP_HASH:
                hashes.append((res["frame"], res["hash"]))
        self._detect_end()
        return hashes, last

    def _detect_end(self):
        if self.end_frame is not None:
            return
        limit = self.verified_upto()
        g = self.emitted_upto
        while g < limit:
            res = self.results.get(g)
            if (res is not None and res.get("done")) or g == self.last_frame:
                self.end_frame = g
                return
            g += 1

    def take_confirmed(self):
        """Newly final frames: [(frame, inputs, result)], each exactly once, in order."""
        limit = self.verified_upto()
        if self.end_frame is not None and limit > self.end_frame + 1:
            limit = self.end_frame + 1
        out = []
        g = self.emitted_upto
        while g < limit:
            out.append((g, self.used[g], self.results[g]))
            g += 1
        self.emitted_upto = limit
        self._prune(limit)
        return out

    def _prune(self, limit):
        # keep what rollback and prediction still need: frames >= limit - 1
        for table in (self.used, self.results):
            for g in [g for g in table if g < limit - 1]:
                del table[g]
        for p in self.players:
            known = self.confirmed[p]
            for g in [g for g in known if g < limit - 1]:
                del known[g]

    # -- time sync ---------------------------------------------------------------------
    def frame_advantage(self, rtt_frames):
        """How many frames we run ahead of the slowest remote player (estimated)."""
        if not self.remote_frame or len(self.remote_frame) < len(self.remotes):
            return 0.0
        slowest = min(self.remote_frame.values())
        return self.frame - (slowest + rtt_frames / 2)

    def should_wait(self, rtt_frames):
        """GGPO's wait recommendation: half the difference between our frame advantage and
        our partners'. Both sides see the same link latency, so it cancels out and only a
        real lead remains. Hold one frame at a time, then let the estimate catch up."""
        if self.wait_cooldown > 0:
            self.wait_cooldown -= 1
            return False
        if not self.remotes or len(self.remote_advantage) < len(self.remotes):
            return False  # nobody to wait for (the partners' seats are hosted here) or no estimate
        lead = (self.frame_advantage(rtt_frames) - min(self.remote_advantage.values())) / 2
        if lead > 1:
            self.stats["waits"] += 1
            self.wait_cooldown = 4
            return True
        return False
