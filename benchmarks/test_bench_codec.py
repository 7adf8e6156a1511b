"""Issue 1 and 13 speed targets: encode and decode 10 million float32 normal values, peers side
by side: every element format torch has, at least as fast as torch at one thread each.

Run: pytest benchmarks (see README). Ratios are printed at the end of the run."""

import ml_dtypes
import numpy as np
import pytest
import torch

import qsim

N = 10_000_000


@pytest.fixture(scope="module")
def x():
    rng = np.random.default_rng(0)
    values = (rng.standard_normal(N) * 10).astype(np.float32)
    return np.where(values == 0, np.float32(1), values)      # normal values only


@pytest.fixture(scope="module")
def positive(x):
    return np.abs(x)                                        # E8M0 has no zero or negatives


def _input(request, fmt):
    return request.getfixturevalue("positive" if fmt == "e8m0" else "x")


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


TORCH = {"e4m3": torch.float8_e4m3fn, "e5m2": torch.float8_e5m2, "e4m3fnuz": torch.float8_e4m3fnuz,
         "e5m2fnuz": torch.float8_e5m2fnuz, "e8m0": torch.float8_e8m0fnu, "bf16": torch.bfloat16,
         "fp16": torch.float16}


@pytest.mark.parametrize("fmt", list(TORCH))
@pytest.mark.parametrize("threads", [1, 2])
def test_encode_qsim(benchmark, mark_role, request, fmt, threads):
    benchmark.group = f"encode {fmt}"
    mark_role("qsim", target=1.0 if threads == 1 else None, elements=N)
    # each format's default saturation (E4M3 saturates, like torch; the others overflow to
    # Inf or NaN, as torch does)
    x = _input(request, fmt)
    codes = benchmark(qsim.encode, x, fmt, num_threads=threads)
    assert codes.shape == x.shape


@pytest.mark.parametrize("fmt", list(TORCH))
def test_encode_torch(benchmark, mark_role, request, fmt):
    benchmark.group = f"encode {fmt}"
    mark_role("peer", peer=f"torch .to({TORCH[fmt]})")
    t = torch.from_numpy(_input(request, fmt))
    benchmark(t.to, TORCH[fmt])


@pytest.mark.parametrize("fmt", ["e4m3", "bf16"])
def test_encode_ml_dtypes(benchmark, mark_role, x, fmt):
    benchmark.group = f"encode {fmt} (ml_dtypes)"
    mark_role("peer", peer="ml_dtypes astype")
    dt = {"e4m3": ml_dtypes.float8_e4m3fn, "bf16": ml_dtypes.bfloat16}[fmt]
    benchmark.pedantic(x.astype, args=(dt,), rounds=3 if fmt == "e4m3" else 10, iterations=1)


@pytest.mark.parametrize("fmt", ["e4m3", "bf16"])
def test_encode_qsim_vs_ml_dtypes(benchmark, mark_role, x, fmt):
    benchmark.group = f"encode {fmt} (ml_dtypes)"
    mark_role("qsim", target={"e4m3": 10.0, "bf16": 1.0}[fmt], elements=N)
    benchmark(qsim.encode, x, fmt, num_threads=1)


@pytest.mark.parametrize("fmt", list(TORCH))
@pytest.mark.parametrize("threads", [1, 2])
def test_decode_qsim(benchmark, mark_role, request, fmt, threads):
    benchmark.group = f"decode {fmt}"
    mark_role("qsim", target=2.0 if threads == 1 else None, elements=N)
    codes = qsim.encode(_input(request, fmt), fmt)
    values = benchmark(qsim.decode, codes, fmt, num_threads=threads)
    assert values.dtype == np.float32


@pytest.mark.parametrize("fmt", list(TORCH))
def test_decode_qsim_into_out(benchmark, mark_role, request, fmt):
    """The same into one output array (out=): no fresh 40 MB to page in on each call, which
    the two above pay or not depending on the allocator's state."""
    benchmark.group = f"decode {fmt}"
    mark_role("qsim", elements=N)
    codes = qsim.encode(_input(request, fmt), fmt)
    out = np.empty(codes.shape, np.float32)
    benchmark(qsim.decode, codes, fmt, num_threads=1, out=out)


@pytest.mark.parametrize("fmt", list(TORCH))
def test_decode_torch(benchmark, mark_role, request, fmt):
    benchmark.group = f"decode {fmt}"
    mark_role("peer", peer="torch .float()")
    t = torch.from_numpy(_input(request, fmt)).to(TORCH[fmt])
    benchmark(t.float)
