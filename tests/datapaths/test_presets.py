"""The presets: each is a distinct kernel path, and the differences show where the real kernels
differ (ties above all)."""

import itertools

import numpy as np
import pytest

from qsim.datapaths import PRESETS, Accumulator, IntDatapath, get_datapath, qlinear_conv, qlinear_matmul, quantize_bias

ALL = list(PRESETS)


def run(preset, a, sa, za, b, sb, zb, sy, zy, bias_float=None, activation=None):
    path = PRESETS[preset]
    bias = None
    if bias_float is not None:
        bias = np.asarray(bias_float, np.float32) if path.bias == "float" else quantize_bias(bias_float, sa, sb)
    return qlinear_matmul(a, sa, np.uint8(za), b, sb, np.int8(zb), sy, np.uint8(zy), bias,
                          datapath=preset, activation=activation)


def tie_outputs(preset, m):
    """acc = -7..7 (odd multiples of a half at m = 1/2, of a quarter at 1/4...), y_zero = 128."""
    a = (np.arange(-7, 8) + 128).astype(np.uint8).reshape(-1, 1)
    return tuple(run(preset, a, 1.0, 128, np.ones((1, 1), np.int8), m, 0, 1.0, 128).ravel().tolist())


def test_ties_split_the_presets_into_rounding_families():
    families = {}
    for preset in ALL:
        key = tuple(tie_outputs(preset, m) for m in (0.5, 0.25, 0.125))
        families.setdefault(key, []).append(preset)
    groups = sorted(sorted(g) for g in families.values())
    assert groups == sorted([
        ["gemmlowp"],                       # high-mul ties up, shift ties away: double rounding
        ["tflite-reference"],               # one rounding, ties away from zero
        ["tflite-ruy"],                     # two roundings, ties up
        sorted(["onnxruntime-x86", "onnxruntime-x86-avx2", "xnnpack", "fbgemm-vnni", "fbgemm-avx2", "qnnpack"]),   # half even
    ])


