"""experiments/kitchen_ai/bc_cook.onnx, the behaviour-cloned cook (made by train_bc.py; no
training here), and features.py, its observation encoder, played against the real kitchen env
in CPython with onnxruntime the way an ONNX policy is configured:
``{"onnx": "bc_cook.onnx", "obs": "features.py:encode", "actions": ACTIONS, "choose": "argmax"}``
(the action for frame f is decided from the whole obs/info after frame f - 1)."""

import ast
import runpy
from pathlib import Path

import numpy as np
import onnx
import onnxruntime

COOK_DIR = Path(__file__).resolve().parents[2] / "experiments" / "kitchen_ai"
MODEL = COOK_DIR / "bc_cook.onnx"
ENV_MODULE = runpy.run_path(str(COOK_DIR.parent / "kitchen" / "env.py"))
FEATURES = runpy.run_path(str(COOK_DIR / "features.py"))
ENV_CONFIG = runpy.run_path(str(COOK_DIR / "experiment.py"))["BLOCK"]["env_config"]
ACTIONS = ("noop", "up", "down", "left", "right", "interact")


def session():
    return onnxruntime.InferenceSession(str(MODEL), providers=["CPUExecutionProvider"])


def test_model_interface():
    model = onnx.load(str(MODEL))
    onnx.checker.check_model(model)
    assert model.ir_version <= 10
    assert all(o.version <= 17 for o in model.opset_import if o.domain in ("", "ai.onnx"))
    assert MODEL.stat().st_size < 200_000
    s = session()
    (inp,), (out,) = s.get_inputs(), s.get_outputs()
    assert (inp.name, inp.type, out.name, out.type) == ("obs", "tensor(float)", "logits", "tensor(float)")
    assert inp.shape[1:] == [FEATURES["N"]] and inp.shape[0] in (1, "batch")
    assert out.shape[1:] == [len(ACTIONS)]
    logits = s.run(["logits"], {"obs": np.zeros((1, FEATURES["N"]), np.float32)})[0]
    assert logits.shape == (1, len(ACTIONS)) and logits.dtype == np.float32


def test_encode_reset_obs():
    env = ENV_MODULE["create_env"](dict(ENV_CONFIG))
    obs, info = env.reset(seed=0)
    encode = FEATURES["encode"]
    features = encode(obs, info, "p1")
    assert len(features) == FEATURES["N"] == 104
    assert all(type(v) is float and v in (0.0, 1.0) for v in features)
    assert encode(obs, info, "p1") == features  # deterministic
    assert encode(obs, info, "p0") != features  # the seat decides whose cell comes first
    # own cell (5, 3) and partner cell (1, 1), one-hot over the floor cells
    floor = FEATURES["FLOOR"]
    assert features[floor.index((5, 3))] == 1.0 and sum(features[: len(floor)]) == 1.0
    assert features[32 + floor.index((1, 1))] == 1.0 and sum(features[32:46]) == 1.0
    assert FEATURES["MAP"] == ENV_MODULE["MAP"] and FEATURES["COUNTERS"] == ENV_MODULE["COUNTERS"]


def test_features_import_only_the_standard_library():
    tree = ast.parse((COOK_DIR / "features.py").read_text())
    assert not [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]


def test_bc_cook_delivers_beside_an_idle_partner():
    s, encode = session(), FEATURES["encode"]
    env = ENV_MODULE["create_env"](dict(ENV_CONFIG))
    obs, info = env.reset(seed=0)
    used = set()
    for _ in range(ENV_CONFIG["episode_frames"]):
        x = np.asarray([encode(obs, info, "p1")], dtype=np.float32)
        action = ACTIONS[int(s.run(["logits"], {"obs": x})[0].argmax())]
        used.add(action)
        obs, _, terminated, _, info = env.step({"p0": "noop", "p1": action})
    assert terminated
    assert obs["p0"] == [1, 1, 0, 0]  # the partner never moved
    assert info["deliveries"] >= 3  # the committed model delivers 21 (the scripted cook too)
    assert {"up", "down", "left", "right", "interact"} <= used
