"""Issue 14 speed target: run_torch on the seeds' FX dynamic example (Linear(784, 256)-ReLU-
Linear(256, 10), default_dynamic_qconfig) with 64 inputs against torch's own forward of the
converted model (target: qsim at most 5x slower), on the fbgemm and the qnnpack engine. Both
sides run on one thread (torch's intra-op threads, BLAS's and qsim's kernels'), so that the ratio measures the
work rather than how two thread pools share a busy machine.

Run: pytest benchmarks --benchmark-enable (see README)."""

import os
import warnings

import numpy as np
import pytest
import torch
import torch.nn as nn
from threadpoolctl import threadpool_limits
from torch.ao.quantization import default_dynamic_qconfig, quantize_fx

from qsim.sim.torch_quant import run_torch


@pytest.fixture(scope="module", params=["fbgemm", "qnnpack"])
def seeds_model(request):
    old, threads = torch.backends.quantized.engine, torch.get_num_threads()
    old_qsim = os.environ.get("QSIM_NUM_THREADS")
    torch.backends.quantized.engine = request.param
    torch.set_num_threads(1)
    os.environ["QSIM_NUM_THREADS"] = "1"
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))
    for layer in net:
        if isinstance(layer, nn.Linear):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore")
        model = quantize_fx.convert_fx(quantize_fx.prepare_fx(net.eval(), {"": default_dynamic_qconfig},
                                                              torch.randn(1, 784)))
        x = torch.randn(64, 784)
        np.testing.assert_array_equal(run_torch(model, x.numpy()), model(x).numpy())   # same bits first
        yield request.param, model, x
    torch.backends.quantized.engine = old
    torch.set_num_threads(threads)
    if old_qsim is None:
        del os.environ["QSIM_NUM_THREADS"]
    else:
        os.environ["QSIM_NUM_THREADS"] = old_qsim


def test_seeds_example_qsim(benchmark, mark_role, seeds_model):
    engine, model, x = seeds_model
    benchmark.group = f"seeds FX dynamic MLP, 64 inputs, {engine}"
    mark_role("qsim", target=1 / 5)
    inputs = x.numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        benchmark(run_torch, model, inputs)


def test_seeds_example_torch(benchmark, mark_role, seeds_model):
    engine, model, x = seeds_model
    benchmark.group = f"seeds FX dynamic MLP, 64 inputs, {engine}"
    mark_role("peer", peer=f"torch {engine} forward")
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        benchmark(model, x)
