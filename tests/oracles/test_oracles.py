"""Bit-exact comparison of qsim against independent implementations (ml_dtypes, numpy, torch,
onnxruntime).

Codes are compared, not values, so the sign of zero is checked too. A NaN result matches
any NaN result (which NaN code is implementation-defined, formats.md); every other code must
be equal. Each peer is compared in the mode it actually implements (see formats.md, "What
peers do by default").
"""

from functools import cache

import ml_dtypes
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator

import qsim

SEED = 20240611

# The peers' own numpy casts warn on NaN/overflow inputs, which are deliberate here.
pytestmark = [pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning"),
              pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")]

# qsim format -> the ml_dtypes / numpy dtype with the same layout
NP_DTYPES = {
    "e4m3": ml_dtypes.float8_e4m3fn,
    "e5m2": ml_dtypes.float8_e5m2,
    "e4m3fnuz": ml_dtypes.float8_e4m3fnuz,
    "e5m2fnuz": ml_dtypes.float8_e5m2fnuz,
    "fp6_e2m3": ml_dtypes.float6_e2m3fn,
    "fp6_e3m2": ml_dtypes.float6_e3m2fn,
    "fp4_e2m1": ml_dtypes.float4_e2m1fn,
    "e8m0": ml_dtypes.float8_e8m0fnu,
    "bf16": ml_dtypes.bfloat16,
    "fp16": np.float16,
}

# The qsim options that reproduce ml_dtypes' astype:
# - FP8: overflow and Inf give NaN (E4M3, FNUZ) or Inf (E5M2): non-saturating.
# - FP6/FP4: ml_dtypes clamps overflow and Inf to +-max (these types have no Inf/NaN).
# - E8M0: ties round up (3 -> 4), i.e. half away from zero; 0, negatives, overflow give NaN.
ML_DTYPES_MODE = {
    "e4m3": dict(saturate=False),
    "e5m2": dict(saturate=False),
    "e4m3fnuz": dict(saturate=False),
    "e5m2fnuz": dict(saturate=False),
    "fp6_e2m3": dict(saturate=True),
    "fp6_e3m2": dict(saturate=True),
    "fp4_e2m1": dict(saturate=True),
    "e8m0": dict(rounding="rna", saturate=False),
    "bf16": dict(),
    "fp16": dict(),
}

TORCH_DTYPES = {
    "e4m3": (torch.float8_e4m3fn, dict(saturate=True)),   # torch saturates E4M3 (formats.md)
    "e5m2": (torch.float8_e5m2, dict(saturate=False)),
    "e4m3fnuz": (torch.float8_e4m3fnuz, dict(saturate=False)),
    "e5m2fnuz": (torch.float8_e5m2fnuz, dict(saturate=False)),
    "bf16": (torch.bfloat16, dict()),
    "fp16": (torch.float16, dict()),
}

UINT_OF_SIZE = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


# -- inputs ---------------------------------------------------------------------------------
@cache
def all_float16() -> np.ndarray:
    return np.arange(1 << 16, dtype=np.uint16).view(np.float16)


@cache
def all_bfloat16() -> np.ndarray:
    return np.arange(1 << 16, dtype=np.uint16).view(ml_dtypes.bfloat16)


@cache
def float32_sample() -> np.ndarray:
    """Random float32 bit patterns: uniformly random ones (mostly far outside the small
    formats' range), ones with exponents near the small formats' range, and exact ties and
    near-ties for the 16-bit targets (dropping 16 bits for bf16, 13 for fp16)."""
    rng = np.random.default_rng(SEED)
    uniform = rng.integers(0, 1 << 32, 1_000_000, dtype=np.uint32)
    near = rng.integers(0, 1 << 32, 800_000, dtype=np.uint32)
    exponent = rng.integers(127 - 40, 127 + 24, near.size, dtype=np.uint32)
    near = (near & np.uint32(0x807FFFFF)) | (exponent << np.uint32(23))
    ties = []
    for dropped in (16, 13):
        t = rng.integers(0, 1 << 32, 100_000, dtype=np.uint32)
        half = np.uint32(1 << (dropped - 1))
        t = (t & ~np.uint32((1 << dropped) - 1)) | half
        ties += [t, t - np.uint32(1), t + np.uint32(1)]
    return np.concatenate([uniform, near, *ties]).view(np.float32)


@cache
def float64_sample() -> np.ndarray:
    """Random float64 values over the formats' ranges, and every midpoint between adjacent
    values of each small format (and bf16/fp16), exact and nudged by one float64 ulp and by
    a relative 2**-30: where a two-step float64 -> float32 -> target conversion goes wrong."""
    rng = np.random.default_rng(SEED + 1)
    bits = rng.integers(0, 1 << 63, 1_000_000, dtype=np.uint64) | (
        rng.integers(0, 2, 1_000_000, dtype=np.uint64) << np.uint64(63))
    exponent = rng.integers(1023 - 160, 1023 + 135, bits.size, dtype=np.uint64)
    bits = (bits & np.uint64(0x800FFFFFFFFFFFFF)) | (exponent << np.uint64(52))
    parts = [bits.view(np.float64)]
    for dtype in NP_DTYPES.values():
        n = 1 << (8 * np.dtype(dtype).itemsize)
        values = np.arange(n, dtype=UINT_OF_SIZE[np.dtype(dtype).itemsize]).view(dtype)
        grid = np.unique(values.astype(np.float64)[np.isfinite(values.astype(np.float64))])
        mid = (grid[:-1] + grid[1:]) / 2
        mid = mid[mid != 0]
        for m in (mid, -mid):
            parts += [m, np.nextafter(m, np.inf), np.nextafter(m, -np.inf), m * (1 + 2.0**-30), m * (1 - 2.0**-30)]
    return np.concatenate(parts)


INPUTS = {
    "float16_all": all_float16,
    "bfloat16_all": all_bfloat16,
    "float32_sample": float32_sample,
}


def widen_to_float32(x: np.ndarray) -> np.ndarray:
    """float16 and bfloat16 values are all exact in float32."""
    return x if x.dtype == np.float32 else x.astype(np.float32)


def float32_round_to_odd(x: np.ndarray) -> np.ndarray:
    """float64 -> float32 rounding to odd: truncate, then set the last bit if inexact.
    Rounding that result to nearest in a format at least 2 bits narrower than float32 equals
    rounding the float64 directly (Boldo & Melquiond). ml_dtypes and torch convert float64 by
    first rounding to nearest float32 (double rounding), so this gives a correct oracle."""
    with np.errstate(over="ignore"):
        f = x.astype(np.float32)
    away = np.abs(f.astype(np.float64)) > np.abs(x)         # includes overflow to Inf
    f = np.where(away, np.nextafter(f, np.float32(0)), f)
    inexact = (f.astype(np.float64) != x) & np.isfinite(x)
    return (f.view(np.uint32) | inexact.astype(np.uint32)).view(np.float32)


# -- comparison -------------------------------------------------------------------------------
def nan_mask_np(codes: np.ndarray, dtype) -> np.ndarray:
    """Which codes are NaN, read through the oracle's own dtype."""
    return np.isnan(codes.view(dtype).astype(np.float32))


def assert_codes_equal(got, want, got_nan, want_nan, x, label):
    assert got.shape == want.shape, label
    bad = (got != want) & ~(got_nan & want_nan)
    if bad.any():
        idx = np.flatnonzero(bad)[:12]
        xb = x.view(UINT_OF_SIZE[x.dtype.itemsize])
        width = 2 * x.dtype.itemsize
        lines = [f"  x=0x{int(xb.flat[i]):0{width}x} ({float(x.flat[i])!r}): qsim 0x{int(got.flat[i]):x}, "
                 f"oracle 0x{int(want.flat[i]):x}" for i in idx]
        pytest.fail(f"{label}: {int(bad.sum())} of {bad.size} codes differ, e.g.\n" + "\n".join(lines))


def drop_unsupported(x: np.ndarray, fmt: str) -> np.ndarray:
    """qsim raises for NaN into a format without NaN; leave those inputs out."""
    if qsim.format(fmt).has_nan:
        return x
    return x[~np.isnan(x.astype(np.float64))]


def check_vs_ml_dtypes(x: np.ndarray, fmt: str, oracle_input: np.ndarray, label: str):
    dtype = NP_DTYPES[fmt]
    got = qsim.encode(x, fmt, **ML_DTYPES_MODE[fmt])
    want = oracle_input.astype(dtype).view(got.dtype)
    assert_codes_equal(got, want, nan_mask_np(got, dtype), nan_mask_np(want, dtype), x, label)


def ml_dtypes_e8m0_subnormal_quirk(x: np.ndarray) -> np.ndarray:
    """ml_dtypes (and torch) round float32 subnormals in (2**-127, 1.5 * 2**-127) up to
    2**-126, although 2**-127 is nearer; qsim rounds these by value (test below)."""
    a = np.abs(widen_to_float32(x).astype(np.float64))
    return (a > 2.0**-127) & (a < 1.5 * 2.0**-127)


# -- ml_dtypes / numpy --------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("source", sorted(INPUTS))
@pytest.mark.parametrize("fmt", list(NP_DTYPES))
def test_encode_matches_ml_dtypes(fmt, source):
    x = drop_unsupported(INPUTS[source](), fmt)
    if fmt == "e8m0":
        x = x[~ml_dtypes_e8m0_subnormal_quirk(x)]
    check_vs_ml_dtypes(x, fmt, widen_to_float32(x), f"{fmt} from {source}")


@pytest.mark.slow
@pytest.mark.parametrize("fmt", list(NP_DTYPES))
def test_encode_float64_is_correctly_rounded(fmt):
    """float64 input is rounded once, directly: numpy's float64 -> float16 is direct; for the
    others the oracle rounds to odd in float32 and then lets ml_dtypes round to nearest."""
    x = drop_unsupported(float64_sample(), fmt)
    if fmt == "e8m0":
        x = x[~ml_dtypes_e8m0_subnormal_quirk(float32_round_to_odd(x))]
    oracle_input = x if fmt == "fp16" else float32_round_to_odd(x)
    check_vs_ml_dtypes(x, fmt, oracle_input, f"{fmt} from float64")


@pytest.mark.slow
def test_round_to_odd_oracle_agrees_with_direct_float16():
    """The float64 oracle construction itself, checked where a direct conversion exists."""
    x = float64_sample()
    direct = x.astype(np.float16).view(np.uint16)
    two_step = float32_round_to_odd(x).astype(np.float16).view(np.uint16)
    nan = np.isnan(x)
    np.testing.assert_array_equal(direct[~nan], two_step[~nan])


def test_e8m0_rounds_float32_subnormals_by_value():
    # 2**-127 is code 0, 2**-126 code 1; the midpoint is 1.5 * 2**-127 (ties go up).
    x = np.array([2.0**-127, 1.25 * 2.0**-127, 1.4 * 2.0**-127, 1.5 * 2.0**-127, 1.75 * 2.0**-127],
                 np.float32)
    np.testing.assert_array_equal(qsim.encode(x, "e8m0", rounding="rna", saturate=False), [0, 0, 0, 1, 1])


@pytest.mark.parametrize("fmt", list(NP_DTYPES))
def test_encode_boundaries_match_ml_dtypes(fmt):
    """A quick, non-exhaustive check of the overflow edges and specials."""
    edges = [0.0, -0.0, 1.0, -1.0, 3.0, 5.5, 6.5, 7.25, 7.75, 28.0, 30.0, 32.0, 240.0, 248.0, 448.0,
             463.9, 464.0, 464.1, 465.0, 480.0, 57344.0, 61439.0, 61440.0, 65504.0, 65520.0,
             1e30, 3e38, np.inf, -np.inf, np.nan, 2.0**-9, 2.0**-10, 1.5 * 2.0**-10, 2.0**-17, 2.0**-25]
    x = drop_unsupported(np.array(edges + [-e for e in edges], np.float32), fmt)
    check_vs_ml_dtypes(x, fmt, x, f"{fmt} edges")


@pytest.mark.parametrize("fmt", list(NP_DTYPES))
def test_decode_every_code_matches_ml_dtypes(fmt):
    dtype = NP_DTYPES[fmt]
    storage = qsim.format(fmt).storage_bits
    codes = np.arange(1 << storage, dtype=np.uint8 if storage <= 8 else np.uint16)
    got = qsim.decode(codes, fmt)
    want = codes.view(dtype).astype(got.dtype)
    nan = np.isnan(want)
    np.testing.assert_array_equal(np.isnan(got), nan)
    bits = UINT_OF_SIZE[got.dtype.itemsize]
    np.testing.assert_array_equal(got[~nan].view(bits), want[~nan].view(bits))  # -0 too


# -- torch ------------------------------------------------------------------------------------
def torch_codes(x32: np.ndarray, dtype) -> tuple[np.ndarray, np.ndarray]:
    t = torch.from_numpy(x32).to(dtype)
    raw = t.view(torch.uint8 if t.element_size() == 1 else torch.int16).numpy()
    codes = raw.view(np.uint8 if t.element_size() == 1 else np.uint16)
    return codes, torch.isnan(t.float()).numpy()


def torch_nan_mask(codes: np.ndarray, dtype) -> np.ndarray:
    t = torch.from_numpy(codes.view(np.int16) if codes.dtype == np.uint16 else codes)
    return torch.isnan(t.view(dtype).float()).numpy()


@pytest.mark.slow
@pytest.mark.parametrize("source", sorted(INPUTS))
@pytest.mark.parametrize("fmt", list(TORCH_DTYPES))
def test_encode_matches_torch(fmt, source):
    dtype, mode = TORCH_DTYPES[fmt]
    x32 = widen_to_float32(INPUTS[source]())
    got = qsim.encode(x32, fmt, **mode)
    want, want_nan = torch_codes(x32, dtype)
    assert_codes_equal(got, want, torch_nan_mask(got, dtype), want_nan, x32, f"{fmt} (torch) from {source}")


@pytest.mark.parametrize("fmt", ["e4m3", "e5m2", "e4m3fnuz", "e5m2fnuz", "e8m0"])
def test_decode_every_code_matches_torch(fmt):
    dtype = {"e8m0": torch.float8_e8m0fnu, **{k: v[0] for k, v in TORCH_DTYPES.items()}}[fmt]
    codes = np.arange(256, dtype=np.uint8)
    got = qsim.decode(codes, fmt)
    want = torch.tensor(codes, dtype=torch.uint8).view(dtype).float().numpy()
    nan = np.isnan(want)
    np.testing.assert_array_equal(np.isnan(got), nan)
    np.testing.assert_array_equal(got[~nan].view(np.uint32), want[~nan].view(np.uint32))


@pytest.mark.parametrize("fmt", ["bf16", "fp16"])
def test_decode_every_16bit_code_matches_torch(fmt):
    codes = np.arange(1 << 16, dtype=np.uint16)
    got = qsim.decode(codes, fmt)
    want = torch.from_numpy(codes.view(np.int16)).view(TORCH_DTYPES[fmt][0]).float().numpy()
    nan = np.isnan(want)
    np.testing.assert_array_equal(np.isnan(got), nan)
    np.testing.assert_array_equal(got[~nan].view(np.uint32), want[~nan].view(np.uint32))


@pytest.mark.parametrize("fmt", ["e5m2", "fp16"])
@pytest.mark.parametrize("n", [1, 7, 9, 16387])
def test_half_prefix_decode_tails_match_torch(fmt, n):
    """The F16C path works 8 codes at a time per chunk: lengths off that grid use its tail."""
    storage = qsim.format(fmt).storage_bits
    codes = np.random.default_rng(n).integers(0, 1 << storage, n).astype(f"u{storage // 8}")
    got = qsim.decode(codes, fmt)
    dtype = TORCH_DTYPES[fmt][0]
    want = torch.from_numpy(codes.view(f"i{storage // 8}")).view(dtype).float().numpy()
    nan = np.isnan(want)
    np.testing.assert_array_equal(np.isnan(got), nan)
    np.testing.assert_array_equal(got[~nan].view(np.uint32), want[~nan].view(np.uint32))


# -- onnxruntime ------------------------------------------------------------------------------
OPSET = 21


def run_onnx(nodes, x: np.ndarray, out_type, initializers=()):
    """Build a one-input model and run it on the CPU provider. Skips only when onnxruntime
    rejects the configuration, with its own error message."""
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x.shape))],
        [helper.make_tensor_value_info("out", out_type, list(x.shape))],
        initializer=list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 10
    onnx.checker.check_model(model)
    try:
        session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        return session.run(None, {"x": x})[0]
    except Exception as exc:  # onnxruntime's own error types are not a stable public API
        pytest.skip(f"onnxruntime {ort.__version__} rejects this configuration: {exc}")


