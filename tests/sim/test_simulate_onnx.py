"""`qsim simulate --model FILE.onnx` and simulate_onnx: an imported model's records, per ONNX node
and for the model, on its own kernel path and on a described machine; the same numbers from the
command line and from Python; `qsim report` reads them; bad input is one line naming the file."""

import subprocess
import sys
import warnings

import numpy as np
import onnx
import pytest
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_dynamic, quantize_static

from qsim.cli import main
from qsim.io import MODEL_ROW, read_records
from qsim._cpu import ort_integer_datapath
from qsim.sim import export_onnx, load_model, run_model
from qsim.sim.graph import forward_fp32
from qsim.sim.onnx_quant import load_quantized, prepare
from qsim.sim.onnx_reference import reference
from qsim.sim.simulate_onnx import model_inputs, simulate_onnx

SAMPLES = 48


class Reader(CalibrationDataReader):
    def __init__(self, calib):
        self.batches = iter([{"x": calib[i:i + 16]} for i in range(0, 64, 16)])

    def get_next(self):
        return next(self.batches, None)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """digits-cnn as a float ONNX file, quantized QDQ and QOperator (per channel) and dynamic,
    and its first test samples with labels as an .npz."""
    folder = tmp_path_factory.mktemp("onnx_models")
    work = load_model("digits-cnn")
    paths = {"float": folder / "float.onnx"}
    onnx.save(export_onnx(work), str(paths["float"]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for fmt in (QuantFormat.QDQ, QuantFormat.QOperator):
            paths[fmt.name] = folder / f"{fmt.name}.onnx"
            quantize_static(str(paths["float"]), str(paths[fmt.name]), Reader(work.calib), quant_format=fmt,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True)
        paths["dynamic"] = folder / "dynamic.onnx"
        quantize_dynamic(str(paths["float"]), str(paths["dynamic"]), weight_type=QuantType.QInt8)
    paths["inputs"] = folder / "inputs.npz"
    np.savez(paths["inputs"], x=work.test[:SAMPLES], labels=work.labels[:SAMPLES])
    return work, paths


def accuracy(y, labels):
    return float((np.asarray(y).argmax(axis=1) == labels).mean())


@pytest.mark.parametrize("kind", ["QDQ", "QOperator", "dynamic"])
def test_records_describe_the_model_on_its_own_path(models, kind):
    work, paths = models
    x, labels = work.test[:SAMPLES], work.labels[:SAMPLES]
    records = simulate_onnx(paths[kind], inputs=paths["inputs"])
    graph = prepare(paths[kind], "ort-default")
    ran = [n.name for n in graph.nodes if not all(t in graph.consts or t == "" for t in n.inputs)]
    assert [r["layer"] for r in records] == ran + [MODEL_ROW]
    assert {r["hardware"] for r in records} == {"x86-cpu-ort"} and {r["datapath"] for r in records} == {"ort-default"}
    model = records[-1]
    y = run_model(paths[kind], x)["y"]
    assert model["top1"] == accuracy(y, labels) and model["samples"] == SAMPLES
    gemms = [r for r in records if r.get("unit") == "gemm"]
    assert [(r["M"], r["K"], r["N"]) for r in gemms] == [(SAMPLES * 64, 9, 8), (SAMPLES * 16, 72, 16), (SAMPLES, 64, 10)]
    assert model["macs"] == sum(r["M"] * r["K"] * r["N"] for r in gemms) and model["energy_total_pj"] > 0
    # 8-bit quantization of a small CNN, not noise; without VNNI ORT's u8 x s8 pairs saturate to
    # int16, and the records show that real, larger error
    floor = 25 if kind == "dynamic" or ort_integer_datapath() == "onnxruntime-x86" else 8
    assert all(r["sqnr_db"] > floor for r in records)


def test_reference_is_the_float_model(models):
    """The FP32 reference (quantization undone, weights dequantized) is the float model up to
    the weight rounding, and identical for QDQ and QOperator forms of the same quantization."""
    work, paths = models
    feeds = {"x": work.test[:SAMPLES]}
    qdq, qop = (reference(load_quantized(paths[k]), feeds)["y"] for k in ("QDQ", "QOperator"))
    np.testing.assert_allclose(qdq, qop, rtol=1e-5, atol=1e-5)
    fp32 = forward_fp32(work.layers, work.test[:SAMPLES])[-1]
    assert np.abs(qdq - fp32).max() < 0.05 * np.abs(fp32).max()
    assert np.abs(qdq - fp32).max() > 0                      # the dequantized weights, not the float ones


def test_records_on_a_described_machine(models):
    work, paths = models
    x, labels = work.test[:SAMPLES], work.labels[:SAMPLES]
    records = simulate_onnx(paths["QDQ"], "edge-npu-int8-acc16", inputs=paths["inputs"])
    assert {r["hardware"] for r in records} == {"edge-npu-int8-acc16"}
    y = run_model(paths["QDQ"], x, hardware="edge-npu-int8-acc16")["y"]
    assert records[-1]["top1"] == accuracy(y, labels)
    own = simulate_onnx(paths["QDQ"], inputs=paths["inputs"])
    assert records[-1]["sqnr_db"] < own[-1]["sqnr_db"] - 10         # its 16-bit saturating sums hurt
    unfused = simulate_onnx(paths["QDQ"], "ort-unfused", inputs=paths["inputs"])
    assert unfused[-1]["datapath"] == "ort-unfused" and "Conv" in {r["op"] for r in unfused}


def test_cli_and_python_give_the_same_records_and_report_reads_them(models, tmp_path, capsys):
    work, paths = models
    out = tmp_path / "runs"
    for hardware in ([], ["--hardware", "edge-npu-int8"]):
        assert main(["simulate", "--model", str(paths["QOperator"]), "--inputs", str(paths["inputs"]),
                     "--out", str(out), *hardware]) == 0
    assert main(["simulate", "--model", str(paths["float"]), "--samples", "8", "--out", str(out)]) == 0
    df = read_records(out)
    for hardware in (None, "edge-npu-int8"):
        want = simulate_onnx(paths["QOperator"], hardware, inputs=paths["inputs"])
        got = df[(df["hardware"] == want[0]["hardware"]) & (df["model"] == want[0]["model"])].to_dict("records")
        assert [r["layer"] for r in got] == [r["layer"] for r in want]
        for g, w in zip(got, want):
            for key in ("sqnr_db", "mse", "max_abs_err", "cosine", "macs", "cycles", "energy_total_pj", "top1"):
                if w.get(key) is not None:
                    assert g[key] == w[key], (g["layer"], key)
    assert main(["report", str(out), "-o", str(tmp_path / "report.html")]) == 0
    assert "QLinearConv" in (tmp_path / "report.html").read_text()


def test_random_inputs_and_dimensions(models, tmp_path):
    work, paths = models
    feeds, labels = model_inputs(str(paths["QDQ"]), dims={"batch": 5}, seed=3)
    again, _ = model_inputs(str(paths["QDQ"]), dims={"batch": 5}, seed=3)
    assert feeds["x"].shape == (5, 1, 8, 8) and labels is None
    np.testing.assert_array_equal(feeds["x"], again["x"])
    with pytest.raises(ValueError, match=r"input 'x' has dimension 'batch' at axis 0; give its size \(--dim batch=N\)"):
        model_inputs(str(paths["QDQ"]))
    records = simulate_onnx(paths["QDQ"], dims={"batch": 5}, seed=3)
    assert records[-1]["samples"] == 5 and "top1" not in records[-1]


@pytest.mark.parametrize("make,message", [
    (lambda d: d / "missing.onnx", "missing.onnx: no such file"),
    (lambda d: (d / "junk.onnx").write_bytes(b"\x01not onnx") and d / "junk.onnx", "cannot read ONNX model"),
    (lambda d: d, "--model .*: unknown model|not a file"),
])
def test_bad_model_is_one_line(tmp_path, make, message):
    path = make(tmp_path)
    run = subprocess.run([sys.executable, "-P", "-m", "qsim.cli", "simulate", "--model", str(path), "--out",
                          str(tmp_path / "runs")], capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
    import re
    assert re.search(message, run.stderr), run.stderr


def test_unmodelled_operator_names_the_node(tmp_path):
    from onnx import TensorProto, helper
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], name="quant"),
             helper.make_node("DequantizeLinear", ["q", "s", "z"], ["d"], name="dequant"),
             helper.make_node("Hardmax", ["d"], ["y"], name="odd_one")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
                              [helper.make_tensor("s", TensorProto.FLOAT, [], [0.1]),
                               helper.make_tensor("z", TensorProto.UINT8, [], [128])])
    path = tmp_path / "odd.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    run = subprocess.run([sys.executable, "-P", "-m", "qsim.cli", "simulate", "--model", str(path), "--out",
                          str(tmp_path / "runs")], capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and "Hardmax node 'odd_one'" in run.stderr and "odd.onnx" in run.stderr
