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
    """One AI seat: its policy, the action it holds, and the time its last decision took."""

    def __init__(self, seat, name, policy, every=1):
        self.seat = seat
        self.name = name
        self.policy = policy
        self.every = max(1, int(every))
        self.action = None
        self.decide_ms = 0.0
        self.decisions = 0

    def reset(self, seed, obs, info, players):
        self.policy.reset(seed)
        self.decisions = 0
        self._decide(0, obs, info, players)

    def observe(self, frame, obs, info, players):
        if frame % self.every == 0:
            self._decide(frame, obs, info, players)

    def _decide(self, frame, obs, info, players):
        started = _clock_ms()
        try:
            action = self.policy.act(for_seat(obs, self.seat, players), for_seat(info, self.seat, players))
        except Exception as exc:
            raise PolicyError("policy " + repr(self.name) + " (seat " + self.seat + ") raised at frame "
                              + str(frame) + ": " + type(exc).__name__ + ": " + str(exc)) from exc
        self.decide_ms = _clock_ms() - started
        self.decisions += 1
        self.action = action

    def report(self):
        return {"policy": self.name, "decide_ms": round(self.decide_ms, 4)}


def build_seats(partners, base, search_path=()):
    """partners: {seat: {"name", "kind": "python" | "random", "file", "config", "actions",
    "every"}} as the server's game settings give them; files are relative to ``base``."""
    seats = {}
    for seat in sorted(partners):
        spec = partners[seat]
        kind = spec.get("kind")
        if kind == "python":
            policy = load_python_policy(base + "/" + spec["file"], spec.get("config") or {}, search_path)
        elif kind == "random":
            policy = RandomPolicy(spec["actions"], seat)
        else:
            raise PolicyError("policy " + repr(spec.get("name")) + ": unknown kind " + repr(kind))
        seats[seat] = Seat(seat, spec.get("name", kind), policy, spec.get("every", 1))
    return seats
