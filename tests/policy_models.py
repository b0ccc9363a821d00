# TEMPORARY stand-in until the helper's version lands
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def mlp_model(path, n_in=32, n_out=6, hidden=64, seed=0):
    rng = np.random.default_rng(seed)
    inits = [numpy_helper.from_array(rng.normal(size=s).astype(np.float32), n) for n, s in
             [("W1", (n_in, hidden)), ("B1", (hidden,)), ("W2", (hidden, hidden)), ("B2", (hidden,)),
              ("W3", (hidden, n_out)), ("B3", (n_out,))]]
    nodes = [helper.make_node("Gemm", ["obs", "W1", "B1"], ["h1"]), helper.make_node("Relu", ["h1"], ["r1"]),
             helper.make_node("Gemm", ["r1", "W2", "B2"], ["h2"]), helper.make_node("Relu", ["h2"], ["r2"]),
             helper.make_node("Gemm", ["r2", "W3", "B3"], ["logits"])]
    g = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("obs", TensorProto.FLOAT, [1, n_in])],
                          [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, n_out])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, str(path))
    return path


def gru_model(path, n_in=32, n_out=6, hidden=64, seed=0):
    rng = np.random.default_rng(seed)
    def t(n, s, scale=1.0):
        return numpy_helper.from_array((rng.normal(size=s) * scale).astype(np.float32), n)
    inits = [t("W", (1, 3 * hidden, n_in)), t("R", (1, 3 * hidden, hidden), 2.0), t("B", (1, 6 * hidden)),
             t("Wo", (hidden, n_out)), t("Bo", (n_out,)),
             numpy_helper.from_array(np.array([1, 1, n_in], np.int64), "s3"),
             numpy_helper.from_array(np.array([1, hidden], np.int64), "s2")]
    nodes = [helper.make_node("Reshape", ["obs", "s3"], ["x3"]),
             helper.make_node("GRU", ["x3", "W", "R", "B", "", "h_in"], ["Y", "h_out"], hidden_size=hidden),
             helper.make_node("Reshape", ["h_out", "s2"], ["h2"]),
             helper.make_node("Gemm", ["h2", "Wo", "Bo"], ["logits"])]
    inputs = [helper.make_tensor_value_info("obs", TensorProto.FLOAT, [1, n_in]),
              helper.make_tensor_value_info("h_in", TensorProto.FLOAT, [1, 1, hidden])]
    g = helper.make_graph(nodes, "gru", inputs,
                          [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, n_out]),
                           helper.make_tensor_value_info("h_out", TensorProto.FLOAT, [1, 1, hidden])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    onnx.save(m, str(path))
    return path
