"""Calibration methods on distributions whose answers are known."""

import numpy as np
import pytest

from qsim.quant.calibrate import calibrate
from qsim.sim import simulate


@pytest.fixture(scope="module")
def gaussian_with_outliers():
    x = np.random.default_rng(0).normal(0, 1, 20000)
    x[:3] = [40.0, -50.0, 30.0]
    return x


def test_max_and_percentile(gaussian_with_outliers):
    x = gaussian_with_outliers
    assert calibrate(x, "max") == (-50.0, 40.0)
    lo, hi = calibrate(x, "percentile", percentile=99.9)
    assert (lo, hi) == pytest.approx((np.percentile(x, 0.1), np.percentile(x, 99.9))) and 2.5 < hi < 4


def test_mse_picks_the_clip_of_least_error():
    x = np.random.default_rng(1).uniform(-1, 1, 5000)
    lo, hi = calibrate(x, "mse", levels=127)
    assert hi == pytest.approx(1.0, abs=0.02) and lo == -hi         # uniform data: no clipping pays
    y = np.random.default_rng(2).laplace(0, 1, 50000)
    t = calibrate(y, "mse", levels=7)[1]                             # 4-bit: clipping a heavy tail pays
    assert t < 0.5 * np.abs(y).max()
    errs = {}
    for c in (t, np.abs(y).max()):
        step = c / 7
        errs[c] = np.mean((np.clip(np.rint(y / step), -7, 7) * step - y) ** 2)
    assert errs[t] < errs[np.abs(y).max()]


def test_entropy_clips_outliers_and_keeps_the_bulk(gaussian_with_outliers):
    lo, hi = calibrate(gaussian_with_outliers, "entropy")
    assert lo == -hi and 2.0 < hi < 10.0                            # far below the outliers at 50
    assert calibrate(np.abs(gaussian_with_outliers), "entropy")[0] == 0.0   # no negatives: (0, t)


@pytest.mark.parametrize("bad,match", [([], "empty"), ([1.0, np.nan], "NaN")])
def test_bad_calibration_data(bad, match):
    with pytest.raises(ValueError, match=match):
        calibrate(np.array(bad), "max")
    with pytest.raises(ValueError, match="unknown calibration"):
        calibrate(np.ones(3), "kl")


def test_simulation_records_its_calibration():
    records = simulate("digits-mlp", "edge-npu-int8", calibration="percentile")
    assert records[-1]["calibration"] == "percentile" and records[-1]["top1"] > 0.95
