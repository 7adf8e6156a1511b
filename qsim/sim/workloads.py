"""Workloads: a layer list with float32 weights and a dataset split, and the small built-in
ones (digits MLP and CNN, MNIST-1D CNN) read from the models directory.

qsim/sim/models.py keeps the registry of built-in workloads (MODELS, load_model).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .layers import Conv1d, Conv2d, Flatten, Linear, MaxPool2d, ReLU


@dataclass(frozen=True)
class Workload:
    name: str
    layers: tuple
    calib: object             # float32 inputs for calibration: one array (graph input "x") or a dict of them
    test: object              # float32 inputs, likewise
    labels: np.ndarray | None = None      # test labels (classifiers); None: an embedding model
    llm: object | None = None             # decoder LLMs (qsim.sim.llm.LLMRun): tokens, decode length


def models_dir() -> Path:
    """models/ as installed inside the package, or at the root of a source checkout."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "models", here.parent / "models"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("the built-in models directory is missing from this installation")


def digits_mlp() -> Workload:
    path = models_dir() / "digits" / "digits.npz"
    try:
        d = np.load(path)
        x = d["pixels"].astype(np.float32) / 16.0
        layers = (Linear("fc1", d["w1"], d["b1"]), ReLU("relu1"), Linear("fc2", d["w2"], d["b2"]))
        return Workload("digits-mlp", layers, x[d["calib"]], x[d["test"]], d["labels"][d["test"]].astype(np.int64))
    except (OSError, KeyError, ValueError) as e:
        raise ValueError(f"cannot load the digits model from {path}: {e}") from None


def digits_cnn() -> Workload:
    mlp = digits_mlp()
    d = np.load(models_dir() / "digits" / "digits.npz")
    layers = (Conv2d("conv1", d["c1_w"], d["c1_b"], padding=1), ReLU("relu1"), MaxPool2d("pool1"),
              Conv2d("conv2", d["c2_w"], d["c2_b"], padding=1), ReLU("relu2"), MaxPool2d("pool2"),
              Flatten("flatten"), Linear("fc", d["fc_w"], d["fc_b"]))
    image = lambda x: x.reshape(-1, 1, 8, 8)
    return Workload("digits-cnn", layers, image(mlp.calib), image(mlp.test), mlp.labels)


def mnist1d_cnn() -> Workload:
    path = models_dir() / "mnist1d" / "mnist1d.npz"
    try:
        d = np.load(path)
        layers = (Conv1d("conv1", d["c1_w"], d["c1_b"], stride=2, padding=2), ReLU("relu1"),
                  Conv1d("conv2", d["c2_w"], d["c2_b"], stride=2, padding=1), ReLU("relu2"),
                  Flatten("flatten"), Linear("fc", d["fc_w"], d["fc_b"]))
        return Workload("mnist1d-cnn", layers, d["calib"], d["test"], d["labels"].astype(np.int64))
    except (OSError, KeyError, ValueError) as e:
        raise ValueError(f"cannot load the MNIST-1D model from {path}: {e}") from None
