"""Quantized ONNX models run by qsim against ONNX Runtime, bit for bit.

A zoo (an MLP and a CNN with a residual add and pooling, exported by torch) is quantized by
onnxruntime.quantization (quantize_static in QDQ and QOperator format, per tensor and per
channel, int8/uint8/int16/uint16 activations, int8/int16/int4 weights; quantize_dynamic), and
hand-written graphs cover the operators quantize_static does not produce. Each model runs in
ORT's default session and in an ORT_DISABLE_ALL session, and in qsim's two paths
("ort-default", "ort-unfused"): every output code, and every float output bit, must agree
(the unfused path also every intermediate tensor). ORT sessions use one intra-op thread; the
MiniLM test also runs ORT's default thread count.
"""

import warnings
from types import SimpleNamespace

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_dynamic, quantize_static

from qsim._cpu import cpu_flags
from qsim.codec import encode
from qsim.datapaths import Accumulator, IntDatapath, qlinear_matmul
from qsim.sim import run_model
from qsim.sim import ort_kernels as K
from qsim.sim import ort_reference as R
from qsim.hardware import HardwareError
from qsim.sim.onnx_quant import OnnxQuantError, execute, load_quantized, prepare
from ort_compare import check_both_paths, check_fusions, mismatches, ort_session

F32 = np.float32
MS = "com.microsoft"


# -- the zoo ---------------------------------------------------------------------------------------------
class MLP(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = torch.nn.Linear(20, 32), torch.nn.Linear(32, 10)

    def forward(self, x):
        return self.b(torch.relu(self.a(x)))


class CNN(torch.nn.Module):
    """Two 3x3 convolutions with a residual add, max, average and global average pooling."""

    def __init__(self):
        super().__init__()
        self.c1, self.c2 = torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.Conv2d(8, 8, 3, padding=1)
        self.fc = torch.nn.Linear(8, 5)

    def forward(self, x):
        h = torch.relu(self.c1(x))
        h = torch.relu(h + self.c2(h))
        h = torch.nn.functional.avg_pool2d(torch.nn.functional.max_pool2d(h, 2), 2)
        return self.fc(torch.nn.functional.adaptive_avg_pool2d(h, 1).flatten(1))


ZOO = {"mlp": (MLP, (4, 20)), "cnn": (CNN, (2, 3, 8, 8))}


class Reader(CalibrationDataReader):
    """Seeded random calibration batches."""

    def __init__(self, shape, seed: int):
        rng = np.random.default_rng(seed)
        self.batches = iter([{"x": rng.normal(size=shape).astype(F32)} for _ in range(6)])

    def get_next(self):
        return next(self.batches, None)


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    folder = tmp_path_factory.mktemp("zoo")
    paths = {}
    for name, (cls, shape) in ZOO.items():
        torch.manual_seed(0)
        path = folder / f"{name}.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")            # the TorchScript exporter's deprecation notes
            torch.onnx.export(cls().eval(), torch.randn(*shape), str(path), input_names=["x"], output_names=["y"],
                              opset_version=17, dynamo=False)
        paths[name] = path
    return folder, paths


STATIC = [(fmt, act, QuantType.QInt8, pc) for fmt in (QuantFormat.QDQ, QuantFormat.QOperator)
          for act in (QuantType.QInt8, QuantType.QUInt8) for pc in (False, True)]
WIDE = [(QuantFormat.QDQ, QuantType.QInt16, QuantType.QInt8, True), (QuantFormat.QDQ, QuantType.QUInt16, QuantType.QUInt16, False),
        (QuantFormat.QDQ, QuantType.QUInt8, QuantType.QInt4, True), (QuantFormat.QDQ, QuantType.QInt8, QuantType.QUInt4, False)]


@pytest.mark.parametrize("name", list(ZOO))
@pytest.mark.parametrize("fmt,act,weight,per_channel", STATIC + WIDE,
                         ids=lambda v: getattr(v, "name", str(v)))
def test_quantize_static_zoo(zoo, tmp_path, name, fmt, act, weight, per_channel):
    folder, paths = zoo
    shape = ZOO[name][1]
    quantized = tmp_path / "q.onnx"
    quantize_static(str(paths[name]), str(quantized), Reader(shape, seed=1), quant_format=fmt, activation_type=act,
                    weight_type=weight, per_channel=per_channel)
    x = np.random.default_rng(2).normal(size=shape).astype(F32)
    x.flat[:3] = [0.0, -0.0, 4.0]                          # zero, negative zero, beyond the calibrated range
    y = check_both_paths(quantized, {"x": x})["y"]
    assert np.isfinite(y).all() and np.unique(y).size > 3       # a real output, not a constant
    check_fusions(quantized, tmp_path)


@pytest.mark.parametrize("name", list(ZOO))
def test_quantize_dynamic_zoo(zoo, tmp_path, name):
    folder, paths = zoo
    shape = ZOO[name][1]
    quantized = tmp_path / "q.onnx"
    quantize_dynamic(str(paths[name]), str(quantized), weight_type=QuantType.QInt8)
    x = np.random.default_rng(3).normal(size=shape).astype(F32)
    check_both_paths(quantized, {"x": x})
    check_fusions(quantized, tmp_path)


# -- hand-written graphs -----------------------------------------------------------------------------------
def graph_model(nodes, inputs: dict, consts: dict, outputs, opset: int = 21):
    """A model of `nodes`; inputs become graph inputs, consts initializers."""
    ins = [helper.make_tensor_value_info(k, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
           for k, v in inputs.items()]
    inits = [numpy_helper.from_array(np.asarray(v), k) for k, v in consts.items()]
    graph = helper.make_graph(nodes, "g", ins, [helper.make_empty_tensor_value_info(o) for o in outputs], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset), helper.make_opsetid(MS, 1)])


def all_code_pairs(dtype):
    info = np.iinfo(dtype)
    codes = np.arange(info.min, info.max + 1).astype(dtype)
    return np.repeat(codes, codes.size), np.tile(codes, codes.size)


def scale_sets(rng, n: int):
    """Power-of-two scales (exact ratios: results land on rounding ties), then random ones."""
    sets = [(F32(0.5), F32(0.25), F32(0.5)), (F32(2.0 ** -3), F32(2.0 ** -3), F32(2.0 ** -2))]
    return sets + [tuple(F32(10 ** rng.uniform(-3, 0)) for _ in range(3)) for _ in range(n)]


