"""Hardware descriptions: the shipped presets load and match their cited peaks; a malformed
description is an error that names the key."""

import pytest

from qsim.datapaths import Accumulator, FloatDatapath, IntDatapath
from qsim.hardware import HardwareError, hardware_presets, load_hardware, parse_hardware

PRESETS = ["edge-npu-int8", "edge-npu-int8-acc16", "h100-fp8", "tpu-bf16", "mi300-fp8fnuz", "mxfp8", "mxfp4",
           "int4-weight-only", "fp32-reference", "nvfp4", "fp8-blockwise", "x86-cpu-ort",
           "int8-per-token"]


def test_every_preset_ships_and_loads():
    assert sorted(hardware_presets()) == sorted(PRESETS)
    for name in PRESETS:
        hw = load_hardware(name)
        assert hw.name == name and hw.energy.source and all(level.source for level in hw.memory)
        assert isinstance(hw.resolve_datapath(), (IntDatapath, FloatDatapath))


@pytest.mark.parametrize("name,tmacs", [
    ("h100-fp8", 1978.9 / 2), ("tpu-bf16", 275 / 2), ("mi300-fp8fnuz", 2614.9 / 2), ("edge-npu-int8", 0.256 / 2),
])
def test_peaks_match_the_cited_dense_figures(name, tmacs):
    """hardware_presets.yaml: dense TFLOPS (2 ops per MAC)."""
    assert load_hardware(name).peak_macs_per_s / 1e12 == pytest.approx(tmacs, rel=2e-3)


def test_accumulator_override_resolves_to_a_16_bit_saturating_datapath():
    path = load_hardware("edge-npu-int8-acc16").resolve_datapath()
    assert path.accumulator == Accumulator(16, "saturate")
    assert path.requant == load_hardware("edge-npu-int8").resolve_datapath().requant




def edited(old: str, new: str) -> str:
    text = load_text()
    assert old in text
    return text.replace(old, new, 1)


def load_text() -> str:
    from qsim.hardware.spec import PRESET_DIR
    return (PRESET_DIR / "edge-npu-int8.toml").read_text()


@pytest.mark.parametrize("old,new,match", [
    ("rows = 16", "rows = 0", "array.rows must be a positive integer"),
    ("rows = 16", "rows = true", "array.rows"),
    ('dataflow = "weight-stationary"', 'dataflow = "row-stationary"', "array.dataflow must be one of"),
    ('kernel = "gemmlowp"', 'kernel = "tpu"', "datapath.kernel = 'tpu': unknown kernel path; choose one of"),
    ('weights = { format = "int8"', 'weights = { format = "int9x"', "datapath.weights.format"),
    ('weights = { format = "int8"', 'weights = { fmt = "int8"', "missing key datapath.weights.format"),
    ('output = { format = "int8" }', 'output = { format = "int8", rounding = "rne" }', "unknown key datapath.output.rounding"),
    ('vector_format = "fp32"', 'vector_format = "fp32"\nkind = "integer"', "unknown key datapath.kind"),
    ("clock_hz = 500e6", "", "missing key array.clock_hz"),
    ("node_nm = 45", "node_nm = 45\nmac_nj = 1", "unknown key energy.mac_nj"),
    ("simplifications = [\n", 'simplifications = ["",\n', "simplifications must be a list of non-empty strings"),
    ("node_nm = 45", "node_nm = 5", r"energy.node_nm = 5: outside the range of the cited energy data \(7 to 45 nm\)"),
    ("energy_pj_per_byte = 2.5", "energy_pj_per_byte = -1", r"memory\[0\].energy_pj_per_byte"),
    ('name = "dram"', 'name = "sram"', "distinct"),
    ("[array]", "[array", "malformed TOML"),
    ('output = { format = "int8" }', 'output = { format = "int8" }\naccumulator = { bits = 7 }', "datapath.accumulator.bits = 7"),
])
def test_malformed_descriptions_name_the_key(old, new, match):
    with pytest.raises(HardwareError, match=match):
        parse_hardware(edited(old, new), "test.toml")


def test_unknown_preset_and_missing_file():
    with pytest.raises(HardwareError, match="unknown hardware 'tpu-v9'"):
        load_hardware("tpu-v9")
    with pytest.raises(HardwareError, match="cannot read"):
        load_hardware("/nonexistent/x.toml")


def test_hardware_command_lists_and_shows():
    import subprocess
    import sys
    run = subprocess.run([sys.executable, "-P", "-m", "qsim.cli", "hardware"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and all(name in run.stdout for name in PRESETS)
    run = subprocess.run([sys.executable, "-P", "-m", "qsim.cli", "hardware", "--show", "edge-npu-int8-acc16"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and "accumulator.bits=16" in run.stdout and "Horowitz" in run.stdout
    # int8 x int8 into int16 at 45 nm: 282 + 36 (16/8)^q um^2, q = log(137/36)/log(4)
    assert "MAC area: 352.2 um^2 at 45 nm" in run.stdout
