"""Every setting of a hardware description either changes what runs or is refused, naming the
key: no value silently means something else, and a label always describes what ran."""

import subprocess
import sys

import numpy as np
import pytest

from qsim.hardware import HardwareError, load_hardware, override_hardware
from qsim.hardware.spec import PRESET_DIR
from qsim.sim import simulate


@pytest.mark.parametrize("value", [0, 7, 65, -1])
def test_accumulator_bits_outside_8_to_64_is_refused(value):
    """0 used to mean "the preset's default": a sweep row labelled acc0 ran a 32-bit accumulator."""
    with pytest.raises(HardwareError, match=rf"datapath.accumulator_bits must be an integer from 8 to 64, got {value}"):
        override_hardware("edge-npu-int8", {"datapath.accumulator_bits": value})
    with pytest.raises(HardwareError, match=rf"energy.accumulator_bits must be an integer from 8 to 64, got {value}"):
        override_hardware("edge-npu-int8", {"energy.accumulator_bits": value})


def test_accumulator_bits_at_the_bounds_run_what_they_say():
    for bits in (8, 64):
        path = override_hardware("edge-npu-int8", {"datapath.accumulator_bits": bits}).resolve_datapath()
        assert path.accumulator.bits == bits and f"acc{bits}" in path.name


def test_sweep_grid_with_accumulator_bits_0_fails_before_any_work(tmp_path):
    spec = tmp_path / "s.toml"
    spec.write_text('name = "acc"\nmodels = ["digits-mlp"]\n[[hardware]]\npreset = "edge-npu-int8"\n'
                    '[hardware.grid]\n"datapath.accumulator_bits" = [0, 32]\n')
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-P", "-m", "qsim.cli", "sweep", str(spec), "--out", str(out)],
                       capture_output=True, text=True)
    assert r.returncode != 0
    assert "datapath.accumulator_bits must be an integer from 8 to 64, got 0" in r.stderr
    assert "Traceback" not in r.stderr
    assert not list(out.glob("**/*.parquet"))


def _edited(preset: str, old: str, new: str, tmp_path):
    text = (PRESET_DIR / f"{preset}.toml").read_text()
    assert old in text
    path = tmp_path / "hw.toml"
    path.write_text(text.replace(old, new, 1))
    return path