@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
@pytest.mark.parametrize("op", ["QLinearAdd", "QLinearMul"])
def test_qlinear_binary_every_code_pair(op, dtype):
    """Every (a, b) code pair, several scales and zero points, and the broadcast forms ORT's
    loop treats apart (an operand constant over a span, a one-element operand)."""
    rng = np.random.default_rng(10 + np.dtype(dtype).num)
    info = np.iinfo(dtype)
    a, b = all_code_pairs(dtype)
    node = helper.make_node(op, ["a", "sa", "za", "b", "sb", "zb", "sc", "zc"], ["y"], domain=MS)
    for sa, sb, sc in scale_sets(rng, 3):
        za, zb, zc = (np.asarray(rng.integers(info.min, info.max + 1), dtype) for _ in range(3))
        consts = dict(sa=sa, za=za, sb=sb, zb=zb, sc=sc, zc=zc)
        for fa, fb in ((a, b), (a[:1200].reshape(12, 100), b[:100]), (a[:60].reshape(4, 3, 5), b[:3].reshape(1, 3, 1)),
                       (a[5:6].reshape(()), b[:77]), (a[:77], b[9:10])):
            check_both_paths(graph_model([node], {"a": fa, "b": fb}, consts, ["y"]), {"a": fa, "b": fb}, False)


@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
def test_qlinear_lookup_tables_every_code(dtype):
    rng = np.random.default_rng(20)
    info = np.iinfo(dtype)
    x = np.arange(info.min, info.max + 1).astype(dtype)
    for trial in range(4):
        consts = dict(sx=F32(10 ** rng.uniform(-2, 0)), zx=np.asarray(rng.integers(info.min, info.max + 1), dtype),
                      sy=F32(10 ** rng.uniform(-3, -1)), zy=np.asarray(rng.integers(info.min, info.max + 1), dtype))
        nodes = [helper.make_node("QLinearSigmoid", ["x", "sx", "zx", "sy", "zy"], ["s"], domain=MS),
                 helper.make_node("QLinearLeakyRelu", ["x", "sx", "zx", "sy", "zy"], ["l"], domain=MS, alpha=0.1)]
        check_both_paths(graph_model(nodes, {"x": x}, consts, ["s", "l"]), {"x": x}, False)


@pytest.mark.xfail("avx512f" not in cpu_flags(), strict=False,
                   reason="qsim models MLAS's AVX-512 float kernels (Softmax, Erf, row reductions); on a CPU "
                          "without AVX-512 MLAS runs its AVX2 kernels, whose lanes and order differ (measured; "
                          "not modelled yet)")
@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
def test_qlinear_softmax(dtype):
    """QLinearSoftmax (com.microsoft): its exp table, float sums and rounding, over row lengths,
    input scales up to 1e36 (only each row's maximum survives), both opset axis rules; and a
    QDQ Softmax that ORT's default session fuses into it."""
    rng = np.random.default_rng(45)
    info = np.iinfo(dtype)
    for shape, axis, opset in (((50, 14), -1, 13), ((8, 3, 64), 1, 13), ((20, 1000), -1, 13), ((6, 5, 7), 1, 12)):
        for sx in (0.01, 0.5, 1.3e36):
            for sy, zy in ((1 / 256, info.min), (0.01, 3 if dtype == np.uint8 else -100)):
                x = rng.integers(info.min, info.max + 1, shape).astype(dtype)
                c = dict(sx=F32(sx), zx=np.array(7, dtype), sy=F32(sy), zy=np.array(zy, dtype))
                node = helper.make_node("QLinearSoftmax", ["x", "sx", "zx", "sy", "zy"], ["y"], domain=MS, axis=axis,
                                        opset=opset)
                check_both_paths(graph_model([node], {"x": x}, c, ["y"], opset=opset), {"x": x}, False)
    x = rng.normal(size=(40, 30)).astype(F32) * 4
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
             helper.make_node("DequantizeLinear", ["q", "s", "z"], ["d"]),
             helper.make_node("Softmax", ["d"], ["p"], axis=-1),
             helper.make_node("QuantizeLinear", ["p", "sp", "zp"], ["pq"]),
             helper.make_node("DequantizeLinear", ["pq", "sp", "zp"], ["y"])]
    c = dict(s=F32(0.1), z=np.array(3, dtype), sp=F32(1 / 255), zp=np.array(info.min, dtype))
    model = graph_model(nodes, {"x": x}, c, ["y"], opset=17)
    check_both_paths(model, {"x": x})
    assert "QLinearSoftmax" in [n.op for n in prepare(model).nodes]


@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
def test_qlinear_concat_pools(dtype):
    rng = np.random.default_rng(30)
    info = np.iinfo(dtype)
    codes = lambda *shape: rng.integers(info.min, info.max + 1, shape).astype(dtype)
    x, x2 = codes(2, 3, 7, 9), codes(2, 5, 7, 9)
    z = lambda: np.asarray(rng.integers(info.min, info.max + 1), dtype)
    consts = dict(sx=F32(0.05), zx=z(), s2=F32(0.11), z2=z(), sy=F32(0.07), zy=z())
    nodes = [helper.make_node("QLinearConcat", ["sy", "zy", "x", "sx", "zx", "x2", "s2", "z2", "x", "sy", "zy"], ["cat"],
                              domain=MS, axis=1),
             helper.make_node("QLinearGlobalAveragePool", ["x", "sx", "zx", "sy", "zy"], ["gap"], domain=MS)]
    outputs = ["cat", "gap"]
    for i, (kernel, strides, pads, include) in enumerate(
            [([2, 2], [2, 2], [0, 0, 0, 0], 0), ([3, 3], [1, 1], [1, 1, 1, 1], 0), ([3, 3], [2, 2], [1, 1, 1, 1], 1),
             ([3, 2], [1, 3], [0, 1, 1, 0], 0), ([7, 9], [1, 1], [0, 0, 0, 0], 0)]):
        nodes.append(helper.make_node("QLinearAveragePool", ["x", "sx", "zx", "sy", "zy"], [f"avg{i}"], domain=MS,
                                      kernel_shape=kernel, strides=strides, pads=pads, count_include_pad=include))
        outputs.append(f"avg{i}")
    check_both_paths(graph_model(nodes, {"x": x, "x2": x2}, consts, outputs), {"x": x, "x2": x2}, False)


