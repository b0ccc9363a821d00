"""ONNX policies in CPython (server/policies/, worker/onnx_policy.py with onnxruntime): the
config and the startup check name the field or the file at fault; a seated model decides
from the frame before like any policy; argmax matches onnxruntime's own scores; a sampled
policy is seeded by episode and seat; recurrent state is zeroed at every reset."""

from pathlib import Path

import numpy as np
import onnxruntime
import pytest

from server.study.experiment import load_experiment
from tests.policy_models import gru_model, mlp_model
from tests.unit.test_game_scenes import error_of
from tests.unit.test_policies import COUNTER_ENV
from worker.env_host import EnvHost, forget_search_path
from worker.policies import build_seats

ACTIONS = ["a", "b", "c", "d", "e", "f"]
# the Counter env's obs is the frame number for each seat: a few features of it
FEATURES = '''
def encode(obs, info, seat):
    t = obs[seat]
    return [((t * (i + 3)) % 7) / 3.0 - 1.0 for i in range(SIZE)]

def short(obs, info, seat):
    return [0.0] * (SIZE - 1)

def words(obs, info, seat):
    return "not numbers"

def explodes(obs, info, seat):
    if obs[seat] >= 4:
        raise KeyError("pot")
    return encode(obs, info, seat)

SIZE = 8
'''


def write(tmp_path, policy, partners=None, model="bc.onnx", model_kind="mlp", **extra):
    folder = tmp_path / "onnxexp"
    folder.mkdir(exist_ok=True)
    (folder / "env.py").write_text(COUNTER_ENV)
    (folder / "features.py").write_text(FEATURES)
    if model_kind == "mlp":
        mlp_model(folder / model, n_in=8, n_out=6, hidden=16, seed=1)
    elif model_kind == "gru":
        gru_model(folder / model, n_in=8, n_out=6, hidden=16, seed=1)
    else:
        (folder / model).write_bytes(b"this is not a model")
    definition = {"env": "env.py", "controls": {"ArrowLeft": "left"}, "default_action": "noop",
                  "players": ["p0", "p1"], "policies": {"bc": policy}, "partners": partners or {"p1": "bc"},
                  **extra}
    path = folder / "experiment.py"
    path.write_text(f"EXPERIMENT = {definition!r}\n")
    return path


def mlp(**over):
    return {"onnx": "bc.onnx", "obs": "features.py:encode", "actions": ACTIONS, **over}


@pytest.mark.parametrize("policy, kind, needle", [
    (mlp(obs="features.encode"), "mlp", "policy 'bc': obs: String should match pattern"),
    (mlp(onnx="bc.pt"), "mlp", "policy 'bc': onnx: Value error, bc.pt: an ONNX model file ends in .onnx"),
    (mlp(onnx="missing.onnx"), "mlp", "policy 'bc': onnx model missing.onnx not found"),
    (mlp(obs="nofile.py:encode"), "mlp", "policy 'bc': obs file nofile.py not found"),
    (mlp(choose="softmax"), "mlp", "policy 'bc': choose: Input should be 'argmax' or 'sample'"),
    (mlp(), "garbage", "policy 'bc': onnx: bc.onnx cannot be loaded by onnxruntime"),
    (mlp(output="probs"), "mlp",
     "policy 'bc': output: 'probs' is not an output of bc.onnx (outputs: logits)"),
    (mlp(input="x"), "mlp", "policy 'bc': input: 'x' is not an input of bc.onnx (inputs: obs)"),
    (mlp(state={"h": "h_out"}), "mlp", "policy 'bc': state: 'h' is not an input of bc.onnx (inputs: obs)"),
    (mlp(), "gru", "bc.onnx has 2 inputs besides the recurrent state (obs, h_in): name one with 'input'"),
    (mlp(obs="features.py:short"), "mlp",
     "obs function features.py:short returned 7 numbers but the model's input 'obs' has shape [1, 8] "
     "(8 numbers)"),
    (mlp(obs="features.py:words"), "mlp",
     "obs function features.py:words must return a list of numbers, not str"),
    (mlp(obs="features.py:nothere"), "mlp", "features.py must define nothere(obs, info, seat)"),
    (mlp(actions=ACTIONS[:4]), "mlp",
     "the model's output 'logits' has 6 scores but the policy lists 4 actions (action index out of range)"),
])
def test_onnx_policy_errors_name_the_field_or_the_file(tmp_path, policy, kind, needle):
    message = error_of(write(tmp_path, policy, model_kind=kind))
    assert needle in message, message


def test_an_obs_function_that_raises_fails_at_the_frame_it_raised(tmp_path):
    exp = load_experiment(write(tmp_path, mlp(obs="features.py:explodes")))  # the first obs is fine
    host, folder = seated(exp)
    try:
        host.reset(seed=0, render=False)
        with pytest.raises(Exception, match=r"policy 'bc' \(seat p1\) raised at frame 4: KeyError: 'pot'"):
            for _ in range(10):
                host.step({"p0": "left"}, render=False)
    finally:
        forget_search_path([str(folder)])


