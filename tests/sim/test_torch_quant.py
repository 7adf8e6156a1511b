"""run_torch against torch on a zoo of quantized models, each on the fbgemm and the qnnpack
engine: the seeds' FX dynamic MLP (Linear(784, 256)-ReLU-Linear(256, 10)) and its eager
quantize_dynamic twin, a static eager CNN
(Conv2d+ReLU fusion, residual add_relu, cat, max / average / adaptive average pooling), a
static eager Conv1d model (residual add, MaxPool1d), a static FX MLP, a static FX CNN and
residual adds across memory layouts. The
float outputs must be bitwise equal and every quantized intermediate's codes equal, as
calibrated and again adversarial: power-of-two scales, odd zero points and inputs on half
steps, so that requantization lands on ties and the rules' differences show."""

import math
import warnings

import numpy as np
import pytest
import torch
import torch.ao.quantization as tq
import torch.nn as nn
import torch.nn.functional as F
from torch.ao.quantization import quantize_fx

from qsim.sim.torch_quant import UnsupportedNode, run_torch
from torch_compare import assert_matches_torch

ENGINES = ["fbgemm", "qnnpack"]


@pytest.fixture(autouse=True)
def quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@pytest.fixture(params=ENGINES)
def engine(request):
    old = torch.backends.quantized.engine
    torch.backends.quantized.engine = request.param
    yield request.param
    torch.backends.quantized.engine = old


# -- the zoo -------------------------------------------------------------------------------------
def seeds_mlp():
    """The seeds' example, as written there: xavier weights, zero biases."""
    net = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))
    for layer in net:
        if isinstance(layer, nn.Linear):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)
    return net.eval()


class EagerCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.quant, self.dequant = tq.QuantStub(), tq.DeQuantStub()
        self.c1, self.r1 = nn.Conv2d(3, 24, 3, padding=1), nn.ReLU()
        self.c2 = nn.Conv2d(24, 24, 3, padding=1)
        self.c3 = nn.Conv2d(24, 20, 1)
        self.add, self.cat = nn.quantized.FloatFunctional(), nn.quantized.FloatFunctional()
        self.pool, self.avg, self.gap = nn.MaxPool2d(2), nn.AvgPool2d(2), nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(44, 5)

    def forward(self, x):
        y = self.r1(self.c1(self.quant(x)))
        z = self.pool(self.add.add_relu(self.c2(y), y))
        c = self.cat.cat([z, self.avg(self.c3(y))], dim=1)
        return self.dequant(self.fc(torch.flatten(self.gap(c), 1)))


class EagerConv1d(nn.Module):
    def __init__(self):
        super().__init__()
        self.quant, self.dequant = tq.QuantStub(), tq.DeQuantStub()
        self.c1, self.r1 = nn.Conv1d(4, 16, 5, padding=2), nn.ReLU()
        self.c2 = nn.Conv1d(16, 16, 3, padding=1)
        self.add = nn.quantized.FloatFunctional()
        self.pool, self.fc = nn.MaxPool1d(2), nn.Linear(16 * 16, 6)

    def forward(self, x):
        y = self.r1(self.c1(self.quant(x)))
        z = self.pool(self.add.add(self.c2(y), y))
        return self.dequant(self.fc(torch.flatten(z, 1)))


class FxCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1, self.c2, self.c3 = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1), nn.Conv2d(8, 8, 1)
        self.fc = nn.Linear(16, 4)

    def forward(self, x):
        y = torch.relu(self.c1(x))
        z = F.max_pool2d(self.c2(y) + y, 2)
        c = torch.cat([z, F.avg_pool2d(self.c3(y), 2)], 1)
        return self.fc(F.adaptive_avg_pool2d(c, 1).flatten(1))


class FxMixedLayouts(nn.Module):
    """Residual adds of a contiguous input and channels-last convolution outputs, both ways."""

    def __init__(self):
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(8, 8, 1), nn.Conv2d(8, 8, 3, padding=1)

    def forward(self, x):
        return x + self.c2(self.c1(x) + x)