def tensor(name, onnx_type, values: np.ndarray):
    return helper.make_tensor(name, onnx_type, list(values.shape), values.ravel().tolist())


INT_TYPES = {"int8": TensorProto.INT8, "uint8": TensorProto.UINT8}


def int_inputs(rng, shape, scale_like):
    """Normal values, exact half-way points of the scale (RNE ties), and far out-of-range
    values and +-Inf (clamped)."""
    x = rng.normal(0, 40, shape) * scale_like
    ties = (rng.integers(-300, 300, shape) + 0.5) * scale_like
    pick = rng.integers(0, 3, shape)
    x = np.where(pick == 0, x, ties)
    flat = x.reshape(-1)
    flat[:6] = [1e30, -1e30, np.inf, -np.inf, 0.0, -0.0]
    return x.astype(np.float32)


@pytest.mark.parametrize("fmt", list(INT_TYPES))
@pytest.mark.parametrize("scheme", ["tensor", "axis0", "axis1", "block_axis1", "block_axis0"])
def test_quantize_int_matches_onnxruntime(fmt, scheme):
    rng = np.random.default_rng(SEED + 2)
    shape = (50, 48)
    f = qsim.format(fmt)
    axis, block = {"tensor": (None, None), "axis0": (0, None), "axis1": (1, None),
                   "block_axis1": (1, 16), "block_axis0": (0, 7)}[scheme]
    if axis is None:
        pshape = ()
    elif block is None:
        pshape = (shape[axis],)
    else:
        pshape = tuple(-(-n // block) if d == axis else n for d, n in enumerate(shape))
    # powers of two (exact ties survive the division) mixed with arbitrary scales
    scale = np.where(rng.integers(0, 2, pshape) == 0, 2.0 ** rng.integers(-6, 3, pshape),
                     rng.uniform(0.01, 3.0, pshape)).astype(np.float32)
    zp = rng.integers(f.qmin // 4, f.qmax // 4 + 1, pshape).astype(np.int8 if f.signed else np.uint8)

    if axis is None:
        x = int_inputs(rng, shape, scale)
    elif block is None:
        bshape = [1, 1]
        bshape[axis] = -1
        x = int_inputs(rng, shape, scale.reshape(bshape))
    else:
        x = int_inputs(rng, shape, np.repeat(scale, block, axis=axis).take(range(shape[axis]), axis=axis))

    attrs = {} if axis is None else {"axis": axis}
    if block is not None:
        attrs["block_size"] = block
    node = helper.make_node("QuantizeLinear", ["x", "scale", "zp"], ["out"], **attrs)
    want = run_onnx([node], x, INT_TYPES[fmt],
                    [tensor("scale", TensorProto.FLOAT, scale), tensor("zp", INT_TYPES[fmt], zp)])
    got = qsim.quantize_int(x, fmt, scale, zp, axis=axis, group_size=block, rounding="rne")
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)


FLOAT8_ONNX = {"e4m3": TensorProto.FLOAT8E4M3FN, "e5m2": TensorProto.FLOAT8E5M2}


def float8_model(op: str, n: int, fmt: str, saturate: int, scale: float):
    """x -> Cast or QuantizeLinear to float8 -> Cast back to float32. The float8 -> float32
    cast is exact and keeps -0 and NaN; it is there because onnxruntime's Python binding
    cannot return E5M2 tensors."""
    to = FLOAT8_ONNX[fmt]
    inits = []
    if op == "Cast":
        q = helper.make_node("Cast", ["x"], ["q"], to=to, saturate=saturate)
    else:
        inits = [tensor("scale", TensorProto.FLOAT, np.array(scale, np.float32)),
                 helper.make_tensor("zp", to, [], [0])]
        q = helper.make_node("QuantizeLinear", ["x", "scale", "zp"], ["q"], saturate=saturate)
    back = helper.make_node("Cast", ["q"], ["out"], to=TensorProto.FLOAT)
    graph = helper.make_graph(
        [q, back], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [n])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [n])], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 10
    onnx.checker.check_model(model)
    return model


