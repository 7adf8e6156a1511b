"""The plan stage (qsim.plan): one resolution of a hardware description per GEMM, used by the
simulator, the cost model, golden and `qsim hardware --show`."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import pytest

import numpy as np

from qsim.formats import IntFormat, format as get_format
from qsim.formats.block import block_format
from qsim.hardware import hardware_presets, load_hardware, override_hardware
from qsim.hardware.cost import systolic_gemm
from qsim.hardware.energy import mac_pj
from qsim.plan import plan_gemm

PRESETS = hardware_presets()


def _operand_bits(op) -> float:
    """Storage bits of an element, plus its block's scale (whole bytes) spread over the block."""
    if op.granularity != "block":
        return get_format(op.format).storage_bits
    f = block_format(op.format)
    elements = op.block_size or int(np.prod(f.block))
    return f.element.storage_bits + 8 * -(-f.scale.storage_bits // 8) / elements


def _described_bits(hw, weight: bool) -> tuple[float, float, float]:
    """Bits per element of A, B, C read off the description itself."""
    d = hw.datapath
    return (_operand_bits(d.activations), _operand_bits(d.weights if weight else d.activations),
            get_format(d.output).storage_bits)


@pytest.mark.parametrize("preset", PRESETS)
def test_plan_is_what_the_simulator_ran_and_the_cost_model_charged(preset):
    from qsim.sim import simulate
    hw = load_hardware(preset)
    fc1 = next(r for r in simulate("digits-mlp", hw) if r["layer"] == "fc1")     # one weight GEMM
    m, k, n = fc1["M"], fc1["K"], fc1["N"]
    plan = plan_gemm(hw, m, k, n, weight=True)
    assert fc1["datapath"] == plan.datapath
    assert plan.cost.bits == _described_bits(hw, weight=True)
    words = systolic_gemm(m, k, n, hw.array.rows, hw.array.cols, hw.array.dataflow)
    near = hw.memory[0].name
    bits = plan.cost.bits
    # C: written once per K fold (stationary weights or inputs), partial sums read back once less
    folds = 1 if hw.array.dataflow == "output-stationary" else -(-k // hw.array.rows)
    assert words.words_c == m * n * folds
    assert fc1[f"bytes_{near}"] == pytest.approx((words.words_a * bits[0] + words.words_b * bits[1]
                                                  + m * n * (2 * folds - 1) * bits[2]) / 8)
    assert fc1["energy_mac_pj"] == pytest.approx(m * k * n * plan.cost.mac_pj * hw.energy.calibration)


@pytest.mark.parametrize("preset", PRESETS)
def test_plan_follows_the_description(preset):
    hw = load_hardware(preset)
    d = hw.datapath
    path = hw.resolve_datapath()
    for weight in (True, False):
        plan = plan_gemm(hw, 256, 1024, 1024, weight)
        b_op = d.weights if weight else d.activations
        assert plan.datapath == path.name and plan.kernel.path == path
        assert plan.output.format == d.output
        # B of an activation product with per-token activations (K^T, V): one scale per tensor
        b_granularity = "per-tensor" if not weight and b_op.granularity == "per-token" else b_op.granularity
        assert plan.a.granularity == d.activations.granularity and plan.b.granularity == b_granularity
        if d.kind == "integer":
            assert plan.a.format == d.activations.format and plan.b.format == b_op.format
            assert plan.kernel.kind == "integer"
            assert plan.kernel.accumulator.bits == dict(d.accumulator).get("bits", 32)
            assert plan.b.symmetric == b_op.symmetric
            assert plan.output.method == ("scale-to-float" if d.activations.dynamic else "requantize")
        elif d.activations.granularity == "block":
            assert plan.kernel.kind == "block"
            assert plan.a.block_format == block_format(d.activations.format)
            assert plan.b.block_format == block_format(b_op.format)
        elif weight and isinstance(get_format(d.weights.format), IntFormat):
            assert plan.b.granularity == "per-group" and plan.b.block == d.weights.group_size
            assert plan.kernel.b_format == d.activations.format
        if hw.energy.mac_pj is None:              # derived from the kernel's formats at the node
            assert plan.cost.mac_pj == mac_pj(plan.kernel, plan.a.block_format, hw.energy.node_nm)
        else:
            bits = plan.kernel.accumulator.bits if d.kind == "integer" else None
            assert plan.cost.mac_pj == hw.energy.mac_pj_at(bits)


def test_a_changed_key_changes_the_plan():
    base = plan_gemm(load_hardware("mxfp8"), 64, 64, 64, True)
    block16 = plan_gemm(override_hardware("mxfp8", {"datapath.activations.block_size": 16,
                                                    "datapath.weights.block_size": 16}), 64, 64, 64, True)
    assert (base.a.block, block16.a.block, block16.b.block) == (32, 16, 16)
    assert block16.a.block_format.block == block16.b.block_format.block == (16,)
    assert block16.cost.bits[:2] == (8.5, 8.5) and base.cost.bits[:2] == (8.25, 8.25)

    base = plan_gemm(load_hardware("edge-npu-int8"), 64, 64, 64, True)
    acc16 = plan_gemm(override_hardware("edge-npu-int8", {"datapath.accumulator.bits": 16}), 64, 64, 64, True)
    assert base.kernel.accumulator.bits == 32 and acc16.kernel.accumulator.bits == 16
    assert acc16.cost.mac_pj < base.cost.mac_pj and acc16.datapath != base.datapath
    tensor = plan_gemm(override_hardware("edge-npu-int8", {"datapath.weights.granularity": "per-tensor"}), 64, 64, 64, True)
    assert base.b.granularity == "per-channel" and tensor.b.granularity == "per-tensor"
    dynamic = plan_gemm(override_hardware("edge-npu-int8", {"datapath.activations.dynamic": True,
                                                            "datapath.output.format": "fp32"}), 64, 64, 64, True)
    assert base.a.range == "calibrated" and dynamic.a.range == "dynamic"
    assert dynamic.output.method == "scale-to-float"


def test_fp32_layers_plan_an_fp32_gemm():
    hw = load_hardware("mxfp4")
    plan = plan_gemm(hw, 8, 64, 8, True, full_precision=True)
    assert plan.kernel.kind == "fp32-layer" and plan.cost.bits == (32, 32, 32)


def test_the_simulator_executes_the_plan_and_plans_each_gemm_once(monkeypatch):
    """A plan altered on its way to the executor is what runs: edge-npu-int8 planned with
    per-tensor weights gives the results of the description with per-tensor weights."""
    import importlib
    sim = importlib.import_module("qsim.sim.simulate")
    calls = []

    def per_tensor(hw, m, k, n, weight, full_precision=False):
        calls.append((m, k, n, weight))
        plan = plan_gemm(hw, m, k, n, weight, full_precision)
        return replace(plan, b=replace(plan.b, granularity="per-tensor")) if weight else plan

    monkeypatch.setattr(sim, "plan_gemm", per_tensor)
    altered = sim.simulate("digits-cnn", "edge-npu-int8")
    monkeypatch.undo()
    wanted = sim.simulate("digits-cnn", override_hardware("edge-npu-int8", {"datapath.weights.granularity": "per-tensor"}))
    assert [r["sqnr_db"] for r in altered] == [r["sqnr_db"] for r in wanted]
    assert [r["sqnr_db"] for r in altered] != [r["sqnr_db"] for r in sim.simulate("digits-cnn", "edge-npu-int8")]
    assert len(calls) == len(set(calls)) == sum(r.get("unit") == "gemm" for r in altered)     # one plan per GEMM


def test_golden_resolves_a_description_as_the_plan_does(tmp_path):
    from qsim.golden import make_golden, resolve_datapath
    from qsim.hardware.spec import PRESET_DIR
    toml = tmp_path / "mx16.toml"
    text = (PRESET_DIR / "mxfp8.toml").read_text().replace('format = "mxfp8_e4m3" }', 'format = "mxfp8_e4m3", block_size = 16 }')
    toml.write_text(text)
    path, hw = resolve_datapath(str(toml))
    assert path == plan_gemm(hw, 64, 64, 64, True).kernel.path and hw.datapath.activations.block.block == (16,)
    assert make_golden("mx", datapath=str(toml), random=1).info["block_size"] == 16


def test_show_prints_the_plan_of_a_typical_layer():
    run = subprocess.run([sys.executable, "-P", "-m", "qsim.cli", "hardware", "--show", "int4-weight-only"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "256x1024 @ 1024x1024" in run.stdout
    assert "int4 per-group of 128" in run.stdout and "bits per element A, B, C: 16, 4, 16" in run.stdout


# -- the report describes a dataset by its stored description ------------------------------------
def _stored_report(tmp_path, stored: dict) -> str:
    from report_datasets import toy_run

    from qsim.io import write_records
    from qsim.report import build_report
    rows = toy_run("a", stored["name"], 0.8, 1e6)
    write_records(rows, tmp_path / "d", metadata={"hardware": {rows[0]["config_hash"]: stored}})
    return build_report(tmp_path / "d", tmp_path / "r.html")[0].read_text()


def test_the_report_describes_a_retired_preset_as_stored(tmp_path):
    from dataclasses import asdict
    stored = asdict(load_hardware("edge-npu-int8"))
    stored["name"] = "retired-npu"
    stored["datapath"]["kernel"] = "retired-kernel"           # no such kernel path today
    stored["resolved"].update(datapath="retired-kernel+acc24w", datapath_description="a kernel path of long ago",
                              accumulator="int24, wrap", mac_pj=0.123)
    html = _stored_report(tmp_path, stored)
    for fact in ("retired-kernel+acc24w", "a kernel path of long ago", "int24, wrap", "0.123 pJ"):
        assert fact in html


def test_an_older_dataset_is_not_described_by_todays_presets(tmp_path):
    """A description stored before the resolved facts were: only what it says is shown."""
    from dataclasses import asdict

    from qsim.datapaths import PRESETS
    stored = asdict(load_hardware("edge-npu-int8"))
    del stored["resolved"]
    html = _stored_report(tmp_path, stored)
    assert stored["datapath"]["kernel"] in html and PRESETS[stored["datapath"]["kernel"]].description not in html


def test_stored_facts_are_the_plan():
    hw = override_hardware("mxfp8", {"datapath.activations.block_size": 16, "datapath.weights.block_size": 16})
    facts = hw.resolved
    assert facts["datapath"] == "block-dot" and "blocks of 16" in facts["quantization"]
    assert facts["mac_pj"] == plan_gemm(hw, 1, 1, 1, True).cost.mac_pj
    assert facts["plan"]["weight GEMM"] == dict(plan_gemm(hw, 256, 1024, 1024, True).describe())


def test_the_report_imports_neither_hardware_nor_the_simulator():
    import ast
    from pathlib import Path

    import qsim.report
    for source in Path(qsim.report.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.ImportFrom):
                module = "." * node.level + (node.module or "")
                assert not any(part in ("hardware", "sim", "plan") for part in module.strip(".").split(".")[:1]), \
                    f"{source.name} imports {module}"


def test_config_hash_is_the_descriptions_and_follows_every_setting():
    from qsim.sim.simulate import config_hash
    base = load_hardware("edge-npu-int8")
    assert config_hash(base) == base.config_hash == load_hardware("edge-npu-int8").config_hash
    for key, value in (("datapath.accumulator.bits", 16), ("datapath.weights.granularity", "per-tensor"),
                       ("array.rows", 32), ("energy.mac_pj", 0.5)):
        assert override_hardware("edge-npu-int8", {key: value}).config_hash != base.config_hash, key


def test_config_hash_is_on_the_datapath_description_itself():
    base = load_hardware("edge-npu-int8").datapath
    assert base.config_hash == load_hardware("edge-npu-int8").datapath.config_hash
    assert load_hardware("edge-npu-int8-acc16").datapath.config_hash != base.config_hash
    moved = override_hardware("edge-npu-int8", {"array.rows": 32})       # the machine changes, the datapath does not
    assert moved.datapath.config_hash == base.config_hash and moved.config_hash != load_hardware("edge-npu-int8").config_hash


def test_one_namespace_of_presets():
    from qsim.datapaths import FLOAT_PRESETS, PRESETS
    from qsim.plan import preset_kinds
    kinds = preset_kinds()
    assert len(kinds) == len(PRESETS) + len(FLOAT_PRESETS) + len(PRESETS_MACHINES)
    assert {n for n, k in kinds.items() if k == "machine"} == set(PRESETS_MACHINES)
    assert not (set(PRESETS) | set(FLOAT_PRESETS)) & set(PRESETS_MACHINES)


PRESETS_MACHINES = hardware_presets()
