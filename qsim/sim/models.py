"""Built-in workloads: a layer list with float32 weights and a dataset split.

A model is a sequence of layers; GEMM-like layers (Linear) run through the hardware's
bit-exact datapath, the others in its vector-unit format.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from math import sqrt
from pathlib import Path

import numpy as np


class FP32:
    """The float32 executor: every GEMM is qsim's FP32 reference product (fp32_matmul: the same
    bits at any thread count, unlike a BLAS sgemm), every vector result kept as computed. Layers call gemm() for their products and vector() on their other results,
    so a simulator can put them on hardware by providing its own executor."""

    layer = None                                  # the layer being run (set by run_graph)

    def gemm(self, key: str, a: np.ndarray, b: np.ndarray, bias=None, weight: bool = True) -> np.ndarray:
        """a (..., M, K) @ b (..., K, N) (+ bias); weight: b is a constant of the model."""
        from ..datapaths import fp32_matmul
        y = fp32_matmul(a, b)
        return y if bias is None else (y + bias).astype(np.float32)

    def vector(self, y: np.ndarray, reads: int) -> np.ndarray:
        """A vector-unit result, having read `reads` elements."""
        return y


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


GEMM_LAYERS = (Linear, Conv2d, MatMul, Attention)


@dataclass(frozen=True)
class Workload:
    name: str
    layers: tuple
    calib: object             # float32 inputs for calibration: one array (graph input "x") or a dict of them
    test: object              # float32 inputs, likewise
    labels: np.ndarray | None = None      # test labels (classifiers); None: an embedding model


def _models_dir() -> Path:
    """models/ as installed inside the package, or at the root of a source checkout."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "models", here.parent / "models"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("the built-in models directory is missing from this installation")


def _digits_mlp() -> Workload:
    path = _models_dir() / "digits" / "digits.npz"
    try:
        d = np.load(path)
        x = d["pixels"].astype(np.float32) / 16.0
        layers = (Linear("fc1", d["w1"], d["b1"]), ReLU("relu1"), Linear("fc2", d["w2"], d["b2"]))
        return Workload("digits-mlp", layers, x[d["calib"]], x[d["test"]], d["labels"][d["test"]].astype(np.int64))
    except (OSError, KeyError, ValueError) as e:
        raise ValueError(f"cannot load the digits model from {path}: {e}") from None


def _digits_cnn() -> Workload:
    mlp = _digits_mlp()
    d = np.load(_models_dir() / "digits" / "digits.npz")
    layers = (Conv2d("conv1", d["c1_w"], d["c1_b"], padding=1), ReLU("relu1"), MaxPool2d("pool1"),
              Conv2d("conv2", d["c2_w"], d["c2_b"], padding=1), ReLU("relu2"), MaxPool2d("pool2"),
              Flatten("flatten"), Linear("fc", d["fc_w"], d["fc_b"]))
    image = lambda x: x.reshape(-1, 1, 8, 8)
    return Workload("digits-cnn", layers, image(mlp.calib), image(mlp.test), mlp.labels)


def _mnist1d_cnn() -> Workload:
    path = _models_dir() / "mnist1d" / "mnist1d.npz"
    try:
        d = np.load(path)
        layers = (Conv1d("conv1", d["c1_w"], d["c1_b"], stride=2, padding=2), ReLU("relu1"),
                  Conv1d("conv2", d["c2_w"], d["c2_b"], stride=2, padding=1), ReLU("relu2"),
                  Flatten("flatten"), Linear("fc", d["fc_w"], d["fc_b"]))
        return Workload("mnist1d-cnn", layers, d["calib"], d["test"], d["labels"].astype(np.int64))
    except (OSError, KeyError, ValueError) as e:
        raise ValueError(f"cannot load the MNIST-1D model from {path}: {e}") from None


def _minilm():
    from .minilm import load_minilm
    return load_minilm()


MODELS = {"digits-mlp": _digits_mlp, "digits-cnn": _digits_cnn, "mnist1d-cnn": _mnist1d_cnn, "minilm": _minilm}


def load_model(name: str) -> Workload:
    """A built-in workload. Loaded once per process: the simulator reuses a workload's
    calibration and FP32 reference across hardware configurations (treat its arrays as read-only)."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; built-in models are {', '.join(MODELS)}")
    return _load(name)


@lru_cache(maxsize=4)
def _load(name: str) -> Workload:
    return MODELS[name]()


def graph_inputs(x) -> dict:
    return dict(x) if isinstance(x, dict) else {"x": x}


def run_graph(layers, x, ex=None, each=None) -> np.ndarray:
    """Run the layers on input(s) x with executor ex (default FP32); each(layer, output) is
    called after every layer. Returns the last output."""
    ex = ex or FP32()
    values = graph_inputs(x)
    previous = "x"
    for layer in layers:
        try:
            args = [values[name] for name in (layer.inputs or (previous,))]
        except KeyError as e:
            raise ValueError(f"layer {layer.name!r} reads {e.args[0]!r}, which no earlier layer or input produces") from None
        ex.layer = layer
        y = layer.run(args, ex)
        previous = layer.name
        values[layer.name] = y
        if each is not None:
            each(layer, y)
    return y


def forward_fp32(layers, x) -> list[np.ndarray]:
    """The plain float32 numpy forward pass; the output of every layer."""
    outs = []
    run_graph(layers, x, each=lambda layer, y: outs.append(y))
    return outs
