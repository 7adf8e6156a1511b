"""The cost model's memory traffic against SCALE-Sim v3 (the `scalesim` package, 3.0.0).

reference.jsonl holds SCALE-Sim's counts over a grid of GEMM and convolution layers x array
shapes x dataflows x scratchpad sizes (make_reference.py regenerates it);
test_stored_reference_is_current reruns a subset live, in scalesim's own virtual environment
(created on first use: it needs numpy<2), so the stored numbers are SCALE-Sim's own.
"""

import sys
from pathlib import Path

import pytest

from qsim.hardware.cost import Scratchpads, systolic_gemm, systolic_traffic

sys.path.insert(0, str(Path(__file__).parent / "scalesim"))
from compare import FIELDS, classify, qsim_counts  # noqa: E402
from oracle import load_reference, run_scalesim  # noqa: E402

REFERENCE = load_reference()


def test_every_reference_run_equal_under_scalesim_counting():
    """Every quirk is reproduced by counting="scalesim": all runs equal in every field."""
    verdicts = [classify(run) for run in REFERENCE]
    assert len(REFERENCE) >= 147
    assert all(set(v.values()) == {"equal"} for v in verdicts)
    # the read-window replay is exercised: operands beyond their scratchpad, both A and B
    beyond = [qsim_counts(run)["fits"] for run in REFERENCE]
    assert sum(not f[0] for f in beyond) >= 8 and sum(not f[1] for f in beyond) >= 8


def test_read_window_replay_on_hand_worked_traces():
    # weight stationary 4 x 2 x 1 on 2 x 2 (one fold): A's trace, skewed over 2 lanes, is
    # A[0,0] | A[1,0] A[0,1] | A[2,0] A[1,1] | A[3,0] A[2,1] | A[3,1]: 8 distinct addresses
    from qsim.hardware.scalesim_replay import _skew_order, _windowed_distinct, scalesim_dram_reads
    t, lane = _skew_order(4, 2)
    assert list(zip(t.tolist(), lane.tolist())) == [(0, 0), (1, 0), (0, 1), (2, 0), (1, 1), (3, 0), (2, 1), (3, 1)]
    # windows of 3 distinct over 1 2 1 3 | 2 4 2 1 3 | 1 5: [1 2 3] [2 4 1] [3 1 5] -> 9
    assert _windowed_distinct(__import__("numpy").array([1, 2, 1, 3, 2, 4, 2, 1, 3, 1, 5]), 3) == 9
    assert _windowed_distinct(__import__("numpy").array([1, 2, 1, 2]), 3) == 2          # one partial window
    # output stationary 64 x 64 x 64 on 8 x 8 with 1 KiB: windows of 50 x 10 = 500 words; A (4096
    # words, each once per column fold, the same order every fold) is fetched on every read
    assert scalesim_dram_reads(64, 64, 64, 8, 8, "output-stationary", "a", 1024, 64 * 64 * 8) == 64 * 64 * 8
    # a scratchpad under 100 bytes has sets of no words: nothing is ever forgotten
    assert scalesim_dram_reads(64, 64, 64, 8, 8, "output-stationary", "a", 99, 64 * 64 * 8) == 64 * 64


def _reference(**key):
    return next(r for r in REFERENCE if all(r[k] == v for k, v in key.items()))


def test_issue_cases_physical_and_scalesim_counting():
    # output stationary, one fold: 7 x 9 outputs written once; SCALE-Sim counts 32 + 32 more
    run = _reference(kind="gemm", M=7, K=5, N=9, rows=32, cols=32, dataflow="os", sram_kb=[64, 64, 64])
    assert systolic_gemm(7, 5, 9, 32, 32, "output-stationary").words_c == 63
    assert systolic_gemm(7, 5, 9, 32, 32, "output-stationary", "scalesim").words_c == run["sram_writes_c"] == 127
    # weight stationary, K = 32 on 8 rows: 4 partial sums per output. SCALE-Sim writes all 4 to DRAM;
    # physically the 64 x 8 C tile (512 B) stays in the 32 KiB active half, so DRAM sees each output once
    run = _reference(kind="gemm", M=64, K=32, N=16, rows=8, cols=8, dataflow="ws", sram_kb=[64, 64, 64])
    pads = Scratchpads(65536, 65536, 65536)
    assert systolic_traffic(64, 32, 16, 8, 8, "weight-stationary", pads, counting="scalesim").dram_writes_c \
        == run["dram_writes_c"] == 64 * 16 * 4
    t = systolic_traffic(64, 32, 16, 8, 8, "weight-stationary", pads)
    assert (t.dram_writes_c, t.dram_reads_c, t.sram_writes_c, t.sram_reads_c) == (64 * 16, 0, 64 * 16 * 4, 64 * 16 * 3)
    assert (t.dram_reads_a, t.dram_reads_b) == (64 * 32, 32 * 16) == (run["dram_reads_a"], run["dram_reads_b"])


