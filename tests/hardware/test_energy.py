"""MAC energy as a function of the operand formats, the accumulator and the technology node
(qsim.hardware.energy), held to the cited primitives (energy.toml) and to the ranges the
literature gives; the expected numbers are the citations or worked by hand, not taken from
the code under test."""

from dataclasses import replace

import pytest

from qsim.datapaths import FLOAT_PRESETS, PRESETS
from qsim.formats.block import block_format
from qsim.hardware import HardwareError, load_hardware, override_hardware
from qsim.hardware.energy import NodeError, check_node, energy_table, exact_sum_bits, mac_terms, primitives, rules
from qsim.plan import Kernel, plan_gemm


def _int(bits_a=8, bits_b=8, acc=32):
    path = replace(PRESETS["gemmlowp"], accumulator=replace(PRESETS["gemmlowp"].accumulator, bits=acc))
    return Kernel("integer", f"int{bits_a}" if bits_a != 4 else "int4", f"int{bits_b}" if bits_b != 4 else "int4", path)


def _float(fmt, acc="fp32"):
    path = replace(FLOAT_PRESETS["fp32-sequential"],
                   accumulator=replace(FLOAT_PRESETS["fp32-sequential"].accumulator, format=acc))
    return Kernel("float", fmt, fmt, path)


def _mac(kernel, node=45, block=None):
    return mac_terms(kernel, block, node).total


@pytest.mark.parametrize("node", [45, 7])
def test_rules_reproduce_every_cited_primitive(node):
    """Each rule passes exactly through the cited points it is fitted to."""
    p, r = primitives(node), rules(node)
    assert r.int_add(8) == pytest.approx(p["int8_add"]) and r.int_add(32) == pytest.approx(p["int32_add"])
    assert r.int_mul(8, 8) == pytest.approx(p["int8_mul"]) and r.int_mul(32, 32) == pytest.approx(p["int32_mul"])
    assert r.float_mul(11, 5, 11, 5) == pytest.approx(p["fp16_mul"])
    assert r.float_mul(24, 8, 24, 8) == pytest.approx(p["fp32_mul"])
    assert r.float_add(11, 5) == pytest.approx(p["fp16_add"]) and r.float_add(24, 8) == pytest.approx(p["fp32_add"])


def test_cited_numbers_as_published():
    """Horowitz 45 nm and Jouppi et al. 7 nm as the papers print them."""
    t = energy_table()["energy"]
    assert (t["45"]["int8_mul"]["pj"], t["45"]["fp32_mul"]["pj"], t["45"]["fp32_add"]["pj"]) == (0.2, 3.7, 0.9)
    assert (t["7"]["int8_mul"]["pj"], t["7"]["fp32_mul"]["pj"], t["7"]["int32_add"]["pj"]) == (0.07, 1.31, 0.03)
    for table in t.values():
        for entry in table.values():
            assert entry["src"] in energy_table()["sources"] and entry["status"] in ("verified", "recalled")


def test_scalar_macs_by_hand():
    """int8 x int8 into int32 = int8 mul + int32 add: 0.2 + 0.1 at 45 nm, 0.07 + 0.03 at 7 nm;
    fp32 MAC = 3.7 + 0.9; int16 accumulator: 0.2 + 0.03 (16/8)^q, q = log(0.1/0.03)/log(4)."""
    assert _mac(_int()) == pytest.approx(0.3)
    assert _mac(_int(), 7) == pytest.approx(0.1)
    assert _mac(_float("fp32")) == pytest.approx(4.6)
    assert _mac(_int(acc=16)) == pytest.approx(0.2 + 0.03 * 2 ** 0.868483, rel=1e-5)


