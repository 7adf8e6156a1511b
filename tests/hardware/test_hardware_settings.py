"""Every setting of a hardware description either changes what runs or is refused, naming the
key: no value silently means something else, and a label always describes what ran."""

import subprocess
import sys

import pytest

from qsim.hardware import HardwareError, load_hardware, override_hardware
from qsim.hardware.spec import PRESET_DIR
from qsim.sim import simulate


@pytest.mark.parametrize("value", [0, 7, 65, -1])
def test_accumulator_bits_outside_8_to_64_is_refused(value):
    """0 used to mean "the preset's default": a sweep row labelled acc0 ran a 32-bit accumulator."""
    with pytest.raises(HardwareError, match=rf"datapath.accumulator.bits = {value}: accumulator bits must be an integer from 8 to 64"):
        override_hardware("edge-npu-int8", {"datapath.accumulator.bits": value})
    with pytest.raises(HardwareError, match=rf"energy.accumulator_bits must be an integer from 8 to 64, got {value}"):
        override_hardware("edge-npu-int8", {"energy.accumulator_bits": value})


def test_accumulator_bits_at_the_bounds_run_what_they_say():
    for bits in (8, 64):
        path = override_hardware("edge-npu-int8", {"datapath.accumulator.bits": bits}).resolve_datapath()
        assert path.accumulator.bits == bits and f"acc{bits}" in path.name


def test_sweep_grid_with_accumulator_bits_0_fails_before_any_work(tmp_path):
    spec = tmp_path / "s.toml"
    spec.write_text('name = "acc"\nmodels = ["digits-mlp"]\n[[hardware]]\npreset = "edge-npu-int8"\n'
                    '[hardware.grid]\n"datapath.accumulator.bits" = [0, 32]\n')
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-P", "-m", "qsim.cli", "sweep", str(spec), "--out", str(out)],
                       capture_output=True, text=True)
    assert r.returncode != 0
    assert "datapath.accumulator.bits = 0: accumulator bits must be an integer from 8 to 64" in r.stderr
    assert "Traceback" not in r.stderr
    assert not list(out.glob("**/*.parquet"))


def _edited(preset: str, old: str, new: str, tmp_path):
    text = (PRESET_DIR / f"{preset}.toml").read_text()
    assert old in text
    path = tmp_path / "hw.toml"
    path.write_text(text.replace(old, new, 1))
    return path


