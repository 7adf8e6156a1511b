"""Systolic-array cycles and traffic against the closed forms, checked by hand."""

import pytest

from qsim.hardware import load_hardware, roofline_seconds, systolic_gemm


def test_output_stationary_by_hand():
    # M=100, K=64, N=50 on 32x16: folds = 4 * 4 = 16; cycles = 16 * (32 + 16 + 64 - 2) - 1 = 1759
    c = systolic_gemm(100, 64, 50, 32, 16, "output-stationary")
    assert (c.folds, c.cycles) == (16, 1759)
    assert (c.words_a, c.words_b, c.words_c) == (100 * 64 * 4, 64 * 50 * 4, 100 * 50)


def test_weight_stationary_by_hand():
    # folds = ceil(64/32) * ceil(50/16) = 2 * 4 = 8; cycles = 8 * (64 + 16 + 100 - 2) - 1 = 1423
    c = systolic_gemm(100, 64, 50, 32, 16, "weight-stationary")
    assert (c.folds, c.cycles) == (8, 1423)
    assert (c.words_a, c.words_b, c.words_c) == (100 * 64 * 4, 64 * 50, 100 * 50 * 2)


def test_input_stationary_by_hand():
    # folds = ceil(64/32) * ceil(100/16) = 2 * 7 = 14; cycles = 14 * (64 + 16 + 50 - 2) - 1 = 1791
    c = systolic_gemm(100, 64, 50, 32, 16, "input-stationary")
    assert (c.folds, c.cycles) == (14, 1791)
    assert (c.words_a, c.words_b, c.words_c) == (100 * 64, 64 * 50 * 7, 100 * 50 * 2)


def test_roofline_names_the_active_bound():
    t, bound = roofline_seconds(1000, 1e9, {"dram": 4000.0, "sram": 100.0}, {"dram": 1e9, "sram": 1e12})
    assert bound == "dram" and t == pytest.approx(4e-6)
    t, bound = roofline_seconds(10_000, 1e9, {"dram": 10.0}, {"dram": 1e9})
    assert bound == "compute" and t == pytest.approx(1e-5)


@pytest.mark.parametrize("args,match", [
    ((0, 1, 1, 1, 1, "output-stationary"), "M"),
    ((1, 1, 1, 1, 1, "row-stationary"), "dataflow"),
    ((1, 1, 1, 1.5, 1, "output-stationary"), "rows"),
])
def test_bad_arguments(args, match):
    with pytest.raises(ValueError, match=match):
        systolic_gemm(*args)
    with pytest.raises(ValueError, match="bandwidth"):
        roofline_seconds(1, 1e9, {"dram": 1.0}, {})


def test_gemm_layer_cost_by_hand():
    from qsim.hardware.cost import gemm_layer_cost
    from qsim.plan import plan_gemm
    hw = load_hardware("edge-npu-int8")             # 16x16 WS, 500 MHz, sram 384 KiB, dram
    plan = plan_gemm(hw, 64, 256, 128, weight=True)
    assert plan.cost.bits == (8, 8, 8)
    c = gemm_layer_cost(hw, 64, 256, 128, plan.cost)
    # WS: folds = ceil(256/16) * ceil(128/16) = 128; cycles = 128 * (32 + 16 + 64 - 2) - 1
    assert c.cycles == 128 * 110 - 1 and c.macs == 64 * 256 * 128
    # words: A ceil(N/C), B, C written ceil(K/R) times and its partial sums read back ceil(K/R) - 1 times
    sram = 64 * 256 * 8 + 256 * 128 + 64 * 128 * 16 + 64 * 128 * 15
    assert c.bytes_by_level["sram"] == sram
    assert c.bytes_by_level["dram"] == 64 * 256 + 256 * 128 + 64 * 128  # each operand once: fits
    assert c.energy_pj["mac"] == pytest.approx(c.macs * 0.30)
    assert c.energy_pj["sram"] == pytest.approx(sram * 2.5) and c.energy_pj["dram"] == pytest.approx(c.bytes_by_level["dram"] * 250)
    # double-buffered folds (by hand): per fold the SRAM moves (286720 read + 131072 written) / 128
    # = 3264 bytes at 8 GB/s = 408 ns, DRAM (49152 + 8192) / 128 = 448 bytes at 4 GB/s = 112 ns,
    # compute 14079 / 128 cycles at 500 MHz = 219.984 ns: SRAM-bound folds of 408 ns; the first
    # fold's reads (fill, 286720 / 128 / 8e9 = 280 ns) and the last fold's writes (drain, 128 ns)
    # overlap nothing: 280 + 127 x 408 + 219.984 + 128 ns
    assert c.seconds == pytest.approx((280 + 127 * 408 + 219.984 + 128) * 1e-9)
    assert c.bound == "sram"
    assert c.utilization == pytest.approx(c.macs / (c.cycles * 256))