def seated(exp):
    from server.policies.config import partner_spec

    folder = exp.directory
    spec = exp.game(None)
    host = EnvHost()
    host.set_globals({"env_config": {}, "players": ["p0", "p1"]})
    host.load(COUNTER_ENV, str(folder / "env.py"))
    partners = {s: partner_spec(n, exp.policies[n], folder) for s, n in spec.partners.items()}
    host.set_partners(build_seats(partners, str(folder)))
    return host, folder


def episode(host, seed, frames=12):
    host.reset(seed=seed, render=False)
    return [host.step({"p0": "left"}, render=False) for _ in range(frames)]


def test_the_model_decides_from_the_frame_before_by_argmax_of_its_scores(tmp_path):
    exp = load_experiment(write(tmp_path, mlp(every=2)))
    assert exp.uses_onnx and not exp.game(None).is_multiplayer
    host, folder = seated(exp)
    try:
        played = episode(host, 3)
    finally:
        forget_search_path([str(folder)])
    session = onnxruntime.InferenceSession(str(folder / "bc.onnx"))
    namespace: dict = {}
    exec(FEATURES, namespace)

    def expected(t):
        x = np.asarray([namespace["encode"]({"p1": t}, {}, "p1")], dtype=np.float32)
        return ACTIONS[int(np.argmax(session.run(["logits"], {"obs": x})[0][0]))]

    # decisions after frames 0, 2, 4, ... held for two frames
    assert [r["partner_actions"]["p1"] for r in played] == [expected(2 * (f // 2)) for f in range(12)]
    assert [r["partners"]["p1"]["from"] for r in played] == [2 * (f // 2) for f in range(12)]
    assert len({r["partner_actions"]["p1"] for r in played}) > 1


def test_a_sampled_policy_is_seeded_by_episode_and_seat(tmp_path):
    exp = load_experiment(write(tmp_path, mlp(choose="sample")))
    host, folder = seated(exp)
    try:
        first, again, other = (
            [r["partner_actions"]["p1"] for r in episode(host, seed, 40)] for seed in (5, 5, 6))
    finally:
        forget_search_path([str(folder)])
    assert first == again and first != other


def test_a_recurrent_state_is_carried_within_an_episode_and_zeroed_at_reset(tmp_path):
    exp = load_experiment(write(tmp_path, mlp(input="obs", state={"h_in": "h_out"}), model_kind="gru"))
    resolved = exp.policies["bc"]._resolved
    assert resolved["state"] == [{"input": "h_in", "output": "h_out", "shape": [1, 1, 16]}]
    host, folder = seated(exp)
    try:
        one, two = [r["partner_actions"]["p1"] for r in episode(host, 1, 30)], \
                   [r["partner_actions"]["p1"] for r in episode(host, 1, 30)]
        policy = host.partners["p1"].policy
        carried = {k: v.copy() for k, v in policy.state.items()}
        policy.reset(1)
        assert not np.any(policy.state["h_in"]) and np.any(carried["h_in"])
    finally:
        forget_search_path([str(folder)])
    assert one == two  # same seed, fresh state: the same actions from frame 1 on


def test_the_page_config_carries_the_resolved_model_and_loads_onnxruntime_web(tmp_path):
    from server.study.games import games_config
    from server.study.packages import ResolvedPackages
    from server.transport.web import client_config, worker_config_name

    exp = load_experiment(write(tmp_path, mlp()))
    packages = ResolvedPackages(entries=[], local_files={})
    game = games_config(exp, None, packages)["game-0"]
    assert game["partners"]["p1"] == {
        "name": "bc", "kind": "onnx", "file": "bc.onnx", "obs_file": "features.py", "obs_function": "encode",
        "actions": ACTIONS, "choose": "argmax", "every": 1, "input": "obs", "input_shape": [1, 8],
        "output": "logits", "state": []}
    assert {"bc.onnx", "features.py"} <= {f["path"] for f in game["env_files"]}
    assert worker_config_name(exp, True) == "worker-onnx" and worker_config_name(exp, False) == "main-onnx"
    assert client_config(exp, packages, True, "/vendor/v/x/")["onnx_wasm"] == "/vendor/v/x/onnxruntime/"


def test_pages_without_an_onnx_policy_do_not_load_onnxruntime_web():
    from server.transport.web import worker_config_name

    examples = Path(__file__).resolve().parents[2] / "experiments"
    plain = load_experiment(examples / "kitchen" / "experiment.py")
    assert not plain.uses_onnx and worker_config_name(plain, True) == "worker"
    assert load_experiment(examples / "kitchen_ai" / "experiment.py").uses_onnx


def test_server_only_files_are_never_sent_to_the_browser():
    examples = Path(__file__).resolve().parents[2] / "experiments"
    exp = load_experiment(examples / "kitchen_ai" / "experiment.py")
    sent = {f.path for f in exp.env_files}
    assert {"bc_cook.onnx", "features.py", "cook.py"} <= sent
    assert not sent & {"train_bc.py", "requirements-train.txt", "experiment.py"}