REFUSED = [
    # formats of the wrong kind for the kernel (an AttributeError deep in the simulator before)
    ("edge-npu-int8", {"datapath.weights.format": "e4m3"}, r"datapath.weights.format = 'e4m3': integer kernel gemmlowp"),
    ("edge-npu-int8", {"datapath.activations.format": "bf16"}, r"datapath.activations.format = 'bf16': integer kernel"),
    ("edge-npu-int8", {"datapath.output.format": "fp32"}, r"datapath.output.format = 'fp32': static integer"),
    ("h100-fp8", {"datapath.activations.format": "int8"}, r"datapath.activations.format = 'int8': a float kernel"),
    ("h100-fp8", {"datapath.output.format": "int8"}, r"datapath.output.format = 'int8': float kernels convert"),
    ("h100-fp8", {"datapath.vector_format": "int8"}, r"datapath.vector_format = 'int8'"),
    # formats the kernel does not compute on: the label would not describe what ran
    ("h100-fp8", {"datapath.weights.format": "e5m2"}, r"datapath.weights.format = 'e5m2': kernel h100-fp8-like computes on e4m3"),
    ("mxfp8", {"datapath.kernel": "h100-fp8-like"}, r"kernel h100-fp8-like takes element formats for both operands"),
    ("h100-fp8", {"datapath.kernel": "block-dot"}, r"kernel block-dot takes block formats for both operands"),
    ("mxfp8", {"datapath.activations.format": "nvfp4"}, r"block length along K 32 differs from the activations' 16"),
    ("edge-npu-int8", {"datapath.kernel": "mxfp8"}, r"datapath.kernel = 'mxfp8': that is a machine preset"),
    ("edge-npu-int8", {"datapath.kernel": "gemlowp"}, r"datapath.kernel = 'gemlowp': unknown kernel path"),
    # granularities the kernel would not honour
    ("edge-npu-int8", {"datapath.activations.granularity": "per-channel"}, r"datapath.activations.granularity = 'per-channel': integer kernels take per-tensor"),
    ("edge-npu-int8", {"datapath.activations.granularity": "block"}, r"datapath.activations.granularity = 'block': block granularity takes a block format"),
    ("edge-npu-int8", {"datapath.weights.granularity": "per-group"}, r"datapath.weights.granularity = 'per-group': integer kernels take per-tensor or per-channel"),
    ("edge-npu-int8", {"datapath.weights.format": "mxfp8_e4m3"}, r"datapath.weights.granularity = 'per-channel': mxfp8_e4m3 is a block format"),
    ("h100-fp8", {"datapath.weights.granularity": "per-group"}, r"datapath.weights.granularity = 'per-group': e4m3 weights on a float kernel take per-tensor or per-channel"),
    ("h100-fp8", {"datapath.activations.granularity": "none"}, r"datapath.activations.granularity = 'none': e4m3 needs a scale"),
    ("mxfp8", {"datapath.weights.granularity": "per-tensor"}, r"datapath.weights.granularity = 'per-tensor': mxfp8_e4m3 is a block format"),
    ("int4-weight-only", {"datapath.weights.granularity": "per-channel"}, r"datapath.weights.group_size = 128: applies to per-group"),
    ("h100-fp8", {"datapath.weights.format": "int4"}, r"datapath.weights.granularity = 'per-tensor': int4 weights on a float kernel take per-group"),
    # BF16 is encoded as it is: a per-tensor scale used to be accepted and ignored
    ("tpu-bf16", {"datapath.weights.granularity": "per-tensor"}, r"datapath.weights.granularity = 'per-tensor': bf16 weights on a float kernel take none"),
    ("tpu-bf16", {"datapath.activations.granularity": "per-tensor"}, r"datapath.activations.granularity = 'per-tensor': bf16 is encoded as it is"),
    ("h100-fp8", {"datapath.activations.symmetric": False}, r"datapath.activations.symmetric = False"),
    ("h100-fp8", {"datapath.weights.symmetric": False}, r"datapath.weights.symmetric = False"),
    ("edge-npu-int8", {"datapath.weights.group_size": 64}, r"datapath.weights.group_size = 64: applies to per-group"),
    ("edge-npu-int8", {"datapath.weights.block_size": 16}, r"datapath.weights.block_size = 16: applies to block formats only"),
    ("fp8-blockwise", {"datapath.weights.block_size": 64}, r"datapath.weights.block_size = 64: fp8_block_128x128 has 2-D tiles"),
    ("mxfp8", {"datapath.activations.dynamic": True}, r"datapath.activations.dynamic = True: block scales always come from the data"),
    ("edge-npu-int8", {"datapath.weights.dynamic": True}, r"datapath.weights.dynamic = True: weights are quantized once"),
    # the output stage and the accumulator belong to the kernel's kind
    ("h100-fp8", {"datapath.output.requant": "gemmlowp"}, r"datapath.output.requant = 'gemmlowp': float kernels convert"),
    ("edge-npu-int8", {"datapath.output.requant": "rounding"}, r"datapath.output.requant must be one of"),
    ("h100-fp8", {"datapath.accumulator.bits": 16}, r"unknown key datapath.accumulator.bits; the accumulator of kernel h100-fp8-like has format"),
    ("h100-fp8", {"datapath.accumulator.fused_bits": 99}, r"datapath.accumulator.fused_bits = 99: accumulator fused_bits must be an integer in \[2, 48\]"),
    ("edge-npu-int8", {"datapath.accumulator.overflow": "clamp"}, r"datapath.accumulator.overflow = 'clamp'"),
]


