"""PyTorch's choice of quantization parameters, bit for bit, in numpy.

The observers of torch.ao.quantization (MinMaxObserver, MovingAverageMinMaxObserver,
PerChannelMinMaxObserver, MovingAveragePerChannelMinMaxObserver, HistogramObserver) and the
parameters fbgemm and qnnpack choose for activations at run time (quant_utils::
ChooseQuantizationParams), rewritten from torch's algorithms and the order of its float32
operations; torch is not imported. Facts the bits depend on:

- observers compute in float32 tensors; a Python number meeting a float32 tensor becomes
  float32 first (scale = (max - min) / float32(qmax - qmin), then max(scale, eps)); the zero
  point is qmin - round_half_even(min / scale) as int32, clamped.
- HistogramObserver sums in torch's float32 cascade order (`torch_sum`: 8-float vectors,
  measured on an AVX-512 CPU, where torch runs its AVX2 sum).
- the run-time choice works in double on float32 min/max, widens the range to hold 0, cuts
  scales below 6.1e-5, and halves the integer range with reduce_range (fbgemm does, qnnpack
  ignores it: ENGINE_REDUCE_RANGE).

Scales come back as float32 arrays and zero points as int64 arrays, shaped as torch returns
them: (1,) per tensor, (channels,) per channel.
"""

from __future__ import annotations

import math

import numpy as np

F32 = np.float32
FLOAT32_EPS = float(np.finfo(np.float32).eps)
INT32_MIN = -(1 << 31)

# dtype -> (bits, signed); the names of torch's dtypes without "torch."
DTYPES = {"quint8": (8, False), "qint8": (8, True), "qint32": (32, True), "uint8": (8, False),
          "int8": (8, True), "int16": (16, True), "uint16": (16, False), "int32": (32, True)}
QSCHEMES = ("per_tensor_affine", "per_tensor_symmetric", "per_channel_affine", "per_channel_symmetric")
ENGINE_REDUCE_RANGE = {"fbgemm": True, "qnnpack": False}   # does the engine honour reduce_range?
SMALL_SCALE_THRESHOLD = F32(6.1e-5)       # quant_utils: fp16's smallest normal, as float32


def _name(value, known, what: str) -> str:
    """A torch dtype / qscheme (torch.quint8) or its name ("quint8") as the name."""
    name = str(value).removeprefix("torch.")
    if name not in known:
        raise ValueError(f"unsupported {what} {value!r}; choose one of {', '.join(known)}")
    return name