def test_physical_counting_spills_partial_sums_that_do_not_fit():
    # weight stationary 256 x 128 x 256 on 16 x 16 with 16 KiB scratchpads: a C tile is 256 x 16 = 4 KiB,
    # fits the 8 KiB active half; with 4 KiB ofmap it does not: every partial sum but the last goes out and back
    big = Scratchpads(16384, 16384, 4096)
    t = systolic_traffic(256, 128, 256, 16, 16, "weight-stationary", big)
    assert t.fits == (False, False, False)
    assert t.dram_writes_c == 256 * 256 * 8 and t.dram_reads_c == 256 * 256 * 7
    assert t.dram_reads_a == 256 * 128 * 16 and t.dram_reads_b == 128 * 256     # A once per column fold; B once
    # output stationary: B's K x C tile (2 KiB) fits, so B is fetched once although B (32 KiB) does not fit
    t = systolic_traffic(256, 128, 256, 16, 16, "output-stationary", big)
    assert t.dram_reads_b == 128 * 256 and t.dram_reads_a == 256 * 128 * 16


def test_narrow_formats_hold_more_words():
    # 4-bit A (M K = 4096 words = 2 KiB) fits a 4 KiB scratchpad's active half; 8-bit A does not
    pads = Scratchpads(4096, 65536, 65536)
    t4 = systolic_traffic(64, 64, 64, 8, 8, "output-stationary", pads, (4, 8, 8))
    t8 = systolic_traffic(64, 64, 64, 8, 8, "output-stationary", pads, (8, 8, 8))
    assert t4.dram_reads_a == 64 * 64 and t8.dram_reads_a == 64 * 64 * 8


@pytest.mark.slow
def test_stored_reference_is_current():
    """Rerun SCALE-Sim live on a few cheap runs, one per dataflow and kind, both scratchpad sizes,
    one with both operands through the read window."""
    picks = [_reference(kind="gemm", M=7, K=5, N=9, rows=32, cols=32, dataflow="os", sram_kb=[64, 64, 64]),
             _reference(kind="gemm", M=64, K=32, N=16, rows=8, cols=8, dataflow="ws", sram_kb=[1, 1, 1]),
             _reference(kind="conv", H=9, W=9, R=3, S=3, C=4, F=12, stride=2, rows=16, cols=8, dataflow="is",
                        sram_kb=[1, 1, 1]),
             _reference(kind="conv", H=12, W=12, R=3, S=3, C=8, F=16, stride=1, rows=8, cols=8, dataflow="os",
                        sram_kb=[1, 1, 1])]
    assert not any(qsim_counts(picks[-1])["fits"][:2])
    live = run_scalesim([{k: r[k] for k in r if k not in FIELDS and k not in
                          ("total_cycles", "stall_cycles")} for r in picks])
    assert live == picks


@pytest.mark.parametrize("shape", [(64, 64, 64, 8, 8), (100, 64, 50, 16, 8), (33, 70, 20, 8, 16), (7, 130, 9, 4, 4)])
def test_read_window_shortcut_equals_the_replay(shape):
    """Passes over the whole operand in one order: every read of an operand beyond the window is a
    DRAM read; the shortcut agrees with the full replay (where it applies and where it does not)."""
    from qsim.hardware.scalesim_replay import replayed_dram_reads, scalesim_dram_reads
    m, k, n, rows, cols = shape
    for dataflow in ("output-stationary", "weight-stationary", "input-stationary"):
        array = systolic_gemm(m, k, n, rows, cols, dataflow)
        for operand, reads in (("a", array.words_a), ("b", array.words_b)):
            for nbytes in (99, 1024, 2048, 4096):
                args = (m, k, n, rows, cols, dataflow, operand, nbytes)
                assert scalesim_dram_reads(*args, reads) == replayed_dram_reads(*args), args
