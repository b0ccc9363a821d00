"""An ONNX policy seat's logic, the same in the browser and in CPython: the researcher's
obs function turns the env's observation into the model's input, a runner (onnxruntime-web
in the worker, worker/onnx_web.py; onnxruntime in CPython, worker/onnx_cpython.py) runs the
model, and the scores become an action by argmax or by a seeded sample. Recurrent state
is fed back decision after decision and zeroed at every reset."""

import math
import random

from worker.errors import EnvContractError


class OnnxPolicyError(EnvContractError):
    """The model, the obs function or the scores do not fit together; says which and how."""


def load_function(path, name, search_path=()):
    """``name`` from the Python file at ``path`` (the obs function, e.g. features.py:encode)."""
    from worker.env_host import use_search_path

    with open(path) as fh:
        code = fh.read()
    use_search_path([path.rsplit("/", 1)[0], *search_path])
    namespace = {"__name__": "coplay_obs", "__file__": path}
    exec(compile(code, path, "exec"), namespace)
    function = namespace.get(name)
    if not callable(function):
        raise OnnxPolicyError(path + " must define " + name + "(obs, info, seat) returning the model's input")
    return function


def _numbers(value, out):
    """Flatten nested lists/tuples of numbers into ``out``; False on anything else."""
    if isinstance(value, (list, tuple)):
        for item in value:
            if not _numbers(item, out):
                return False
        return True
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    out.append(float(value))
    return True


def _size(shape):
    n = 1
    for d in shape:
        n *= d
    return n


class OnnxPolicy:
    """spec: the partner spec the server resolved (server/policies/config.py partner_spec):
    input/input_shape/output/state[{input, output, shape}], actions, choose, obs_function."""

    def __init__(self, spec, seat, encode, runner):
        self.name = spec.get("name", "onnx")
        self.seat = seat
        self.encode = encode
        self.runner = runner
        self.actions = list(spec["actions"])
        self.choose = spec.get("choose", "argmax")
        self.input = spec["input"]
        self.input_shape = list(spec["input_shape"])
        self.output = spec["output"]
        self.states = list(spec.get("state") or [])
        self.obs_name = spec.get("obs_file", "") + ":" + spec.get("obs_function", "")
        self.state = {}
        self.generation = 0  # a decision still running when the episode resets is dropped
        self.rng = random.Random(0)
        self.is_async = bool(getattr(runner, "is_async", False))
        self.full_view = True  # encode(obs, info, seat) gets the env's whole obs and info

    # -- episode -------------------------------------------------------------
    def reset(self, seed=None):
        self.generation += 1
        self.rng = random.Random(str(seed) + "/" + self.seat)
        self.state = {s["input"]: self.runner.zeros(s["shape"]) for s in self.states}

    # -- one decision --------------------------------------------------------
    def feeds(self, obs, info):
        values = []
        encoded = self.encode(obs, info, self.seat)
        want = _size(self.input_shape)
        if not _numbers(encoded, values):
            raise OnnxPolicyError("obs function " + self.obs_name + " must return a list of numbers, not "
                                  + type(encoded).__name__)
        if len(values) != want:
            raise OnnxPolicyError("obs function " + self.obs_name + " returned " + str(len(values))
                                  + " numbers but the model's input " + repr(self.input) + " has shape "
                                  + str(self.input_shape) + " (" + str(want) + " numbers)")
        feeds = {self.input: self.runner.tensor(values, self.input_shape)}
        feeds.update(self.state)
        return feeds

    def finish(self, outputs, generation):
        """The action from the model's outputs; the new recurrent state kept unless an
        episode reset happened while the model ran (then the result is None: dropped)."""
        if generation != self.generation:
            return None
        scores = self.runner.values(outputs[self.output])
        if len(scores) != len(self.actions):
            raise OnnxPolicyError("the model's output " + repr(self.output) + " has " + str(len(scores))
                                  + " scores but the policy lists " + str(len(self.actions))
                                  + " actions (action index out of range)")
        for s in self.states:
            self.state[s["input"]] = outputs[s["output"]]
        return self.actions[self._pick(scores)]

    def _pick(self, scores):
        if self.choose == "sample":
            top = max(scores)
            weights = [math.exp(s - top) for s in scores]
            u = self.rng.random() * sum(weights)
            for index, w in enumerate(weights):
                u -= w
                if u < 0:
                    return index
            return len(weights) - 1
        best = 0
        for index, s in enumerate(scores):  # ties: the first, as numpy.argmax
            if s > scores[best]:
                best = index
        return best

    def wanted(self):
        return [self.output] + [s["output"] for s in self.states]

    async def prepare(self, runs=10):
        """Open the model and run it on zeros while the page loads: the first inference is
        many times slower than the rest (onnxruntime-web sets itself up). The median of the
        ``runs`` after it, back to back, is the model's own awaited run time (``warm_ms``)."""
        import time

        await self.runner.open()
        feeds = {self.input: self.runner.zeros(self.input_shape)}
        for s in self.states:
            feeds[s["input"]] = self.runner.zeros(s["shape"])
        await self.runner.run_async(feeds, self.wanted())
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            await self.runner.run_async(feeds, self.wanted())
            times.append((time.perf_counter() - started) * 1000)
        times.sort()
        self.warm_ms = times[len(times) // 2] if times else None

    def act(self, obs, info):
        """A synchronous runner (CPython onnxruntime)."""
        generation = self.generation
        return self.finish(self.runner.run(self.feeds(obs, info), self.wanted()), generation)

    async def act_async(self, obs, info):
        """onnxruntime-web: inference is awaited while frames go on."""
        generation = self.generation
        outputs = await self.runner.run_async(self.feeds(obs, info), self.wanted())
        return self.finish(outputs, generation)
