"""Small ONNX policy models for tests and benchmarks, built with onnx.helper (no training):
random weights from ``numpy.random.default_rng(seed)``, so the same arguments write the same file.
Opset 17, IR version 8 (onnxruntime 1.32 and onnxruntime-web 1.30 both run them), float32.

``mlp_model(path, n_in, n_out, hidden, seed)`` -- a feed-forward policy::

    obs [1, n_in] -> Gemm -> Relu -> Gemm -> Relu -> Gemm -> logits [1, n_out]

``gru_model(path, n_in, n_out, hidden, seed)`` -- a recurrent policy with its state as an explicit
input/output pair::

    inputs   obs    [1, n_in]         this frame's observation
             h_in   [1, 1, hidden]    the state: zeros at the start of an episode, else the last h_out
    outputs  logits [1, n_out]        one per action
             h_out  [1, 1, hidden]    the state to feed back as h_in next frame

    obs -> Reshape [1, 1, n_in] -> GRU (initial_h = h_in) -> Y_h = h_out
        -> Reshape [1, hidden] -> Gemm -> logits

Its recurrent and output weights are large, so the state changes the argmax: the first actions
of a sequence differ between a zero state and a carried one (``gru_actions`` shows it, and
tests/unit/test_policy_models.py checks it). Both functions return the path written.
"""

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 8  # what opset 17 needs; <= 10 for onnxruntime-web


def _weights(rng, shape, scale):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def _save(path, nodes, inputs, outputs, initializers, name):
    graph = helper.make_graph(nodes, name, inputs, outputs, initializer=initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              ir_version=IR_VERSION, producer_name="tests.policy_models")
    onnx.checker.check_model(model, full_check=True)
    path = Path(path)
    onnx.save(model, str(path))
    return path


def _tensor(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def mlp_model(path, n_in=32, n_out=6, hidden=64, seed=0):
    """obs [1, n_in] -> two ReLU hidden layers of `hidden` -> logits [1, n_out]."""
    rng = np.random.default_rng(seed)
    sizes = [n_in, hidden, hidden, n_out]
    initializers, nodes, x = [], [], "obs"
    for k in range(3):
        w, b = f"w{k}", f"b{k}"
        weight = _weights(rng, (sizes[k + 1], sizes[k]), 1 / np.sqrt(sizes[k]))
        bias = _weights(rng, (sizes[k + 1],), 0.1)
        initializers += [numpy_helper.from_array(weight, w), numpy_helper.from_array(bias, b)]
        out = "logits" if k == 2 else f"gemm{k}"
        nodes.append(helper.make_node("Gemm", [x, w, b], [out], transB=1))
        if k < 2:
            nodes.append(helper.make_node("Relu", [out], [f"relu{k}"]))
            out = f"relu{k}"
        x = out
    inputs, outputs = [_tensor("obs", [1, n_in])], [_tensor("logits", [1, n_out])]
    return _save(path, nodes, inputs, outputs, initializers, "mlp")


def gru_model(path, n_in=32, n_out=6, hidden=64, seed=0):
    """obs [1, n_in] and state h_in [1, 1, hidden] -> logits [1, n_out] and h_out [1, 1, hidden]."""
    rng = np.random.default_rng(seed)
    initializers = [
        numpy_helper.from_array(np.array([1, 1, n_in], np.int64), "seq_shape"),
        numpy_helper.from_array(np.array([1, hidden], np.int64), "flat_shape"),
        # gates z, r, h stacked (ONNX order); large recurrent weights: the state matters
        numpy_helper.from_array(_weights(rng, (1, 3 * hidden, n_in), 1 / np.sqrt(n_in)), "W"),
        numpy_helper.from_array(_weights(rng, (1, 3 * hidden, hidden), 3 / np.sqrt(hidden)), "R"),
        numpy_helper.from_array(_weights(rng, (1, 6 * hidden), 0.1), "B"),
        numpy_helper.from_array(_weights(rng, (n_out, hidden), 3 / np.sqrt(hidden)), "w_out"),
        numpy_helper.from_array(_weights(rng, (n_out,), 0.1), "b_out"),
    ]
    nodes = [
        helper.make_node("Reshape", ["obs", "seq_shape"], ["seq"]),
        helper.make_node("GRU", ["seq", "W", "R", "B", "", "h_in"], ["", "h_out"], hidden_size=hidden),
        helper.make_node("Reshape", ["h_out", "flat_shape"], ["h_flat"]),
        helper.make_node("Gemm", ["h_flat", "w_out", "b_out"], ["logits"], transB=1),
    ]
    inputs = [_tensor("obs", [1, n_in]), _tensor("h_in", [1, 1, hidden])]
    outputs = [_tensor("logits", [1, n_out]), _tensor("h_out", [1, 1, hidden])]
    return _save(path, nodes, inputs, outputs, initializers, "gru")


def obs_sequence(n, n_in=32, seed=0):
    """A deterministic observation sequence: n float32 rows of n_in standard normals."""
    return np.random.default_rng(seed).standard_normal((n, n_in)).astype(np.float32)


def gru_actions(path, obs_seq, reset_every=None):
    """The argmax actions of the GRU model at `path` over `obs_seq` in onnxruntime (CPython),
    h_out fed back as h_in each step; h_in starts at zeros and goes back to zeros every
    `reset_every` steps (never when None). Fed ``s + s`` (``s = list(obs_sequence(8))``),
    ``gru_model(path)``'s actions with ``reset_every=8`` repeat those of s (``[1, 1, 1, 1, 1, 3,
    3, 0]`` twice), while with the state carried over the second half starts ``[0, 2, 1, ...]``.
    """
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    hidden = session.get_inputs()[1].shape[2]
    actions, h = [], None
    for t, obs in enumerate(obs_seq):
        if h is None or (reset_every and t % reset_every == 0):
            h = np.zeros((1, 1, hidden), np.float32)
        feed = {"obs": np.asarray(obs, np.float32).reshape(1, -1), "h_in": h}
        logits, h = session.run(["logits", "h_out"], feed)
        actions.append(int(logits.argmax()))
    return actions