def calibrated(engine, model, shape, fx: bool, fuse=()):
    torch.manual_seed(0)
    model = model.eval()
    calib = [torch.randn(*shape) for _ in range(4)]
    if fx:
        prepared = quantize_fx.prepare_fx(model, tq.get_default_qconfig_mapping(engine), calib[0])
    else:
        model.qconfig = tq.get_default_qconfig(engine)
        if fuse:
            tq.fuse_modules(model, list(fuse), inplace=True)
        prepared = tq.prepare(model)
    for x in calib:
        prepared(x)
    return quantize_fx.convert_fx(prepared) if fx else tq.convert(prepared)


def adversarial(model):
    """Every activation scale rounded to a power of two and every activation zero point made
    odd: requantization lands on ties, where adding the zero point before or after rounding
    differs."""
    for mod in model.modules():
        if isinstance(getattr(mod, "scale", None), float):
            mod.scale = 2.0 ** round(math.log2(mod.scale))
            mod.zero_point = int(mod.zero_point) | 1
    for name, buf in model.named_buffers():
        last = name.rsplit(".", 1)[-1]
        if "scale" in last and buf.numel() == 1 and buf.is_floating_point():
            buf.fill_(2.0 ** round(math.log2(buf.item())))
        if "zero_point" in last and buf.numel() == 1:
            buf.fill_(int(buf.item()) | 1)
    return model


def half_steps(model, shape, seed):
    """Inputs on the half steps of the model's input scale: the input quantization's ties."""
    step = next(buf.item() for name, buf in model.named_buffers() if "input_scale" in name or name == "quant.scale")
    rng = np.random.default_rng(seed)
    return torch.from_numpy(((rng.integers(-160, 160, shape) + 0.5) * step).astype(np.float32))


def tie_input(engine, shape, seed):
    """Dynamic activations on the half steps of a power-of-two scale: the range is chosen so
    that the engine's run-time scale is 1/16 exactly (fbgemm halves the range)."""
    rng = np.random.default_rng(seed)
    top = 64 if engine == "fbgemm" else 128
    x = (rng.integers(-top, top - 1, shape) + 0.5) / 16
    x.flat[0], x.flat[1] = -top / 16, (top - 1) / 16
    return torch.from_numpy(x.astype(np.float32))


# -- the tests -----------------------------------------------------------------------------------
def test_seeds_fx_dynamic_mlp(engine):
    torch.manual_seed(0)
    prepared = quantize_fx.prepare_fx(seeds_mlp(), {"": tq.default_dynamic_qconfig}, torch.randn(1, 784))
    model = quantize_fx.convert_fx(prepared)
    for seed in range(3):
        torch.manual_seed(seed)
        assert_matches_torch(model, torch.randn(64, 784) * (1 + seed))
        assert_matches_torch(model, tie_input(engine, (64, 784), seed))
    x = torch.randn(1, 784)                  # the seeds' single-row inference
    np.testing.assert_array_equal(run_torch(model, x).view(np.int32), model(x).numpy().view(np.int32))


STATIC = {   # name -> (model, calibration / test shape, FX?, modules to fuse, quantized nodes at least)
    "eager-cnn": (EagerCNN, (4, 3, 12, 12), False, [("c1", "r1")], 10),
    "eager-conv1d": (EagerConv1d, (5, 4, 32), False, [("c1", "r1")], 6),
    "fx-mlp": (lambda: nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 3)),
               (33, 20), True, (), 4),
    "fx-cnn": (FxCNN, (3, 3, 8, 8), True, (), 8),
    "fx-mixed-layouts": (FxMixedLayouts, (3, 8, 5, 7), True, (), 5),
}


def test_eager_dynamic_mlp(engine):
    """quantize_dynamic in eager mode: dynamic Linear modules around a float ReLU module."""
    torch.manual_seed(1)
    model = tq.quantize_dynamic(seeds_mlp(), {nn.Linear}, dtype=torch.qint8)
    assert_matches_torch(model, torch.randn(64, 784))
    assert_matches_torch(model, tie_input(engine, (64, 784), 5))


