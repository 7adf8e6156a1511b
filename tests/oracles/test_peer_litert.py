"""qsim's tflite-reference, tflite-ruy and xnnpack datapaths against LiteRT's int8
FULLY_CONNECTED on its reference, optimized (ruy) and XNNPACK paths."""

import numpy as np
import pytest

pytest.importorskip("ai_edge_litert")
from peers import litert  # noqa: E402

from qsim.datapaths import qlinear_matmul  # noqa: E402

PRESET_OF_PATH = {"reference": "tflite-reference", "optimized": "tflite-ruy", "xnnpack": "xnnpack"}


def make_cases(seed: int, n: int = 200):
    """Random, exact-tie (power-of-two multipliers), m >= 1, tiny m with |acc| > 2^24, and ReLU6
    bounds near .5; per tensor and per channel, bias or none."""
    rng = np.random.default_rng(seed)
    cases = []
    for i in range(n):
        kind = ("random", "tie", "large-m", "long")[i % 4]
        b, n_out = int(rng.integers(1, 5)), int(rng.integers(1, 9))
        k = int(rng.integers(2000, 6000)) if kind == "long" else int(rng.integers(1, 70))
        per_channel = i % 2 == 1
        sx = np.float32(2.0 ** rng.integers(-4, 0) if kind == "tie" else 10 ** rng.uniform(-3, -1))
        sw = np.asarray(2.0 ** rng.integers(-4, 0, n_out if per_channel else None) if kind == "tie"
                        else 10 ** rng.uniform(-3, -1, n_out if per_channel else None), np.float32)
        m_target = {"random": 10 ** rng.uniform(-3, -1), "tie": 2.0 ** -rng.integers(1, 6),
                    "large-m": 2.0 ** rng.uniform(0, 4), "long": 2.0 ** -rng.integers(14, 20)}[kind]
        sy = np.float32(sx * np.float32(np.max(sw)) / m_target)
        x_zp, y_zp = int(rng.integers(-128, 128)), int(rng.integers(-128, 128))
        if kind == "tie":
            x = np.clip(rng.integers(-6, 7, (b, k)) + x_zp, -128, 127)
            w = rng.integers(-5, 6, (n_out, k))
        elif kind == "long":
            x_zp = -128
            x, w = rng.integers(100, 128, (b, k)), rng.integers(100, 128, (n_out, k)) * rng.choice([-1, 1])
        else:
            x, w = rng.integers(-128, 128, (b, k)), rng.integers(-127, 128, (n_out, k))
        if kind == "large-m":
            x = np.clip(rng.integers(-3, 4, (b, k)) + x_zp, -128, 127)
        bias = rng.integers(-300, 300, n_out).astype(np.int32) if i % 3 else None
        activation = (None, "relu", "relu6")[i % 3] if i % 4 != 3 else None
        if activation == "relu6" and i % 2:            # bound 6 / sy right at a .5 for half-even vs away
            sy = np.float32(6.0 / (int(rng.integers(5, 60)) + 0.5))
        cases.append(dict(x=x.astype(np.int8), x_scale=sx, x_zp=x_zp, w=w.astype(np.int8), w_scale=sw,
                          bias=bias, y_scale=np.float32(sy), y_zp=y_zp, activation=activation))
    return cases


@pytest.mark.parametrize("path", list(PRESET_OF_PATH))
def test_fully_connected_bit_exact(path):
    preset = PRESET_OF_PATH[path]
    mismatched, compared = [], 0
    for i, c in enumerate(make_cases(21)):
        if path == "xnnpack" and np.max(c["x_scale"] * c["w_scale"] / c["y_scale"]) >= 256:
            continue                                       # XNNPACK refuses scales >= 256
        want = litert.fully_connected(c["x"], c["x_scale"], c["x_zp"], c["w"], c["w_scale"], c["bias"],
                                      c["y_scale"], c["y_zp"], activation=c["activation"], path=path)
        got = qlinear_matmul(c["x"], c["x_scale"], np.int8(c["x_zp"]), c["w"].T, c["w_scale"], np.int8(0),
                             c["y_scale"], np.int8(c["y_zp"]), c["bias"], datapath=preset,
                             activation=c["activation"])
        compared += 1
        if not np.array_equal(got, want):
            mismatched.append(i)
    assert compared > 150
    assert not mismatched, f"{preset}: cases {mismatched[:10]} differ from LiteRT {path}"