TIES = np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 0.0, -0.0, np.inf, -np.inf, 1e30, -1e30, 3.4e38, -3.4e38], F32)


@pytest.mark.parametrize("elem", [TensorProto.INT8, TensorProto.UINT8, TensorProto.INT16, TensorProto.UINT16,
                                  TensorProto.INT4, TensorProto.UINT4])
def test_quantize_dequantize_integer_types(elem):
    """Per tensor, per axis and blocked (opset 21): ties to even, saturation, infinities; read
    back through DequantizeLinear (ORT returns no 4-bit arrays)."""
    rng = np.random.default_rng(40)
    dtype = helper.tensor_dtype_to_np_dtype(elem)
    x = (rng.normal(size=(4, 6, 8)) * 40).astype(F32)
    x.flat[:TIES.size] = TIES
    unsigned = dtype.name.startswith("u")
    for attrs, scale, zero in (
            ({}, F32(0.5), np.asarray(3 if unsigned else -2).astype(dtype)),
            ({"axis": 1}, np.linspace(0.25, 2, 6).astype(F32), np.arange(6).astype(dtype)),
            ({"axis": 2, "block_size": 3}, (np.abs(rng.normal(size=(4, 6, 3))) + 0.1).astype(F32),
             np.ones((4, 6, 3)).astype(dtype))):
        nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], **attrs),
                 helper.make_node("DequantizeLinear", ["q", "s", "z"], ["d"], **attrs),
                 helper.make_node("DequantizeLinear", ["q", "one", "z"], ["codes"], **attrs)]
        ones = np.ones(np.shape(scale), F32)
        check_both_paths(graph_model(nodes, {"x": x}, {"s": scale, "z": zero, "one": ones}, ["d", "codes"]), {"x": x}, False)


def float8_departures():
    """The known ORT float8 departures (qsim.golden measures them), for a QuantizeLinear case."""
    from qsim.golden.adapters import _ORT_FLOAT8_BANDS
    return _ORT_FLOAT8_BANDS


@pytest.mark.parametrize("elem,fmt", [(TensorProto.FLOAT8E4M3FN, "e4m3"), (TensorProto.FLOAT8E4M3FNUZ, "e4m3fnuz"),
                                      (TensorProto.FLOAT8E5M2, "e5m2"), (TensorProto.FLOAT8E5M2FNUZ, "e5m2fnuz")])
@pytest.mark.parametrize("saturate", [1, 0])
def test_float8_quantize_linear(elem, fmt, saturate):
    """QuantizeLinear to float8 follows the ONNX specification (qsim's codec). ORT's
    non-saturating conversion departs from it in known bands (qsim.golden's Departure); a
    mismatch is accepted only where such a departure explains it, and the departure must
    be seen where the inputs reach its band."""
    rng = np.random.default_rng(50)
    scale = F32(0.5)
    bands = np.array([470, 480, 481, 490, 495.9, 496, 500, 30720, 31000, 32767, 32768, 57344, 61440, 62000, 65535,
                      65536, 70000], F32) * scale
    x = np.concatenate([(rng.normal(size=4000) * 100).astype(F32), TIES, bands, -bands,
                        np.array([1e-9, -1e-9, 2 ** -10, 2 ** -17, 2 ** -20, np.nan], F32)])
    dtype = helper.tensor_dtype_to_np_dtype(elem)
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], saturate=saturate),
             helper.make_node("Cast", ["q"], ["v"], to=TensorProto.FLOAT)]
    model = graph_model(nodes, {"x": x}, {"s": scale, "z": np.zeros((), dtype)}, ["v"])
    want = ort_session(model, optimized=False).run(None, {"x": x})[0]
    for path in ("ort-unfused", "ort-default"):
        got = run_model(model, {"x": x}, path=path)["v"]
        expected = encode(got, fmt).astype(np.uint64)          # float8 values back to codes: exact
        peer = encode(want, fmt).astype(np.uint64)
        with np.errstate(over="ignore"):                       # 3.4e38 / scale: inf, as the spec's division
            spec = encode(x / scale, fmt, saturate=bool(saturate)).astype(np.uint64)
        assert (expected == spec).all(), "qsim's QuantizeLinear departs from the specification"
        bad = (expected != peer) & ~(np.isnan(got) & np.isnan(want))
        departure = float8_departures().get(fmt) if not saturate else None
        case = SimpleNamespace(inputs={"x": x, "scale": np.asarray(scale)})
        explained = departure.explains(case, expected, peer) & departure.domain(case) if departure else np.zeros_like(bad)
        assert not (bad & ~explained).any(), f"{fmt}: unexplained mismatches at x = {x[bad & ~explained][:5]}"
        if departure is not None:
            assert explained.any(), f"{departure.name} not seen: ORT now follows the specification in its band"
            print(f"departure seen: {departure.name} at {int(explained.sum())} inputs: {departure.description}")


def test_dynamic_quantize_linear():
    rng = np.random.default_rng(60)
    cases = [np.abs(rng.normal(size=(3, 17))).astype(F32), -np.abs(rng.normal(size=(5,))).astype(F32),
             np.zeros((4,), F32), (rng.integers(-40, 40, (6, 9)) * F32(0.5)).astype(F32),
             (rng.normal(size=(2, 33)) * 1e4).astype(F32), (rng.normal(size=(7,)) * 1e-6).astype(F32)]
    node = helper.make_node("DynamicQuantizeLinear", ["x"], ["y", "ys", "yz"])
    for x in cases:
        check_both_paths(graph_model([node], {"x": x}, {}, ["y", "ys", "yz"]), {"x": x}, False)


