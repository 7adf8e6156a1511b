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
class ReLU:
    name: str


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


MODELS = {"digits-mlp": _digits_mlp}


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
        else:
            x = np.maximum(x, np.float32(0))
        outs.append(x)
    return outs
