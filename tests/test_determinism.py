"""Every number qsim records is the same whatever the thread count (qsim's or BLAS's), the entry
point and the order of work: the FP32 reference product is qsim's own (fp32_matmul), not a
BLAS sgemm whose last bits move with its thread count."""

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from qsim.datapaths import fp32_matmul


def scalar_fp32_matmul(a, b):
    """The definition, one output at a time: float32 operands, each product exact in a Python
    float (double), summed in k order, rounded once to float32."""
    m, k = a.shape
    n = b.shape[1]
    out = np.empty((m, n), np.float32)
    for i in range(m):
        for j in range(n):
            s = 0.0
            for t in range(k):
                s += float(a[i, t]) * float(b[t, j])
            with np.errstate(over="ignore"):              # beyond float32's range: Inf, as IEEE rounds
                out[i, j] = np.float32(s)
    return out


def special_values(rng, shape):
    """Normal values of wide range with zeros, -0, float32 subnormals, Inf and NaN sprinkled in."""
    x = (rng.standard_normal(shape) * 2.0 ** rng.integers(-20, 20, shape)).astype(np.float32)
    flat = x.reshape(-1)
    picks = rng.choice(flat.size, size=min(flat.size, 12), replace=False)
    specials = np.array([0.0, -0.0, 1e-45, -3e-39, 1.1754942e-38, np.inf, -np.inf, np.nan,
                         3.4028235e38, -3.4028235e38, 1.0, -1.0], np.float32)
    flat[picks] = specials[: picks.size]
    return x


@pytest.mark.parametrize("m, k, n", [(1, 1, 1), (3, 7, 5), (5, 33, 260), (9, 2, 513)])
def test_fp32_matmul_equals_its_definition(m, k, n):
    rng = np.random.default_rng(m * 100 + n)
    a, b = rng.standard_normal((m, k)).astype(np.float32), rng.standard_normal((k, n)).astype(np.float32)
    np.testing.assert_array_equal(fp32_matmul(a, b), scalar_fp32_matmul(a, b))


def test_fp32_matmul_on_specials_and_cancellation():
    rng = np.random.default_rng(7)
    a, b = special_values(rng, (6, 9)), special_values(rng, (9, 4))
    np.testing.assert_array_equal(fp32_matmul(a, b), scalar_fp32_matmul(a, b))
    # 1e8 + 1 - 1e8 in k order: double keeps the 1 that float32 sums lose; -0 * +x gives -0 only alone
    a = np.array([[1e8, 1.0, -1e8], [-0.0, 0.0, 0.0]], np.float32)
    b = np.array([[1.0], [1.0], [1.0]], np.float32)
    got = fp32_matmul(a, b)
    assert got[0, 0] == 1.0
    assert got[1, 0] == 0.0


def test_fp32_matmul_batches_broadcast():
    rng = np.random.default_rng(3)
    a = rng.standard_normal((2, 3, 5, 7)).astype(np.float32)
    b = rng.standard_normal((3, 7, 4)).astype(np.float32)
    got = fp32_matmul(a, b)
    assert got.shape == (2, 3, 5, 4)
    for i in range(2):
        for j in range(3):
            np.testing.assert_array_equal(got[i, j], scalar_fp32_matmul(a[i, j], b[j]))
    w = rng.standard_normal((7, 4)).astype(np.float32)               # one weight for every batch item
    np.testing.assert_array_equal(fp32_matmul(a, w)[1, 2], scalar_fp32_matmul(a[1, 2], w))


@pytest.mark.parametrize("threads", [2, 3, 4])
def test_fp32_matmul_same_at_any_thread_count(threads):
    rng = np.random.default_rng(11)
    a = rng.standard_normal((4, 203, 300)).astype(np.float32)    # rows and columns not multiples of a work item
    b = rng.standard_normal((4, 300, 517)).astype(np.float32)
    np.testing.assert_array_equal(fp32_matmul(a, b, num_threads=threads), fp32_matmul(a, b, num_threads=1))


def test_fp32_matmul_refuses_vectors():
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        fp32_matmul(np.ones(3, np.float32), np.ones((3, 2), np.float32))


NUMERIC = ["sqnr_db", "mse", "max_abs_err", "cosine", "top1", "agreement_fp32", "energy_total_pj", "cycles"]


def _simulate_in_subprocess(tmp_path, name, env_threads: dict, model: str, hardware: str):
    """`qsim simulate` in a fresh process with the given thread settings; its records."""
    out = tmp_path / name
    env = dict(os.environ, **env_threads)
    subprocess.run([sys.executable, "-P", "-m", "qsim.cli", "simulate", "--model", model, "--hardware", hardware,
                    "--out", str(out)], check=True, env=env, capture_output=True)
    df = pd.read_parquet(next(out.glob("**/part-*.parquet")))
    return df[["layer"] + [c for c in NUMERIC if c in df]].reset_index(drop=True)


@pytest.mark.parametrize("model, hardware", [("digits-mlp", "edge-npu-int8"), ("digits-cnn", "h100-fp8"),
                                             ("digits-cnn", "fp32-reference")])
def test_recorded_numbers_do_not_depend_on_blas_or_qsim_threads(tmp_path, model, hardware):
    """The case of the report: digits-mlp's fc2 SQNR moved in its last digit with the BLAS
    thread count. Every recorded number must be bit-identical across thread settings."""
    settings = [{"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "QSIM_NUM_THREADS": "1"},
                {"OPENBLAS_NUM_THREADS": "2", "OMP_NUM_THREADS": "2", "QSIM_NUM_THREADS": "2"},
                {"OPENBLAS_NUM_THREADS": "2", "OMP_NUM_THREADS": "1", "QSIM_NUM_THREADS": "3"}]
    runs = [_simulate_in_subprocess(tmp_path, f"t{i}", s, model, hardware) for i, s in enumerate(settings)]
    for s, run in zip(settings[1:], runs[1:]):
        pd.testing.assert_frame_equal(run, runs[0], check_exact=True, obj=json.dumps(s))