def test_integer_products():
    """MatMulInteger, ConvInteger, QLinearMatMul (per column, batched), QLinearConv (groups,
    strides, per channel), QGemm (transposes, alpha, bias, float output), MatMulIntegerToFloat
    and DynamicQuantizeMatMul; weights as initializers (ORT prepacks them) and as inputs."""
    rng = np.random.default_rng(70)
    u8 = lambda *s: rng.integers(0, 256, s).astype(np.uint8)
    s8 = lambda *s: rng.integers(-128, 128, s).astype(np.int8)
    a, w, wt, w3 = u8(3, 5, 40), s8(40, 24), s8(24, 40), s8(3, 40, 24)
    x, k = u8(2, 4, 9, 7), s8(8, 2, 3, 3)
    f = (rng.normal(size=(3, 5, 40)) * 3).astype(F32)
    c = dict(sa=F32(0.02), za=np.uint8(131), sw=np.linspace(0.01, 0.03, 24).astype(F32), zw=np.zeros(24, np.int8),
             sw1=F32(0.015), zw1=np.int8(3), sy=F32(0.3), zy=np.uint8(120), bias=rng.integers(-900, 900, 24).astype(np.int32),
             sk=np.linspace(0.01, 0.05, 8).astype(F32), zk=np.zeros(8, np.int8), kb=rng.integers(-500, 500, 8).astype(np.int32),
             fb=rng.normal(size=24).astype(F32), two=F32(0.5))
    nodes = [helper.make_node("MatMulInteger", ["a", "w", "za", "zw1"], ["mmi"]),
             helper.make_node("QLinearMatMul", ["a", "sa", "za", "w", "sw", "zw", "sy", "zy"], ["qmm"]),
             helper.make_node("QLinearMatMul", ["a", "sa", "za", "w3", "sw1", "zw1", "sy", "zy"], ["qmm3"]),
             helper.make_node("ConvInteger", ["x", "k", "za"], ["ci"], strides=[2, 1], pads=[1, 0, 1, 1], group=2),
             helper.make_node("QLinearConv", ["x", "sa", "za", "k", "sk", "zk", "sy", "zy", "kb"], ["qc"],
                              strides=[1, 2], pads=[1, 1, 1, 1], dilations=[2, 1], group=2),
             helper.make_node("Reshape", ["a", "flat"], ["a2"]),
             helper.make_node("QGemm", ["a2", "sa", "za", "wt", "sw", "zw", "bias", "sy", "zy"], ["qg"], domain=MS,
                              transB=1, alpha=0.75),
             helper.make_node("QGemm", ["a2", "sa", "za", "w", "sw1", "zw1", "bias"], ["qgf"], domain=MS),
             helper.make_node("MatMulIntegerToFloat", ["a", "w", "sa", "sw", "za", "zw", "fb"], ["mitf"], domain=MS),
             helper.make_node("DynamicQuantizeMatMul", ["f", "w", "sw1", "zw1", "fb"], ["dqm"], domain=MS)]
    outputs = ["mmi", "qmm", "qmm3", "ci", "qc", "qg", "qgf", "mitf", "dqm"]
    for weights_as_inputs in (False, True):
        inputs, consts = {"a": a, "x": x, "f": f}, dict(c, flat=np.array([15, 40]))
        (inputs if weights_as_inputs else consts).update(w=w, wt=wt, w3=w3, k=k)
        check_both_paths(graph_model(nodes, inputs, consts, outputs), inputs, False)


def single_op(op, inputs, consts=None, opset=17, domain="", **attrs):
    names = list(inputs) + list(consts or {})
    return graph_model([helper.make_node(op, names, ["y"], domain=domain, **attrs)], inputs, consts or {}, ["y"], opset)


@pytest.mark.parametrize("m,k,n", [(4, 20, 32), (8, 600, 40), (1, 300, 20), (1, 13, 3), (3, 1000, 5), (16, 257, 130),
                                   (2, 64, 300), (5, 37, 1), (1, 9, 1), (33, 129, 17)])
def test_float_gemm_in_mlas_order(m, k, n):
    """MatMul and Gemm in float32: MLAS's FMA chains per K block (256 for a constant, packed B,
    else from M, N, K), and its M = 1 and N = 1 kernels."""
    rng = np.random.default_rng(m * 1000 + k + n)
    a, b = rng.normal(size=(m, k)).astype(F32), rng.normal(size=(k, n)).astype(F32)
    bias = rng.normal(size=(n,)).astype(F32)
    for model, feeds in ((single_op("MatMul", {"a": a}, {"b": b}), {"a": a}),
                         (single_op("MatMul", {"a": a, "b": b}), {"a": a, "b": b}),
                         (single_op("Gemm", {"a": a, "bt": np.ascontiguousarray(b.T)}, {"c": bias}, transB=1),
                          {"a": a, "bt": np.ascontiguousarray(b.T)}),
                         (single_op("Gemm", {"a": a, "b": b}, {"c": bias}, alpha=0.5), {"a": a, "b": b})):
        want = ort_session(model, optimized=False).run(None, feeds)[0]
        got = execute(load_quantized_float(model), feeds)["y"]
        assert mismatches(got, want) == 0


def load_quantized_float(model):
    """A float model through qsim's executor (load_quantized refuses models without quantization)."""
    from dataclasses import replace
    m = onnx.ModelProto.FromString(model.SerializeToString())
    m.graph.node.append(helper.make_node("DequantizeLinear", ["__q", "__s"], ["__d"]))
    m.graph.initializer.extend([numpy_helper.from_array(np.zeros(1, np.uint8), "__q"),
                                numpy_helper.from_array(np.ones((), F32), "__s")])
    qm = load_quantized(m)
    return replace(qm, nodes=qm.nodes[:-1])


@pytest.mark.parametrize("x_shape,w_shape,attrs", [
    ((2, 3, 8, 8), (8, 3, 3, 3), dict(pads=[1, 1, 1, 1])),
    ((1, 16, 12, 12), (8, 16, 3, 3), dict(pads=[1, 1, 1, 1])),             # K = 144: two K slices
    ((1, 64, 6, 6), (4, 64, 3, 3), dict(strides=[2, 2], pads=[0, 1, 1, 0])),  # K = 576
    ((2, 8, 5, 5), (16, 8, 1, 1), {}),                                      # pointwise: the input is the GEMM's B
    ((1, 4, 3, 3), (40, 4, 3, 3), dict(pads=[1, 1, 1, 1])),                 # more filters than pixels
    ((2, 6, 7, 7), (6, 1, 3, 3), dict(group=6, pads=[1, 1, 1, 1])),         # depthwise: M = 1 per group
    ((1, 4, 20), (6, 4, 5), dict(strides=[2], dilations=[2]))])
