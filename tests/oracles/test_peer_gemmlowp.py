"""qsim's gemmlowp datapath against real kernels with gemmlowp's double rounding: the int8
FULLY_CONNECTED reference kernels of tflite-runtime 2.14.0 and ai-edge-litert 1.2.0. Each runs in
a child Python from a directory pip fills once per session (peers/tflite_runtime.py says why);
a runtime pip cannot fetch (offline, no wheel for this Python) is skipped, with pip's message.

QSIM_PEER_SITES names a directory to keep the runtimes in between sessions (one folder per
runtime; fill it once online, then the tests run offline)."""

import os

import numpy as np
import pytest

pytest.importorskip("ai_edge_litert")                 # its flatbuffer schema builds the models
from peers import tflite_runtime  # noqa: E402

from qsim.datapaths import qlinear_matmul  # noqa: E402


@pytest.fixture(scope="session")
def sites(tmp_path_factory):
    return os.environ.get("QSIM_PEER_SITES") or tmp_path_factory.mktemp("peer_sites")


@pytest.fixture(scope="session", params=sorted(tflite_runtime.RUNTIMES))
def runtime(request, sites):
    """(name, directory) of a runtime with gemmlowp rounding, installed on first use."""
    name = request.param
    try:
        return name, tflite_runtime.provision(os.path.join(sites, name), name)
    except tflite_runtime.ProvisionError as e:
        pytest.skip(f"{name} unavailable: {e}")


def run_qsim(c, datapath):
    return qlinear_matmul(c["x"], c["x_scale"], np.int8(c["x_zp"]), c["w"].T, c["w_scale"], np.int8(0),
                          c["y_scale"], np.int8(c["y_zp"]), c["bias"], datapath=datapath,
                          activation=c["activation"])


def case(x, x_scale, x_zp, w, w_scale, y_scale, y_zp, bias=None, activation=None):
    return dict(x=np.asarray(x, np.int8), x_scale=np.float32(x_scale), x_zp=int(x_zp), w=np.asarray(w, np.int8),
                w_scale=np.asarray(w_scale, np.float32), bias=None if bias is None else np.asarray(bias, np.int32),
                y_scale=np.float32(y_scale), y_zp=int(y_zp), activation=activation)