def test_monotonic_in_significand_width():
    """More significand bits never cost less: e<E>m<M> for M = 1..7 at fixed E, and integers."""
    for node in (45, 16, 7):
        floats = [_mac(_float(f"e5m{m}", "fp16"), node) for m in range(1, 8)]
        assert floats == sorted(floats) and len(set(floats)) == len(floats)
        ints = [_mac(_int(b, b), node) for b in (4, 8)]
        assert ints[0] < ints[1]


@pytest.mark.parametrize("node", [45, 28, 7])
def test_order_of_formats_at_one_node(node):
    """int8 < fp8 < bf16 < fp32, each into FP32 (int8 into int32)."""
    int8, fp8, bf16, fp32 = (_mac(_int(), node), _mac(_float("e4m3"), node), _mac(_float("bf16"), node),
                             _mac(_float("fp32"), node))
    assert int8 < fp8 < bf16 < fp32


@pytest.mark.parametrize("node", [45, 7])
@pytest.mark.parametrize("fp8", ["e4m3", "e5m2"])
def test_fp8_over_int8_within_van_baalen(node, fp8):
    """van Baalen et al. 2023: an FP8 MAC (FP16 accumulator) costs 1.5-2.8x an INT8 MAC (INT32)."""
    check = energy_table()["checks"]["fp8_over_int8_mac"]
    ratio = _mac(_float(fp8, "fp16"), node) / _mac(_int(), node)
    assert check["low"] <= ratio <= check["high"]


def test_block_formats_add_the_amortized_scale_cost():
    """MXFP8 = the e4m3 products summed exactly in a fixed-point adder, plus per block of 32 the
    E8M0 scale add (8-bit integer add) and one FP32 add: (0.03 + 0.9) / 32 at 45 nm."""
    mx = block_format("mxfp8_e4m3")
    kernel = Kernel("block", "e4m3", "e4m3", FLOAT_PRESETS["block-dot"])
    t = mac_terms(kernel, mx, 45)
    assert t.block == pytest.approx((0.03 + 0.9) / 32)
    # e4m3 products span 448^2 / (2^-9)^2: 36 bits, a sign, 5 bits of carries over 32
    assert exact_sum_bits(mx.element, 32) == 36 + 1 + 5
    assert t.multiply == pytest.approx(rules(45).float_mul(4, 4, 4, 4))
    # a longer block amortizes the same per-block work over more MACs
    long = replace(mx, name="mx64", block=(64,))
    assert mac_terms(kernel, long, 45).block == pytest.approx((0.03 + 0.9) / 64)
    # NVFP4: UE4M3 scales are multiplied, not added: more per block than MXFP4's, over half the length
    fp4 = Kernel("block", "fp4_e2m1", "fp4_e2m1", FLOAT_PRESETS["block-dot"])
    assert mac_terms(fp4, block_format("nvfp4"), 45).block > 2 * mac_terms(fp4, block_format("mxfp4"), 45).block


def test_node_interpolation_between_cited_nodes():
    """Each primitive log-log between 45 and 7 nm: at the geometric mean of the nodes, the
    geometric mean of the energies."""
    mid = (45 * 7) ** 0.5
    assert primitives(mid)["int8_mul"] == pytest.approx((0.2 * 0.07) ** 0.5)
    assert primitives(45)["fp32_add"] > primitives(16)["fp32_add"] > primitives(7)["fp32_add"]


@pytest.mark.parametrize("node", [5, 4, 65, 0, -7])
def test_node_outside_cited_range(node):
    with pytest.raises(NodeError, match=r"energy.node_nm = .*outside the range of the cited energy data \(7 to 45"):
        check_node(node, "energy.node_nm")
    with pytest.raises(HardwareError, match=r"energy.node_nm (= .*outside the range|must be a positive integer)"):
        override_hardware("edge-npu-int8", {"energy.node_nm": node})


