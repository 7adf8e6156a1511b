"""Issue 16 speed and memory targets: SmolLM2-135M (GGUF) with a 256-token prompt, the INT8
simulation (int8-per-token: per-token dynamic activations, per-channel weights, bit-exact
int32 accumulation) at most 3x the time of the FP32 numpy forward pass in the same run, and
the peak resident memory of one simulation under 2 GB.

As the MiniLM benchmark: the simulation of one hardware configuration once the workload is
calibrated and its FP32 reference computed (what each further configuration of a comparison
costs; the target applies here), and the peer is the forward pass with numpy's BLAS products."""

import resource
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from peers import llm_weights  # noqa: E402

from qsim.sim.graph import FP32, run_graph  # noqa: E402
from qsim.sim.llm import load_llm  # noqa: E402
from qsim.sim.simulate import simulate  # noqa: E402

GROUP = "SmolLM2-135M, 256-token prompt"
PEAK_RSS_BYTES = 2 * 1024 ** 3


@pytest.fixture(scope="module")
def smollm(request):
    """The 256-token prompt when measuring; as a smoke test (--benchmark-disable) 16 tokens."""
    try:
        path = llm_weights.smollm2_gguf()
    except llm_weights.ProvisionError as e:
        pytest.skip(f"SmolLM2 weights unavailable: {e}")
    measuring = not request.config.getoption("benchmark_disable")
    return load_llm(str(path), prompt_tokens=256 if measuring else 16, calib_tokens=128 if measuring else 16,
                    decode_tokens=64 if measuring else 2)


class NumpyFP32(FP32):
    """The forward pass with numpy's BLAS products (qsim's own FP32 executor uses its
    thread-independent reference product, fp32_matmul)."""

    def gemm(self, key, a, b, bias=None, weight=True):
        y = a @ b
        return (y if bias is None else y + bias).astype("float32")


def test_smollm2_int8_simulation(benchmark, mark_role, smollm):
    benchmark.group = GROUP
    mark_role("qsim", target=1 / 3)
    if not benchmark.disabled:
        simulate(smollm, "int8-per-token")              # calibrates once, computes the FP32 reference
    benchmark.pedantic(simulate, args=(smollm, "int8-per-token"), rounds=2, iterations=1)
    if not benchmark.disabled:      # the process's peak: meaningful when the benchmarks run on their own
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024     # Linux: kilobytes
        benchmark.extra_info["peak_rss_mb"] = peak / 2 ** 20
        print(f"\npeak resident memory of the process: {peak / 2 ** 20:.0f} MB")
        assert peak < PEAK_RSS_BYTES, f"peak resident memory {peak / 2 ** 30:.2f} GB"


def test_smollm2_fp32_forward(benchmark, mark_role, smollm):
    benchmark.group = GROUP
    mark_role("peer", peer="FP32 numpy (BLAS) forward pass")
    benchmark.pedantic(run_graph, args=(smollm.layers, smollm.test, NumpyFP32()), rounds=2, iterations=1)
