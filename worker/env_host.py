"""Hosts the researcher's env: loads its code, steps it, keeps a ring buffer of
snapshots and executes BATCH operations synchronously (no awaits: a rollback must
not interleave with anything else)."""

import copy
import importlib
import os
import random
import sys

from protocol import messages as m
from worker.adapters import adapt
from worker.errors import EnvContractError  # defined apart so adapters can raise it too
from worker.frames import rgb_frame, to_rgba
from worker.serialize import safe_serialize, state_hash

_ATOMS = (int, float, str, bool, bytes, type(None))


def copy_state(value):
    """deepcopy for snapshots, minus its slow paths: immutable values are shared and a
    random.Random is cloned through getstate() instead of element by element."""
    kind = type(value)
    if kind in _ATOMS:
        return value
    if kind is dict:
        return {k: copy_state(v) for k, v in value.items()}
    if kind is list:
        return [copy_state(v) for v in value]
    if kind is tuple:
        if all(type(v) in _ATOMS for v in value):
            return value
        return tuple(copy_state(v) for v in value)
    if kind is random.Random:
        clone = random.Random()
        clone.setstate(value.getstate())
        return clone
    return copy.deepcopy(value)


def forget_search_path(folders):
    """Take ``folders`` off sys.path and forget the modules imported from them."""
    folders = [os.path.abspath(f) for f in folders]
    for name, module in list(sys.modules.items()):
        where = getattr(module, "__file__", None)
        if where and any(os.path.abspath(where).startswith(f + os.sep) for f in folders):
            del sys.modules[name]
    for folder in folders:
        while folder in sys.path:
            sys.path.remove(folder)
    importlib.invalidate_caches()


def use_search_path(folders):
    """Put ``folders`` first on sys.path, their modules freshly imported."""
    if not folders:
        return
    forget_search_path(folders)
    for folder in reversed(folders):
        sys.path.insert(0, os.path.abspath(folder))


class SnapshotMissing(Exception):
    pass


def _any_true(flag):
    if isinstance(flag, dict):
        return any(bool(v) for v in flag.values())
    return bool(flag)


