"""Comparing qsim's run of a quantized torch model with torch, shared by the tests of
tests/sim (tests/ is on sys.path, see conftest.py)."""

import numpy as np
import torch
from torch.fx.interpreter import Interpreter

from qsim.sim.torch_quant import QuantizedTensor, run_torch


class Recorder(Interpreter):
    """torch's own value of every node."""

    def __init__(self, gm):
        super().__init__(gm)
        self.values = {}

    def run_node(self, n):
        self.values[n.name] = result = super().run_node(n)
        return result


def assert_matches_torch(model, x):
    """Outputs bitwise equal; every quantized intermediate's codes and parameters equal."""
    gm = model if isinstance(model, torch.fx.GraphModule) else torch.fx.symbolic_trace(model)
    recorder = Recorder(gm)
    want = recorder.run(x)
    got, values = run_torch(model, x.numpy(), intermediates=True)
    np.testing.assert_array_equal(got.view(np.int32), want.numpy().view(np.int32))
    checked = 0
    for name, value in recorder.values.items():
        if isinstance(value, torch.Tensor) and value.is_quantized:
            mine = values[name]
            assert isinstance(mine, QuantizedTensor), name
            np.testing.assert_array_equal(mine.codes, value.int_repr().numpy(), err_msg=f"node {name}")
            assert np.float32(mine.scale) == np.float32(value.q_scale()) and mine.zero_point == value.q_zero_point()
            checked += 1
    return checked
