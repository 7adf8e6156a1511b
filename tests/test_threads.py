"""Results are bit-identical at any thread count, including stochastic rounding with a seed.

The arrays are larger than one work chunk and not a multiple of the chunk size (16384), so
several threads really share the work and the last chunk is a partial one."""

import numpy as np
import pytest

import qsim

N = 7 * 16384 * 3 + 12345          # 356,409 elements
THREADS = [1, 2, 3, 4]
ROUNDINGS = [("rne", None), ("stochastic", 1234)]


def data(shape=(N,), seed=0, positive=False):
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, shape) * 2.0 ** rng.integers(-12, 12, shape)
    return np.abs(x) if positive else x


def same_at_every_thread_count(run):
    """run(num_threads) for each count, plus the QSIM_NUM_THREADS route; all must agree."""
    first = run(1)
    for n in THREADS[1:]:
        np.testing.assert_array_equal(run(n), first, err_msg=f"num_threads={n}")
    return first


def same_with_env(run, monkeypatch):
    want = run(1)
    for n in THREADS:
        monkeypatch.setenv("QSIM_NUM_THREADS", str(n))
        np.testing.assert_array_equal(run(None), want, err_msg=f"QSIM_NUM_THREADS={n}")


FLOAT_FORMATS = ["e4m3", "e5m2", "e4m3fnuz", "bf16", "fp16", "fp6_e3m2", "fp4_e2m1", "e8m0", "int8", "uint4"]


@pytest.mark.parametrize("rounding, seed", ROUNDINGS)
@pytest.mark.parametrize("fmt", FLOAT_FORMATS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_encode(fmt, rounding, seed, dtype):
    x = data(positive=fmt == "e8m0").astype(dtype)
    codes = same_at_every_thread_count(lambda n: qsim.encode(x, fmt, rounding=rounding, seed=seed, num_threads=n))
    if rounding == "stochastic":  # the seed matters, so this is really the random path
        other = qsim.encode(x, fmt, rounding=rounding, seed=seed + 1, num_threads=2)
        assert (other != codes).any()


@pytest.mark.parametrize("rounding, seed", ROUNDINGS)
@pytest.mark.parametrize("fmt", FLOAT_FORMATS)
def test_quantize(fmt, rounding, seed):
    x = data(positive=fmt == "e8m0").astype(np.float32)
    same_at_every_thread_count(lambda n: qsim.quantize(x, fmt, rounding=rounding, seed=seed, num_threads=n))


@pytest.mark.parametrize("fmt", ["e4m3", "e5m2fnuz", "bf16", "fp16", "fp32", "fp4_e2m1", "e8m0", "int8", "int16"])
def test_decode(fmt):
    f = qsim.format(fmt)
    dtype = np.uint8 if f.storage_bits <= 8 else np.uint16 if f.storage_bits <= 16 else np.uint32
    codes = np.random.default_rng(1).integers(0, f.n_codes, N, dtype=np.uint64).astype(dtype)

    def run(n):
        values = qsim.decode(codes, fmt, num_threads=n)
        # compare bit patterns: NaN != NaN, and -0 == 0 would hide a sign difference
        return values.view(f"u{values.dtype.itemsize}") if values.dtype.kind == "f" else values

    same_at_every_thread_count(run)


@pytest.mark.parametrize("rounding, seed", ROUNDINGS)
@pytest.mark.parametrize("axis", [0, 1])
def test_quantize_int_per_channel(axis, rounding, seed):
    x = data((613, 587), seed=2)          # 359,831 elements
    scale = np.linspace(0.01, 0.2, x.shape[axis])
    zp = (np.arange(x.shape[axis]) % 9 - 4).astype(np.int8)
    same_at_every_thread_count(
        lambda n: qsim.quantize_int(x, "int8", scale, zp, axis=axis, rounding=rounding, seed=seed, num_threads=n))


@pytest.mark.parametrize("rounding, seed", ROUNDINGS)
def test_quantize_int_per_group_and_tensor(rounding, seed):
    x = data((613, 587), seed=3).astype(np.float32)
    gshape = (613, -(-587 // 64))
    scale = np.random.default_rng(4).uniform(0.01, 0.3, gshape)
    zp = np.zeros(gshape, np.int8)
    same_at_every_thread_count(
        lambda n: qsim.quantize_int(x, "int4", scale, zp, axis=1, group_size=64, rounding=rounding, seed=seed,
                                    num_threads=n))
    same_at_every_thread_count(
        lambda n: qsim.quantize_int(x, "uint8", 0.05, 128, rounding=rounding, seed=seed, num_threads=n))


@pytest.mark.parametrize("rounding, seed", ROUNDINGS)
@pytest.mark.parametrize("fmt", ["e4m3", "fp6_e2m3", "fp4_e2m1"])
@pytest.mark.parametrize("axis", [-1, 0])
def test_mx_quantize(fmt, axis, rounding, seed):
    x = data((613, 587), seed=5).astype(np.float32)

    def run(n):
        mx = qsim.mx_quantize(x, fmt, axis=axis, rounding=rounding, seed=seed, num_threads=n)
        return np.concatenate([mx.elements.ravel(), mx.scales.ravel()])

    same_at_every_thread_count(run)


def test_environment_variable(monkeypatch):
    x = data().astype(np.float32)
    same_with_env(lambda n: qsim.encode(x, "e4m3", rounding="stochastic", seed=9, num_threads=n), monkeypatch)
    same_with_env(lambda n: qsim.quantize(x, "bf16", rounding="stochastic", seed=9, num_threads=n), monkeypatch)
    codes = qsim.encode(x, "fp16")
    same_with_env(lambda n: qsim.decode(codes, "fp16", num_threads=n).view(np.uint32), monkeypatch)
    same_with_env(lambda n: qsim.quantize_int(x.reshape(-1, 9), "int8", np.full(9, 0.01), np.zeros(9, np.int8),
                                              axis=1, rounding="stochastic", seed=9, num_threads=n), monkeypatch)
    same_with_env(lambda n: qsim.mx_quantize(x[:-9].reshape(-1, 100), "fp4_e2m1", rounding="stochastic", seed=9,
                                             num_threads=n).elements, monkeypatch)


def test_explicit_count_overrides_environment(monkeypatch):
    x = data().astype(np.float32)
    want = qsim.encode(x, "e5m2", rounding="stochastic", seed=3, num_threads=1)
    monkeypatch.setenv("QSIM_NUM_THREADS", "3")
    np.testing.assert_array_equal(qsim.encode(x, "e5m2", rounding="stochastic", seed=3, num_threads=2), want)


@pytest.mark.parametrize("rule", ["reciprocal", "reciprocal_add", "reciprocal_fma"])
def test_quantize_int_torch_rules(rule):
    x = data((613, 587), seed=6).astype(np.float32)
    scale = np.linspace(0.01, 0.2, 587).astype(np.float32)
    same_at_every_thread_count(lambda n: qsim.quantize_int(x, "uint8", scale, 3, axis=1, rule=rule, num_threads=n))


def test_dynamic_linear_float_output():
    from qsim.datapaths import qlinear_dynamic
    x = data((300, 200), seed=7).astype(np.float32)
    w = np.random.default_rng(8).integers(-127, 128, (200, 150)).astype(np.int8)
    bias = np.random.default_rng(9).normal(0, 1, 150).astype(np.float32)
    same_at_every_thread_count(lambda n: qlinear_dynamic(x, w, 0.01, 0, bias, num_threads=n).view(np.uint32))