@pytest.mark.parametrize("adverse", [False, True], ids=["calibrated", "adversarial"])
@pytest.mark.parametrize("name", STATIC)
def test_static_models(engine, name, adverse):
    build, shape, fx, fuse, nodes = STATIC[name]
    model = calibrated(engine, build(), shape, fx=fx, fuse=fuse)
    if adverse:
        adversarial(model)
    for seed in range(2):
        torch.manual_seed(10 + seed)
        x = half_steps(model, shape, seed) if adverse else torch.randn(*shape)
        assert assert_matches_torch(model, x) >= nodes


def test_other_datapath_runs_the_same_model():
    """The executor's datapath is a parameter: the same static model on ONNX Runtime's kernel
    path (int32 bias) runs, and differs from torch only where requantization does."""
    torch.backends.quantized.engine = "fbgemm"
    model = calibrated("fbgemm", nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 3)), (8, 20), fx=True)
    x = torch.randn(16, 20)
    want = model(x).numpy()
    got = run_torch(model, x.numpy(), datapath="onnxruntime-x86")
    assert got.shape == want.shape and np.abs(got - want).max() < 0.2


def test_errors_name_the_node():
    torch.backends.quantized.engine = "fbgemm"
    float_model = torch.fx.symbolic_trace(nn.Sequential(nn.Linear(4, 3)))
    with pytest.raises(UnsupportedNode, match=r"node '_0'.*float torch.nn.modules.linear.Linear"):
        run_torch(float_model, np.zeros((2, 4), np.float32))

    class Sigmoid(nn.Module):
        def __init__(self):
            super().__init__()
            self.quant = tq.QuantStub()

        def forward(self, x):
            return torch.sigmoid(self.quant(x))
    model = Sigmoid().eval()
    model.qconfig = tq.get_default_qconfig("fbgemm")
    prepared = tq.prepare(model)
    prepared(torch.randn(2, 3))
    with pytest.raises(UnsupportedNode, match=r"node 'sigmoid'.*not modelled"):
        run_torch(tq.convert(prepared), np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match="engine 'x86'"):
        run_torch(float_model, np.zeros((2, 4), np.float32), engine="x86")
    pooled = calibrated("qnnpack", nn.Sequential(nn.Conv2d(2, 2, 1), nn.AvgPool2d(1)), (1, 2, 4, 4), fx=True)
    with pytest.raises(UnsupportedNode, match=r"node '_1'.*1x1"):        # qnnpack refuses it, and says where
        run_torch(pooled, np.zeros((1, 2, 4, 4), np.float32), engine="qnnpack")
    mlp = calibrated("fbgemm", nn.Sequential(nn.Linear(4, 3)), (2, 4), fx=True)
    with pytest.raises(TypeError, match="float32"):
        run_torch(mlp, np.zeros((2, 4)))
    with pytest.raises(ValueError, match="more inputs"):
        run_torch(mlp, (np.zeros((2, 4), np.float32), np.zeros((2, 4), np.float32)))


def test_run_model_runs_a_torch_model_on_a_described_machine(engine):
    """run_model(module, x, hardware=...) runs the linear layers on the machine's kernel path
    (edge-npu-int8: gemmlowp's requantization and an int32 bias, not the engine's float one);
    without hardware it is run_torch on the engine's own path, which equals torch."""
    from qsim.hardware import load_hardware
    from qsim.sim import run_model
    build, shape, fx, fuse, _ = STATIC["fx-mlp"]
    model = calibrated(engine, build(), shape, fx=fx, fuse=fuse)
    torch.manual_seed(3)
    x = torch.randn(*shape)
    own = run_model(model, x)
    np.testing.assert_array_equal(own.view(np.int32), model(x).numpy().view(np.int32))
    on_npu = run_model(model, x, hardware="edge-npu-int8")
    want = run_torch(model, x, datapath=load_hardware("edge-npu-int8").resolve_datapath())
    np.testing.assert_array_equal(on_npu.view(np.int32), want.view(np.int32))
    with pytest.raises(ValueError, match="hardware tpu-bf16: its kernel bf16-fp32acc computes in floating point"):
        run_model(model, x, hardware="tpu-bf16")