def test_overlap_of_compute_and_memory_by_hand():
    """One fold overlaps nothing: reads + compute + writes. Many folds approach the roofline:
    folds x max(compute, memory) per fold, plus the fill and the drain."""
    from qsim.hardware.cost import overlapped_seconds
    bw = {"sram": 1e9, "dram": 1e8}
    # one fold: 1000 cycles at 1 GHz = 1 us; reads 2000 B of SRAM (2 us) and 100 B of DRAM (1 us),
    # writes 500 B of SRAM (0.5 us): 2 + 1 + 0.5 us
    t, bound = overlapped_seconds(1000, 1, 1e9, {"sram": 2000.0, "dram": 100.0}, {"sram": 500.0}, bw)
    assert t == pytest.approx(3.5e-6) and bound == "sram"
    # ten folds of 1 us compute and (200 + 50) B of SRAM (0.25 us) per fold: compute-bound;
    # fill 0.2 us, nine overlapped folds of 1 us, the last fold's 1 us, drain 0.05 us
    t, bound = overlapped_seconds(10_000, 10, 1e9, {"sram": 2000.0}, {"sram": 500.0}, bw)
    assert t == pytest.approx((0.2 + 9 + 1 + 0.05) * 1e-6) and bound == "compute"
    # memory-bound: 100 folds, DRAM 1000 B per fold (10 us) against 1 us compute
    t, bound = overlapped_seconds(100_000, 100, 1e9, {"dram": 80_000.0}, {"dram": 20_000.0}, bw)
    assert t == pytest.approx((8 + 99 * 10 + 1 + 2) * 1e-6) and bound == "dram"
    with pytest.raises(ValueError, match="'hbm' needs a bandwidth"):
        overlapped_seconds(1, 1, 1e9, {"hbm": 1.0}, {}, bw)


def test_mx_and_sub_byte_formats_scale_the_bytes():
    from qsim.hardware import load_hardware
    from qsim.hardware.cost import GemmCostInputs, gemm_layer_cost
    from qsim.plan import plan_gemm
    hw = load_hardware("mxfp4")
    # 4-bit elements and one 8-bit E8M0 scale per 32; BF16 outputs
    inputs4 = GemmCostInputs((4 + 8 / 32, 4 + 8 / 32, 16.0), plan_gemm(hw, 64, 64, 64, weight=True).cost.mac_pj)
    assert plan_gemm(load_hardware("int4-weight-only"), 64, 64, 64, weight=True).cost.bits == (16.0, 4.0, 16.0)
    assert plan_gemm(load_hardware("nvfp4"), 64, 64, 64, weight=True).cost.bits[:2] == (4.5, 4.5)
    assert plan_gemm(hw, 64, 64, 64, weight=True).cost.bits == inputs4.bits      # the plan charges what it runs
    c4 = gemm_layer_cost(hw, 64, 64, 64, inputs4)
    hw8 = load_hardware("mxfp8")
    c8 = gemm_layer_cost(hw8, 64, 64, 64, plan_gemm(hw8, 64, 64, 64, weight=True).cost)
    a_b_words = 64 * 64 * 1 + 64 * 64 * 1                            # OS, one fold: A and B read once
    assert c8.bytes_by_level["sram"] - c4.bytes_by_level["sram"] == pytest.approx(a_b_words * (8.25 - 4.25) / 8)


