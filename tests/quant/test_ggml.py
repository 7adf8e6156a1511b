"""ggml block formats against gguf-py (llama.cpp's own numpy reference): bit for bit."""

import struct
import warnings

import numpy as np
import pytest

from qsim.quant.ggml import (GGML_FORMATS, MXFP4_VALUES, ggml_dequantize, ggml_format, ggml_quantize)

gguf = pytest.importorskip("gguf")
from gguf import GGMLQuantizationType as T  # noqa: E402

ORACLE_DEQUANT = [name for name in GGML_FORMATS if name != "Q8_K"]  # gguf-py has no Q8_K
QUANTIZABLE = [name for name, f in GGML_FORMATS.items() if f.can_quantize]
ROW = 4096


def gguf_dequantize(raw, name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return gguf.quants.dequantize(raw, T[name])


def gguf_quantize(x, name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return gguf.quants.quantize(x, T[name])


def float_mismatches(ours, ref):
    """Elements whose float32 bit patterns differ (any NaN matches any NaN)."""
    assert ours.dtype == np.float32 and ref.dtype == np.float32 and ours.shape == ref.shape
    same = (ours.view(np.uint32) == ref.view(np.uint32)) | (np.isnan(ours) & np.isnan(ref))
    return int((~same).sum())


def random_blocks(fmt, rows, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(rows, ROW // fmt.block_elems * fmt.bytes_per_block), dtype=np.uint8)


SPECIAL_FP16 = np.array([np.inf, -np.inf, np.nan, -np.nan, 0.0, -0.0, 6e-8, -6e-5, 65504.0], np.float16)
SPECIAL_E8M0 = np.array([0, 1, 2, 126, 127, 128, 253, 254, 255], np.uint8)


def plant_special_scales(raw, fmt):
    """Give the first blocks' fp16 scales (d, dmin, m) or E8M0 exponent the edge values, in turn."""
    blocks = raw.reshape(-1, fmt.bytes_per_block)
    for k, field in enumerate(("d", "dmin", "m")):
        if fmt.field_bytes(field) == 2:
            start, n = fmt.field_offset(field), len(SPECIAL_FP16)
            rows = slice(k * n, (k + 1) * n)
            blocks[rows, start:start + 2] = SPECIAL_FP16.view(np.uint8).reshape(-1, 2)
    if fmt.family == "mxfp4":
        blocks[:len(SPECIAL_E8M0), 0] = SPECIAL_E8M0
        blocks[len(SPECIAL_E8M0), 1:] = 0x77  # code 7 (12) under e = 255 overflows to Inf
        blocks[len(SPECIAL_E8M0), 0] = 255
    return raw


# -- the formats as data ------------------------------------------------------------------
@pytest.mark.parametrize("name", list(GGML_FORMATS))
def test_layout_matches_ggml_sizes_and_type_ids(name):
    fmt = GGML_FORMATS[name]
    assert T(fmt.type_id).name == name
    assert (fmt.block_elems, fmt.bytes_per_block) == tuple(gguf.GGML_QUANT_SIZES[T[name]])


def test_bits_per_weight():
    bpw = {name: f.bits_per_weight for name, f in GGML_FORMATS.items()}
    assert bpw == {"Q4_0": 4.5, "Q4_1": 5.0, "Q5_0": 5.5, "Q5_1": 6.0, "Q8_0": 8.5, "MXFP4": 4.25,
                   "Q2_K": 2.625, "Q3_K": 3.4375, "Q4_K": 4.5, "Q5_K": 5.5, "Q6_K": 6.5625, "Q8_K": 9.125}


# -- dequantize ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", ORACLE_DEQUANT)
def test_dequantize_random_bytes_bit_exact(name):
    """Every byte pattern is a block (subnormal, Inf and NaN fp16 scales included); 128k elements."""
    fmt = GGML_FORMATS[name]
    raw = plant_special_scales(random_blocks(fmt, 32, seed=fmt.type_id), fmt)
    ours = ggml_dequantize(raw, fmt, (32, ROW))
    assert float_mismatches(ours, gguf_dequantize(raw, name)) == 0
    assert np.isinf(ours).any() and (np.isnan(ours).any() or fmt.family == "mxfp4")  # specials exercised
    assert float_mismatches(ggml_dequantize(raw.tobytes(), name, (32, ROW)), ours) == 0


@pytest.mark.parametrize("name", ORACLE_DEQUANT)
def test_dequantize_realistic_blocks_bit_exact(name):
    """Blocks whose scales are ordinary fp16 numbers (most of a real model file)."""
    fmt = GGML_FORMATS[name]
    raw = random_blocks(fmt, 32, seed=100 + fmt.type_id)
    blocks = raw.reshape(-1, fmt.bytes_per_block)
    for field in ("d", "dmin", "m"):
        if fmt.field_bytes(field) == 2:
            start = fmt.field_offset(field)
            scales = np.random.default_rng(1).uniform(-1e-2, 1e-2, blocks.shape[0]).astype(np.float16)
            blocks[:, start:start + 2] = scales.view(np.uint8).reshape(-1, 2)
    if fmt.family == "mxfp4":
        blocks[:, 0] = np.random.default_rng(1).integers(100, 150, blocks.shape[0])
    ours = ggml_dequantize(raw, fmt, (32, ROW))
    assert np.isfinite(ours).all()
    assert float_mismatches(ours, gguf_dequantize(raw, name)) == 0


@pytest.mark.parametrize("name", QUANTIZABLE)
def test_dequantize_of_gguf_quantized_data(name):
    x = np.random.default_rng(7).standard_normal((32, ROW)).astype(np.float32)
    raw = gguf_quantize(x, name)
    assert float_mismatches(ggml_dequantize(raw, name, x.shape), gguf_dequantize(raw, name)) == 0


def test_q8_k_dequantize_by_its_definition():
    """No gguf oracle: decode with struct (fp32 d, 256 int8 codes, 16 int16 sums) and compare."""
    fmt = GGML_FORMATS["Q8_K"]
    rng = np.random.default_rng(3)
    blocks = []
    for d in (0.5, -3.25e-3, 1e-40, float("inf")):
        codes = rng.integers(-128, 128, 256)
        blocks.append(struct.pack("<f256b16h", d, *codes, *[int(codes[i:i + 16].sum()) for i in range(0, 256, 16)]))
    raw = b"".join(blocks)
    ours = ggml_dequantize(raw, fmt, (4, 256))
    for i, block in enumerate(blocks):
        d, *rest = struct.unpack("<f256b16h", block)
        with np.errstate(invalid="ignore"):  # Inf * 0
            expected = np.float32(d) * np.array(rest[:256], dtype=np.float32)
        assert float_mismatches(ours[i], expected) == 0


def test_mxfp4_values_are_doubled_e2m1():
    """Code c decodes to E2M1 value c times 2**(e-127): the doubled table with a halved scale."""
    e2m1 = [0, 0.5, 1, 1.5, 2, 3, 4, 6]
    raw = bytes([127] + [c | (c << 4) for c in range(16)] + [0] * 0)
    out = ggml_dequantize(raw + bytes(0), "MXFP4", (32,))
    assert list(out[:16]) == e2m1 + [-v for v in e2m1]
    assert [v / 2 for v in MXFP4_VALUES] == e2m1 + [-v for v in e2m1]


# -- quantize -----------------------------------------------------------------------------
@pytest.mark.parametrize("scale", [1e-6, 1e-2, 1.0, 300.0, 6e4])
@pytest.mark.parametrize("name", QUANTIZABLE)
def test_quantize_random_byte_exact(name, scale):
    rng = np.random.default_rng(int(scale * 1000) % 997)
    x = (rng.standard_normal((8, ROW)) * scale).astype(np.float32)
    x[::2] += np.float32(scale)  # some blocks offset from zero (asymmetric ranges)
    ours, ref = ggml_quantize(x, name), gguf_quantize(x, name)
    assert ours.dtype == np.uint8 and ours.shape == ref.shape
    assert int((ours != ref).sum()) == 0


def directed_blocks(fmt):
    """Blocks of 32 aimed at the rounding rules' edges."""
    f32 = np.float32
    blocks = [np.zeros(32, f32), np.full(32, -0.0, f32),
              np.r_[f32(1e30), np.full(31, 1e-3, f32)], np.r_[np.full(31, 1e-3, f32), f32(-7e37)],
              np.linspace(-1, 1, 32, dtype=f32), np.linspace(-8, 7, 32, dtype=f32),
              np.full(32, 1e-42, f32) * np.arange(32, dtype=f32), np.full(32, 5.0, f32),
              np.r_[f32(-8), np.arange(31, dtype=f32) * f32(0.5) - f32(7.25)],    # ties of x/d + 8.5
              np.r_[f32(-16), np.arange(31, dtype=f32) * f32(0.5) - f32(15.25)],  # ties for Q5_0
              np.r_[f32(127), np.arange(31, dtype=f32) - f32(15.5)],             # Q8_0 half-way codes
              np.r_[f32(3.9999998), np.arange(31, dtype=f32) * f32(0.125)],      # float32 log2 rounds up
              np.r_[f32(6e4), f32(-6.5e4), np.full(30, 1.0, f32)],               # fp16 scale overflow
              np.r_[f32(3.4e38), f32(-3.4e38), np.linspace(-3e38, 3e38, 30, dtype=f32)]]
    tie = np.zeros(32, f32)
    tie[[3, 9]] = [3, -3]                     # equal magnitudes: the first one sets the sign
    mixed_zeros = np.full(32, -0.0, f32)
    mixed_zeros[4] = 0.0                      # min and max are zeros of both signs
    blocks += [tie, -tie, mixed_zeros]
    # every E2M1 midpoint (and its neighbours) for MXFP4 with the scale from amax = 6
    mids = np.array([0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0], np.float32)
    near = np.r_[mids, np.nextafter(mids, f32(0)), np.nextafter(mids, f32(9))]
    blocks.append(np.r_[f32(6), near, -near[:10]][:32].astype(f32))
    blocks.append(np.r_[f32(-6), -near, near[:10]][:32].astype(f32))
    return np.stack(blocks)


@pytest.mark.parametrize("name", QUANTIZABLE)
def test_quantize_directed_byte_exact(name):
    x = directed_blocks(GGML_FORMATS[name])
    assert int((ggml_quantize(x, name) != gguf_quantize(x, name)).sum()) == 0


@pytest.mark.parametrize("name", QUANTIZABLE)
def test_quantize_nan_and_inf_as_gguf(name):
    """gguf-py accepts them; what it writes (casts of NaN included) is matched."""
    x = np.random.default_rng(5).standard_normal((6, 64)).astype(np.float32)
    x[0, 3], x[1, 40], x[2, 7], x[3, 0], x[4, :] = np.nan, np.inf, -np.inf, np.nan, np.inf
    x[5, 33] = -np.inf
    assert int((ggml_quantize(x, name) != gguf_quantize(x, name)).sum()) == 0


def test_mxfp4_ties_go_to_the_lower_index_not_to_even():
    """Scale 1 (amax 6): 5 lies between 4 and 6; OCP's RNE gives 6 (even mantissa), ggml gives 4."""
    x = np.r_[np.float32(6), np.float32(5), np.float32(-5), np.float32(0.25), np.zeros(28, np.float32)]
    out = ggml_dequantize(ggml_quantize(x, "MXFP4"), "MXFP4", (32,))
    assert list(out[:4]) == [6, 4, -4, 0]


def test_quantize_round_trip_error_is_bounded():
    x = np.random.default_rng(9).standard_normal((4, ROW)).astype(np.float32)
    for name, tolerance in (("Q8_0", 0.02), ("Q5_1", 0.15), ("Q4_0", 0.5)):
        back = ggml_dequantize(ggml_quantize(x, name), name, x.shape)
        assert np.abs(back - x).max() < tolerance, name


# -- bad input ----------------------------------------------------------------------------
def test_row_length_not_a_multiple_of_the_block_is_named():
    with pytest.raises(ValueError, match=r"row length 48 .*Q4_0's block size 32"):
        ggml_quantize(np.zeros((2, 48), np.float32), "Q4_0")
    with pytest.raises(ValueError, match=r"row length 300 .*Q4_K's block size 256"):
        ggml_dequantize(bytes(144), "Q4_K", (300,))


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="unknown ggml format 'Q4_9'"):
        ggml_format("Q4_9")
    with pytest.raises(ValueError, match="data holds 17 bytes; shape .*needs 2 blocks"):
        ggml_dequantize(bytes(17), "Q4_0", (64,))
    with pytest.raises(TypeError, match="data must be bytes or a uint8 array"):
        ggml_dequantize(np.zeros(18, np.int8), "Q4_0", (32,))
    with pytest.raises(TypeError, match="x must be a floating-point array"):
        ggml_quantize(np.zeros(32, np.int32), "Q8_0")
    with pytest.raises(ValueError, match="Q4_K is dequantize-only"):
        ggml_quantize(np.zeros(256, np.float32), "Q4_K")
    with pytest.raises(ValueError, match="shape must have at least one dimension"):
        ggml_dequantize(b"", "Q8_0", ())


@pytest.mark.parametrize("name", QUANTIZABLE + ["Q4_K", "Q5_K"])
def test_results_do_not_depend_on_thread_count(name):
    fmt = GGML_FORMATS[name]
    raw = plant_special_scales(random_blocks(fmt, 8, seed=11), fmt)
    one, two = (ggml_dequantize(raw, name, (8, ROW), num_threads=t) for t in (1, 2))
    assert float_mismatches(one, two) == 0
    if fmt.can_quantize:
        x = np.random.default_rng(2).standard_normal((8, ROW)).astype(np.float32)
        assert np.array_equal(ggml_quantize(x, name, num_threads=1), ggml_quantize(x, name, num_threads=3))


@pytest.mark.parametrize("name", ["Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "MXFP4"])
def test_quantize_large_input_same_at_any_thread_count_and_equal_to_gguf(name):
    """Large enough that the kernels really split blocks across threads: a per-block scratch
    variable shared between threads once gave other bytes at 2 threads than at 1."""
    x = np.random.default_rng(5).standard_normal((512, 4096)).astype(np.float32)
    want = gguf.quants.quantize(x, gguf.GGMLQuantizationType[name])
    for threads in (1, 2, 3):
        np.testing.assert_array_equal(ggml_quantize(x, name, num_threads=threads), want, err_msg=f"{threads} threads")