def make_cases(seed: int):
    """~300k outputs: power-of-two multipliers (every x code, so acc * m lands on .5 in both
    signs), m >= 1 with and without int32 wrap of the left shift, long sums with tiny m,
    random scales, and clamping (saturation, ReLU, ReLU6 with 6 / y_scale at .5)."""
    rng = np.random.default_rng(seed)
    every_x = np.arange(-128, 128).reshape(-1, 1)
    cases = []
    for i in range(64):                                            # ties: m = 2^-k
        k, n = 1 + i % 6, int(rng.integers(4, 17))
        per_channel = i % 2 == 1
        sw = 2.0 ** rng.integers(-2, 1, n if per_channel else None)
        x = np.hstack([every_x, rng.integers(-128, 128, (256, i % 3))])
        # |w| <= 2^(k-1) / K keeps most of acc * m in the int8 range, where ties show
        bound = max(1, 2 ** (k - 1) // x.shape[1])
        w = rng.integers(-bound, bound + 1, (n, x.shape[1]))
        bias = rng.integers(-50, 51, n) if i % 4 else None
        sy = 2.0 ** -4 * np.max(sw) * 2.0 ** k
        cases.append(case(x, 2.0 ** -4, rng.integers(-20, 21), w, sw, sy, rng.integers(-10, 11), bias))
    for i in range(16):                                            # m >= 1, powers of two and not
        m = 2.0 ** (i % 8) * (1.0 if i < 8 else 1.37)
        x = rng.integers(-128, 128, (128, 8))
        w = rng.integers(-3, 4, (8, 8))
        cases.append(case(x, 0.5, rng.integers(-128, 128), w, 0.25, 0.125 / m, rng.integers(-128, 128)))
    for m in (256.0, 100.0, 8.0):                                  # acc * 2^shift wraps int32
        x = rng.integers(100, 128, (16, 4000))
        w = rng.integers(100, 128, (8, 4000)) * rng.choice([-1, 1], (8, 1))
        cases.append(case(x, 1.0, -128, w, 1.0, 1 / m, 3))
    for i in range(16):                                            # long sums, tiny m = 2^-14..2^-19
        x = rng.integers(100, 128, (32, int(rng.integers(2000, 6000))))
        w = rng.integers(100, 128, (8, x.shape[1])) * rng.choice([-1, 1], (8, 1))
        cases.append(case(x, 2.0 ** -3, -128, w, 2.0 ** -3, 2.0 ** -6 * 2.0 ** (14 + i % 6), 0))
    for i in range(48):                                            # random scales and codes
        n, k = int(rng.integers(1, 17)), int(rng.integers(1, 70))
        sw = 10 ** rng.uniform(-3, -1, n if i % 2 else None)
        m = 10 ** rng.uniform(-3, 0.5)
        sx = 10 ** rng.uniform(-3, -1)
        cases.append(case(rng.integers(-128, 128, (128, k)), sx, rng.integers(-128, 128),
                          rng.integers(-127, 128, (n, k)), sw, sx * np.max(sw) / m, rng.integers(-128, 128),
                          rng.integers(-3000, 3000, n) if i % 3 else None))
    for i in range(24):                                            # clamping: saturation, ReLU, ReLU6
        activation = (None, "relu", "relu6")[i % 3]
        sy = 6.0 / (int(rng.integers(5, 100)) + 0.5) if activation == "relu6" else 2.0 ** -(i % 4)
        cases.append(case(rng.integers(-128, 128, (256, 16)), 0.05, rng.integers(-128, 128),
                          rng.integers(-127, 128, (8, 16)), 0.02, sy, rng.integers(-128, 128),
                          activation=activation))
    return cases


def accumulator(c):
    """int32 accumulator of the case, summed here in int64 (no case leaves int32)."""
    acc = (c["x"].astype(np.int64) - c["x_zp"]) @ c["w"].T.astype(np.int64)
    return acc if c["bias"] is None else acc + c["bias"]


def multiplier(c):
    """m = sx * sw / sy in double from the float32 scales (broadcast over the output channels)."""
    return np.float64(c["x_scale"]) * c["w_scale"].astype(np.float64) / np.float64(c["y_scale"])


def test_gemmlowp_bit_exact(runtime):
    name, site = runtime
    cases = make_cases(2014)
    kernel = tflite_runtime.fully_connected_many(site, name, cases)
    compared = ties = negative_ties = wrapped = 0
    saturated = {-128: 0, 127: 0}
    mismatched, told_apart = [], 0
    for i, (c, want) in enumerate(zip(cases, kernel)):
        got = run_qsim(c, "gemmlowp")
        compared += got.size
        if not np.array_equal(got, want):
            mismatched.append((i, int(np.sum(got != want))))
        told_apart += int(np.sum(run_qsim(c, "tflite-reference") != want))
        acc, m = accumulator(c), np.broadcast_to(multiplier(c), (c["w"].shape[0],))
        exact = acc * m                                      # exact in double where m is a power of two
        tie = (np.frexp(m)[0] == 0.5) & (exact - np.floor(exact) == 0.5)
        tie &= (want != -128) & (want != 127)               # a saturated tie shows nothing
        ties += int(tie.sum())
        negative_ties += int((tie & (exact < 0)).sum())
        wrapped += int(np.sum(np.abs(acc) * 2.0 ** np.maximum(np.frexp(m)[1], 0) >= 2.0 ** 31))
        for bound in saturated:
            saturated[bound] += int(np.sum(want == bound))
    summary = (f"{compared} outputs, {ties} unsaturated ties ({negative_ties} negative), {wrapped} wrapped left shifts, "
               f"saturated {saturated}; tflite-reference differs on {told_apart}; "
               f"gemmlowp mismatches in {len(mismatched)} cases")
    print(f"{name}: {summary}")
    assert compared >= 100_000 and ties >= 10_000 and negative_ties >= 5_000, summary
    assert wrapped > 0 and min(saturated.values()) > 0, summary
    assert told_apart > 0, summary                          # the comparison can tell the roundings apart
    assert not mismatched, f"{summary}; (case, outputs) {mismatched[:10]}"


def test_double_rounding_ties(runtime):
    """Hand-derived outputs of the two roundings, with m = 1/2 (column 0) and m = 1/4 (column 1).
    gemmlowp: SaturatingRoundingDoublingHighMul computes acc * q / 2^31 (q = 2^30) rounded with
    the nudge 2^30 (acc >= 0) or 1 - 2^30 (acc < 0), so its ties go toward +inf; then
    RoundingDivideByPOT by 2^-shift (shift 0 for m = 1/2, -1 for m = 1/4) rounds ties away from 0.
    tflite-reference rounds acc * m once, ties away from zero."""
    c = case([[-1], [1], [5]], 1.0, 0, [[1], [1]], [1.0, 0.5], 2.0, 0)
    # acc -1: m=1/2 -> -0.5: high-mul -0.5 -> 0, no shift: 0; once: -1.  m=1/4: high-mul -0.5 -> 0, 0; once: 0
    # acc  1: m=1/2 -> 0.5 -> 1; once 1.   m=1/4: high-mul 0.5 -> 1, 1/2 -> 1; once: 0.25 -> 0
    # acc  5: m=1/2 -> 2.5 -> 3; once 3.   m=1/4: high-mul 2.5 -> 3, 3/2 -> 2; once: 1.25 -> 1
    gemmlowp = np.array([[0, 0], [1, 1], [3, 2]], np.int8)
    single = np.array([[-1, 0], [1, 0], [3, 1]], np.int8)
    name, site = runtime
    (kernel,) = tflite_runtime.fully_connected_many(site, name, [c])
    np.testing.assert_array_equal(kernel, gemmlowp)
    np.testing.assert_array_equal(run_qsim(c, "gemmlowp"), gemmlowp)
    np.testing.assert_array_equal(run_qsim(c, "tflite-reference"), single)
