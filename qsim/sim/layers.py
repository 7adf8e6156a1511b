"""The layers of a workload graph.

GEMM-like layers (GEMM_LAYERS) run their products through the executor's gemm() (on
hardware: the bit-exact datapath), the others their results through vector() (the vector
unit's format). Each layer names its inputs: earlier layers or graph inputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from math import sqrt

import numpy as np


@dataclass(frozen=True)
class Layer:
    name: str
    inputs: tuple = field(default=(), kw_only=True)    # earlier layers or graph inputs; () = the previous layer


@dataclass(frozen=True)
class Linear(Layer):
    weight: np.ndarray        # (K, N) float32
    bias: np.ndarray          # (N,) float32

    def run(self, args, ex):
        x = args[0]
        y = ex.gemm(self.name, x.reshape(-1, x.shape[-1]), self.weight, self.bias)
        return y.reshape(*x.shape[:-1], y.shape[-1])


@dataclass(frozen=True)
class Conv2d(Layer):
    weight: np.ndarray        # (C_out, C_in, [kh,] kw) float32
    bias: np.ndarray          # (C_out,) float32
    stride: int = 1
    padding: int = 0

    def patches(self, x: np.ndarray) -> tuple[np.ndarray, tuple]:
        """im2col: (N * output positions, C_in * kernel taps) patches of x (zero padded), and the
        output shape; the GEMM with weight_matrix() is the convolution."""
        from ..datapaths.conv import conv_geometry, im2col
        stride, pads, dilation, out = conv_geometry(x.shape, self.weight.shape, self.stride, self.padding, 1, 1)
        cols = im2col(x, self.weight.shape[2:], 0, stride, pads, dilation, out)      # N, C, *out, *k
        dims = len(out)
        cols = np.moveaxis(cols, 1, 1 + dims)                                        # N, *out, C, *k
        return np.ascontiguousarray(cols.reshape(x.shape[0] * int(np.prod(out)), -1)), \
            (x.shape[0], self.weight.shape[0]) + tuple(out)

    def weight_matrix(self) -> np.ndarray:
        return np.ascontiguousarray(self.weight.reshape(self.weight.shape[0], -1).T)

    @staticmethod
    def to_nchw(y: np.ndarray, shape: tuple) -> np.ndarray:
        n, c, *out = shape
        return np.ascontiguousarray(np.moveaxis(y.reshape(n, *out, c), -1, 1))

    def run(self, args, ex):
        cols, shape = self.patches(args[0])
        return Conv2d.to_nchw(ex.gemm(self.name, cols, self.weight_matrix(), self.bias), shape)


@dataclass(frozen=True)
class Conv1d(Conv2d):
    """The same layer on (N, C, W) inputs with (C_out, C_in, kw) weights."""


@dataclass(frozen=True)
class MatMul(Layer):
    """Product of two activations, a (..., M, K) @ b (..., K, N) (b transposed first if asked)."""
    transpose_b: bool = False

    def run(self, args, ex):
        a, b = args
        return ex.gemm(self.name, a, np.swapaxes(b, -1, -2) if self.transpose_b else b, weight=False)


@dataclass(frozen=True)
class Attention(Layer):
    """Multi-head scaled dot-product attention on inputs (q, k, v[, key mask]), each (N, T, D);
    the mask (N, T) is 1 for real tokens. Both products run on the GEMM datapath, the softmax on
    the vector unit."""
    heads: int = 1

    def run(self, args, ex):
        q, k, v = (self._split(t) for t in args[:3])
        scores = ex.gemm(f"{self.name}.qk", q, np.swapaxes(k, -1, -2), weight=False)
        scores = scores / np.float32(sqrt(q.shape[-1]))
        if len(args) > 3:                                                 # masked keys: -1e4, as BERT
            scores = scores + ((1.0 - args[3]) * np.float32(-1e4))[:, None, None, :]
        probs = ex.vector(_softmax(scores), 3 * scores.size)
        ctx = ex.gemm(f"{self.name}.pv", probs, v, weight=False)
        n, h, t, d = ctx.shape
        return np.ascontiguousarray(ctx.transpose(0, 2, 1, 3).reshape(n, t, h * d))

    def _split(self, x):
        n, t, d = x.shape
        return np.ascontiguousarray(x.reshape(n, t, self.heads, d // self.heads).transpose(0, 2, 1, 3))


def _softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


def _erf(x: np.ndarray) -> np.ndarray:
    """erf to 1.5e-7 absolute (Abramowitz and Stegun 7.1.26), vectorized in float64."""
    x = np.asarray(x, np.float64)
    t = 1.0 / (1.0 + 0.3275911 * np.abs(x))
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return np.sign(x) * (1.0 - poly * np.exp(-x * x))


@dataclass(frozen=True)
class _Elementwise(Layer):
    def run(self, args, ex):
        return ex.vector(self.compute(*args), sum(a.size for a in args))


@dataclass(frozen=True)
class ReLU(_Elementwise):
    def compute(self, x):
        return np.maximum(x, np.float32(0))


@dataclass(frozen=True)
class GELU(_Elementwise):
    """GELU in its erf form."""
    def compute(self, x):
        return (0.5 * x * (1.0 + _erf(x / sqrt(2.0)))).astype(np.float32)


@dataclass(frozen=True)
class Add(_Elementwise):
    def compute(self, a, b):
        return (a + b).astype(np.float32)


@dataclass(frozen=True)
class Softmax(_Elementwise):
    def compute(self, x):
        return _softmax(x)


@dataclass(frozen=True)
class LayerNorm(_Elementwise):
    weight: np.ndarray = None
    bias: np.ndarray = None
    eps: float = 1e-12

    def compute(self, x):
        mean = x.mean(axis=-1, keepdims=True)
        var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
        return ((x - mean) / np.sqrt(var + np.float32(self.eps)) * self.weight + self.bias).astype(np.float32)


@dataclass(frozen=True)
class MaxPool2d(_Elementwise):
    size: int = 2

    def compute(self, x):
        n, c, h, w = x.shape
        k = self.size
        return x[:, :, :h // k * k, :w // k * k].reshape(n, c, h // k, k, w // k, k).max(axis=(3, 5))


@dataclass(frozen=True)
class AvgPool(_Elementwise):
    """Average over every axis after the channel axis (global average pooling)."""
    def compute(self, x):
        return x.reshape(*x.shape[:2], -1).mean(axis=-1, dtype=np.float32)


@dataclass(frozen=True)
class MeanPool(_Elementwise):
    """Mean over the tokens of (N, T, D) where the mask (N, T) is 1 (sentence embeddings)."""
    def compute(self, x, mask):
        return ((x * mask[:, :, None]).sum(axis=1) / mask.sum(axis=1, keepdims=True)).astype(np.float32)


@dataclass(frozen=True)
class L2Normalize(_Elementwise):
    def compute(self, x):
        return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


@dataclass(frozen=True)
class Flatten(_Elementwise):
    def compute(self, x):
        return x.reshape(x.shape[0], -1)


# -- decoder LLM layers (qsim/sim/llm.py builds the graph) ----------------------------------------
@dataclass(frozen=True)
class RMSNorm(_Elementwise):
    weight: np.ndarray = None
    eps: float = 1e-5

    def compute(self, x):
        ms = np.mean(np.square(x, dtype=np.float32), axis=-1, keepdims=True, dtype=np.float32)
        return (x * (np.float32(1.0) / np.sqrt(ms + np.float32(self.eps))) * self.weight).astype(np.float32)


@dataclass(frozen=True)
class SwiGLU(_Elementwise):
    """silu(gate) * up, on inputs (gate, up)."""
    def compute(self, gate, up):
        return (gate / (np.float32(1.0) + np.exp(-gate)) * up).astype(np.float32)


def rope_tables(positions: int, head_dim: int, base: float) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin (positions, head_dim / 2) of angle p * base ** (-2i / head_dim), in float32
    as transformers computes them (inverse frequencies in float32, angles in float32)."""
    inv = (1.0 / (base ** (np.arange(0, head_dim, 2, dtype=np.int64).astype(np.float32) / head_dim))).astype(np.float32)
    angles = np.arange(positions, dtype=np.float32)[:, None] * inv[None, :]
    return np.cos(angles).astype(np.float32), np.sin(angles).astype(np.float32)