def test_float_conv_in_mlas_order(x_shape, w_shape, attrs):
    rng = np.random.default_rng(sum(x_shape) + sum(w_shape))
    x, w = rng.normal(size=x_shape).astype(F32), rng.normal(size=w_shape).astype(F32)
    b = rng.normal(size=w_shape[0]).astype(F32)
    model = single_op("Conv", {"x": x, "w": w}, {"b": b}, **attrs)
    want = ort_session(model, optimized=False).run(None, {"x": x, "w": w})[0]
    assert mismatches(execute(load_quantized_float(model), {"x": x, "w": w})["y"], want) == 0


@pytest.mark.xfail("avx512f" not in cpu_flags(), strict=False,
                   reason="qsim models MLAS's AVX-512 float kernels (Softmax, Erf, row reductions); on a CPU "
                          "without AVX-512 MLAS runs its AVX2 kernels, whose lanes and order differ (measured; "
                          "not modelled yet)")
def test_float_elementwise_and_rows_match_ort():
    """Sigmoid, Erf, Gelu (ONNX and com.microsoft) on 200k values and the specials; Softmax,
    LayerNormalization and SkipLayerNormalization on rows of many lengths; AveragePool before
    and from opset 19 (MLAS, then ORT's own loop)."""
    rng = np.random.default_rng(80)
    x = np.concatenate([(rng.normal(size=200_003) * 4).astype(F32), TIES,
                        np.array([0.921875, 3.925, 18, -18, 90, -90, 1e-40, np.nan], F32)])
    for op, domain, opset in (("Sigmoid", "", 17), ("Erf", "", 17), ("Gelu", "", 20), ("Gelu", MS, 17)):
        model = single_op(op, {"x": x}, opset=opset, domain=domain)
        want = ort_session(model, optimized=False).run(None, {"x": x})[0]
        assert mismatches(execute(load_quantized_float(model), {"x": x})["y"], want) == 0, op
    for n in (3, 5, 7, 8, 9, 12, 16, 20, 27, 33, 44, 384):
        rows = (rng.normal(size=(200, n)) * 3 + 0.5).astype(F32)
        skip = rng.normal(size=(200, n)).astype(F32)
        g, b, bias = (rng.normal(size=n).astype(F32) for _ in range(3))
        models = [(single_op("Softmax", {"x": rows}, axis=-1), {"x": rows}),
                  (single_op("LayerNormalization", {"x": rows}, {"g": g, "b": b}, epsilon=1e-5), {"x": rows}),
                  (single_op("SkipLayerNormalization", {"x": rows[None], "s": skip[None]}, {"g": g, "b": b, "bias": bias},
                             domain=MS, epsilon=1e-12), {"x": rows[None], "s": skip[None]})]
        for model, feeds in models:
            want = ort_session(model, optimized=False).run(None, feeds)[0]
            assert mismatches(execute(load_quantized_float(model), feeds)["y"], want) == 0, (n, model.graph.node[0].op_type)
    img = rng.normal(size=(2, 8, 9, 11)).astype(F32)
    for opset in (17, 19):
        for attrs in (dict(kernel_shape=[2, 2], strides=[2, 2]), dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
                      dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], count_include_pad=1),
                      dict(kernel_shape=[2, 3], strides=[3, 3])):
            model = single_op("AveragePool", {"x": img}, opset=opset, **attrs)
            want = ort_session(model, optimized=False).run(None, {"x": img})[0]
            assert mismatches(execute(load_quantized_float(model), {"x": img})["y"], want) == 0, (opset, attrs)


@pytest.mark.parametrize("threads", ["1", "3"])
def test_compiled_kernels_match_their_references(monkeypatch, threads):
    """cython_src/_mlas.pyx against the numpy statements (ort_reference.py) and exact integer
    sums, with the work spread over 1 and 3 threads."""
    from qsim._kernels import _mlas
    monkeypatch.setenv("QSIM_NUM_THREADS", threads)
    rng = np.random.default_rng(90)
    x = np.concatenate([(rng.normal(size=100_001) * 5).astype(F32), TIES, np.array([3.925, -3.925, 1e-40, np.nan], F32)])
    for name in ("logistic", "erf", "gelu"):
        assert mismatches(getattr(K, name)(x), getattr(R, name)(x)) == 0, name
    for n in (5, 8, 9, 20, 33, 384):
        rows = (rng.normal(size=(150, n)) * 5).astype(F32)
        rows[3, :2] = [-200, 200]                                  # exp far below 2^-126 within the row
        g, b = rng.normal(size=n).astype(F32), rng.normal(size=n).astype(F32)
        assert mismatches(K.softmax(rows), R.softmax(rows)) == 0
        assert mismatches(K.layer_norm(rows, g, b, 1e-5), R.layer_norm(rows, g, b, 1e-5)) == 0
        assert mismatches(K.welford_norm(rows, g, b, 1e-12), R.welford_norm(rows, g, b, 1e-12)) == 0
    deep = np.linspace(-105, -85, 700_000, dtype=F32).reshape(-1, 7)      # exps below 2^-126: subnormal
    deep = np.concatenate([np.zeros((deep.shape[0], 1), F32), deep], axis=1)
    assert mismatches(K.softmax(deep), R.softmax(deep)) == 0
    wrap = Accumulator(32, "wrap")
    for (m, k, n) in ((1, 1, 1), (3, 7, 5), (65, 130, 67), (2, 1536, 9), (5, 33025, 3)):
        for adt, bdt in ((np.uint8, np.int8), (np.int8, np.int8), (np.uint8, np.uint8), (np.int8, np.uint8)):
            a = rng.integers(np.iinfo(adt).min, np.iinfo(adt).max + 1, (m, k)).astype(adt)
            b = rng.integers(np.iinfo(bdt).min, np.iinfo(bdt).max + 1, (k, n)).astype(bdt)
            a[0] = np.iinfo(adt).max                                    # the extreme sums
            b[:, 0] = np.iinfo(bdt).min if adt == bdt == np.int8 else np.iinfo(bdt).max
            za, zb = np.iinfo(adt).min, rng.integers(np.iinfo(bdt).min, np.iinfo(bdt).max + 1, n)
            want = (a.astype(np.int64) - za) @ (b.astype(np.int64) - zb)
            for dtype in (np.int32, np.int64):
                got = K.int_product(a, b, za, zb, wrap, dtype=dtype)      # VNNI where compiled for it
                assert got.dtype == dtype and (got == want).all()
                portable, a_sums = np.empty((m, n), dtype), np.empty(m, np.int64)    # the loops without VNNI
                _mlas.int8_row_sums(a, a_sums)
                col = k * za * zb - za * b.sum(axis=0, dtype=np.int64)
                _mlas.int8_products(a, np.ascontiguousarray(b.T), zb.astype(np.int64), col, a_sums, portable, 0,
                                    _mlas.int8_products_items(m, n))
                assert (portable == want).all()
    a3, b3 = rng.normal(size=(2, 7, 300)).astype(F32), rng.normal(size=(2, 300, 130)).astype(F32)
    got = K.sgemm(a3, b3, alpha=0.5)                       # M, N > 1, unpacked: MLAS's K block is 128 here
    assert K.sgemm_block_k(7, 130, 300, False) == 128
    want = np.zeros((2, 7, 130), F32)
    for k0 in range(0, 300, 128):                          # the chain by blocks, in numpy
        acc = np.zeros((2, 7, 130), F32)
        for kk in range(k0, min(300, k0 + 128)):
            acc = R._fma(a3[:, :, kk, None], b3[:, None, kk, :], acc)
        want = (acc * F32(0.5)).astype(F32) if k0 == 0 else R._fma(acc, F32(0.5), want)
    assert mismatches(got, want) == 0


