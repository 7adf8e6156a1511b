"""Calibration: the range [lo, hi] a tensor is quantized to, from calibration data.

- "max": the observed min and max.
- "percentile": the p-th and (100 - p)-th percentiles (p = 99.99 by default).
- "mse": the symmetric clip t minimizing the mean squared error of quantize-dequantize with
  `levels` steps per side, searched on a grid of 100 fractions of max |x|.
- "entropy": TensorRT's KL-divergence method on a 2048-bin histogram of |x|: for each
  candidate threshold the clipped distribution P (outliers folded into the last bin) is
  compared with its quantization Q to `levels` bins; the threshold of least KL(P || Q) wins.
Symmetric methods (mse, entropy) return (-t, t), or (0, t) when the data has no negatives.
"""

from __future__ import annotations

import numpy as np

METHODS = ("max", "percentile", "mse", "entropy")


def calibrate(x, method: str = "max", levels: int = 127, percentile: float = 99.99, bins: int = 2048):
    """(lo, hi) for quantizing x: see the module docstring for the methods."""
    if method not in METHODS:
        raise ValueError(f"unknown calibration {method!r}; choose one of {METHODS}")
    x = np.asarray(x, np.float64).ravel()
    if x.size == 0:
        raise ValueError("calibration data is empty")
    if not np.all(np.isfinite(x)):
        raise ValueError("calibration data holds NaN or Inf")
    if method == "max":
        return float(x.min()), float(x.max())
    if method == "percentile":
        if not 50 < percentile <= 100:
            raise ValueError(f"percentile must be in (50, 100], got {percentile}")
        return float(np.percentile(x, 100 - percentile)), float(np.percentile(x, percentile))
    top = float(np.abs(x).max())
    if top == 0:
        return 0.0, 0.0
    t = _mse_threshold(x, top, levels) if method == "mse" else _entropy_threshold(np.abs(x), top, levels, bins)
    return (0.0, t) if x.min() >= 0 else (-t, t)


def _mse_threshold(x: np.ndarray, top: float, levels: int) -> float:
    best, best_err = top, np.inf
    for t in top * np.linspace(0.01, 1.0, 100):
        step = t / levels
        q = np.clip(np.rint(x / step), -levels, levels) * step
        err = float(np.mean((q - x) ** 2))
        if err < best_err:
            best, best_err = float(t), err
    return best


def _entropy_threshold(a: np.ndarray, top: float, levels: int, bins: int) -> float:
    hist, edges = np.histogram(a, bins=bins, range=(0.0, top))
    hist = hist.astype(np.float64)
    nlev = levels + 1
    best_i, best_kl = bins, np.inf
    for i in range(nlev, bins + 1):
        p = hist[:i].copy()
        p[i - 1] += hist[i:].sum()                        # outliers fold into the last bin
        # Q: the first i bins merged into nlev groups, each spread evenly over its nonzero bins
        sizes = np.full(nlev, i // nlev)
        sizes[: i % nlev] += 1                            # as np.array_split divides i bins
        starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
        nonzero = hist[:i] != 0
        totals = np.add.reduceat(hist[:i], starts)
        counts = np.add.reduceat(nonzero.astype(np.float64), starts)
        q = np.repeat(np.divide(totals, counts, out=np.zeros_like(totals), where=counts > 0), sizes) * nonzero
        mask = p > 0
        if not (q[mask] > 0).all():
            continue
        pn, qn = p / p.sum(), q / q.sum()
        kl = float(np.sum(pn[mask] * np.log(pn[mask] / qn[mask])))
        if kl < best_kl:
            best_i, best_kl = i, kl
    return float(edges[best_i]) if best_i < bins else top
