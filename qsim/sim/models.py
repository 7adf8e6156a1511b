"""Built-in workloads: a layer list with float32 weights and a dataset split.

A model is a sequence of layers; GEMM-like layers (Linear) run through the hardware's
bit-exact datapath, the others in its vector-unit format.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Linear:
    name: str
    weight: np.ndarray        # (K, N) float32
    bias: np.ndarray          # (N,) float32


@dataclass(frozen=True)
class Conv2d:
    name: str
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


@dataclass(frozen=True)
class Conv1d(Conv2d):
    """The same layer on (N, C, W) inputs with (C_out, C_in, kw) weights."""


@dataclass(frozen=True)
class ReLU:
    name: str


@dataclass(frozen=True)
class MaxPool2d:
    name: str
    size: int = 2

    def __call__(self, x: np.ndarray) -> np.ndarray:
        n, c, h, w = x.shape
        k = self.size
        return x[:, :, :h // k * k, :w // k * k].reshape(n, c, h // k, k, w // k, k).max(axis=(3, 5))


@dataclass(frozen=True)
class Flatten:
    name: str

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return x.reshape(x.shape[0], -1)


@dataclass(frozen=True)
class Workload:
    name: str
    layers: tuple
    calib: np.ndarray         # float32 inputs for calibration
    test: np.ndarray          # float32 inputs
    labels: np.ndarray        # test labels (classifiers)


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
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; built-in models are {', '.join(MODELS)}")
    return MODELS[name]()


def forward_fp32(layers, x: np.ndarray) -> list[np.ndarray]:
    """The plain float32 numpy forward pass; the output of every layer."""
    outs = []
    for layer in layers:
        if isinstance(layer, Linear):
            x = (x @ layer.weight + layer.bias).astype(np.float32)
        elif isinstance(layer, Conv2d):
            cols, shape = layer.patches(x)
            x = Conv2d.to_nchw((cols @ layer.weight_matrix() + layer.bias).astype(np.float32), shape)
        elif isinstance(layer, ReLU):
            x = np.maximum(x, np.float32(0))
        else:
            x = layer(x)
        outs.append(x)
    return outs