def test_gelu_fusions(tmp_path):
    """Gelu's Erf form after a bias Add (on dequantized values): ORT's default session fuses
    it into BiasGelu, in both orders of the Gelu's products."""
    rng = np.random.default_rng(95)
    x = (rng.normal(size=(64, 48)) * 3).astype(F32)
    c = dict(s=F32(0.05), z=np.uint8(128), bias=rng.normal(size=48).astype(F32), sq=F32(np.sqrt(2)), one=F32(1),
             half=F32(0.5))
    head = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
            helper.make_node("DequantizeLinear", ["q", "s", "z"], ["d"]),
            helper.make_node("Add", ["bias", "d"], ["a"]),
            helper.make_node("Div", ["a", "sq"], ["t"]), helper.make_node("Erf", ["t"], ["e"]),
            helper.make_node("Add", ["e", "one"], ["e1"])]
    tails = ([helper.make_node("Mul", ["a", "e1"], ["m"]), helper.make_node("Mul", ["m", "half"], ["y"])],
             [helper.make_node("Mul", ["a", "half"], ["h"]), helper.make_node("Mul", ["h", "e1"], ["y"])])
    for tail in tails:
        model = graph_model(head + tail, {"x": x}, c, ["y"], opset=17)
        check_both_paths(model, {"x": x})
        check_fusions(model, tmp_path)
        assert [n.op for n in prepare(model).nodes][-1] == "BiasGelu"


def level1_cases():
    """Graphs for ORT's level-1 rewrites (MatMulAddFusion, QDQ propagation, weight and bias
    quantization) as name -> (nodes, inputs, constants)."""
    rng = np.random.default_rng(97)
    q = lambda x: [helper.make_node("QuantizeLinear", [x, "s", "z"], ["q"]),
                   helper.make_node("DequantizeLinear", ["q", "s", "z"], ["d"])]
    out = lambda t: [helper.make_node("QuantizeLinear", [t, "ys", "yz"], ["yq"]),
                     helper.make_node("DequantizeLinear", ["yq", "ys", "yz"], ["y"])]
    dq_w = [helper.make_node("DequantizeLinear", ["w", "ws", "wz"], ["wd"])]
    dq_k = [helper.make_node("DequantizeLinear", ["k", "ksc", "kzc"], ["kd"], axis=0)]
    c = dict(s=F32(0.05), z=np.uint8(128), ys=F32(0.2), yz=np.uint8(120), ws=F32(0.01), wz=np.int8(0),
             w=rng.integers(-127, 128, (700, 40)).astype(np.int8), wf=(rng.normal(size=(700, 40)) * 0.05).astype(F32),
             bias=rng.normal(size=40).astype(F32), k=rng.integers(-127, 128, (16, 8, 3, 3)).astype(np.int8),
             kf=(rng.normal(size=(16, 8, 3, 3)) * 0.1).astype(F32), kbias=rng.normal(size=16).astype(F32),
             ksc=np.linspace(0.005, 0.02, 16).astype(F32), kzc=np.zeros(16, np.int8))
    x2, x3 = rng.normal(size=(16, 700)).astype(F32), rng.normal(size=(4, 6, 700)).astype(F32)
    img = rng.normal(size=(1, 8, 10, 10)).astype(F32)
    matmul_add = lambda w, bias="bias": [helper.make_node("MatMul", ["d", w], ["mm"]),
                                         helper.make_node("Add", [bias, "mm"] if bias == "bias" else ["mm", bias], ["a"])]
    conv = lambda w, b: [helper.make_node("Conv", ["d", w, b], ["cv"], pads=[1, 1, 1, 1])]
    return {
        "dq-matmul-add-q": (q("x") + dq_w + matmul_add("wd") + out("a"), {"x": x2}),
        "dq-matmul-add-q-3d": (q("x") + dq_w + matmul_add("wd") + out("a"), {"x": x3}),
        "dq-matmul-add-float-3d": (q("x") + dq_w + matmul_add("wd")[:1] +
                                   [helper.make_node("Add", ["mm", "bias"], ["y"])], {"x": x3}),
        "float-matmul-add-after-dq-3d": (q("x") + [helper.make_node("MatMul", ["d", "wf"], ["mm"]),
                                                   helper.make_node("Add", ["mm", "bias"], ["y"])], {"x": x3}),
        "dq-matmul-add-relu-q": (q("x") + dq_w + matmul_add("wd") + [helper.make_node("Relu", ["a"], ["r"])] +
                                 out("r"), {"x": x2}),
        "float-weights-gemm-q": (q("x") + [helper.make_node("Gemm", ["d", "wf", "bias"], ["g"])] + out("g"), {"x": x2}),
        "float-weights-gemm-relu-q": (q("x") + [helper.make_node("Gemm", ["d", "wf", "bias"], ["g"]),
                                                helper.make_node("Relu", ["g"], ["r"])] + out("r"), {"x": x2}),
        "dq-weights-float-bias-conv-q": (q("x") + dq_k + conv("kd", "kbias") + out("cv"), {"x": img}),
        "float-weights-conv-q": (q("x") + conv("kf", "kbias") + out("cv"), {"x": img}),
        "transpose-between-dq-and-matmul": (
            q("x") + dq_w + [helper.make_node("Transpose", ["d"], ["t"], perm=[1, 0]),
                             helper.make_node("MatMul", ["t", "wd"], ["mm"])] + out("mm"), {"x": x2.T.copy()}),
    }, c