def observer_range(dtype="quint8", reduce_range: bool = False, quant_min=None, quant_max=None) -> tuple[int, int]:
    """(qmin, qmax) as torch's calculate_qmin_qmax: a custom range (both bounds given, it must
    hold 0) is halved with reduce_range; otherwise the dtype's range, 8-bit types halved."""
    dtype = _name(dtype, DTYPES, "dtype")
    bits, signed = DTYPES[dtype]
    if (quant_min is None) != (quant_max is None):
        raise ValueError("give both quant_min and quant_max, or neither")
    if quant_min is not None:
        if not quant_min <= 0 <= quant_max or quant_min >= quant_max:
            raise ValueError(f"quant_min {quant_min} and quant_max {quant_max} must satisfy quant_min <= 0 <= "
                             f"quant_max and quant_min < quant_max")
        if dtype in ("qint8", "int8") and quant_max - quant_min + 1 > 256 or \
                dtype in ("qint32", "int32") and quant_max - quant_min + 1 > 2 ** 32:
            raise ValueError(f"quant_min..quant_max spans more values than {dtype} holds")
        return (quant_min // 2, quant_max // 2) if reduce_range else (quant_min, quant_max)
    if bits == 8:
        lo, hi = (-128, 127) if signed else (0, 255)
        return (lo // 2, hi // 2) if reduce_range else (lo, hi)
    return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)


def _to_int32(v: np.ndarray) -> np.ndarray:
    """float32 -> int32 as x86 converts (truncation; out of range gives INT32_MIN)."""
    ok = np.isfinite(v) & (v >= -2.0 ** 31) & (v < 2.0 ** 31)
    return np.where(ok, np.trunc(np.where(ok, v, 0)), INT32_MIN).astype(np.int64)


def _wrap32(v: np.ndarray) -> np.ndarray:
    return ((v + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def calculate_qparams(min_val, max_val, dtype="quint8", qscheme="per_tensor_affine", reduce_range: bool = False,
                      quant_min=None, quant_max=None, eps: float = FLOAT32_EPS) -> tuple[np.ndarray, np.ndarray]:
    """Scale and zero point from observed min and max, as torch's _calculate_qparams.

    min_val, max_val: float32 scalars (per tensor) or arrays (per channel). An observer that
    saw nothing (min +inf, max -inf) gives scale 1, zero point 0, as torch does.
    """
    dtype = _name(dtype, DTYPES, "dtype")
    qscheme = _name(qscheme, QSCHEMES, "qscheme")
    qmin, qmax = observer_range(dtype, reduce_range, quant_min, quant_max)
    lo, hi = np.asarray(min_val, F32), np.asarray(max_val, F32)
    if lo.shape != hi.shape:
        raise ValueError(f"min_val and max_val differ in shape: {lo.shape} and {hi.shape}")
    if lo.size == 0 or lo.ndim == 0 and lo == np.inf and hi == -np.inf:
        return np.ones(1, F32), np.zeros(1, np.int64)            # never observed
    if np.isnan(lo).any() or np.isnan(hi).any():
        raise ValueError("min_val or max_val is NaN")
    if np.any(lo > hi):
        raise ValueError(f"min {lo} should be less than max {hi}")
    lo_neg, hi_pos = np.minimum(lo, F32(0)), np.maximum(hi, F32(0))
    eps = F32(eps)
    if qscheme.endswith("symmetric"):
        hi_pos = np.maximum(-lo_neg, hi_pos)
        scale = np.maximum(hi_pos / F32((qmax - qmin) / 2), eps)
        zero_mid = {"quint8": 128, "uint8": 128, "uint16": 1 << 15}.get(dtype, 0)
        if zero_mid and quant_min is not None and dtype != "uint16":
            zero_mid = (qmin + qmax) // 2
        zero = np.full(scale.shape, zero_mid, np.int64)
    else:
        scale = np.maximum((hi_pos - lo_neg) / F32(float(qmax - qmin)), eps)
        with np.errstate(invalid="ignore", over="ignore"):
            shift = _to_int32(np.rint(lo_neg / scale))
        zero = np.clip(_wrap32(qmin - shift), qmin, qmax)
    return scale.astype(F32).reshape(-1), zero.astype(np.int64).reshape(-1)


def _float32_input(x, what: str = "x") -> np.ndarray:
    x = np.asarray(x)
    if x.dtype.kind != "f":
        raise TypeError(f"{what} must be a float array, got dtype {x.dtype}")
    x = x.astype(F32, copy=False)
    if x.size and np.isnan(x).any():
        raise ValueError(f"{what} contains NaN; torch's observers would carry it into the range")
    return x


class _Uniform:
    """What every torch observer shares: dtype, qscheme, the integer range, eps."""

    per_channel = False

    def __init__(self, dtype="quint8", qscheme="per_tensor_affine", reduce_range: bool = False,
                 quant_min=None, quant_max=None, eps: float = FLOAT32_EPS):
        self.dtype = _name(dtype, DTYPES, "dtype")
        self.qscheme = _name(qscheme, QSCHEMES, "qscheme")
        if self.qscheme.startswith("per_channel") != self.per_channel:
            raise ValueError(f"{type(self).__name__} takes a {'per-channel' if self.per_channel else 'per-tensor'} "
                             f"qscheme, got {self.qscheme}")
        if self.qscheme.endswith("symmetric") and reduce_range and self.dtype == "quint8":
            raise ValueError("torch cannot reduce the range of symmetric quint8 quantization")
        self.reduce_range, self.quant_min, self.quant_max, self.eps = reduce_range, quant_min, quant_max, eps
        self.qmin, self.qmax = observer_range(self.dtype, reduce_range, quant_min, quant_max)

    def _qparams(self, lo, hi):
        return calculate_qparams(lo, hi, self.dtype, self.qscheme, self.reduce_range, self.quant_min,
                                 self.quant_max, self.eps)


class MinMaxObserver(_Uniform):
    """Running min and max of everything observed."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.min_val, self.max_val = F32(np.inf), F32(-np.inf)

    def __call__(self, x):
        values = _float32_input(x)
        if values.size:
            self._update(values.min(), values.max())
        return x

    def _update(self, lo, hi):
        self.min_val, self.max_val = min(lo, self.min_val), max(hi, self.max_val)

    def calculate_qparams(self):
        return self._qparams(self.min_val, self.max_val)


class _MovingAverage:
    """The averaging constant c of the moving-average observers (before their base's arguments)."""

    def __init__(self, averaging_constant: float = 0.01, *args, **kwargs):
        if not 0 <= averaging_constant <= 1:
            raise ValueError(f"averaging_constant must lie in [0, 1], got {averaging_constant}")
        super().__init__(*args, **kwargs)
        self.averaging_constant = averaging_constant


class MovingAverageMinMaxObserver(_MovingAverage, MinMaxObserver):
    """min <- min + c * (batch min - min) in float32 after the first batch (likewise max)."""

    def _update(self, lo, hi):
        if self.min_val == np.inf and self.max_val == -np.inf:
            self.min_val, self.max_val = lo, hi
            return
        c = F32(self.averaging_constant)
        self.min_val = F32(self.min_val + F32(c * F32(lo - self.min_val)))
        self.max_val = F32(self.max_val + F32(c * F32(hi - self.max_val)))


class PerChannelMinMaxObserver(_Uniform):
    """Running min and max per index along ch_axis."""

    per_channel = True

    def __init__(self, ch_axis: int = 0, dtype="quint8", qscheme="per_channel_affine", **kwargs):
        super().__init__(dtype, qscheme, **kwargs)
        self.ch_axis = ch_axis
        self.min_val = self.max_val = None

    def __call__(self, x):
        values = _float32_input(x)
        if not values.size:
            return x
        if not -values.ndim <= self.ch_axis < values.ndim:
            raise ValueError(f"ch_axis {self.ch_axis} is out of range for an input of {values.ndim} dimensions")
        rows = np.moveaxis(values, self.ch_axis, 0).reshape(values.shape[self.ch_axis], -1)
        lo, hi = rows.min(axis=1), rows.max(axis=1)
        if self.min_val is not None and self.min_val.shape != lo.shape:
            raise ValueError(f"the input has {lo.size} channels along axis {self.ch_axis}, earlier ones had "
                             f"{self.min_val.size}")
        self._update(lo, hi)
        return x

    def _update(self, lo, hi):
        if self.min_val is None:
            self.min_val, self.max_val = lo, hi
        else:
            self.min_val, self.max_val = np.minimum(lo, self.min_val), np.maximum(hi, self.max_val)

    def calculate_qparams(self):
        if self.min_val is None:
            return np.ones(1, F32), np.zeros(1, np.int64)
        return self._qparams(self.min_val, self.max_val)


class MovingAveragePerChannelMinMaxObserver(_MovingAverage, PerChannelMinMaxObserver):
    """The per-channel moving average: min <- min + c * (batch min - min) in float32."""

    def _update(self, lo, hi):
        if self.min_val is None:
            self.min_val, self.max_val = lo, hi
            return
        c = F32(self.averaging_constant)
        self.min_val = (self.min_val + c * (lo - self.min_val)).astype(F32)
        self.max_val = (self.max_val + c * (hi - self.max_val)).astype(F32)


# -- torch's float32 reductions -------------------------------------------------------------------
def _ceil_log2(n: int) -> int:
    return 1 if n <= 2 else (n - 1).bit_length()


def _cascade(rows: np.ndarray) -> np.ndarray:
    """ATen's multi_row_sum over the first axis: 16-row (2^level_power) blocks summed into the
    first of 4 accumulator levels, each full block cascading upward; all in float32."""
    size = rows.shape[0]
    power = max(4, _ceil_log2(size) // 4)
    step, mask = 1 << power, (1 << power) - 1
    acc = np.zeros((4,) + rows.shape[1:], F32)
    i = 0
    while i + step <= size:
        for j in range(step):                                  # sequential adds, as the loop does
            acc[0] += rows[i + j]
        i += step
        for level in range(1, 4):
            acc[level] += acc[level - 1]
            acc[level - 1] = 0
            if i & (mask << (level * power)):
                break
    for j in range(i, size):
        acc[0] += rows[j]
    for level in range(1, 4):
        acc[0] += acc[level]
    return acc[0]


def _row_sum(rows: np.ndarray) -> np.ndarray:
    """ATen's row_sum: 4 interleaved accumulators (ILP) summed by _cascade, the leftover rows
    into the first, then the four together."""
    n_ilp = rows.shape[0] // 4
    partial = _cascade(rows[:n_ilp * 4].reshape((n_ilp, 4) + rows.shape[1:]))
    for row in rows[n_ilp * 4:]:
        partial[0] += row
    for k in range(1, 4):
        partial[0] += partial[k]
    return partial[0]


SUM_LANES = 8      # torch 2.13 sums floats in 8-float vectors even on AVX-512 CPUs (measured there)


def torch_sum(x) -> np.float32:
    """torch.sum of a contiguous float32 tensor on CPU, as ATen's cascade_sum computes it on
    one thread (torch uses one below 32768 elements): vectors of SUM_LANES floats summed by
    _row_sum, then the scalar tail and each lane join the total in order; fewer elements than
    a vector take the scalar _row_sum."""
    x = np.asarray(x, F32).reshape(-1)
    if x.size < SUM_LANES:
        return F32(F32(0) + _row_sum(x))
    n_vec = x.size // SUM_LANES
    lanes = _row_sum(x[:n_vec * SUM_LANES].reshape(n_vec, SUM_LANES))
    total = F32(0)
    for v in x[n_vec * SUM_LANES:]:
        total = F32(total + v)
    for v in lanes:
        total = F32(total + v)
    return F32(F32(0) + total)       # the output starts at 0 and accumulates the result


def torch_cumsum(x) -> np.ndarray:
    """torch.cumsum of float32 on CPU: a running sum in double, each prefix stored as float32."""
    return np.cumsum(np.asarray(x, F32).astype(np.float64)).astype(F32)


def torch_linspace(start, end, steps: int) -> np.ndarray:
    """torch.linspace in float32: step = (end - start) / (steps - 1); the first half counts up
    from start, the second half down from end."""
    start, end = F32(start), F32(end)
    if steps == 1:
        return np.array([start], F32)
    step = F32(F32(end - start) / F32(steps - 1))
    idx = np.arange(steps)
    half = steps // 2
    up = start + step * idx.astype(F32)
    down = end - step * (steps - idx - 1).astype(F32)
    return np.where(idx < half, up, down).astype(F32)


def torch_histc(x: np.ndarray, bins: int, lo, hi) -> np.ndarray:
    """torch.histc in float32: bin = trunc(float32(x - lo) * bins / (hi - lo)), x == hi in the
    last bin, values outside [lo, hi] dropped; lo == hi widens to lo - 1, hi + 1 (in double).
    Where that widening vanishes in float32 (|lo| >= 2^25) torch puts every value in the middle
    bin (measured); so does this."""
    lo, hi = float(lo), float(hi)
    if lo == hi:
        lo, hi = lo - 1, hi + 1
    left, right = F32(lo), F32(hi)
    x = np.asarray(x, F32).reshape(-1)
    x = x[(x >= left) & (x <= right)]
    if left == right:
        hist = np.zeros(bins, F32)
        hist[bins // 2] = x.size
        return hist
    pos = (((x - left) * F32(bins)).astype(F32) / F32(right - left)).astype(F32)
    pos = np.minimum(np.trunc(pos).astype(np.int64), bins - 1)
    return np.bincount(pos, minlength=bins).astype(F32)


class HistogramObserver(_Uniform):
    """torch's HistogramObserver: a running histogram of `bins` bins over [min, max], widened by
    upsampling the old histogram 16 times onto the new range; calculate_qparams searches the
    start and end bins that minimize an L2 estimate of the quantization error, then chooses
    parameters like MinMaxObserver on that range. Per tensor only."""

    def __init__(self, bins: int = 2048, dtype="quint8", qscheme="per_tensor_affine", reduce_range: bool = False,
                 quant_min=None, quant_max=None, eps: float = FLOAT32_EPS):
        super().__init__(dtype, qscheme, reduce_range, quant_min, quant_max, eps)
        if not isinstance(bins, int) or bins < 1:
            raise ValueError(f"bins must be a positive integer, got {bins!r}")
        self.bins = bins
        self.histogram = np.zeros(bins, F32)
        self.min_val, self.max_val = F32(np.inf), F32(-np.inf)
        self.dst_nbins = 2 ** DTYPES[self.dtype][0]
        self.upsample_rate = 16

    def __call__(self, x):
        x_orig = x
        x = _float32_input(x).reshape(-1)
        if not x.size:
            return x_orig
        if np.isinf(x).any():                          # torch drops infinities, with a warning
            x = x[np.isfinite(x)]
            if not x.size:
                return x_orig
        lo, hi = x.min(), x.max()
        if self.min_val == np.inf or self.max_val == -np.inf:
            self.min_val, self.max_val = lo, hi
            self.histogram = torch_histc(x, self.bins, lo, hi)
            return x_orig
        new_lo, new_hi = min(self.min_val, lo), max(self.max_val, hi)
        update = torch_histc(x, self.bins, new_lo, new_hi)
        if new_lo == self.min_val and new_hi == self.max_val:
            self.histogram = (self.histogram + update).astype(F32)
        else:
            self.histogram = self._combine(update, new_lo, new_hi)
            self.min_val, self.max_val = new_lo, new_hi
        return x_orig

    def _combine(self, update, new_lo, new_hi):
        if self.min_val == self.max_val:          # one value so far: all its weight in one bin
            weight = torch_sum(self.histogram)
            moved = (torch_histc(np.array([self.min_val]), self.bins, new_lo, new_hi) * weight).astype(F32)
            return (moved + update).astype(F32)
        rate = self.upsample_rate
        fine = (np.repeat(self.histogram, rate) / F32(rate)).astype(F32)
        bin_size = F32(F32(self.max_val - self.min_val) / F32(self.bins * rate))
        mids = (torch_linspace(self.min_val, self.max_val, self.bins * rate + 1)[:-1] + F32(0.5) * bin_size).astype(F32)
        edges = torch_linspace(new_lo, new_hi, self.bins + 1)
        bucket = np.clip(np.searchsorted(edges, mids, side="right") - 1, 0, self.bins - 1)
        moved = np.zeros(self.bins, F32)
        np.add.at(moved, bucket, fine)                 # bincount's float32 adds, in input order
        return (update + moved).astype(F32)

    # -- the search ------------------------------------------------------------------------------
    def _norm(self, begin, end, density):
        """density * (end^3 - begin^3) / 3 in float32, torch's _get_norm."""
        return (density * ((end * end * end - begin * begin * begin) / F32(3))).astype(F32)

    @np.errstate(over="ignore", invalid="ignore")
    def _quantization_error(self, start: int, end: int) -> float:
        bin_width = (float(self.max_val) - float(self.min_val)) / self.bins        # double
        dst_width = bin_width * (end - start + 1) / self.dst_nbins
        if dst_width == 0.0:
            return 0.0
        w, dw = F32(bin_width), F32(dst_width)
        half = F32(dst_width / 2)
        last = F32(self.dst_nbins - 1)
        src_begin = ((np.arange(self.bins) - start).astype(F32) * w).astype(F32)
        src_end = (src_begin + w).astype(F32)
        dst_begin = np.clip(np.floor_divide(src_begin, dw), F32(0), last).astype(F32)
        dst_begin_center = ((dst_begin + F32(0.5)) * dw).astype(F32)
        dst_end = np.clip(np.floor_divide(src_end, dw), F32(0), last).astype(F32)
        density = (self.histogram / w).astype(F32)
        norm = self._norm((src_begin - dst_begin_center).astype(F32), np.full(self.bins, half, F32), density)
        inner = self._norm(F32(-half), half, density)
        norm = (norm + ((dst_end - dst_begin - F32(1)) * inner).astype(F32)).astype(F32)
        dst_end_center = ((dst_end * dw).astype(F32) + half).astype(F32)
        norm = (norm + self._norm(F32(-dst_width / 2), (src_end - dst_end_center).astype(F32), density)).astype(F32)
        return float(torch_sum(norm))

    def _search(self):
        bin_width = F32(F32(self.max_val - self.min_val) / F32(self.bins))
        total = float(torch_sum(self.histogram))
        csum = torch_cumsum(self.histogram)
        stepsize, alpha, beta = 1e-5, 0.0, 1.0
        start, end = 0, self.bins - 1
        norm_min = math.inf
        while alpha < beta:
            next_alpha, next_beta = alpha + stepsize, beta - stepsize
            low, high = F32(next_alpha * total), F32(next_beta * total)      # compared in float32
            left, right = start, end
            while left < end and csum[left] < low:
                left += 1
            while right > start and csum[right] > high:
                right -= 1
            next_start, next_end = start, end
            if left - start > end - right:
                next_start, alpha = left, next_alpha
            else:
                next_end, beta = right, next_beta
            if next_start == start and next_end == end:
                continue
            norm = self._quantization_error(next_start, next_end)
            if norm > norm_min:
                break
            norm_min, start, end = norm, next_start, next_end
        new_lo = F32(self.min_val + F32(bin_width * F32(start)))
        new_hi = F32(self.min_val + F32(bin_width * F32(end + 1)))
        return new_lo, new_hi

    def calculate_qparams(self):
        if self.min_val == np.inf and self.max_val == -np.inf:
            return np.ones(1, F32), np.zeros(1, np.int64)
        return self._qparams(*self._search())


# -- run-time (dynamic) parameters -------------------------------------------------------------
def choose_qparams(x_min, x_max, qmin: int = 0, qmax: int = 255, reduce_range: bool = False) -> tuple[float, int]:
    """quant_utils::ChooseQuantizationParams, as fbgemm and qnnpack call it for dynamic
    activations: (scale as a double, zero point). reduce_range halves qmin and qmax (C integer
    division); the range [min(x_min, 0), max(x_max, 0)] sets scale = (max - min) / (qmax - qmin)
    in double; a scale of 0 (or one whose float32 reciprocal is infinite) becomes 0.1; a scale
    under 6.1e-5 becomes 6.1e-5 with the range stretched in float32; the zero point comes from
    the end with the smaller rounding error, clamped, rounded half to even."""
    x_min, x_max = F32(x_min), F32(x_max)
    if np.isnan(x_min) or np.isnan(x_max):
        raise ValueError("x_min or x_max is NaN")
    if x_min > x_max:
        raise ValueError(f"x_min {x_min} should be at most x_max {x_max}")
    if reduce_range:
        qmin, qmax = int(qmin / 2), int(qmax / 2)
    if qmin >= qmax:
        raise ValueError(f"qmin {qmin} must be below qmax {qmax}")
    lo, hi = min(x_min, F32(0)), max(x_max, F32(0))
    scale = (float(hi) - float(lo)) / (qmax - qmin)
    with np.errstate(over="ignore", divide="ignore"):
        if F32(scale) == 0 or np.isinf(F32(1) / F32(scale)):
            scale = 0.1
    if scale < float(SMALL_SCALE_THRESHOLD):
        small = F32(scale)
        scale = float(SMALL_SCALE_THRESHOLD)
        if lo == 0:
            hi = F32(SMALL_SCALE_THRESHOLD * F32(qmax - qmin))
        elif hi == 0:
            lo = F32(-SMALL_SCALE_THRESHOLD * F32(qmax - qmin))
        else:
            amplifier = F32(SMALL_SCALE_THRESHOLD / small)
            lo, hi = F32(lo * amplifier), F32(hi * amplifier)
    from_min, from_max = qmin - float(lo) / scale, qmax - float(hi) / scale
    err_min = abs(qmin) - abs(float(lo) / scale)
    err_max = abs(qmax) - abs(float(hi) / scale)
    zero = from_min if err_min < err_max else from_max
    zero = qmin if zero < qmin else qmax if zero > qmax else int(np.rint(zero))
    return scale, zero


def dynamic_qparams(x, engine: str, reduce_range: bool = True) -> tuple[float, int]:
    """The uint8 activation parameters `engine` ("fbgemm" or "qnnpack") chooses at run time for
    quantized::linear_dynamic: min and max of the whole float32 input (0 and 0 when empty)."""
    engine = _name(engine, ENGINE_REDUCE_RANGE, "engine")
    x = np.asarray(x)
    if x.dtype != F32:
        raise TypeError(f"dynamic activations must be float32, got dtype {x.dtype}")
    lo, hi = (x.min(), x.max()) if x.size else (F32(0), F32(0))
    if np.isnan(lo) or np.isnan(hi):              # min and max carry any NaN
        raise ValueError("the activations contain NaN")
    return choose_qparams(lo, hi, 0, 255, reduce_range and ENGINE_REDUCE_RANGE[engine])