def test_mac_energy_follows_an_overridden_accumulator_width():
    """A quoted mac_pj is quoted for the preset's accumulator; a different width moves the adder's
    share by 0.1 pJ / 32 bits (Horowitz 45 nm), which lands on the table's int8_acc16 = 0.25 pJ.
    A derived MAC takes the int16 adder of the energy rules (0.03 (16/8)^q pJ)."""
    from qsim.hardware import override_hardware
    from qsim.hardware.cost import gemm_layer_cost
    from qsim.plan import plan_gemm

    def mac_energy_pj(hw):
        return plan_gemm(hw, 4, 64, 8, weight=True).cost.mac_pj
    quoted = {"energy.mac_pj": 0.30, "energy.accumulator_bits": 32}      # int8_acc32: 0.30 pJ
    base = override_hardware("edge-npu-int8", quoted)
    acc16 = override_hardware("edge-npu-int8", {**quoted, "datapath.accumulator.bits": 16})
    assert mac_energy_pj(base) == 0.30 and mac_energy_pj(acc16) == pytest.approx(0.30 - 16 * 0.1 / 32)
    cost = gemm_layer_cost(acc16, 4, 64, 8, plan_gemm(acc16, 4, 64, 8, weight=True).cost)
    assert cost.energy_pj["mac"] == pytest.approx(4 * 64 * 8 * 0.25 * acc16.energy.calibration)
    derived16 = override_hardware("edge-npu-int8", {"datapath.accumulator.bits": 16})
    assert mac_energy_pj(derived16) == pytest.approx(0.2 + 0.03 * 2 ** 0.868483, rel=1e-5)
    assert mac_energy_pj(derived16) == pytest.approx(mac_energy_pj(load_hardware("edge-npu-int8-acc16")))
    assert mac_energy_pj(load_hardware("tpu-bf16")) == load_hardware("tpu-bf16").energy.mac_pj


def test_mapper_chooses_the_least_energy_or_latency_dataflow():
    from qsim.hardware import override_hardware
    from qsim.hardware.cost import DATAFLOWS, candidate_tilings, fold_tile, gemm_layer_cost, mapped_gemm_cost
    from qsim.plan import plan_gemm
    hw = load_hardware("edge-npu-int8")
    inputs = plan_gemm(hw, 397, 64, 10, weight=True).cost
    every = {df: gemm_layer_cost(hw, 397, 64, 10, inputs, df) for df in DATAFLOWS}
    assert mapped_gemm_cost(hw, 397, 64, 10, inputs).dataflow == hw.array.dataflow      # "fixed"
    by_energy = mapped_gemm_cost(override_hardware("edge-npu-int8", {"array.mapper": "energy"}), 397, 64, 10, inputs)
    assert by_energy.energy_total_pj == min(c.energy_total_pj for c in every.values())
    by_time = mapped_gemm_cost(hw, 397, 64, 10, inputs, mapper="latency")
    assert by_time.seconds <= min(c.seconds for c in every.values())
    # the mapper searched dataflows x tilings: nothing in that set is faster
    pads = hw_pads(hw)
    searched = [gemm_layer_cost(hw, 397, 64, 10, inputs, df, None, t) for df in DATAFLOWS
                for t in candidate_tilings(397, 64, 10, 16, 16, pads, inputs.bits)]
    assert by_time.seconds == min(c.seconds for c in [*searched, *every.values()])
    assert fold_tile(397, 64, 10, 16, 16, "output-stationary") == (16, 64, 10)
    assert fold_tile(397, 64, 10, 16, 16, "weight-stationary") == (397, 16, 10)
    assert fold_tile(397, 64, 10, 16, 16, "input-stationary") == (16, 16, 10)
    with pytest.raises(ValueError, match="array.mapper"):
        override_hardware("edge-npu-int8", {"array.mapper": "fastest"})


