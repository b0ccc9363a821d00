"""tests/policy_models.py: the generated ONNX test models pass onnx.checker, run in onnxruntime
with the documented interface, compute what their docstring says (checked against numpy), and
the GRU's carried state visibly changes its actions."""

import numpy as np
import onnx
import onnxruntime
import pytest
from onnx import numpy_helper

from tests.policy_models import IR_VERSION, OPSET, gru_actions, gru_model, mlp_model, obs_sequence


def session(path):
    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def weights(path):
    return {t.name: numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer}


def signature(values):
    return [(v.name, v.type, v.shape) for v in values]


def check(path):
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    assert model.ir_version == IR_VERSION <= 10
    assert [(o.domain, o.version) for o in model.opset_import] == [("", OPSET)]


@pytest.mark.parametrize(("n_in", "n_out", "hidden"), [(32, 6, 64), (104, 6, 64), (5, 3, 8)])
def test_mlp_model(tmp_path, n_in, n_out, hidden):
    path = mlp_model(tmp_path / "mlp.onnx", n_in=n_in, n_out=n_out, hidden=hidden)
    assert path == tmp_path / "mlp.onnx"
    check(path)
    s = session(path)
    assert signature(s.get_inputs()) == [("obs", "tensor(float)", [1, n_in])]
    assert signature(s.get_outputs()) == [("logits", "tensor(float)", [1, n_out])]
    assert [n.op_type for n in onnx.load(str(path)).graph.node] == ["Gemm", "Relu", "Gemm", "Relu", "Gemm"]
    w = weights(path)
    for obs in obs_sequence(5, n_in):
        x = obs.reshape(1, -1)
        (logits,) = s.run(["logits"], {"obs": x})
        h = np.maximum(x @ w["w0"].T + w["b0"], 0)
        h = np.maximum(h @ w["w1"].T + w["b1"], 0)
        np.testing.assert_allclose(logits, h @ w["w2"].T + w["b2"], rtol=1e-5, atol=1e-5)


def test_same_seed_same_file_other_seed_other_weights(tmp_path):
    for make in (mlp_model, gru_model):
        a, b, c = (make(tmp_path / f"{make.__name__}{k}.onnx", seed=seed) for k, seed in enumerate((0, 0, 1)))
        assert a.read_bytes() == b.read_bytes() != c.read_bytes()


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def gru_reference(w, x, h):
    """One step of ONNX's GRU (gates z, r, h; linear_before_reset = 0), then the output Gemm."""
    hidden = h.shape[-1]
    wz, wr, wh = np.split(w["W"][0], 3)
    rz, rr, rh = np.split(w["R"][0], 3)
    bwz, bwr, bwh, brz, brr, brh = np.split(w["B"][0], 6)
    h = h.reshape(1, hidden)
    z = sigmoid(x @ wz.T + h @ rz.T + bwz + brz)
    r = sigmoid(x @ wr.T + h @ rr.T + bwr + brr)
    candidate = np.tanh(x @ wh.T + (r * h) @ rh.T + bwh + brh)
    h = (1 - z) * candidate + z * h
    return h @ w["w_out"].T + w["b_out"], h.reshape(1, 1, hidden)


@pytest.mark.parametrize(("n_in", "n_out", "hidden"), [(32, 6, 64), (7, 4, 16)])
def test_gru_model(tmp_path, n_in, n_out, hidden):
    path = gru_model(tmp_path / "gru.onnx", n_in=n_in, n_out=n_out, hidden=hidden)
    check(path)
    s = session(path)
    assert signature(s.get_inputs()) == [("obs", "tensor(float)", [1, n_in]),
                                         ("h_in", "tensor(float)", [1, 1, hidden])]
    assert signature(s.get_outputs()) == [("logits", "tensor(float)", [1, n_out]),
                                          ("h_out", "tensor(float)", [1, 1, hidden])]
    w = weights(path)
    h = ref_h = np.zeros((1, 1, hidden), np.float32)
    for obs in obs_sequence(6, n_in):
        x = obs.reshape(1, -1)
        logits, new_h = s.run(["logits", "h_out"], {"obs": x, "h_in": h})
        assert logits.shape == (1, n_out) and new_h.shape == (1, 1, hidden)
        ref_logits, ref_h = gru_reference(w, x, ref_h)
        np.testing.assert_allclose(logits, ref_logits, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(new_h, ref_h, rtol=1e-4, atol=1e-4)
        assert not np.allclose(new_h, h)  # the state moves every step
        h = new_h


def test_gru_carried_state_changes_the_first_actions(tmp_path):
    """The property a platform test can rely on: a state reset to zeros replays the same
    actions for the same observations, a state carried over does not (from the first action
    on, for the default model and obs_sequence(8))."""
    path = gru_model(tmp_path / "gru.onnx")
    s = list(obs_sequence(8))
    reset = gru_actions(path, s + s, reset_every=8)
    carried = gru_actions(path, s + s)
    assert reset[8:] == reset[:8] == carried[:8] == [1, 1, 1, 1, 1, 3, 3, 0]
    assert carried[8:11] == [0, 2, 1] and carried[8] != reset[0]
    assert len(set(reset)) >= 3  # the observation matters too
    # other weight seeds, same observations: the carried state changes one of the first 3 actions
    for seed in range(1, 10):
        path = gru_model(tmp_path / f"gru{seed}.onnx", seed=seed)
        reset, carried = gru_actions(path, s + s, reset_every=8), gru_actions(path, s + s)
        assert reset[8:] == reset[:8] and carried[:8] == reset[:8]
        assert carried[8:11] != reset[:3], seed