@pytest.mark.parametrize("case", list(level1_cases()[0]))
def test_level1_rewrites(tmp_path, case):
    """ORT's level-1 rewrites before the QDQ rules: MatMul + Add -> Gemm (reshaped around a
    3-D input), Q/DQ pairs propagated through Reshape and Transpose, float weights and biases
    of Conv / Gemm quantized ahead of the QDQ rules; with K = 700 the Gemm's order shows."""
    cases, consts = level1_cases()
    nodes, inputs = cases[case]
    used = {t for n in nodes for t in n.input}
    model = graph_model(nodes, inputs, {k: v for k, v in consts.items() if k in used}, ["y"], opset=17)
    check_both_paths(model, inputs)
    check_fusions(model, tmp_path)


# -- the integer datapath as one argument ------------------------------------------------------------
def test_datapath_swaps_the_integer_kernel_path():
    """The same graph on a 16-bit saturating accumulator: QLinearMatMul and QLinearConv (as
    written, and fused from QDQ groups by the ort-default path) give what qsim's primitives
    give on that datapath, and not what ONNX Runtime gives."""
    from qsim.datapaths import qlinear_conv
    rng = np.random.default_rng(100)
    narrow = IntDatapath(accumulator=Accumulator(16, "saturate"), requant="float32")
    a, w = rng.integers(200, 256, (6, 64)).astype(np.uint8), rng.integers(60, 128, (64, 5)).astype(np.int8)
    x, k = rng.integers(200, 256, (1, 8, 5, 5)).astype(np.uint8), rng.integers(60, 128, (4, 8, 3, 3)).astype(np.int8)
    p = dict(sa=F32(0.05), za=np.uint8(0), sw=F32(0.01), zw=np.int8(0), sy=F32(40.0), zy=np.uint8(0))
    nodes = [helper.make_node("QLinearMatMul", ["a", "sa", "za", "w", "sw", "zw", "sy", "zy"], ["mm"]),
             helper.make_node("QLinearConv", ["x", "sa", "za", "k", "sw", "zw", "sy", "zy"], ["conv"], pads=[1, 1, 1, 1])]
    model = graph_model(nodes, {"a": a, "x": x}, dict(p, w=w, k=k), ["mm", "conv"])
    ort_out = ort_session(model, optimized=False).run(None, {"a": a, "x": x})
    got = execute(load_quantized(model), {"a": a, "x": x}, datapath=narrow)
    want_mm = qlinear_matmul(a, p["sa"], 0, w, p["sw"], 0, p["sy"], 0, datapath=narrow)
    want_conv = qlinear_conv(x, p["sa"], 0, k, p["sw"], 0, p["sy"], 0, padding=1, datapath=narrow)
    assert mismatches(got["mm"], want_mm) == 0 and mismatches(got["conv"], want_conv) == 0
    assert mismatches(got["mm"], ort_out[0]) > 0 and mismatches(got["conv"], ort_out[1]) > 0
    assert mismatches(execute(load_quantized(model), {"a": a, "x": x})["mm"], ort_out[0]) == 0

    qdq = [helper.make_node("DequantizeLinear", ["a", "sa", "za"], ["af"]),
           helper.make_node("DequantizeLinear", ["w", "sw", "zw"], ["wf"]),
           helper.make_node("MatMul", ["af", "wf"], ["yf"]),
           helper.make_node("QuantizeLinear", ["yf", "sy", "zy"], ["mm"])]
    fused = prepare(graph_model(qdq, {"a": a}, dict(p, w=w), ["mm"], opset=17))
    assert [n.op for n in fused.nodes] == ["QLinearMatMul"]
    assert mismatches(execute(fused, {"a": a}, datapath=narrow)["mm"], want_mm) == 0


def test_run_model_on_a_described_machine(tmp_path):
    """hardware= runs the model's integer products on the machine's resolved kernel path: a
    description whose kernel is ORT's own gives ORT's outputs; edge-npu-int8-acc16 gives its
    16-bit saturating datapath's, which differ here; a float machine is refused by name."""
    from qsim._cpu import ort_integer_datapath
    from qsim.hardware import load_hardware
    rng = np.random.default_rng(101)
    a, w = rng.integers(200, 256, (6, 64)).astype(np.uint8), rng.integers(60, 128, (64, 5)).astype(np.int8)
    p = dict(sa=F32(0.05), za=np.uint8(0), sw=F32(0.01), zw=np.int8(0), sy=F32(40.0), zy=np.uint8(0))
    model = graph_model([helper.make_node("QLinearMatMul", ["a", "sa", "za", "w", "sw", "zw", "sy", "zy"], ["mm"])],
                        {"a": a}, dict(p, w=w), ["mm"])
    ort_out = ort_session(model, optimized=True).run(None, {"a": a})[0]
    ort_like = tmp_path / "ort-like.toml"
    ort_like.write_text(f'extends = "edge-npu-int8"\nname = "ort-like"\n[datapath]\nkernel = "{ort_integer_datapath()}"\n')
    assert mismatches(run_model(model, a, hardware=str(ort_like))["mm"], ort_out) == 0
    acc16 = run_model(model, a, hardware="edge-npu-int8-acc16")["mm"]
    path16 = load_hardware("edge-npu-int8-acc16").resolve_datapath()
    assert path16.accumulator.bits == 16 and path16.accumulator.overflow == "saturate"
    want16 = qlinear_matmul(a, p["sa"], 0, w, p["sw"], 0, p["sy"], 0, datapath=path16)
    assert mismatches(acc16, want16) == 0 and mismatches(acc16, ort_out) > 0
    with pytest.raises(ValueError, match="hardware h100-fp8: its kernel h100-fp8-like computes in floating point"):
        run_model(model, a, hardware="h100-fp8")