class EnvHost:
    def __init__(self, ring_size=9):
        self.globals = {}
        self.env = None
        self.frame = 0
        self.ring_size = ring_size
        self.snapshots = {}
        self.partners = {}  # AI seats (worker/policies.py), set after each load
        # alone with a person the AI's actions are filled into each STEP; in a room they are
        # inputs like a person's: this browser decides only for the seats it hosts, from the
        # present frame after each BATCH, and the page sends the decisions as their inputs
        self.fill = True
        self.hosting = set()
        self.seed = None
        self.last_seen = None  # (frame, obs, info) after the newest step, in a room
        self.observed = -1
        self.frames = []  # RGBA pixels of the frames rendered for the reply being built

    # -- loading -------------------------------------------------------------
    def set_globals(self, values):
        self.globals.update(values)

    def load(self, code, filename="env.py", search_path=()):
        """Run the env's code and create the env. ``filename`` is its path (so the env can
        open data files relative to ``__file__``); ``search_path`` lists the folders its own
        imports come from (its experiment folder, unpacked wheels). Modules an earlier env
        imported from those folders are dropped first, so every load sees the files as
        they are now (a later scene's env, an edited module)."""
        use_search_path(search_path)
        namespace = {"__name__": "coplay_env", "__file__": filename}
        namespace.update(self.globals)
        # no __pycache__ in the researcher's folders: a module rewritten within the same
        # second at the same size would otherwise come back from its stale bytecode
        writes_bytecode = sys.dont_write_bytecode
        sys.dont_write_bytecode = True
        try:
            exec(compile(code, filename, "exec"), namespace)
        finally:
            sys.dont_write_bytecode = writes_bytecode
        factory = namespace.get("create_env")
        if not callable(factory):
            raise EnvContractError(filename + " must define create_env(config) returning the env")
        env = factory(dict(self.globals.get("env_config") or {}))
        env = adapt(env, self.globals.get("players") or ["p0"])  # Gymnasium, PettingZoo
        for method in ("reset", "step", "render"):
            if not callable(getattr(env, method, None)):
                raise EnvContractError(
                    "the env returned by create_env() has no " + method + "() method")
        self.env = env
        self.frame = 0
        self.snapshots = {}
        self.partners = {}

    def set_partners(self, seats, fill=True):
        """AI seats (worker/policies.py): with ``fill`` the env host plays their actions on
        every step; without it (a room) they decide for the page, for the seats it hosts."""
        self.partners = seats
        self.fill = fill
        self.hosting = set()

    def deciding(self):
        return [seat for name, seat in self.partners.items() if self.fill or name in self.hosting]

    def has_async_partners(self):
        return any(seat.is_async for seat in self.deciding())

    async def decide(self):
        """The AI seats' waiting decisions (ONNX in the browser), awaited between frames."""
        for seat in self.deciding():
            if seat.is_async:
                await seat.decide_pending()

    def host_seats(self, seats):
        """A room's AI seats this browser decides for from now on (one it took over starts
        afresh, deciding from the present frame)."""
        fresh = [s for s in seats if s not in self.hosting]
        for name in fresh:
            if name not in self.partners:
                raise EnvContractError("no AI policy loaded for seat " + repr(name))
            self.hosting.add(name)
            if self.last_seen is not None:
                frame, obs, info = self.last_seen
                self.partners[name].reset(self.seed, obs, info, self._players(), frame)
        return {"frame": self.frame, "hosting": sorted(self.hosting)}

    def room_report(self):
        """The hosted seats' latest decisions, for the page to send as their inputs."""
        out = {}
        for name in sorted(self.hosting):
            seat = self.partners[name]
            if seat.failure is not None:
                raise seat.failure
            out[name] = dict(seat.report(), action=seat.action)
        return out

    async def first_decisions(self):
        """After a reset: every AI seat's first action exists before frame 1 is asked for
        (a decision of the episode before may still be finishing; it is then dropped)."""
        import asyncio

        for seat in self.deciding():
            while seat.is_async and seat.action is None and seat.failure is None:
                await seat.decide_pending()
                if seat.action is None and seat.failure is None:
                    await asyncio.sleep(0.001)
            if seat.failure is not None:
                raise seat.failure

    def _players(self):
        return self.globals.get("players") or ["p0"]

    def _require_env(self):
        if self.env is None:
            raise EnvContractError("no env loaded: send RUN_INIT_CODE first")
        return self.env

    # -- stepping ------------------------------------------------------------
    def reset(self, seed=None, render=True, hosting=None):
        obs, info = self._require_env().reset(seed=seed)
        self.frame = 0
        self.snapshots = {}
        self.seed = seed
        if not self.fill:
            self.hosting = set(hosting or ())
            self.last_seen, self.observed = (0, obs, info), 0
        for seat in self.deciding():  # a fresh policy state every episode
            seat.reset(seed, obs, info, self._players())
        out = {"frame": 0, "obs": safe_serialize(obs), "info": safe_serialize(info)}
        if render:
            out["render"] = self.render()
        return out

    def step(self, actions, render=True, include_obs=False, recorded=False):
        """``recorded``: a reloaded page replaying its episode: every seat plays the recorded
        action, the AI seats still see each frame (a policy's memory is rebuilt as it was)."""
        chosen = None
        if self.partners and self.fill and not recorded:  # AI seats play what they decided the frame before
            actions = dict(actions)
            chosen = {}
            for name, seat in self.partners.items():
                seat.check()
                actions[name] = chosen[name] = seat.action
        obs, rewards, terminated, truncated, info = self._require_env().step(actions)
        self.frame += 1
        out = {
            "frame": self.frame,
            "rewards": safe_serialize(rewards),
            "terminated": safe_serialize(terminated),
            "truncated": safe_serialize(truncated),
            "done": _any_true(terminated) or _any_true(truncated),
            "info": safe_serialize(info),
        }
        if include_obs:
            out["obs"] = safe_serialize(obs)
        if not self.fill:
            self.last_seen = (self.frame, obs, info)
        if chosen is not None:
            out["partner_actions"] = safe_serialize(chosen)
            out["partners"] = {name: seat.report() for name, seat in self.partners.items()}
        if self.partners and self.fill:  # the next frame's decisions, from what this one shows
            for seat in self.partners.values():
                seat.observe(self.frame, obs, info, self._players())
        if render:
            out["render"] = self.render()
        return out

    def render(self):
        """Drawables as plain JSON, or for an RGB frame one ``image`` drawable whose pixels
        wait in ``self.frames`` (sent beside the JSON as a binary buffer, never as a list)."""
        drawn = self._require_env().render()
        frame = rgb_frame(drawn)
        if frame is None:
            return safe_serialize(drawn)
        w, h, rgb = frame
        self.frames.append(to_rgba(rgb, w, h))
        return [{"type": m.IMAGE, "w": w, "h": h, "buffer": len(self.frames) - 1}]

    def take_frames(self):
        """The pixel buffers of the reply just built, in ``buffer`` order; forgets them."""
        frames, self.frames = self.frames, []
        return frames

    # -- state ---------------------------------------------------------------
    def get_state(self):
        env = self._require_env()
        if callable(getattr(env, "get_state", None)):
            return env.get_state()
        return copy_state(vars(env))

    def set_state(self, state):
        env = self._require_env()
        if callable(getattr(env, "set_state", None)):
            env.set_state(copy_state(state))
        else:
            env.__dict__.clear()
            env.__dict__.update(copy_state(state))

    def snapshot(self):
        self.snapshots[self.frame] = self.get_state()
        while len(self.snapshots) > self.ring_size:
            del self.snapshots[min(self.snapshots)]
        return {"frame": self.frame}

    def restore(self, frame):
        if frame not in self.snapshots:
            raise SnapshotMissing(
                "no snapshot for frame " + str(frame) + "; held: " + str(sorted(self.snapshots)))
        self.set_state(self.snapshots[frame])
        self.frame = frame
        return {"frame": frame}

    def hash(self, frame=None):
        """Hash of the live state, or of snapshot `frame` (a confirmed checkpoint)."""
        if frame is not None:
            if frame not in self.snapshots:
                raise SnapshotMissing(
                    "no snapshot for frame " + str(frame) + "; held: " + str(sorted(self.snapshots)))
            return {"frame": frame, "hash": state_hash(self.snapshots[frame])}
        env = self._require_env()
        # hashing only reads the state: no need for get_state()'s defensive deep copy
        state = env.get_state() if callable(getattr(env, "get_state", None)) else vars(env)
        return {"frame": self.frame, "hash": state_hash(state)}

    # -- batch ---------------------------------------------------------------
    def run_batch(self, ops):
        """Run ops in order; one failing op fails the whole batch (state may be
        partly applied, which the caller learns from the error's op index)."""
        results = []
        for index, op in enumerate(ops):
            kind = op.get("op")
            try:
                if kind == m.OP_RESTORE:
                    results.append(self.restore(op["frame"]))
                elif kind == m.OP_STEP:
                    results.append(self.step(op["actions"], render=bool(op.get("render")),
                                             include_obs=bool(op.get("include_obs")),
                                             recorded=bool(op.get("recorded"))))
                elif kind == m.OP_SNAPSHOT:
                    results.append(self.snapshot())
                elif kind == m.OP_HASH:
                    results.append(self.hash(op.get("frame")))
                elif kind == m.OP_RENDER:
                    results.append({"frame": self.frame, "render": self.render()})
                elif kind == m.OP_HOST:
                    results.append(self.host_seats(op["seats"]))
                else:
                    raise m.ProtocolError("unknown BATCH op " + repr(kind))
            except Exception as exc:
                raise BatchOpError(index, kind, exc) from exc
        self._observe_present()
        return results

    def _observe_present(self):
        """In a room: the hosted AI seats decide from the newest frame, once per frame."""
        if self.fill or not self.hosting or self.last_seen is None or self.last_seen[0] <= self.observed:
            return
        frame, obs, info = self.last_seen
        self.observed = frame
        for name in sorted(self.hosting):
            self.partners[name].observe(frame, obs, info, self._players())


class BatchOpError(Exception):
    def __init__(self, index, kind, cause):
        super().__init__("BATCH op " + str(index) + " (" + str(kind) + ") failed: "
                         + type(cause).__name__ + ": " + str(cause))
        self.index = index
        self.cause = cause
