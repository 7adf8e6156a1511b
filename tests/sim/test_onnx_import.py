"""Importing float ONNX models: the digits CNN and a transformer block round-trip; unsupported
operators are named."""

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from qsim.sim import load_model  # noqa: E402
from qsim.sim.graph import forward_fp32  # noqa: E402
from qsim.sim.onnx_import import load_onnx  # noqa: E402


def cnn_to_onnx(path, extra_op=None):
    layers = load_model("digits-cnn").layers
    c1, c2, fc = layers[0], layers[3], layers[7]
    init = [numpy_helper.from_array(v, n) for n, v in (("c1w", c1.weight), ("c1b", c1.bias), ("c2w", c2.weight),
                                                       ("c2b", c2.bias), ("fcw", fc.weight.T.copy()), ("fcb", fc.bias))]
    nodes = [helper.make_node("Conv", ["x", "c1w", "c1b"], ["a"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["a"], ["b"]),
             helper.make_node("MaxPool", ["b"], ["c"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Conv", ["c", "c2w", "c2b"], ["d"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["d"], ["e"]),
             helper.make_node("MaxPool", ["e"], ["f"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Flatten", ["f"], ["g"]),
             helper.make_node("Gemm", ["g", "fcw", "fcb"], ["y"], transB=1)]
    if extra_op:
        nodes.append(helper.make_node(extra_op, ["y"], ["z"]))
    graph = helper.make_graph(nodes, "digits", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 1, 8, 8])],
                              [helper.make_tensor_value_info("z" if extra_op else "y", TensorProto.FLOAT, None)], init)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


def test_imported_cnn_runs_like_the_original(tmp_path):
    cnn_to_onnx(tmp_path / "cnn.onnx")
    layers = load_onnx(tmp_path / "cnn.onnx")
    work = load_model("digits-cnn")
    assert [type(l).__name__ for l in layers] == [type(l).__name__ for l in work.layers]
    np.testing.assert_array_equal(forward_fp32(layers, work.test)[-1], forward_fp32(work.layers, work.test)[-1])
    ort = pytest.importorskip("onnxruntime")
    sess = ort.InferenceSession(str(tmp_path / "cnn.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(forward_fp32(layers, work.test)[-1], sess.run(None, {"x": work.test})[0],
                               rtol=1e-4, atol=1e-4)


def test_unsupported_operators_are_named(tmp_path):
    cnn_to_onnx(tmp_path / "bad.onnx", extra_op="Softsign")
    with pytest.raises(ValueError, match="unsupported ONNX operators: Softsign"):
        load_onnx(tmp_path / "bad.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="cannot read ONNX model"):
        load_onnx(tmp_path / "junk.onnx")


def test_an_imported_model_simulates(tmp_path):
    from qsim.sim import onnx_workload, simulate
    cnn_to_onnx(tmp_path / "cnn.onnx")
    work = load_model("digits-cnn")
    imported = onnx_workload(tmp_path / "cnn.onnx", work.calib, work.test, work.labels)
    a, b = simulate(imported, "edge-npu-int8"), simulate(work, "edge-npu-int8")
    assert a[-1]["top1"] == b[-1]["top1"] and a[-1]["sqnr_db"] == b[-1]["sqnr_db"]


def test_a_transformer_block_imports_and_matches_onnxruntime(tmp_path):
    """MatMul + bias, an activation x activation MatMul, Softmax, a residual Add,
    LayerNormalization, Gelu and a classifier Gemm, as a graph; its FP32 forward pass against
    ONNX Runtime, and the FP32 datapath against that forward pass exactly."""
    rng = np.random.default_rng(3)
    t = d = 16                                  # tokens = features, so q @ k needs no transpose
    w = {n: rng.normal(size=s).astype(np.float32) * 0.3 for n, s in
         (("wq", (d, d)), ("wk", (d, d)), ("bq", (d,)), ("g", (d,)), ("beta", (d,)), ("bo", (3,)))}
    w["wc"] = rng.normal(size=(3, t * d)).astype(np.float32) * 0.1
    nodes = [helper.make_node("MatMul", ["x", "wq"], ["q0"]), helper.make_node("Add", ["q0", "bq"], ["q"]),
             helper.make_node("MatMul", ["x", "wk"], ["k"]),
             helper.make_node("MatMul", ["q", "k"], ["s"]),
             helper.make_node("Softmax", ["s"], ["p"], axis=-1),
             helper.make_node("Add", ["p", "x"], ["r"]),
             helper.make_node("LayerNormalization", ["r", "g", "beta"], ["n"], axis=-1, epsilon=1e-5),
             helper.make_node("Gelu", ["n"], ["h"]),
             helper.make_node("Flatten", ["h"], ["f"], axis=1),
             helper.make_node("Gemm", ["f", "wc", "bo"], ["y"], transB=1)]
    init = [numpy_helper.from_array(v, n) for n, v in w.items()]
    graph = helper.make_graph(nodes, "block", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, t, d])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], init)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)]), tmp_path / "block.onnx")
    layers = load_onnx(tmp_path / "block.onnx")
    assert [type(l).__name__ for l in layers] == ["Linear", "Linear", "MatMul", "Softmax", "Add", "LayerNorm",
                                                   "GELU", "Flatten", "Linear"]
    x = rng.normal(size=(8, t, d)).astype(np.float32)
    ort = pytest.importorskip("onnxruntime")
    sess = ort.InferenceSession(str(tmp_path / "block.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(forward_fp32(layers, x)[-1], sess.run(None, {"x": x})[0], rtol=1e-4, atol=1e-4)
    from qsim.sim import onnx_workload, simulate
    records = simulate(onnx_workload(tmp_path / "block.onnx", x, x), "fp32-reference")
    assert all(r["max_abs_err"] == 0.0 for r in records)
    int8 = simulate(onnx_workload(tmp_path / "block.onnx", x, x), "edge-npu-int8")
    assert int8[2]["op"] == "MatMul" and int8[2]["macs"] == 8 * t * d * d and 20 < int8[2]["sqnr_db"] < 60