@cache
def onnx_float8_inputs() -> np.ndarray:
    rng = np.random.default_rng(SEED + 3)
    near_max = [np.arange(np.float32(lo).view(np.uint32), np.float32(hi).view(np.uint32), 97,
                          dtype=np.uint32).view(np.float32) for lo, hi in ((400, 600), (50000, 70000))]
    x = np.concatenate([widen_to_float32(all_float16()), widen_to_float32(all_bfloat16()), *near_max,
                        rng.choice(float32_sample(), 300_000, replace=False)])
    return np.concatenate([x, -x])


def ort_known_overflow_quirk(x: np.ndarray, fmt: str, saturate: int) -> np.ndarray:
    """onnxruntime 1.32 deviates from the ONNX Cast table and OCP in non-saturating mode, on a
    band just past the overflow threshold: E4M3FN gives +-448 for |x| in [480, 496) (should be
    NaN), E5M2 gives NaN for |x| in [61440, 65536) (should be +-Inf). The ONNX reference
    evaluator (test below) follows the spec there and is compared on every input."""
    if saturate:
        return np.zeros(x.shape, bool)
    lo, hi = {"e4m3": (480.0, 496.0), "e5m2": (61440.0, 65536.0)}[fmt]
    a = np.abs(x)
    return (a >= lo) & (a < hi)


