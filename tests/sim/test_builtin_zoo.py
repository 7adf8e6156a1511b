"""The built-in models (digits-mlp, digits-cnn, mnist1d-cnn) in the zoo of quantized models:
exported to a float ONNX graph (qsim.sim.export_onnx) and quantized by ONNX Runtime
(quantize_static in QDQ and QOperator format, per tensor and per channel, int8 and uint8
activations; quantize_dynamic), and rebuilt as torch float modules and quantized by
torch.ao.quantization (eager and FX static, fbgemm and qnnpack). Calibrated on the model's own
calibration split, run on its test inputs: qsim's run must give 0 mismatching output codes
against ORT's default and ORT_DISABLE_ALL sessions, and bitwise torch's outputs (every quantized
intermediate's codes too)."""

import warnings

import numpy as np
import onnx
import pytest
import torch
import torch.ao.quantization as tq
import torch.nn as nn
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_dynamic, quantize_static
from torch.ao.quantization import quantize_fx

from ort_compare import check_both_paths
from qsim.sim import export_onnx, load_model, load_onnx
from qsim.sim.graph import forward_fp32
from qsim.sim.layers import Conv1d, Conv2d, Flatten, Linear, MaxPool2d, MeanPool, ReLU
from qsim.sim.workloads import Workload
from torch_compare import assert_matches_torch

# One CI pass runs these (three models quantized and run in ORT and torch); the order and thread
# passes leave them out
pytestmark = pytest.mark.slow

BUILTIN = ["digits-mlp", "digits-cnn", "mnist1d-cnn"]
CALIB, TEST = 64, 128              # samples of the model's calibration and test splits


@pytest.fixture(autouse=True)
def quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("builtin")
    paths = {}
    for name in BUILTIN:
        paths[name] = folder / f"{name}.onnx"
        onnx.save(export_onnx(load_model(name)), str(paths[name]))
    return paths


def test_export_reads_back_as_the_same_workload(exported):
    """load_onnx(export_onnx(w)) has w's layers, and the same FP32 forward pass bit for bit."""
    for name in BUILTIN:
        work = load_model(name)
        back = load_onnx(exported[name])
        assert [(type(a), a.name) for a in back] == [(type(b), b.name) for b in work.layers]
        want, got = forward_fp32(work.layers, work.test[:TEST])[-1], forward_fp32(back, work.test[:TEST])[-1]
        np.testing.assert_array_equal(got.view(np.int32), want.view(np.int32))


def test_export_refuses_a_layer_it_cannot_write():
    with pytest.raises(ValueError, match=r"pool: layer 'mean' \(MeanPool\) has no ONNX export"):
        export_onnx(Workload("pool", (MeanPool("mean"),), np.zeros((1, 2, 3), np.float32), None))
    with pytest.raises(ValueError, match="only a workload with one input can be exported, it has x, mask"):
        export_onnx(Workload("two", (ReLU("r"),), {"x": np.zeros((1, 2), np.float32), "mask": np.ones(1)}, None))


# -- ONNX Runtime's quantizers -------------------------------------------------------------------------
class Reader(CalibrationDataReader):
    """The model's calibration split in batches of 16."""

    def __init__(self, calib):
        self.batches = iter([{"x": calib[i:i + 16]} for i in range(0, CALIB, 16)])

    def get_next(self):
        return next(self.batches, None)


STATIC = [(fmt, act, pc) for fmt in (QuantFormat.QDQ, QuantFormat.QOperator)
          for act in (QuantType.QInt8, QuantType.QUInt8) for pc in (False, True)]


@pytest.mark.parametrize("name", BUILTIN)
@pytest.mark.parametrize("fmt,act,per_channel", STATIC, ids=lambda v: getattr(v, "name", str(v)))
def test_ort_quantize_static(exported, tmp_path, name, fmt, act, per_channel):
    work = load_model(name)
    quantized = tmp_path / "q.onnx"
    quantize_static(str(exported[name]), str(quantized), Reader(work.calib), quant_format=fmt, activation_type=act,
                    weight_type=QuantType.QInt8, per_channel=per_channel)
    y = check_both_paths(quantized, {"x": work.test[:TEST]})["y"]
    assert (y.argmax(axis=1) == work.labels[:TEST]).mean() > 0.7          # a working classifier, not noise