def test_simulate_records_the_mapper_choice(tmp_path):
    from qsim.hardware import override_hardware
    from qsim.io import read_records, write_records
    from qsim.sim import simulate
    hw = override_hardware("edge-npu-int8", {"array.mapper": "latency"})
    records = simulate("digits-cnn", hw)
    gemms = [r for r in records if r.get("unit") == "gemm"]
    assert gemms and all(r["dataflow"] in ("output-stationary", "weight-stationary", "input-stationary")
                         and r["tile_M"] <= r["M"] and r["tile_K"] <= r["K"] and r["tile_N"] <= r["N"]
                         and (r["loop_order"] == "untiled" or sorted(r["loop_order"]) == ["k", "m", "n"])
                         for r in gemms)
    write_records(records, tmp_path / "runs", hw)
    table = read_records(tmp_path / "runs")
    assert set(table["dataflow"].dropna()) == {r["dataflow"] for r in gemms}


@pytest.mark.parametrize("overrides,match", [
    ({"array.rows": 0}, "array.rows"),
    ({"memory": [{"name": "sram", "size_bytes": 0, "bandwidth_bytes_per_s": 1e9, "energy_pj_per_byte": 1}]},
     r"memory\[0\].size_bytes"),
    ({"memory": [{"name": "sram", "size_bytes": 4096, "bandwidth_bytes_per_s": 1e9, "energy_pj_per_byte": 1,
                  "scratchpads": {"ifmap_bytes": 1024, "filter_bytes": 0, "ofmap_bytes": 1024}}]},
     r"memory\[0\].scratchpads.filter_bytes"),
    ({"memory": [{"name": "sram", "size_bytes": 1024, "bandwidth_bytes_per_s": 1e9, "energy_pj_per_byte": 1,
                  "scratchpads": {"ifmap_bytes": 1024, "filter_bytes": 1024, "ofmap_bytes": 1024}}]},
     r"memory\[0\].scratchpads.*exceed size_bytes"),
])
def test_bad_sizes_name_the_key(overrides, match):
    from qsim.hardware import HardwareError, override_hardware
    with pytest.raises(HardwareError, match=match):
        override_hardware("edge-npu-int8", overrides)


def test_scratchpad_too_small_for_one_tile():
    from qsim.hardware import override_hardware
    from qsim.hardware.cost import CostError, gemm_layer_cost
    from qsim.plan import plan_gemm
    level = {"name": "sram", "size_bytes": 8192, "bandwidth_bytes_per_s": 1e9, "energy_pj_per_byte": 1,
             "scratchpads": {"ifmap_bytes": 16, "filter_bytes": 2048, "ofmap_bytes": 2048}}
    hw = override_hardware("edge-npu-int8", {"memory": [level]})            # 16x16 array: 16 B of A < 32 B
    with pytest.raises(CostError, match=r"memory\[0\].scratchpads.ifmap_bytes: 16 bytes cannot hold one tile"):
        gemm_layer_cost(hw, 64, 64, 64, plan_gemm(hw, 64, 64, 64, weight=True).cost)


def test_tiled_traffic_hand_worked():
    from qsim.hardware.cost import Scratchpads, Tiling, tiled_traffic
    pads = Scratchpads(65536, 65536, 65536)
    # 64 x 64 x 64 on 8 x 8 OS in 32 x 64 x 32 tiles, loops n (outer), m, k: A's tiles change with m
    # inside n, so A crosses DRAM once per n tile (2 x 4096); B's change with n only, but m runs
    # inside n, so B once per m tile too (2 x 4096); C's tile is finished before moving on (4096)
    t = tiled_traffic(64, 64, 64, 8, 8, "output-stationary", pads, Tiling(32, 64, 32, "nmk"))
    assert (t.dram_reads_a, t.dram_reads_b, t.dram_writes_c, t.dram_reads_c) == (8192, 8192, 4096, 0)
    # each of the 4 tiles: 4 x 4 folds of (8 + 8 + 64 - 2) cycles, less 1
    assert t.cycles == 4 * (16 * 78 - 1) and t.folds == 64
    # K split in two with its loop outermost: C's partial sums go out once and come back once
    t = tiled_traffic(64, 64, 64, 8, 8, "output-stationary", pads, Tiling(64, 32, 64, "kmn"))
    assert (t.dram_reads_a, t.dram_reads_b, t.dram_writes_c, t.dram_reads_c) == (4096, 4096, 8192, 4096)
    assert t.sram_reads_c == 4096                     # the second K tile adds to the first's partial sums
    # an edge tile: 40 = 32 + 8 rows of M
    t = tiled_traffic(40, 64, 64, 8, 8, "output-stationary", pads, Tiling(32, 64, 64, "mnk"))
    assert t.folds == 4 * 8 + 1 * 8 and t.dram_reads_a == 40 * 64 and t.dram_reads_b == 2 * 64 * 64


