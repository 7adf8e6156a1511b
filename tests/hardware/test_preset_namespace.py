"""Presets as data: kernel paths read from TOML, `extends` between hardware descriptions, and
one namespace for both kinds of preset."""

from dataclasses import replace
from pathlib import Path

import pytest

from qsim.datapaths import FLOAT_PRESETS, PRESETS
from qsim.datapaths.accumulate import Accumulator
from qsim.datapaths.floating import FloatAccumulator, FloatDatapath
from qsim.datapaths.integer import IntDatapath
from qsim.hardware.spec import HardwareError, hardware_presets, load_hardware
from qsim.plan import datapath_preset

DATA = Path(__file__).parents[1] / "data"

# The Python tables these presets were defined by before they became TOML data, copied literally
# (and the presets added since, as the TOML should read).
OLD_INT = [
    IntDatapath("onnxruntime-x86", Accumulator(32, "wrap"), "float32", description=(
        "ONNX Runtime MLAS on x86 (QLinearMatMul, QLinearConv): int32 wrapping accumulator, int32 "
        "bias, float32(acc) * float32(float32(sa * sb) / sy) clamped, rounded half to even")),
    # added as data (measured on a CPU without VNNI), never a Python table
    IntDatapath("onnxruntime-x86-avx2", Accumulator(32, "wrap", pair_saturate16=True), "float32", description=(
        "ONNX Runtime MLAS on x86 without VNNI (AVX2 kernels): as onnxruntime-x86, but raw u8 x s8 product pairs "
        "saturate to int16 (VPMADDUBSW) before the int32 sum; u8 x u8 and s8 x s8 stay exact")),
    IntDatapath("xnnpack", Accumulator(32, "wrap"), "xnnpack", description=(
        "XNNPACK qs8 (LiteRT's default delegate): int32 accumulator and bias, float32(acc) * "
        "float32(float32(sx * sw) / sy), half even; its own ReLU6 bound and clamping order")),
    IntDatapath("tflite-reference", Accumulator(32, "wrap"), "reference-double", description=(
        "LiteRT reference kernels (BUILTIN_REF): std::round(double(acc) * m), m in double, one "
        "rounding, ties away from zero")),
    IntDatapath("tflite-ruy", Accumulator(32, "wrap"), "ruy-x86", description=(
        "LiteRT optimized kernels on x86 (ruy): Q31 multiplier, (acc * q + 2^30) >> 31 then a "
        "half-up rounding shift; two roundings toward +inf")),
    IntDatapath("gemmlowp", Accumulator(32, "wrap"), "gemmlowp", description=(
        "gemmlowp / TFLite legacy fixed point: SaturatingRoundingDoublingHighMul (ties toward "
        "+inf) then RoundingDivideByPOT (ties away from zero); double rounding")),
    IntDatapath("fbgemm-vnni", Accumulator(32, "wrap"), "fbgemm", bias="float", description=(
        "PyTorch quantized::linear on fbgemm with VNNI (VPDPBUSD, exact sums); float bias added to "
        "float32(acc) (per tensor by FMA with a double reciprocal), times float32(sx * sw) / sy, half even")),
    IntDatapath("fbgemm-avx2", Accumulator(32, "wrap", pair_saturate16=True), "fbgemm", bias="float",
                description="fbgemm without VNNI (FBGEMM_ENABLE_INSTRUCTIONS=AVX2): as fbgemm-vnni, but raw "
                            "u8 x s8 product pairs saturate to int16 (VPMADDUBSW) before the int32 sum"),
    IntDatapath("qnnpack", Accumulator(32, "wrap"), "qnnpack", bias="float", description=(
        "PyTorch qnnpack: float bias quantized as rne(bias * (1 / float32(double(sw) * double(sx)))), "
        "int32 accumulator, float32(acc) * (sw * sx) * (1 / sy), half even")),
]
OLD_FLOAT = [
    FloatDatapath("fp32-sequential", None, None, FloatAccumulator(), description=(
        "products exact, summed one by one in FP32 with round to nearest even (a CPU loop)")),
    FloatDatapath("bf16-fp32acc", "bf16", "bf16", FloatAccumulator(), description=(
        "BF16 inputs, exact products, FP32 sequential accumulation")),
    FloatDatapath("h100-fp8-like", "e4m3", "e4m3",
                  FloatAccumulator("fp32", "rtz", fused_group=32, fused_bits=14, promote_every=128), description=(
        "E4M3 inputs; fused groups of 32 products aligned to the largest exponent keeping 14 bits "
        "(truncated), normalized toward zero; partial sums promoted to FP32 every 128 (DeepSeek-V3 3.3.2)")),
    # the OCP MX kernels mxfp8 and mxfp4 became one block kernel: the block formats moved into the
    # descriptions' operands (mxfp8 and mxfp4 now name machines only)
    FloatDatapath("block-dot", None, None, block_products=True, description=(
        "block-scaled operands (OCP MX, NVFP4, FP8 block scaling): each block's products summed exactly, the "
        "two block scales applied (power-of-two scales: rounded once to FP32), blocks accumulated in FP32 in order")),
]


def test_kernel_presets_come_from_toml_data():
    from qsim.datapaths import integer as data
    assert (data.PRESET_DIR / "integer.toml").is_file() and (data.PRESET_DIR / "float.toml").is_file()


def test_loaded_kernel_presets_equal_the_old_python_tables():
    assert list(PRESETS.values()) == OLD_INT
    assert list(FLOAT_PRESETS.values()) == OLD_FLOAT
    assert all(type(p) is IntDatapath for p in PRESETS.values())
    assert all(type(p) is FloatDatapath for p in FLOAT_PRESETS.values())