# -- bad input: clear errors that name the problem ------------------------------------------------------
def tiny_qdq(op="Relu", opset=17, **attrs):
    x = np.zeros((2, 3), F32)
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], name="quant"),
             helper.make_node("DequantizeLinear", ["q", "s", "z"], ["d"], name="dequant"),
             helper.make_node(op, ["d"], ["y"], name="act", **attrs)]
    return graph_model(nodes, {"x": x}, {"s": F32(0.1), "z": np.uint8(128)}, ["y"], opset)


def test_errors_name_the_problem(tmp_path):
    with pytest.raises(OnnxQuantError, match=r"Softsign node 'act': operator Softsign .*not modelled"):
        run_model(tiny_qdq("Softsign"), np.zeros((2, 3), F32))
    with pytest.raises(OnnxQuantError, match="no quantization"):
        run_model(single_op("Relu", {"x": np.zeros(3, F32)}), np.zeros(3, F32))
    mixed = tiny_qdq()
    mixed.opset_import.append(helper.make_opsetid("ai.onnx", 13))
    with pytest.raises(OnnxQuantError, match="mixed opsets: the default domain is imported at versions 17 and 13"):
        run_model(mixed, np.zeros((2, 3), F32))
    blocked = tiny_qdq(opset=19)
    blocked.graph.node[1].attribute.append(helper.make_attribute("block_size", 2))
    with pytest.raises(OnnxQuantError, match="DequantizeLinear node 'dequant': attribute block_size needs opset 21"):
        run_model(blocked, np.zeros((2, 3), F32))
    model = tiny_qdq()
    for feeds, match in ((np.zeros((2, 4), F32), r"input 'x' must have shape \(2, 3\), got \(2, 4\)"),
                         (np.zeros((6,), F32), "input 'x' must have 2 dimensions"),
                         (np.zeros((2, 3), np.float64), "input 'x' must have dtype float32, got float64"),
                         ({"x": np.zeros((2, 3), F32), "z": np.zeros(1)}, "unknown input 'z'"),
                         ({}, "input 'x' is missing")):
        with pytest.raises(OnnxQuantError, match=match):
            run_model(model, feeds)
    reshape = graph_model([helper.make_node("QuantizeLinear", ["x", "s"], ["q"]),
                           helper.make_node("Reshape", ["q", "shape"], ["y"], name="bad_reshape")],
                          {"x": np.zeros((2, 3), F32)}, {"s": F32(1), "shape": np.array([4, 4])}, ["y"])
    with pytest.raises(OnnxQuantError, match="Reshape node 'bad_reshape': ValueError"):
        run_model(reshape, np.zeros((2, 3), F32))
    (tmp_path / "corrupt.onnx").write_bytes(b"\x08\x07not a model")
    for missing in (tmp_path / "corrupt.onnx", tmp_path / "absent.onnx"):
        with pytest.raises(OnnxQuantError, match=f"cannot read ONNX model {missing}"):
            run_model(missing, np.zeros(3, F32))
    with pytest.raises(ValueError, match="unknown path 'ort-fast'; choose one of ort-default, ort-unfused"):
        run_model(model, np.zeros((2, 3), F32), path="ort-fast")
    with pytest.raises(HardwareError, match="unknown hardware 'npu-9000'"):
        run_model(model, np.zeros((2, 3), F32), hardware="npu-9000")
    with pytest.raises(ValueError, match="unknown integer datapath 'int7'"):
        execute(load_quantized(model), np.zeros((2, 3), F32), datapath="int7")


def test_run_model_files_and_intermediates(tmp_path):
    """A file runs as its ModelProto does; a rewritten file is prepared again; intermediates
    hold the codes in their ONNX types."""
    x = np.linspace(-20, 20, 6, dtype=F32).reshape(2, 3)
    path = tmp_path / "m.onnx"
    onnx.save(tiny_qdq(), str(path))
    got = run_model(path, x, path="ort-unfused", intermediates=True)
    assert got["q"].dtype == np.uint8 and got["q"].tolist() == [[0, 8, 88], [168, 248, 255]]   # x / 0.1 + 128, saturated
    assert mismatches(got["y"], run_model(tiny_qdq(), x)["y"]) == 0
    onnx.save(tiny_qdq("Sigmoid"), str(path))
    want = ort_session(path, optimized=True).run(None, {"x": x})[0]
    assert mismatches(run_model(path, x)["y"], want) == 0 and (want < 1).all()


# -- MiniLM ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def minilm(tmp_path_factory):
    from peers.ort_minilm import minilm_float
    return minilm_float(tmp_path_factory.mktemp("minilm"), sentences=4)


def test_minilm_quantize_dynamic(minilm, tmp_path):
    """all-MiniLM-L6-v2's encoder quantized by quantize_dynamic: the hidden states equal ORT's
    bit for bit on both paths (ort-unfused: every tensor), also against ORT's default thread
    count, and the default path fuses what ORT fuses."""
    float_path, inputs = minilm
    path = tmp_path / "minilm_int8.onnx"
    quantize_dynamic(str(float_path), str(path), weight_type=QuantType.QInt8)
    h = check_both_paths(path, inputs)["h"]
    assert h.shape[:2] == inputs["input_ids"].shape and np.isfinite(h).all()
    threaded = ort_session(path, optimized=True, threads=0).run(None, inputs)[0]
    assert mismatches(h, threaded) == 0
    check_fusions(path, tmp_path)


@pytest.mark.parametrize("fmt", [QuantFormat.QDQ, QuantFormat.QOperator], ids=lambda f: f.name)
def test_minilm_quantize_static(minilm, tmp_path, fmt):
    """The same encoder through quantize_static: QLinearMatMul, QLinearAdd / QLinearMul,
    QLinearSoftmax (QDQ: fused by ORT's default session; a constant's QuantizeLinear folded
    before the int8 -> uint8 rewrite keeps some binary operators float), bit for bit."""
    from peers.ort_minilm import minilm_static
    float_path, inputs = minilm
    path = minilm_static(float_path, inputs, fmt)
    h = check_both_paths(path, inputs)["h"]
    assert np.isfinite(h).all() and np.unique(h).size > 100
    check_fusions(path, tmp_path)
