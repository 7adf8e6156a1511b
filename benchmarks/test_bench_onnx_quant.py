"""Issue 14 speed target: all-MiniLM-L6-v2's encoder quantized by ONNX Runtime's
quantize_dynamic, run by qsim's run_model bit-exactly on 32 sentences, against the ONNX
Runtime session that it reproduces (target: at most 5x its time).

The peer is ORT's default session (graph optimizations on, default threads), the session
the "ort-default" path models; an ORT session with one intra-op thread is shown for scale.
qsim's preparation (loading and fusing the graph) is cached per file, as ORT's happens when
its session is made, so both sides time the run alone."""

import sys
from pathlib import Path

import onnxruntime as ort
import pytest

from qsim.sim import run_model

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))   # the shared peer runners
from peers.ort_minilm import minilm_quantized  # noqa: E402

GROUP = "MiniLM-L6 int8 ONNX, 32 sentences"


@pytest.fixture(scope="module")
def minilm(tmp_path_factory):
    return minilm_quantized(tmp_path_factory.mktemp("minilm"), sentences=32)


def session(path, threads: int = 0):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def test_minilm_onnx_quant_run_model(benchmark, mark_role, minilm):
    benchmark.group = GROUP
    mark_role("qsim", target=1 / 5)
    path, inputs = minilm
    run_model(path, inputs)                                # prepares and caches the graph
    benchmark.pedantic(run_model, args=(path, inputs), rounds=10, iterations=1)


def test_minilm_onnx_quant_ort_default(benchmark, mark_role, minilm):
    benchmark.group = GROUP
    mark_role("peer", peer="ONNX Runtime default session")
    path, inputs = minilm
    benchmark(session(path).run, None, inputs)


def test_minilm_onnx_quant_ort_one_thread(benchmark, mark_role, minilm):
    benchmark.group = GROUP
    mark_role("peer", peer="ONNX Runtime, one intra-op thread", context=True)
    path, inputs = minilm
    benchmark(session(path, threads=1).run, None, inputs)