def test_presets_derive_their_mac_from_the_datapath():
    """A preset without mac_pj charges the derived MAC of its formats at its node; tpu-bf16 quotes
    the measured TPU v4 MXU MAC and keeps it."""
    hw = load_hardware("edge-npu-int8")
    assert hw.energy.mac_pj is None
    assert plan_gemm(hw, 4, 64, 8, True).cost.mac_pj == pytest.approx(0.3)
    acc16 = load_hardware("edge-npu-int8-acc16")
    assert plan_gemm(acc16, 4, 64, 8, True).cost.mac_pj == pytest.approx(_mac(_int(acc=16)))
    tpu = load_hardware("tpu-bf16")
    assert plan_gemm(tpu, 4, 64, 8, True).cost.mac_pj == tpu.energy.mac_pj == 0.084
    # a layer kept in FP32 is charged an FP32 MAC at the node, whatever the datapath
    assert plan_gemm(hw, 4, 64, 8, True, full_precision=True).cost.mac_pj == pytest.approx(4.6)


def test_area_rules_reproduce_every_cited_area():
    """Horowitz's 45 nm areas (um^2) as the table prints them, each reproduced by its rule; the
    float adder's power law c s^x passes through fp16_add and fp32_add."""
    t = energy_table()["area"]["45"]
    assert {k: v["um2"] for k, v in t.items()} == dict(int8_add=36, int32_add=137, int8_mul=282, int32_mul=3495,
                                                      fp16_add=1360, fp32_add=4184, fp16_mul=1640, fp32_mul=7700)
    assert all(v["src"] == "horowitz14" and v["status"] in ("verified", "recalled") for v in t.values())
    r = rules(45, "area")
    assert (r.int_add(8), r.int_add(32), r.int_mul(8, 8), r.int_mul(32, 32)) == pytest.approx((36, 137, 282, 3495))
    assert (r.float_mul(11, 5, 11, 5), r.float_mul(24, 8, 24, 8)) == pytest.approx((1640, 7700))
    assert (r.float_add(11, 5), r.float_add(24, 8)) == pytest.approx((1360, 4184))
    assert r.mul_sq > 0 and r.mul_lin > 0 and r.sig_coef > 0 and r.sig_pow > 1


def test_mac_area_by_hand_and_by_node():
    from qsim.hardware.energy import mac_area_um2
    # int8 x int8 into int32: 282 + 137; fp32 MAC: 7700 + 4184 (um^2 at 45 nm)
    assert mac_area_um2(_int()) == pytest.approx(419)
    assert mac_area_um2(_float("fp32")) == pytest.approx(11884)
    # int8 < fp8 < bf16 < fp32, by area as by energy
    areas = [mac_area_um2(k) for k in (_int(), _float("e4m3", "fp16"), _float("bf16"), _float("fp32"))]
    assert areas == sorted(areas) and len(set(areas)) == 4
    # the stated node rule: (node / 45)^2
    assert mac_area_um2(_int(), None, 7) == pytest.approx(419 * (7 / 45) ** 2)
    with pytest.raises(NodeError, match="energy.node_nm = 3"):
        mac_area_um2(_int(), None, 3, "energy.node_nm")
    # MXFP8: the element MAC's area plus per block the E8M0 scale adder and one FP32 adder over 32
    mx = block_format("mxfp8_e4m3")
    kernel = Kernel("block", "e4m3", "e4m3", FLOAT_PRESETS["block-dot"])
    per_block = (36 * (8 / 8) ** rules(45, "area").add_exp + 4184) / 32
    assert mac_terms(kernel, mx, 45, "area").block == pytest.approx(per_block)


def test_presets_record_their_mac_area():
    from qsim.plan import resolved_facts
    assert resolved_facts(load_hardware("edge-npu-int8"))["mac_area_um2"] == pytest.approx(419)
    # a 7 nm preset: its formats' 45 nm area scaled by (7 / 45)^2
    tpu = resolved_facts(load_hardware("tpu-bf16"))["mac_area_um2"]
    assert 0 < tpu < 1640 * (7 / 45) ** 2 + 4184 * (7 / 45) ** 2