def test_a_tile_that_does_not_fit_is_refused_and_never_a_candidate():
    from qsim.hardware.cost import Scratchpads, Tiling, candidate_tilings, tile_fits, tiled_traffic
    pads = Scratchpads(4096, 4096, 4096)              # 2 KiB active halves
    with pytest.raises(ValueError, match="C does not fit"):
        tiled_traffic(256, 128, 256, 16, 16, "output-stationary", pads, Tiling(64, 32, 64))
    with pytest.raises(ValueError, match="tile K"):
        tiled_traffic(256, 128, 256, 16, 16, "output-stationary", pads, Tiling(64, 256, 16))
    candidates = candidate_tilings(256, 128, 256, 16, 16, pads, (8, 8, 8))
    assert candidates and all(all(tile_fits(t, pads, (8, 8, 8))) for t in candidates)
    assert Tiling(32, 32, 64, "nmk") in candidates and all((t.m, t.n) != (64, 64) for t in candidates)
    # 4-bit operands: twice the words fit
    assert any((t.m, t.k) == (64, 64) for t in candidate_tilings(256, 128, 256, 16, 16, pads, (4, 4, 4)))


def test_mapper_chooses_a_tiling_when_it_is_strictly_better():
    from qsim.hardware import override_hardware
    from qsim.hardware.cost import DATAFLOWS, gemm_layer_cost, mapped_gemm_cost, tile_fits
    from qsim.plan import plan_gemm
    # small scratchpads (4 KiB each), costly DRAM: untiled, A (256 x 128) is re-read once per column fold
    memory = [{"name": "sram", "size_bytes": 12288, "bandwidth_bytes_per_s": 8e9, "energy_pj_per_byte": 2.5,
               "scratchpads": {"ifmap_bytes": 4096, "filter_bytes": 4096, "ofmap_bytes": 4096}},
              {"name": "dram", "size_bytes": 67108864, "bandwidth_bytes_per_s": 4e9, "energy_pj_per_byte": 250}]
    hw = override_hardware("edge-npu-int8", {"memory": memory, "array.mapper": "energy"})
    inputs = plan_gemm(hw, 256, 128, 256, weight=True).cost
    untiled = min(gemm_layer_cost(hw, 256, 128, 256, inputs, df).energy_total_pj for df in DATAFLOWS)
    chosen = mapped_gemm_cost(hw, 256, 128, 256, inputs)
    assert chosen.tiling is not None and chosen.energy_total_pj < untiled
    assert all(tile_fits(chosen.tiling, hw_pads(hw), inputs.bits))
    t = chosen.traffic
    assert t.dram_reads_a + t.dram_reads_b < 256 * 128 * 16     # fewer than untiled's A alone
    # with scratchpads that hold everything, no tiling beats the untiled loop: it stays untiled
    roomy = override_hardware("edge-npu-int8", {"array.mapper": "energy"})
    assert mapped_gemm_cost(roomy, 64, 64, 64, plan_gemm(roomy, 64, 64, 64, weight=True).cost).tiling is None


def hw_pads(hw):
    from qsim.hardware.cost import Scratchpads
    return Scratchpads(*hw.memory[0].operand_bytes)
