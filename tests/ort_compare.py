"""Comparing qsim's run of a quantized ONNX model with ONNX Runtime's sessions, shared by the
tests of tests/sim (tests/ is on sys.path, see conftest.py)."""

from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper

from qsim.sim import run_model
from qsim.sim.onnx_quant import prepare


def ort_session(model, optimized: bool, threads: int = 1, save: Path | None = None):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.log_severity_level = 3
    if not optimized:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    if save is not None:
        so.optimized_model_filepath = str(save)
    data = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    return ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])


def ort_all_tensors(model, feeds) -> dict:
    """Every tensor of the unoptimized graph as ORT_DISABLE_ALL computes it."""
    m = onnx.load(str(model)) if not isinstance(model, onnx.ModelProto) else onnx.ModelProto.FromString(
        model.SerializeToString())
    have = {o.name for o in m.graph.output}
    for node in m.graph.node:
        for name in node.output:
            if name and name not in have:
                m.graph.output.append(helper.make_empty_tensor_value_info(name))
                have.add(name)
    session = ort_session(m, optimized=False)
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))


def mismatches(got, want) -> int:
    """Elements that differ: bit patterns for floats (any NaN equals any NaN), values otherwise."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, f"shape {got.shape} != {want.shape}"
    if want.dtype.kind == "f":
        same = (got.astype(want.dtype).view(np.uint8 if want.itemsize == 1 else f"u{want.itemsize}")
                == want.view(f"u{want.itemsize}")) | (np.isnan(got.astype(np.float64)) & np.isnan(want))
    else:
        same = got.astype(np.int64) == want.astype(np.int64)
    return int((~same).sum())


def assert_same(got: dict, want: dict, names, what: str):
    bad = {n: mismatches(got[n], want[n]) for n in names}
    bad = {n: c for n, c in bad.items() if c}
    assert not bad, f"{what}: mismatching elements per tensor {bad}"


def check_both_paths(model, feeds, compare_intermediates=True):
    """qsim's ort-unfused path against ORT_DISABLE_ALL (every tensor) and ort-default against
    ORT's default session (the outputs)."""
    outputs = [o.name for o in (onnx.load(str(model)) if not isinstance(model, onnx.ModelProto) else model).graph.output]
    unfused = run_model(model, feeds, path="ort-unfused", intermediates=compare_intermediates)
    if compare_intermediates:
        want = ort_all_tensors(model, feeds)
        assert_same(unfused, want, [n for n in unfused if n in want], "ort-unfused vs ORT_DISABLE_ALL")
    else:
        want = dict(zip(outputs, ort_session(model, optimized=False).run(None, feeds)))
        assert_same(unfused, want, outputs, "ort-unfused vs ORT_DISABLE_ALL")
    default = run_model(model, feeds)
    want = dict(zip(outputs, ort_session(model, optimized=True).run(None, feeds)))
    assert_same(default, want, outputs, "ort-default vs ORT's default session")
    return default


# ORT's fused operators whose number qsim's ort-default graph must reproduce
FUSED = ("QGemm", "QLinearConv", "QLinearMatMul", "QLinearAdd", "QLinearMul", "QLinearAveragePool",
         "QLinearGlobalAveragePool", "QLinearSigmoid", "QLinearConcat", "MatMulIntegerToFloat",
         "DynamicQuantizeMatMul", "FusedMatMul", "Gelu", "BiasGelu", "SkipLayerNormalization", "LayerNormalization", "Conv",
         "Gemm", "MatMul", "Softmax", "MaxPool", "AveragePool", "GlobalAveragePool", "DynamicQuantizeLinear")


def check_fusions(model, tmp_path):
    """qsim's ort-default graph has the compute operators ORT's optimized model has."""
    saved = tmp_path / "optimized.onnx"
    ort_session(model, optimized=True, save=saved)
    same = {"NhwcMaxPool": "MaxPool", "FusedGemm": "Gemm", "FusedConv": "Conv"}   # layout / activation fused in
    theirs = Counter(same.get(n.op_type, n.op_type) for n in onnx.load(str(saved)).graph.node)
    ours = Counter(n.op for n in prepare(model).nodes)
    assert {op: ours[op] for op in FUSED} == {op: theirs[op] for op in FUSED}
