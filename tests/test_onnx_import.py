"""Importing float ONNX models: the digits CNN round-trips; unsupported operators are named."""

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from qsim.sim import load_model  # noqa: E402
from qsim.sim.models import forward_fp32  # noqa: E402
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
