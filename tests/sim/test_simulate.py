"""The simulator on the built-in digits MLP: records, accuracy within tolerances, layer results
against independent calculations, Parquet output, the command line and bad input."""

import subprocess
import sys

import numpy as np
import pytest

import qsim
from qsim.datapaths import qlinear_matmul, quantize_bias
from qsim.hardware import hardware_presets
from qsim.io import SCHEMA, read_records, write_records
from qsim.sim import load_model, simulate
from qsim.sim.graph import forward_fp32

# top-1 on the 397 test digits (FP32: 0.9824); measured, with a tolerance of about 3 samples
EXPECTED_TOP1 = {"edge-npu-int8": 0.982, "edge-npu-int8-acc16": 0.713, "h100-fp8": 0.987, "tpu-bf16": 0.982,
                 "mi300-fp8fnuz": 0.982, "mxfp8": 0.980, "mxfp4": 0.977, "int4-weight-only": 0.980,
                 "fp32-reference": 0.9824, "nvfp4": 0.992, "fp8-blockwise": 0.985,
                 "x86-cpu-ort": 0.982, "int8-per-token": 0.982}


@pytest.mark.parametrize("hardware", sorted(EXPECTED_TOP1))
def test_end_to_end_accuracy(hardware):
    records = simulate("digits-mlp", hardware)
    model = records[-1]
    assert model["layer"] == "__model__" and model["fp32_top1"] == pytest.approx(0.9824, abs=1e-4)
    assert model["top1"] == pytest.approx(EXPECTED_TOP1[hardware], abs=0.008)
    layers = records[:-1]
    assert [r["layer"] for r in layers] == ["fc1", "relu1", "fc2"]
    assert all(r["macs"] == r["M"] * r["K"] * r["N"] for r in layers if r["op"] == "Linear")
    if hardware == "edge-npu-int8-acc16":
        assert model["saturated"] > 0          # 16-bit accumulators really saturate on this model


def test_first_int8_layer_equals_an_independent_calculation():
    """fc1 on edge-npu-int8, rebuilt by hand from issue 1-2 pieces and compared bit for bit."""
    work = load_model("digits-mlp")
    layer = work.layers[0]
    sx, zx = np.float32(1.0 / 255), -128                         # calibration range [0, 1] of the pixels
    x = qsim.quantize_int(work.test, "int8", sx, zx)
    wmax = np.abs(layer.weight).max(axis=0)
    sw = np.maximum(np.where(wmax > 0, wmax, 1.0) / 127, np.abs(layer.bias) / (float(sx) * 2.0 ** 30)).astype(np.float32)
    w = qsim.quantize_int(layer.weight, "int8", sw, 0, axis=1)
    ref = forward_fp32(work.layers, work.calib)[0]
    lo, hi = min(float(ref.min()), 0.0), max(float(ref.max()), 0.0)
    sy = np.float32((hi - lo) / 255)
    zy = int(np.clip(np.rint(-128 - lo / sy), -128, 127))
    y = qlinear_matmul(x, sx, np.int8(zx), w, sw, np.int8(0), sy, np.int8(zy), quantize_bias(layer.bias, sx, sw),
                       datapath="gemmlowp")
    # the simulator's fc1 output, dequantized, must be these codes exactly
    got = simulate("digits-mlp", "edge-npu-int8")[0]
    want = qsim.dequantize_int(y, sy, zy)
    err = want.astype(np.float64) - forward_fp32(work.layers, work.test)[0]
    assert got["max_abs_err"] == pytest.approx(float(np.abs(err).max()), rel=1e-12)


def test_records_round_trip_through_parquet(tmp_path):
    records = simulate("digits-mlp", "mxfp4")
    path = write_records(records, tmp_path)
    assert path.name == f"part-{records[0]['run_id']}.parquet" and not list(tmp_path.glob(".*.tmp"))
    write_records(simulate("digits-mlp", "h100-fp8"), tmp_path)                 # runs append
    df = read_records(tmp_path)
    assert len(df) == 2 * len(records) and set(df["hardware"]) == {"mxfp4", "h100-fp8"}
    import pyarrow.parquet as pq
    meta = pq.read_schema(path).metadata
    assert b"qsim.schema" in meta
    for column in df.columns:                    # every column is documented, per-level ones by pattern
        assert column in SCHEMA or column.startswith("bytes_") or (column.startswith("energy_")
                                                                  and column.endswith("_pj")), column