@pytest.mark.parametrize("preset, old, new, match", [
    # formats of the wrong kind for the datapath (an AttributeError deep in the simulator before)
    ("edge-npu-int8", 'weights = "int8"', 'weights = "e4m3"', r"datapath.weights = 'e4m3': an integer datapath"),
    ("edge-npu-int8", 'activations = "int8"', 'activations = "bf16"', r"datapath.activations = 'bf16': an integer"),
    ("edge-npu-int8", 'outputs = "int8"', 'outputs = "fp32"', r"datapath.outputs = 'fp32': static integer"),
    ("h100-fp8", 'activations = "e4m3"', 'activations = "int8"', r"datapath.activations = 'int8': a float datapath"),
    ("h100-fp8", 'outputs = "bf16"', 'outputs = "int8"', r"datapath.outputs = 'int8': a float datapath"),
    ("h100-fp8", 'vector_format = "fp32"', 'vector_format = "int8"', r"datapath.vector_format = 'int8'"),
    # formats the datapath preset does not compute on: the label would not describe what ran
    ("h100-fp8", 'weights = "e4m3"', 'weights = "e5m2"', r"datapath.weights = 'e5m2': datapath preset h100-fp8-like"),
    ("mxfp8", 'activations = "e4m3"', 'activations = "fp4_e2m1"', r"datapath.activations = 'fp4_e2m1': datapath preset mxfp8"),
    # quantization settings the simulator would not honour
    ("edge-npu-int8", 'activations = "per-tensor"', 'activations = "mx"', r"quantization.activations = 'mx': .*per-tensor"),
    ("edge-npu-int8", 'activations = "per-tensor"', 'activations = "per-channel"', r"quantization.activations = 'per-channel'"),
    ("edge-npu-int8", 'weights = "per-channel"', 'weights = "per-group"', r"quantization.weights = 'per-group': .*per-channel or per-tensor"),
    ("edge-npu-int8", 'weights = "per-channel"', 'weights = "mx"', r"quantization.weights = 'mx'"),
    ("h100-fp8", 'weights = "per-tensor"', 'weights = "per-group"', r"quantization.weights = 'per-group': .*integer weight-only"),
    ("h100-fp8", 'weights = "per-tensor"', 'weights = "mx"', r"quantization.weights = 'mx'"),
    ("mxfp8", 'weights = "mx"', 'weights = "per-tensor"', r"quantization.weights = 'per-tensor': this datapath takes mx"),
    ("mxfp8", 'activations = "mx"', 'activations = "per-tensor"', r"quantization.activations = 'per-tensor'"),
    ("int4-weight-only", 'weights = "per-group"', 'weights = "per-channel"', r"quantization.weights = 'per-channel': .*per-group"),
    ("h100-fp8", "symmetric_activations = true", "symmetric_activations = false", r"quantization.symmetric_activations = False"),
    ("h100-fp8", "symmetric_weights = true", "symmetric_weights = false", r"quantization.symmetric_weights = False"),
    ("edge-npu-int8", "symmetric_weights = true", "symmetric_weights = true\ngroup_size = 64", r"quantization.group_size = 64: applies to per-group"),
    ("edge-npu-int8", "symmetric_weights = true", "symmetric_weights = true\nmx_block = 16", r"quantization.mx_block = 16: applies to MX"),
    ("mxfp8", "mx_block = 32", "mx_block = 32\ndynamic_activations = true", r"quantization.dynamic_activations = True"),
])
def test_settings_with_no_effect_are_refused_naming_the_key(tmp_path, preset, old, new, match):
    path = _edited(preset, old, new, tmp_path)
    with pytest.raises(HardwareError, match=match):
        load_hardware(str(path))
    # `qsim hardware --show` validates as the simulator does: a clear error, no traceback
    r = subprocess.run([sys.executable, "-P", "-m", "qsim.cli", "hardware", "--show", str(path)],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr and "hw.toml" in r.stderr


def test_dynamic_integer_activations_need_a_float_output_format():
    with pytest.raises(HardwareError, match="datapath.outputs = 'int8': with dynamic activations"):
        override_hardware("edge-npu-int8", {"quantization.dynamic_activations": True})
    hw = override_hardware("edge-npu-int8", {"quantization.dynamic_activations": True, "datapath.outputs": "bf16"})
    rec = simulate("digits-mlp", hw)
    hw32 = override_hardware("edge-npu-int8", {"quantization.dynamic_activations": True, "datapath.outputs": "fp32"})
    rec32 = simulate("digits-mlp", hw32)
    # the BF16 output format is applied: the first layer's error grows over FP32 outputs
    assert rec[0]["mse"] > rec32[0]["mse"]


def test_mx_block_size_is_what_runs_and_what_the_label_says():
    """quantization.mx_block used to set the cost model's block while compute kept 32."""
    hw16 = override_hardware("mxfp8", {"quantization.mx_block": 16})
    assert hw16.resolve_datapath().block_size == 16 and hw16.resolve_datapath().name == "mxfp8+block16"
    assert load_hardware("mxfp8").resolve_datapath().name == "mxfp8"
    r16, r32 = simulate("digits-mlp", hw16), simulate("digits-mlp", "mxfp8")
    assert r16[0]["datapath"] == "mxfp8+block16"
    assert r16[0]["sqnr_db"] != r32[0]["sqnr_db"]            # smaller blocks: other scales, other outputs
    # the cost model counts one E8M0 scale per 16 elements: more bytes than blocks of 32
    assert r16[0]["bytes_sram"] > r32[0]["bytes_sram"]


def test_presets_keep_their_meaning():
    """The refusals above leave every shipped preset valid, with the same resolved datapath."""
    names = {"edge-npu-int8": "gemmlowp", "edge-npu-int8-acc16": "gemmlowp+acc16s", "h100-fp8": "h100-fp8-like",
             "mxfp8": "mxfp8", "mxfp4": "mxfp4", "int4-weight-only": "bf16-fp32acc", "tpu-bf16": "bf16-fp32acc",
             "mi300-fp8fnuz": "fp32-sequential", "fp32-reference": "fp32-sequential"}
    for preset, path in names.items():
        assert load_hardware(preset).resolve_datapath().name == path
