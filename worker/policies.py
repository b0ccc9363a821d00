"""AI partners inside the env's worker: a seat played by a policy. Its action for a frame is
decided from what the seat saw after the frame before (its reset observation for the
first), held for ``every`` frames, and reported with the step like a person's input, so
the record (and any replay of it) is exact by construction. Runs the same in Pyodide and
in CPython (tests, parity checks)."""

import random
import time

from worker.errors import EnvContractError


class PolicyError(EnvContractError):
    """A policy file or a decision failed; the message names the policy and the seat."""


def _clock_ms():
    return time.perf_counter() * 1000.0


def for_seat(value, seat, players):
    """What one seat sees: its own entry when the env keys obs/info by player, else all of it."""
    if isinstance(value, dict) and seat in value and all(p in value for p in players):
        return value[seat]
    return value


class RandomPolicy:
    """Uniform over the listed actions; seeded from the episode seed and the seat, so a
    rerun of the same episode makes the same choices."""

    def __init__(self, actions, seat):
        self.actions = list(actions)
        self.seat = seat
        self.rng = random.Random(0)

    def reset(self, seed=None):
        self.rng = random.Random(str(seed) + "/" + self.seat)

    def act(self, obs, info):
        return self.actions[self.rng.randrange(len(self.actions))]


def load_python_policy(path, config, search_path=()):
    """``create_policy(config)`` from a policy file; the object must have reset() and act()."""
    from worker.env_host import use_search_path

    with open(path) as fh:
        code = fh.read()
    use_search_path([path.rsplit("/", 1)[0], *search_path])  # its sibling modules import
    namespace = {"__name__": "coplay_policy", "__file__": path}
    exec(compile(code, path, "exec"), namespace)
    factory = namespace.get("create_policy")
    if not callable(factory):
        raise PolicyError(path + " must define create_policy(config) returning the policy")
    policy = factory(dict(config))
    for method in ("reset", "act"):
        if not callable(getattr(policy, method, None)):
            raise PolicyError("the policy returned by create_policy() in " + path + " has no "
                              + method + "() method")
    return policy


