"""Enumerations shared by Python and the datapath kernels (cython_src/_enums.pxd): one
definition, both GEMM kernel modules agree, and each name does in the kernel what it says
(these fail if a name and a kernel code drift apart)."""

from types import SimpleNamespace

import numpy as np
import pytest

import qsim
from qsim._kernels import _fpgemm, _intgemm
from qsim.datapaths import accumulate, floating
from qsim.datapaths.accumulate import Accumulator, int_matmul
from qsim.datapaths.floating import FloatAccumulator, float_matmul


def test_python_names_are_the_kernel_enumerations():
    assert _fpgemm.ENUMS == _intgemm.ENUMS
    enums = _intgemm.ENUMS
    assert accumulate.ORDERS == enums["order"] and floating.ORDERS is accumulate.ORDERS
    assert accumulate.OVERFLOWS == tuple(enums["overflow"])
    assert floating.ALIGNMENTS == tuple(enums["align"])
    assert [enums["event"][name] for name in floating.EVENTS] == list(range(len(floating.EVENTS)))
    for kind, codes in enums.items():
        assert sorted(codes.values()) == list(range(len(codes))), kind


def test_kernels_that_disagree_are_refused():
    stale = SimpleNamespace(__name__="stale", ENUMS={**_fpgemm.ENUMS, "order": {"sequential": 1, "reversed": 0}})
    floating.check_kernel_enums(_fpgemm, _intgemm)
    with pytest.raises(ImportError, match="stale.*rebuild"):
        floating.check_kernel_enums(_fpgemm, stale)


def test_each_order_sums_in_its_order():
    """Terms 100, 100, -100, -100 in an 8-bit saturating accumulator (range -128..127)."""
    a = np.ones((1, 4), np.int8)
    b = np.array([[100], [100], [-100], [-100]], np.int8)
    want = {"sequential": -73,     # 100, 127, 27, -73
            "reversed": 72,        # -100, -128, -28, 72
            "pairwise": -1}        # (100 + 100 -> 127) + (-100 - 100 -> -128)
    for order, value in want.items():
        out, events = int_matmul(a, b, accumulator=Accumulator(8, "saturate", order), return_events=True)
        assert int(out[0, 0]) == value, order
        assert int(events[0, 0]) == (1 if order != "pairwise" else 2), order


def test_wrap_and_saturate_do_what_they_say():
    a, b = np.ones((1, 2), np.int8), np.array([[100], [100]], np.int8)
    wrapped, ev_w = int_matmul(a, b, accumulator=Accumulator(8, "wrap"), return_events=True)
    clamped, ev_s = int_matmul(a, b, accumulator=Accumulator(8, "saturate"), return_events=True)
    assert (int(wrapped[0, 0]), int(clamped[0, 0])) == (200 - 256, 127)
    assert int(ev_w[0, 0]) == int(ev_s[0, 0]) == 1


def _fp16(values):
    return qsim.encode(np.array(values, np.float32), "fp16")


def test_float_events_land_under_their_names():
    ones = _fp16([[1.0], [1.0]])
    cases = {
        "overflow": (_fp16([[60000.0, 60000.0]]), FloatAccumulator("fp16")),
        "saturated": (_fp16([[60000.0, 60000.0]]), FloatAccumulator("fp16", saturate=True)),
        "absorbed": (_fp16([[2048.0, 0.5]]), FloatAccumulator("fp16")),      # 2048 + 0.5 rounds to 2048
    }
    for name, (a, acc) in cases.items():
        _, events = float_matmul(a, ones, "fp16", "fp16", acc, return_events=True)
        assert {k: int(v[0, 0]) for k, v in events.items()} == {k: int(k == name) for k in floating.EVENTS}, name


def test_fused_alignment_truncates_or_rounds():
    """Group of two products 1 and 0.09375 kept to 4 bits (units of 1/8): 0.75 units truncate
    to 0 (absorbed) or round to 1."""
    a, b = _fp16([[1.0, 0.09375]]), _fp16([[1.0], [1.0]])
    got = {}
    for align in floating.ALIGNMENTS:
        acc = FloatAccumulator("fp32", fused_group=2, fused_bits=4, fused_align=align)
        out, events = float_matmul(a, b, "fp16", "fp16", acc, return_events=True)
        got[align] = (float(out[0, 0]), int(events["absorbed"][0, 0]))
    assert got == {"truncate": (1.0, 1), "rne": (1.125, 0)}


def test_rounding_names_are_the_kernel_codes():
    from qsim.rounding import ROUNDING_MODES
    assert ROUNDING_MODES == _intgemm.ENUMS["rounding"] == _fpgemm.ENUMS["rounding"]
    assert qsim.ROUNDING_MODES is ROUNDING_MODES


def test_each_rounding_rounds_as_named():
    """E4M3 steps by 1/8 in [1, 2): ties 1.0625 (1 | 1.125) and 1.1875 (1.125 | 1.25), and
    1.03, nearer 1 (these fail if a name and an encoder code drift apart)."""
    x = np.array([1.0625, 1.1875, -1.0625, 1.03], np.float32)
    want = {"rne": [1.0, 1.25, -1.0, 1.0], "rtz": [1.0, 1.125, -1.0, 1.0], "rna": [1.125, 1.25, -1.125, 1.0],
            "up": [1.125, 1.25, -1.0, 1.125], "down": [1.0, 1.125, -1.125, 1.0]}
    for name, values in want.items():
        assert qsim.quantize(x, "e4m3", rounding=name).tolist() == values, name
    many = qsim.quantize(np.full(20000, 1.03, np.float32), "e4m3", rounding="stochastic", seed=3)
    assert set(many.tolist()) == {1.0, 1.125}
    assert abs(float(many.mean()) - 1.03) < 0.003          # up with probability 0.24
