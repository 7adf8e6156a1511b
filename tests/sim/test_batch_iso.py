"""Batch size as a parameter of the cost (simulate(batch=N), --batch) and the iso comparison
(qsim compare --iso NODE): hand-worked numbers and the properties that make --iso fair."""

from dataclasses import replace

import pytest

from qsim.cli import main
from qsim.hardware import HardwareError, iso_hardware, load_hardware, override_hardware
from qsim.io import read_records
from qsim.sim import simulate
from qsim.sim.simulate import _at_batch


def test_a_gemm_split_into_batches():
    # Linear/convolution: the inferences are rows of M; attention: the products themselves
    assert _at_batch(397 * 49, 1, 397, 1) == (49, 1, 397)
    assert _at_batch(397 * 49, 1, 397, 397) == (397 * 49, 1, 1)
    assert _at_batch(16, 397 * 4, 397, 2) == (16, 8, 397 / 2)
    with pytest.raises(ValueError, match="does not split into 397 inferences"):
        _at_batch(10, 3, 397, 1)


def test_batch_one_by_hand():
    """digits-mlp fc1 (M = 397 test digits, K = 64, N = 64) on edge-npu-int8 (16x16 weight
    stationary, int8 everywhere). At batch 1 each digit is one GEMM of M = 1:
    ceil(64/16) ceil(64/16) = 16 folds of 2R + C + M - 2 = 47 cycles, less 1: 751 cycles, 397
    times; DRAM sees the weights again per digit: 397 x (64 + 64 x 64 + 64) bytes. MAC energy per
    inference does not depend on the batch."""
    whole, one = simulate("digits-mlp", "edge-npu-int8"), simulate("digits-mlp", "edge-npu-int8", batch=1)
    fc1_whole, fc1 = whole[0], one[0]
    assert fc1["layer"] == "fc1" and (fc1["M"], fc1["K"], fc1["N"]) == (397, 64, 64)
    assert fc1["cycles"] == 397 * (16 * 47 - 1)
    assert fc1["bytes_dram"] == 397 * (64 + 64 * 64 + 64)
    assert fc1_whole["bytes_dram"] == 397 * 64 + 64 * 64 + 397 * 64          # weights fetched once
    assert fc1["energy_mac_pj"] == pytest.approx(fc1_whole["energy_mac_pj"])
    assert one[-1]["batch"] == 1 and whole[-1]["batch"] == 397 == whole[-1]["samples"]
    # the numbers themselves do not depend on the batch
    assert [r["sqnr_db"] for r in one] == [r["sqnr_db"] for r in whole]
    # latency per inference at batch 1 is longer than the amortized one at batch 397
    assert one[-1]["seconds"] > whole[-1]["seconds"]
    with pytest.raises(ValueError, match="batch must be a positive integer"):
        simulate("digits-mlp", "edge-npu-int8", batch=0)


def test_iso_holds_everything_but_the_datapath():
    base = load_hardware("edge-npu-int8")
    h100 = iso_hardware(base, "h100-fp8", 7)
    assert (h100.array, h100.memory) == (base.array, base.memory)
    assert h100.datapath == load_hardware("h100-fp8").datapath
    assert h100.energy == replace(base.energy, mac_pj=None, node_nm=7, source=h100.energy.source)
    # the same datapath on another machine (array, memories, energy quoted): the same iso description
    elsewhere = override_hardware("h100-fp8", {"array.rows": 8, "array.cols": 4, "energy.mac_pj": 9.0,
                                               "energy.node_nm": 45})
    twin = iso_hardware(base, elsewhere, 7)
    assert (twin.datapath, twin.array, twin.memory, twin.energy) == (h100.datapath, h100.array, h100.memory,
                                                                     h100.energy)
    costs = [[{k: v for k, v in r.items() if k.startswith(("bytes_", "energy_", "cycles", "seconds"))}
              for r in simulate("digits-mlp", hw)] for hw in (h100, twin)]
    assert costs[0] == costs[1]


def test_iso_cost_differs_only_by_the_datapath():
    """Two datapaths with the same operand widths (int8 and e4m3, 8-bit outputs' widths aside)
    on one iso machine move the same words: their memory terms differ only through the output
    width, their MAC term by the derived MAC energies' ratio."""
    base = load_hardware("mxfp8")
    a, b = (iso_hardware(base, name, 7) for name in ("h100-fp8", "mi300-fp8fnuz"))
    ra, rb = simulate("digits-mlp", a), simulate("digits-mlp", b)
    fc1a, fc1b = ra[0], rb[0]
    assert fc1a["cycles"] == fc1b["cycles"] and fc1a["bytes_sram"] == fc1b["bytes_sram"]   # e4m3 in, bf16 out: same bits
    from qsim.plan import plan_gemm
    mac = [plan_gemm(hw, 397, 64, 64, True).cost.mac_pj for hw in (a, b)]
    assert fc1a["energy_mac_pj"] / fc1b["energy_mac_pj"] == pytest.approx(mac[0] / mac[1])
    assert mac[0] != mac[1]             # fused 14-bit groups against sequential FP32 adds


def test_iso_node_outside_the_cited_range():
    with pytest.raises(HardwareError, match=r"--iso = 5: outside the range of the cited energy data \(7 to 45 nm\)"):
        iso_hardware("edge-npu-int8", "mxfp4", 5)


def test_compare_iso_and_batch_on_the_command_line(tmp_path, capsys):
    out = tmp_path / "iso"
    assert main(["compare", "--model", "digits-mlp", "--iso", "7", "--iso-base", "tpu-bf16", "--hardware",
                 "edge-npu-int8,mxfp4", "--batch", "1", "--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert "| edge-npu-int8@7nm |" in stdout and "takes 1 at a time" in stdout
    models = read_records(out).query("layer == '__model__'")
    assert sorted(models["hardware"]) == ["edge-npu-int8@7nm", "mxfp4@7nm"]
    assert set(models["batch"]) == {1}
    assert main(["compare", "--iso", "3", "--hardware", "mxfp4", "--out", str(tmp_path / "bad")]) == 2
    assert "--iso = 3: outside the range" in capsys.readouterr().err
    assert main(["compare", "--iso-base", "mxfp4", "--hardware", "mxfp4", "--out", str(tmp_path / "bad")]) == 2
    assert "--iso-base takes --iso NODE" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["simulate", "--batch", "0"])
    assert exit_.value.code == 2 and "expected a positive integer" in capsys.readouterr().err
