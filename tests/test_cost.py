"""Systolic-array cycles and traffic against the closed forms, checked by hand."""

import pytest

from qsim.hardware import roofline_seconds, systolic_gemm


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