@pytest.mark.parametrize("preset, overrides, match", REFUSED)
def test_settings_with_no_effect_are_refused_naming_the_key(preset, overrides, match):
    with pytest.raises(HardwareError, match=match):
        override_hardware(preset, overrides)


@pytest.mark.parametrize("preset, old, new, match", [
    ("edge-npu-int8", 'weights = { format = "int8"', 'weights = { format = "e4m3"', r"datapath.weights.format = 'e4m3'"),
    ("tpu-bf16", 'weights = { format = "bf16" }', 'weights = { format = "bf16", granularity = "per-tensor" }',
     r"datapath.weights.granularity = 'per-tensor'"),
    ("edge-npu-int8", "[array]", "[quantization]\nweights = \"per-tensor\"\n\n[array]", r"\[quantization\] is gone"),
])
def test_a_refused_file_gives_a_clear_error_on_the_command_line(tmp_path, preset, old, new, match):
    path = _edited(preset, old, new, tmp_path)
    with pytest.raises(HardwareError, match=match):
        load_hardware(str(path))
    # `qsim hardware --show` validates as the simulator does: a clear error, no traceback
    r = subprocess.run([sys.executable, "-P", "-m", "qsim.cli", "hardware", "--show", str(path)],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr and "hw.toml" in r.stderr


def test_dynamic_integer_activations_need_a_float_output_format():
    with pytest.raises(HardwareError, match="datapath.output.format = 'int8': with dynamic activations"):
        override_hardware("edge-npu-int8", {"datapath.activations.dynamic": True})
    hw = override_hardware("edge-npu-int8", {"datapath.activations.dynamic": True, "datapath.output.format": "bf16"})
    rec = simulate("digits-mlp", hw)
    hw32 = override_hardware("edge-npu-int8", {"datapath.activations.dynamic": True, "datapath.output.format": "fp32"})
    rec32 = simulate("digits-mlp", hw32)
    # the BF16 output format is applied: the first layer's error grows over FP32 outputs
    assert rec[0]["mse"] > rec32[0]["mse"]


def test_block_size_is_what_runs_and_what_the_cost_model_counts():
    """quantization.mx_block used to set the cost model's block while compute kept 32: the block
    length is now a setting of each operand, read by compute and cost alike."""
    hw16 = override_hardware("mxfp8", {"datapath.activations.block_size": 16, "datapath.weights.block_size": 16})
    assert hw16.datapath.activations.block.block == hw16.datapath.weights.block.block == (16,)
    r16, r32 = simulate("digits-mlp", hw16), simulate("digits-mlp", "mxfp8")
    assert r16[0]["sqnr_db"] != r32[0]["sqnr_db"]            # smaller blocks: other scales, other outputs
    # the cost model counts one E8M0 scale per 16 elements: more bytes than blocks of 32
    assert r16[0]["bytes_sram"] > r32[0]["bytes_sram"]


def test_presets_keep_their_meaning():
    """The refusals above leave every shipped preset valid, with the same resolved datapath."""
    names = {"edge-npu-int8": "gemmlowp", "edge-npu-int8-acc16": "gemmlowp+acc16s", "h100-fp8": "h100-fp8-like",
             "mxfp8": "block-dot", "mxfp4": "block-dot", "int4-weight-only": "bf16-fp32acc", "tpu-bf16": "bf16-fp32acc",
             "mi300-fp8fnuz": "fp32-sequential", "fp32-reference": "fp32-sequential", "nvfp4": "block-dot",
             "fp8-blockwise": "block-dot", "x86-cpu-ort": "onnxruntime-x86"}
    for preset, path in names.items():
        assert load_hardware(preset).resolve_datapath().name == path