def apply_rope(x: np.ndarray, cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
    """Rotate adjacent pairs (x[2i], x[2i+1]) of each head (..., T, head_dim): llama.cpp's
    layout, the one GGUF's permuted q and k weights are stored for."""
    even, odd = x[..., 0::2], x[..., 1::2]
    out = np.empty_like(x)
    out[..., 0::2] = even * cos - odd * sin
    out[..., 1::2] = even * sin + odd * cos
    return out


@dataclass(frozen=True)
class CausalAttention(Layer):
    """Grouped-query causal self-attention with rotary positions, on inputs (q, k, v), each
    (N, T, heads x head_dim) (k and v with kv_heads). K and V pass through the executor's KV
    cache (kv_cache: on hardware, stored in its format) before both products; each group of
    heads / kv_heads query heads reads one KV head."""
    heads: int = 1
    kv_heads: int = 1
    rope_base: float = 10000.0

    def run(self, args, ex):
        q, k, v = args
        n, t, _ = q.shape
        d = q.shape[-1] // self.heads
        cos, sin = rope_tables(t, d, self.rope_base)
        split = lambda x, h: np.ascontiguousarray(x.reshape(n, t, h, d).transpose(0, 2, 1, 3))
        q = apply_rope(split(q, self.heads), cos, sin)
        k = apply_rope(split(k, self.kv_heads), cos, sin)
        v = split(v, self.kv_heads)
        k, v = ex.kv_cache(k), ex.kv_cache(v)
        group = self.heads // self.kv_heads
        q = q.reshape(n, self.kv_heads, group * t, d)          # each KV head's query heads, stacked
        scores = ex.gemm(f"{self.name}.qk", q, np.swapaxes(k, -1, -2), weight=False)
        scores = scores.reshape(n, self.kv_heads, group, t, t) * np.float32(1.0 / np.sqrt(d))
        scores = np.where(np.tril(np.ones((t, t), bool)), scores, np.float32(-np.inf))
        probs = ex.vector(_softmax(scores), 3 * n * self.heads * t * (t + 1) // 2)
        ctx = ex.gemm(f"{self.name}.pv", probs.reshape(n, self.kv_heads, group * t, t), v, weight=False)
        ctx = ctx.reshape(n, self.heads, t, d)
        return np.ascontiguousarray(ctx.transpose(0, 2, 1, 3).reshape(n, t, self.heads * d))


GEMM_LAYERS = (Linear, Conv2d, MatMul, Attention, CausalAttention)