def test_compare_command_writes_dataset_and_summary(tmp_path):
    out = tmp_path / "cmp"
    run = subprocess.run([sys.executable, "-P", "-m", "qsim.cli", "compare", "--hardware", "edge-npu-int8,mxfp4",
                          "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "| edge-npu-int8 |" in run.stdout and (tmp_path / "cmp.summary.md").exists()
    assert len(list(out.glob("part-*.parquet"))) == 2


@pytest.mark.parametrize("argv,message", [
    (["simulate", "--hardware", "tpu-v9"], "unknown hardware 'tpu-v9'"),
    (["simulate", "--model", "resnet"], "--model resnet: unknown model"),
    (["compare", "--hardware", "nope.toml"], "cannot read"),
])
def test_bad_command_line_input(argv, message):
    run = subprocess.run([sys.executable, "-P", "-m", "qsim.cli", *argv], capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and message in run.stderr


def test_every_preset_simulates():
    assert sorted(hardware_presets()) == sorted(EXPECTED_TOP1)


CNN_TOP1 = {"edge-npu-int8": 0.985, "edge-npu-int8-acc16": 0.474, "h100-fp8": 0.982, "tpu-bf16": 0.987,
            "mi300-fp8fnuz": 0.985, "mxfp8": 0.987, "mxfp4": 0.899, "int4-weight-only": 0.970,
            "fp32-reference": 0.987, "nvfp4": 0.970, "fp8-blockwise": 0.985,
            "x86-cpu-ort": 0.985, "int8-per-token": 0.985}


@pytest.mark.parametrize("hardware", sorted(CNN_TOP1))
def test_digits_cnn_end_to_end(hardware):
    records = simulate("digits-cnn", hardware)
    assert [r["op"] for r in records[:-1]] == ["Conv2d", "ReLU", "MaxPool2d", "Conv2d", "ReLU", "MaxPool2d",
                                               "Flatten", "Linear"]
    assert records[-1]["fp32_top1"] == pytest.approx(0.9874, abs=1e-4)
    assert records[-1]["top1"] == pytest.approx(CNN_TOP1[hardware], abs=0.008)
    conv1 = records[0]
    assert (conv1["M"], conv1["K"], conv1["N"]) == (397 * 64, 9, 8)      # patches x (C_in kh kw) x C_out


def assert_forward_matches_torch(work, net, slots):
    """The float32 forward pass of `work` against torch in float64, with the weights of qsim
    layer i copied into torch module j for each (i, j) in slots (Linear weights transposed)."""
    torch = pytest.importorskip("torch")
    net = net.double()
    with torch.no_grad():
        for i, j in slots:
            layer = work.layers[i]
            net[j].weight.copy_(torch.tensor(layer.weight.T if layer.weight.ndim == 2 else layer.weight))
            net[j].bias.copy_(torch.tensor(layer.bias))
        want = net(torch.tensor(work.test, dtype=torch.float64)).numpy()
    np.testing.assert_allclose(forward_fp32(work.layers, work.test)[-1], want, rtol=1e-4, atol=1e-4)


def test_cnn_fp32_forward_matches_torch():
    nn = pytest.importorskip("torch.nn")
    net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 16, 3, padding=1),
                        nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64, 10))
    assert_forward_matches_torch(load_model("digits-cnn"), net, [(0, 0), (3, 3), (7, 7)])


MNIST1D_TOP1 = {"edge-npu-int8": 0.825, "edge-npu-int8-acc16": 0.818, "h100-fp8": 0.821, "tpu-bf16": 0.823,
                "mi300-fp8fnuz": 0.814, "mxfp8": 0.816, "mxfp4": 0.733, "int4-weight-only": 0.774}


@pytest.mark.parametrize("hardware", sorted(MNIST1D_TOP1))
def test_mnist1d_cnn_end_to_end(hardware):
    records = simulate("mnist1d-cnn", hardware)
    assert [r["op"] for r in records[:-1]] == ["Conv1d", "ReLU", "Conv1d", "ReLU", "Flatten", "Linear"]
    assert records[-1]["fp32_top1"] == pytest.approx(0.823, abs=1e-4)
    assert records[-1]["top1"] == pytest.approx(MNIST1D_TOP1[hardware], abs=0.006)


def test_mnist1d_fp32_forward_matches_torch():
    nn = pytest.importorskip("torch.nn")
    net = nn.Sequential(nn.Conv1d(1, 16, 5, stride=2, padding=2), nn.ReLU(), nn.Conv1d(16, 32, 3, stride=2, padding=1),
                        nn.ReLU(), nn.Flatten(), nn.Linear(320, 10))
    assert_forward_matches_torch(load_model("mnist1d-cnn"), net, [(0, 0), (2, 2), (5, 5)])


def test_an_interrupted_write_leaves_no_file(tmp_path, monkeypatch):
    import pyarrow.parquet as pq
    records = simulate("digits-mlp", "edge-npu-int8")

    def crash(table, where, *args, **kwargs):
        with open(where, "wb") as f:
            f.write(b"PAR1 half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(pq, "write_table", crash)
    with pytest.raises(KeyboardInterrupt):
        write_records(records, tmp_path)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(FileNotFoundError, match="no qsim records"):
        read_records(tmp_path)


def test_minilm_gelu_erf_is_accurate_to_2e_7():
    """MiniLM's GELU uses Abramowitz & Stegun 7.1.26 for erf (error bound 1.5e-7)."""
    from math import erf

    from qsim.sim.layers import _erf
    x = np.linspace(-6, 6, 20001)
    assert np.abs(_erf(x) - np.array([erf(v) for v in x])).max() < 2e-7


def test_command_line_overrides_and_partial_quantization(tmp_path, capsys):
    """--set KEY=VALUE overrides the description as override_hardware does; --fp32-layers keeps
    layers in FP32; a malformed --set is a clear error."""
    from qsim.cli import main
    from qsim.hardware import override_hardware
    argv = ["simulate", "--model", "digits-mlp", "--out", str(tmp_path), "--set", "datapath.accumulator.bits=16",
            "--set", "datapath.activations.dynamic=true", "--set", "datapath.output.format=fp32", "--fp32-layers", "fc2"]
    assert main(argv) == 0
    got = read_records(tmp_path)
    want = simulate("digits-mlp", override_hardware("edge-npu-int8", {"datapath.accumulator.bits": 16,
                                                                      "datapath.activations.dynamic": True,
                                                                      "datapath.output.format": "fp32"}),
                    fp32_layers=["fc2"])
    assert list(got["sqnr_db"]) == [r["sqnr_db"] for r in want]
    assert list(got["unit"][:3]) == ["gemm", "vector", "fp32"]
    assert main(["simulate", "--set", "nonsense", "--out", str(tmp_path)]) == 2
    assert "--set takes KEY=VALUE" in capsys.readouterr().err