def acc_row(acc: int, k: int = 300) -> np.ndarray:
    """A uint8 row whose sum (zero point 0, weights 1) is acc."""
    row = np.zeros(k, np.int64)
    row[: acc // 255] = 255
    row[acc // 255] += acc % 255
    return row.astype(np.uint8)


def scale_order_case():
    """Scales where float32((sx * sw) / sy) (MLAS, XNNPACK, fbgemm) and float32((sw * sx) *
    (1 / sy)) (qnnpack) differ by an ulp, and accumulators where that moves the rounding."""
    sx, sw = np.float32(0.1), np.float32(0.3)
    accs = np.arange(25000)
    for i in range(1, 1000):
        sy = np.float32(3 + i / 1000)
        s1, s2 = sx * sw / sy, sw * sx * (np.float32(1) / sy)
        hits = accs[np.rint(accs.astype(np.float32) * s1) != np.rint(accs.astype(np.float32) * s2)]
        if hits.size:
            a = np.stack([acc_row(int(x)) for x in hits[:4]])
            return dict(a=a, sa=sx, za=0, b=np.ones((a.shape[1], 1), np.int8), sb=sw, zb=0, sy=sy, zy=0)
    raise AssertionError("no scale-order case found")


def battery():
    """Cases that separate presets sharing a rounding rule: a ReLU6 bound on a tie (6 / 12 =
    0.5), saturating byte pairs, a float bias that is not a multiple of sx * sw, and the order of
    the float scale operations."""
    yield "relu6 bound tie", dict(a=np.full((1, 1), 255, np.uint8), sa=1.0, za=0, b=np.full((1, 1), 127, np.int8),
                                  sb=1.0, zb=0, sy=12.0, zy=0, activation="relu6")
    yield "saturating pairs", dict(a=np.full((1, 2), 255, np.uint8), sa=1.0, za=0, b=np.full((2, 1), 127, np.int8),
                                   sb=1.0, zb=0, sy=1024.0, zy=0)
    yield "float bias", dict(a=np.full((1, 1), 129, np.uint8), sa=0.5, za=128, b=np.ones((1, 1), np.int8), sb=0.5,
                             zb=0, sy=0.5, zy=100, bias_float=np.array([0.3 * 0.25], np.float32))
    yield "scale order", scale_order_case()


@pytest.mark.parametrize("p,q", list(itertools.combinations(ALL, 2)))
def test_every_pair_of_presets_differs_somewhere(p, q):
    cases = [("ties", None)] + list(battery())
    for name, case in cases:
        if case is None:
            if any(tie_outputs(p, m) != tie_outputs(q, m) for m in (0.5, 0.25, 0.125)):
                return
        elif not np.array_equal(run(p, **case), run(q, **case)):
            return
    pytest.fail(f"presets {p} and {q} give the same outputs on every case")


def test_get_datapath_and_custom_datapaths():
    assert get_datapath("qnnpack") is PRESETS["qnnpack"]
    custom = IntDatapath("npu", Accumulator(24, "saturate"), "shift", shift_rounding="rne")
    a = np.array([[130, 131, 133]], np.uint8).T                   # acc 2, 3, 5 at m = 1/2
    y = qlinear_matmul(a, 1.0, np.uint8(128), np.ones((1, 1), np.int8), 0.5, np.int8(0), 1.0, np.uint8(0),
                       datapath=custom)
    assert y.ravel().tolist() == [1, 2, 2]
    with pytest.raises(ValueError, match="2\\^-n"):
        qlinear_matmul(a, 1.0, np.uint8(128), np.ones((1, 1), np.int8), 0.3, np.int8(0), 1.0, np.uint8(0),
                       datapath=custom)
    with pytest.raises(ValueError, match="unknown integer datapath"):
        get_datapath("tpu-v9")
    with pytest.raises(ValueError, match="requant"):
        IntDatapath("x", requant="magic")
    with pytest.raises(ValueError, match="float"):
        IntDatapath("x", requant="float32", bias="float")


BAD = [
    (dict(b=np.zeros((3, 2), np.int8)), ValueError, "inner dimensions"),
    (dict(a_zero=np.uint8(0), a=np.zeros((2, 4), np.float32)), TypeError, "integer codes"),
    (dict(a_scale=0.0), ValueError, "a_scale must be finite and > 0"),
    (dict(a_scale=float("nan")), ValueError, "a_scale"),
    (dict(b_scale=np.ones(3, np.float32)), ValueError, "b_scale must be a scalar or shape \\(2,\\)"),
    (dict(y_scale=-1.0), ValueError, "y_scale"),
    (dict(a_zero=300), ValueError, "a_zero must lie in \\[0, 255\\]"),
    (dict(b_zero=np.array([1, 2, 3])), ValueError, "b_zero"),
    (dict(y_zero=-1), ValueError, "y_zero"),
    (dict(bias=np.zeros(3, np.int32)), ValueError, "bias must have shape"),
    (dict(bias=np.zeros(2, np.float32)), TypeError, "int32 bias"),
    (dict(bias=np.array([2 ** 33, 0])), ValueError, "int32"),
    (dict(activation="gelu"), ValueError, "activation"),
    (dict(datapath="nope"), ValueError, "unknown integer datapath"),
    (dict(a_format="int4"), ValueError, "outside"),
    (dict(a_format="int16"), ValueError, "2 to 8 bits"),
]


@pytest.mark.parametrize("override,exc,match", BAD)
def test_bad_layer_input_is_a_clear_error(override, exc, match):
    args = dict(a=np.full((2, 4), 200, np.uint8), a_scale=0.1, a_zero=np.uint8(3), b=np.ones((4, 2), np.int8),
                b_scale=0.2, b_zero=np.int8(0), y_scale=0.3, y_zero=np.uint8(5))
    kw = {k: override.pop(k) for k in ("bias", "activation", "datapath", "a_format") if k in override}
    args.update(override)
    with pytest.raises(exc, match=match):
        qlinear_matmul(**args, **kw)


def test_float_bias_preset_rejects_int_bias_and_conv_checks_channels():
    with pytest.raises(TypeError, match="float bias"):
        qlinear_matmul(np.zeros((1, 2), np.uint8), 1.0, np.uint8(0), np.zeros((2, 2), np.int8), 1.0, np.int8(0),
                       1.0, np.uint8(0), np.zeros(2, np.int32), datapath="fbgemm-vnni")
    with pytest.raises(ValueError, match="w_scale must be a scalar or shape \\(4,\\)"):
        qlinear_conv(np.zeros((1, 2, 5), np.uint8), 1.0, np.uint8(0), np.zeros((4, 2, 3), np.int8),
                     np.ones(3, np.float32), np.int8(0), 1.0, np.uint8(0))


def test_sub_byte_operands_and_outputs():
    """int4 / uint4 codes go through the same datapath; outputs clamp to the named format."""
    rng = np.random.default_rng(5)
    a = rng.integers(-8, 8, (6, 20)).astype(np.int8)
    w = rng.integers(-8, 8, (20, 3)).astype(np.int8)
    acc = (a.astype(np.int64) + 2) @ w.astype(np.int64)
    y = qlinear_matmul(a, 0.5, np.int8(-2), w, 0.25, np.int8(0), 0.5, np.uint8(3), a_format="int4",
                       b_format="int4", y_format="uint4", datapath="onnxruntime-x86")
    want = np.clip(np.rint((acc * 0.25).astype(np.float32)) + 3, 0, 15)
    np.testing.assert_array_equal(y, want)
    assert y.dtype == np.uint8 and y.max() <= 15
    with pytest.raises(ValueError, match="y_zero must lie in \\[0, 15\\]"):
        qlinear_matmul(a, 0.5, np.int8(-2), w, 0.25, np.int8(0), 0.5, np.uint8(16), a_format="int4",
                       y_format="uint4")
