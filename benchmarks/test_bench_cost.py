"""Issue 17 speed targets: the cost of one layer (cycles, traffic per operand and level, energy) at
least 1000x faster than SCALE-Sim v3 on the same layer (a GEMM, and a convolution whose operands
go through SCALE-Sim's read window, replayed by qsim); `qsim compare --iso 7 --model digits-cnn`
with the mapper over every preset under 10 s. SCALE-Sim runs in its own virtual
environment (tests/hardware/scalesim/oracle.py), so its time includes starting that interpreter
(about 1 s of its few seconds)."""

import sys
from pathlib import Path

from qsim.hardware import load_hardware
from qsim.hardware.cost import Scratchpads, gemm_layer_cost, systolic_traffic
from qsim.plan import plan_gemm

sys.path.insert(0, str(Path(__file__).parents[1] / "tests" / "hardware" / "scalesim"))
from oracle import run_scalesim, scalesim_python  # noqa: E402

LAYER = dict(kind="gemm", M=64, K=64, N=64, rows=8, cols=8, dataflow="ws", sram_kb=[4, 4, 4])


def test_layer_cost_qsim(benchmark, mark_role):
    benchmark.group = "one layer's cost, 64x64x64 on 8x8 WS"
    mark_role("qsim", target=1000)
    pads = Scratchpads(4096, 4096, 4096)
    t = benchmark(systolic_traffic, 64, 64, 64, 8, 8, "weight-stationary", pads, (8, 8, 8), None, "scalesim")
    assert t.cycles == 8 * 8 * (16 + 8 + 64 - 2) - 1


def test_layer_cost_qsim_with_energy(benchmark, mark_role):
    benchmark.group = "one layer's cost, 64x64x64 on 8x8 WS"
    mark_role("qsim", target=1000)
    hw = load_hardware("edge-npu-int8")
    inputs = plan_gemm(hw, 64, 64, 64, weight=True).cost
    cost = benchmark(gemm_layer_cost, hw, 64, 64, 64, inputs)
    assert cost.macs == 64 ** 3


def test_layer_cost_scalesim(benchmark, mark_role):
    benchmark.group = "one layer's cost, 64x64x64 on 8x8 WS"
    mark_role("peer", peer="scalesim 3.0.0 (subprocess)")
    run_scalesim([LAYER])                            # the environment made before timing
    out = benchmark.pedantic(run_scalesim, args=([LAYER],), rounds=1, iterations=1)
    assert out[0]["compute_cycles"] == 8 * 8 * (16 + 8 + 64 - 2) - 1


CONV = dict(kind="conv", H=12, W=12, R=3, S=3, C=8, F=16, stride=1, rows=8, cols=8, dataflow="os", sram_kb=[1, 1, 1])


def test_conv_cost_with_read_window_replay_qsim(benchmark, mark_role):
    """A convolution whose input and filter exceed their 1 KiB scratchpads: SCALE-Sim's counting
    replays both traces through its read window (qsim.hardware.scalesim_replay)."""
    from qsim.hardware.scalesim_replay import Im2col
    benchmark.group = "a conv's cost with the read-window replay, 12x12x8 3x3x16 on 8x8 OS, 1 KiB"
    mark_role("qsim", target=1000)
    pads = Scratchpads(1024, 1024, 1024)
    conv = Im2col(12, 12, 3, 3, 8, 1)
    t = benchmark(systolic_traffic, 100, 72, 16, 8, 8, "output-stationary", pads, (8, 8, 8), None, "scalesim", conv)
    assert not any(t.fits[:2])


def test_conv_cost_with_read_window_replay_scalesim(benchmark, mark_role):
    benchmark.group = "a conv's cost with the read-window replay, 12x12x8 3x3x16 on 8x8 OS, 1 KiB"
    mark_role("peer", peer="scalesim 3.0.0 (subprocess)")
    scalesim_python()                                # the environment made before timing
    out = benchmark.pedantic(run_scalesim, args=([CONV],), rounds=1, iterations=1)
    assert out[0]["dram_reads_a"] > 0


def test_compare_iso_with_the_mapper_over_every_preset(benchmark, mark_role, tmp_path, capsys):
    """`qsim compare --iso 7 --model digits-cnn --set array.mapper=energy`, every preset, in process
    (the interpreter's start and qsim's import left out); target: under 10 s."""
    import time

    from qsim.cli import main
    from qsim.hardware import hardware_presets
    benchmark.group = "qsim compare --iso 7, digits-cnn, mapper"
    mark_role("qsim", seconds_target=10)
    runs = iter(range(100))

    def compare():
        out = tmp_path / f"run{next(runs)}"
        return main(["compare", "--iso", "7", "--model", "digits-cnn", "--set", "array.mapper=energy",
                     "--out", str(out)])
    start = time.perf_counter()
    assert benchmark.pedantic(compare, rounds=1, iterations=1) == 0
    elapsed = time.perf_counter() - start
    summary = capsys.readouterr().out
    assert all(f"| {name} array.mapper=energy@7nm |" in summary for name in hardware_presets())
    with capsys.disabled():
        print(f"\nqsim compare --iso 7 --model digits-cnn, mapper, {len(hardware_presets())} presets: {elapsed:.2f} s "
              f"(target 10 s)")