@pytest.mark.slow
@pytest.mark.parametrize("runner", ["onnxruntime", "onnx_reference"])
@pytest.mark.parametrize("op, scale", [("Cast", 1.0), ("QuantizeLinear", 1.0), ("QuantizeLinear", 3.0)])
@pytest.mark.parametrize("saturate", [1, 0])
@pytest.mark.parametrize("fmt", list(FLOAT8_ONNX))
def test_float8_matches_onnx(fmt, saturate, op, scale, runner):
    x = onnx_float8_inputs()
    with np.errstate(invalid="ignore"):        # signalling NaN bit patterns in the sample
        scaled = x / np.float32(scale)         # QuantizeLinear: a float32 division, then the cast
    if runner == "onnxruntime":
        keep = ~ort_known_overflow_quirk(scaled, fmt, saturate)
        x, scaled = x[keep], scaled[keep]
    model = float8_model(op, x.size, fmt, saturate, scale)
    if runner == "onnxruntime":
        try:
            session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
            want = session.run(None, {"x": x})[0]
        except Exception as exc:  # onnxruntime's error types are not a stable public API
            pytest.skip(f"onnxruntime {ort.__version__} rejects this configuration: {exc}")
    else:
        want = ReferenceEvaluator(model).run(None, {"x": x})[0]
    got = qsim.decode(qsim.encode(scaled, fmt, saturate=bool(saturate)), fmt)
    assert_codes_equal(got.view(np.uint32), want.view(np.uint32), np.isnan(got), np.isnan(want), x,
                       f"{fmt} {op} saturate={saturate} scale={scale} ({runner})")


@pytest.mark.parametrize("fmt", list(FLOAT8_ONNX))
def test_onnxruntime_overflow_quirk_is_still_there(fmt):
    """Keeps the exclusion above honest: if onnxruntime is fixed, this fails and the
    exclusion should go."""
    x = np.array({"e4m3": [480.0, 495.0, -490.0], "e5m2": [61440.0, 65000.0, -62000.0]}[fmt], np.float32)
    session = ort.InferenceSession(float8_model("Cast", x.size, fmt, 0, 1.0).SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    got = session.run(None, {"x": x})[0]
    if fmt == "e4m3":
        np.testing.assert_array_equal(got, [448.0, 448.0, -448.0])
    else:
        assert np.isnan(got).all()