@pytest.mark.parametrize("name", BUILTIN)
def test_ort_quantize_dynamic(exported, tmp_path, name):
    work = load_model(name)
    quantized = tmp_path / "q.onnx"
    quantize_dynamic(str(exported[name]), str(quantized), weight_type=QuantType.QInt8)
    y = check_both_paths(quantized, {"x": work.test[:TEST]})["y"]
    assert (y.argmax(axis=1) == work.labels[:TEST]).mean() > 0.7


# -- torch.ao.quantization -----------------------------------------------------------------------------
def torch_module(work) -> nn.Sequential:
    """The workload as a torch float module with its weights (a chain of layers)."""
    modules = []
    for layer in work.layers:
        if isinstance(layer, Linear):
            m = nn.Linear(*layer.weight.shape)
            m.weight.data, m.bias.data = torch.tensor(layer.weight.T.copy()), torch.tensor(layer.bias)
        elif isinstance(layer, Conv2d):
            cls = nn.Conv1d if isinstance(layer, Conv1d) else nn.Conv2d
            w = layer.weight
            m = cls(w.shape[1], w.shape[0], w.shape[2:], stride=layer.stride, padding=layer.padding)
            m.weight.data, m.bias.data = torch.tensor(w), torch.tensor(layer.bias)
        elif isinstance(layer, ReLU):
            m = nn.ReLU()
        elif isinstance(layer, MaxPool2d):
            m = nn.MaxPool2d(layer.size)
        elif isinstance(layer, Flatten):
            m = nn.Flatten(1)
        else:
            raise AssertionError(f"no torch module for {layer}")
        modules.append(m)
    return nn.Sequential(*modules).eval()


class Eager(nn.Module):
    def __init__(self, body):
        super().__init__()
        self.quant, self.body, self.dequant = tq.QuantStub(), body, tq.DeQuantStub()

    def forward(self, x):
        return self.dequant(self.body(self.quant(x)))


def torch_quantized(work, engine: str, fx: bool):
    body = torch_module(work)
    calib = torch.from_numpy(work.calib[:CALIB])
    if fx:
        prepared = quantize_fx.prepare_fx(body, tq.get_default_qconfig_mapping(engine), calib[:1])
    else:
        model = Eager(body).eval()
        pairs = [[f"body.{i}", f"body.{i + 1}"] for i, m in enumerate(body[:-1])
                 if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d)) and isinstance(body[i + 1], nn.ReLU)]
        tq.fuse_modules(model, pairs, inplace=True)
        model.qconfig = tq.get_default_qconfig(engine)
        prepared = tq.prepare(model)
    for i in range(0, CALIB, 16):
        prepared(calib[i:i + 16])
    return quantize_fx.convert_fx(prepared) if fx else tq.convert(prepared)


@pytest.fixture(params=["fbgemm", "qnnpack"])
def engine(request):
    old = torch.backends.quantized.engine
    torch.backends.quantized.engine = request.param
    yield request.param
    torch.backends.quantized.engine = old


@pytest.mark.parametrize("fx", [False, True], ids=["eager", "fx"])
@pytest.mark.parametrize("name", BUILTIN)
def test_torch_static(engine, name, fx):
    work = load_model(name)
    model = torch_quantized(work, engine, fx)
    x = torch.from_numpy(work.test[:TEST])
    gemms = sum(isinstance(layer, (Linear, Conv2d)) for layer in work.layers)
    assert assert_matches_torch(model, x) >= gemms                       # every quantized tensor's codes
    assert (model(x).argmax(dim=1).numpy() == work.labels[:TEST]).mean() > 0.7
