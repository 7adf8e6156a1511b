"""Integer convolution (1-D and 2-D, NC[H]W) as a batched integer GEMM over im2col patches.

The dot product of each output runs over (input channel, kernel row, kernel column) in that
order, the weight layout ONNX and PyTorch use; this is the order a saturating accumulator sees.
Padding holds the input zero point, so padded taps contribute exactly zero.
"""

from __future__ import annotations

import numpy as np

from .accumulate import Accumulator, int_matmul


def _tuple(v, n: int, name: str) -> tuple[int, ...]:
    t = (v,) * n if np.isscalar(v) else tuple(v)
    if len(t) != n or not all(isinstance(i, (int, np.integer)) and not isinstance(i, bool) for i in t):
        raise ValueError(f"{name} must be an int or {n} ints, got {v!r}")
    return tuple(int(i) for i in t)


def conv_geometry(x_shape, w_shape, stride=1, padding=0, dilation=1, groups: int = 1):
    """Validated (stride, padding pairs, dilation, output spatial shape)."""
    if len(x_shape) not in (3, 4) or len(w_shape) != len(x_shape):
        raise ValueError(f"x must be (N, C, W) or (N, C, H, W) and w (C_out, C_in/groups, k...) of the "
                         f"same rank, got {tuple(x_shape)} and {tuple(w_shape)}")
    dims = len(x_shape) - 2
    stride, dilation = _tuple(stride, dims, "stride"), _tuple(dilation, dims, "dilation")
    pads = _tuple(padding, dims, "padding") if np.isscalar(padding) or len(padding) == dims \
        else _tuple(padding, 2 * dims, "padding")
    if len(pads) == dims:
        pads = pads + pads                        # ONNX order: all begins, then all ends
    if min(stride) < 1 or min(dilation) < 1 or min(pads) < 0:
        raise ValueError("stride and dilation must be >= 1 and padding >= 0")
    if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups < 1:
        raise ValueError(f"groups must be a positive integer, got {groups!r}")
    c_in, c_out = x_shape[1], w_shape[0]
    if c_in % groups or c_out % groups or w_shape[1] * groups != c_in:
        raise ValueError(f"channels do not match groups={groups}: x has {c_in}, w is {tuple(w_shape)}")
    out = []
    for i in range(dims):
        span = dilation[i] * (w_shape[2 + i] - 1) + 1
        size = (x_shape[2 + i] + pads[i] + pads[dims + i] - span) // stride[i] + 1
        if size < 1:
            raise ValueError(f"kernel larger than the padded input along spatial axis {i}")
        out.append(size)
    return stride, pads, dilation, tuple(out)


def im2col(x: np.ndarray, kernel: tuple[int, ...], x_zero: int, stride, pads, dilation, out_shape):
    """Patches (N, C, *out, *kernel) of x padded with x_zero."""
    dims = len(kernel)
    pad_width = [(0, 0), (0, 0)] + [(pads[i], pads[dims + i]) for i in range(dims)]
    xp = np.pad(x, pad_width, constant_values=x_zero)
    spans = [dilation[i] * (kernel[i] - 1) + 1 for i in range(dims)]
    win = np.lib.stride_tricks.sliding_window_view(xp, spans, axis=tuple(range(2, 2 + dims)))
    index = (slice(None), slice(None))
    index += tuple(slice(0, out_shape[i] * stride[i], stride[i]) for i in range(dims))
    index += tuple(slice(None, None, dilation[i]) for i in range(dims))
    return win[index]


def conv_as_matmul(x: np.ndarray, w: np.ndarray, pad_value: int, stride, padding, dilation, groups: int,
                   matmul, channel_last_k: bool = False) -> tuple[np.ndarray, ...]:
    """A convolution as one matrix product per group over im2col patches, k ordered (channel,
    kernel row, kernel column), or with channel_last_k (kernel row, kernel column, channel) as
    an NHWC im2col lays it out.

    matmul(cols (N, pixels, K), wk (K, g_out), g) returns a tuple of (N, pixels, g_out) arrays
    (the values, then any per-output counters); each comes back as (N, C_out, *out_spatial).
    """
    stride, pads, dilation, out_shape = conv_geometry(x.shape, w.shape, stride, padding, dilation, groups)
    n, c_in = x.shape[:2]
    c_out, kernel = w.shape[0], w.shape[2:]
    g_in, g_out = c_in // groups, c_out // groups
    dims = len(kernel)
    cols = im2col(x, kernel, pad_value, stride, pads, dilation, out_shape)   # N, C, *out, *k
    pixels, taps = int(np.prod(out_shape)), int(np.prod(kernel))
    # (N, G, pixels, g_in * taps) with k ordered (channel, kernel row, kernel column)
    cols = cols.reshape((n, groups, g_in) + tuple(out_shape) + tuple(kernel))
    cols = np.moveaxis(cols, 2, 2 + dims)                                  # N, G, *out, C, *k
    w = w.reshape((groups, g_out, g_in) + tuple(kernel))
    if channel_last_k:
        cols, w = np.moveaxis(cols, 2 + dims, -1), np.moveaxis(w, 2, -1)
    cols = cols.reshape(n, groups, pixels, g_in * taps)
    wk = w.reshape(groups, g_out, g_in * taps).transpose(0, 2, 1)          # G, K, g_out
    parts = [matmul(cols[:, g], wk[g], g) for g in range(groups)]
    return tuple(np.moveaxis(np.concatenate([p[i] for p in parts], axis=-1), -1, 1).reshape((n, c_out) + tuple(out_shape))
                 for i in range(len(parts[0])))


def int_conv(x, w, x_zero=0, w_zero=0, stride=1, padding=0, dilation=1, groups: int = 1,
             accumulator: Accumulator | None = None, return_events: bool = False,
             num_threads: int | None = None, channels_last: bool = False):
    """Integer convolution in a modelled accumulator: int64 (N, C_out, *out_spatial).

    x: (N, C_in, [H,] W); w: (C_out, C_in / groups, [kh,] kw); x_zero one integer, w_zero one
    integer or one per output channel. padding: one int, one per axis, or ONNX begins+ends.
    Depthwise: groups == C_in. channels_last: the dot products run over k as an NHWC kernel lays
    it out (kernel position, then channel) instead of (channel, kernel position); only an
    accumulator that sees the order (saturation, saturated pairs) can tell.
    """
    x, w = np.asarray(x), np.asarray(w)
    for name, v in (("x", x), ("w", w)):
        if v.dtype.kind not in "ui":
            raise TypeError(f"{name} must be an integer array, got dtype {v.dtype}")
    conv_geometry(x.shape, w.shape, stride, padding, dilation, groups)
    zx, zw = np.asarray(x_zero), np.asarray(w_zero)
    if zx.ndim or zx.dtype.kind not in "ui":
        raise ValueError("x_zero must be one integer")
    c_out = w.shape[0]
    if zw.ndim and zw.shape != (c_out,):
        raise ValueError(f"w_zero must be one integer or have shape ({c_out},)")
    zw = zw.reshape(groups, c_out // groups) if zw.ndim else np.broadcast_to(zw, (groups, c_out // groups))
    def matmul(cols, wk, g):     # counting events needs the order-aware kernel: only on request
        r = int_matmul(cols, wk, zx, zw[g], accumulator, return_events, num_threads)
        return r if return_events else (r,)

    parts = conv_as_matmul(x, w, int(zx), stride, padding, dilation, groups, matmul, channel_last_k=channels_last)
    return parts if return_events else parts[0]