def test_bad_kernel_preset_data_is_refused_naming_file_and_preset(tmp_path):
    from qsim.datapaths.integer import load_presets
    bad = tmp_path / "integer.toml"
    bad.write_text('[p1]\nrequant = "float32"\ncolour = "red"\n')
    with pytest.raises(ValueError, match=r"integer\.toml.*p1.*colour"):
        load_presets(bad, IntDatapath)
    bad.write_text('[p1]\nrequant = "nope"\n')
    with pytest.raises(ValueError, match=r"integer\.toml.*p1.*requant"):
        load_presets(bad, IntDatapath)


def test_extends_gives_the_same_descriptions_as_before():
    """edge-npu-int8-acc16 now extends edge-npu-int8; its old self-contained file is kept in tests/data."""
    text = (Path(load_hardware.__code__.co_filename).parent / "presets" / "edge-npu-int8-acc16.toml").read_text()
    assert 'extends = "edge-npu-int8"' in text
    # the same description but the energy table: the preset now derives its MAC from the datapath
    now, before = load_hardware("edge-npu-int8-acc16"), load_hardware(DATA / "edge-npu-int8-acc16.before-extends.toml")
    assert now == replace(before, energy=now.energy, simplifications=now.simplifications)
    assert before.energy.mac_pj == 0.25 and now.energy.mac_pj is None
    for name in hardware_presets():
        assert load_hardware(name).name == name


def test_extends_merges_tables_key_by_key_and_replaces_arrays(tmp_path):
    child = tmp_path / "child.toml"
    child.write_text('extends = "edge-npu-int8"\nname = "child"\n[array]\nrows = 32\n'
                     '[[memory]]\nname = "sram"\nsize_bytes = 1024\nbandwidth_bytes_per_s = 1e9\n'
                     'energy_pj_per_byte = 1.0\n')
    hw, base = load_hardware(child), load_hardware("edge-npu-int8")
    assert hw.array.rows == 32 and hw.array.cols == base.array.cols and hw.array.clock_hz == base.array.clock_hz
    assert [m.name for m in hw.memory] == ["sram"] and hw.memory[0].size_bytes == 1024
    assert hw.datapath == base.datapath and hw.energy == base.energy


def test_extends_a_file_and_chains(tmp_path):
    (tmp_path / "a.toml").write_text('extends = "edge-npu-int8"\nname = "a"\n[energy]\nmac_pj = 0.5\n')
    (tmp_path / "b.toml").write_text(f'extends = "{tmp_path / "a.toml"}"\nname = "b"\n[array]\nrows = 8\n')
    hw = load_hardware(tmp_path / "b.toml")
    assert (hw.name, hw.energy.mac_pj, hw.array.rows) == ("b", 0.5, 8)


def test_extends_cycle_and_unknown_parent_are_clear_errors(tmp_path):
    a, b = tmp_path / "a.toml", tmp_path / "b.toml"
    a.write_text(f'extends = "{b}"\nname = "a"\n')
    b.write_text(f'extends = "{a}"\nname = "b"\n')
    with pytest.raises(HardwareError, match=r"a\.toml.*extends.*cycle"):
        load_hardware(a)
    c = tmp_path / "c.toml"
    c.write_text('extends = "no-such-machine"\nname = "c"\n')
    with pytest.raises(HardwareError, match=r"c\.toml.*extends.*no-such-machine"):
        load_hardware(c)
    c.write_text('extends = 3\nname = "c"\n')
    with pytest.raises(HardwareError, match=r"c\.toml.*extends must be"):
        load_hardware(c)


def test_unknown_kernel_path_names_both_namespaces():
    with pytest.raises(ValueError) as e:
        datapath_preset("no-such-path")
    msg = str(e.value)
    assert "kernel-path presets" in msg and "machine presets" in msg and "gemmlowp" in msg and "tpu-bf16" in msg


def test_machine_name_used_as_kernel_path_says_so():
    with pytest.raises(ValueError, match=r"'edge-npu-int8' is a machine preset"):
        datapath_preset("edge-npu-int8")


def test_kernel_path_name_used_as_machine_says_so():
    with pytest.raises(HardwareError, match=r"'gemmlowp' is a kernel-path preset"):
        load_hardware("gemmlowp")
    with pytest.raises(HardwareError, match=r"unknown hardware 'nope'.*machine presets.*kernel-path presets"):
        load_hardware("nope")


def test_preset_datapath_naming_a_machine_says_so(tmp_path):
    f = tmp_path / "m.toml"
    f.write_text('extends = "edge-npu-int8"\nname = "m"\n[datapath]\nkernel = "tpu-bf16"\n')
    with pytest.raises(HardwareError, match=r"datapath\.kernel = 'tpu-bf16': that is a machine preset"):
        load_hardware(f)


def test_no_name_is_both_a_kernel_path_and_a_machine():
    """mxfp8 and mxfp4 used to name a kernel path and a machine each."""
    from qsim.plan import preset_kinds
    kinds = preset_kinds()
    assert set(kinds) == set(PRESETS) | set(FLOAT_PRESETS) | set(hardware_presets())
    assert len(kinds) == len(PRESETS) + len(FLOAT_PRESETS) + len(hardware_presets())
    for name in ("mxfp8", "mxfp4"):
        assert kinds[name] == "machine"
        with pytest.raises(ValueError, match=rf"'{name}' is a machine preset"):
            datapath_preset(name)