class Seat:
    """One AI seat: its policy, the action it holds, which observation that action came
    from, and the time the decision took. A synchronous policy (Python, random, ONNX in
    CPython) decides as soon as the frame's observation exists; an asynchronous one (ONNX
    in the browser) is awaited in the worker between frames, the latest observation first,
    and the seat holds its last action until the new one arrives. Either way the action
    played is reported with the step, so the record is exact."""

    def __init__(self, seat, name, policy, every=1):
        self.seat = seat
        self.name = name
        self.policy = policy
        self.every = max(1, int(every))
        self.is_async = bool(getattr(policy, "is_async", False))
        # an ONNX policy's obs function sees the whole obs and info, and the seat's name
        self.full_view = bool(getattr(policy, "full_view", False))
        self.action = None
        self.decided_from = 0  # the frame whose observation chose self.action
        self.decide_ms = 0.0
        self.decisions = 0
        self.epoch = 0  # episodes begun: a decision from an earlier one is dropped
        self.pending = None  # (epoch, frame, obs, info, players) waiting for an async decision
        self.busy = False
        self.failure = None  # a PolicyError from an async decision, raised at the next step
        # decisions made but overtaken by a newer one before a frame played them: reported
        # with the next step, so a re-run (parity) makes them too (a recurrent state saw them)
        self.unplayed = []
        self.reported = False

    def reset(self, seed, obs, info, players, frame=0):
        """A new episode (or, in a room, this browser taking the seat over at `frame`): the
        policy starts afresh and decides from what the env shows now."""
        self.policy.reset(seed)
        self.epoch += 1
        self.decisions = 0
        self.failure = None
        self.unplayed = []
        self.action = None
        if self.is_async:
            self.pending = (self.epoch, frame, obs, info, players, _clock_ms())
        else:
            self.decide(frame, obs, info, players)

    def observe(self, frame, obs, info, players):
        if frame % self.every != 0:
            return
        if self.is_async:
            self.pending = (self.epoch, frame, obs, info, players, _clock_ms())
        else:
            self.decide(frame, obs, info, players)

    def check(self):
        """Before a step: a failed decision is the step's error, not a silent default."""
        if self.failure is not None:
            raise self.failure
        if self.action is None:
            raise PolicyError("policy " + repr(self.name) + " (seat " + self.seat + ") has not decided "
                              "its first action (RESET must await it)")

    def _failed(self, frame, exc):
        if isinstance(exc, PolicyError):
            return exc
        return PolicyError("policy " + repr(self.name) + " (seat " + self.seat + ") raised at frame "
                           + str(frame) + ": " + type(exc).__name__ + ": " + str(exc))

    def decide(self, frame, obs, info, players):
        started = _clock_ms()
        try:
            action = self.policy.act(*self._view(obs, info, players))
        except Exception as exc:
            raise self._failed(frame, exc) from exc
        self._chose(action, frame, started)

    def _view(self, obs, info, players):
        if self.full_view:
            return obs, info
        return for_seat(obs, self.seat, players), for_seat(info, self.seat, players)

    def _chose(self, action, frame, started):
        if self.action is not None and not self.reported:
            self.unplayed.append(self.decided_from)  # overtaken before any frame played it
        self.decide_ms = _clock_ms() - started
        self.decisions += 1
        self.action = action
        self.decided_from = frame
        self.reported = False

    async def decide_pending(self):
        """Run the waiting decisions, one at a time (a model session runs one inference at
        a time); an observation that arrives meanwhile replaces the one not yet started."""
        if self.busy:
            return
        self.busy = True
        try:
            while self.pending is not None:
                epoch, frame, obs, info, players, seen = self.pending
                self.pending = None
                try:
                    action = await self.policy.act_async(*self._view(obs, info, players))
                except Exception as exc:  # noqa: BLE001 - reported at the next step
                    if epoch == self.epoch:
                        self.failure = self._failed(frame, exc)
                    continue
                if epoch == self.epoch and action is not None:
                    self._chose(action, frame, seen)
        finally:
            self.busy = False

    def report(self):
        out = {"policy": self.name, "decide_ms": round(self.decide_ms, 4), "from": self.decided_from}
        if self.unplayed:
            out["unplayed"], self.unplayed = self.unplayed, []
        self.reported = True
        return out


def cpu_runner(model_path):
    from worker.onnx_cpython import CpuRunner

    return CpuRunner(model_path)


def build_seats(partners, base, search_path=(), runner_for=cpu_runner):
    """partners: {seat: {"name", "kind": "python" | "onnx" | "random", "file", "config",
    "actions", "every", ...}} as the server's game settings give them (an ONNX policy also
    names its obs function and the model's inputs and outputs); files are relative to
    ``base``. ``runner_for(model_path)`` runs ONNX models: onnxruntime here, onnxruntime-web
    in the browser (worker/onnx_web.py), whose seats are then ``prepare_seats``-ed (awaited)
    before the first reset."""
    from worker.onnx_policy import OnnxPolicy, load_function

    seats = {}
    for seat in sorted(partners):
        spec = partners[seat]
        kind = spec.get("kind")
        if kind == "python":
            # config["seat"] is the seat it plays (a stand-in may play any person's seat)
            config = dict(spec.get("config") or {})
            config["seat"] = seat
            policy = load_python_policy(base + "/" + spec["file"], config, search_path)
        elif kind == "onnx":
            encode = load_function(base + "/" + spec["obs_file"], spec["obs_function"], search_path)
            policy = OnnxPolicy(spec, seat, encode, runner_for(base + "/" + spec["file"]))
        elif kind == "random":
            policy = RandomPolicy(spec["actions"], seat)
        else:
            raise PolicyError("policy " + repr(spec.get("name")) + ": unknown kind " + repr(kind))
        seats[seat] = Seat(seat, spec.get("name", kind), policy, spec.get("every", 1))
    return seats


async def prepare_seats(seats):
    """Open and warm up the browser's ONNX models (the page shows its loader meanwhile)."""
    for seat in seats.values():
        if seat.is_async:
            await seat.policy.prepare()

