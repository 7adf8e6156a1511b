"""SCALE-Sim 3.0.0's DRAM reads of an operand larger than its scratchpad (the `read-window`
quirk of qsim.hardware.cost.SCALESIM_QUIRKS), reproduced exactly.

What SCALE-Sim counts (CALC bandwidth mode, its read buffer's estimate-bandwidth variant): the
operand's SRAM read trace, in the order the array demands it, is replayed through a window of
sets of floor(bytes / 100) words each. An address already seen since the window last moved is a
hit; a new one joins the current set. When 50 sets are full (B = 50 floor(bytes / 100) distinct
words), all B are fetched from DRAM and the window forgets them. At the end the words of the last,
partial window are fetched. So DRAM reads = sum over greedy windows of B distinct addresses.

The trace order (facts read from SCALE-Sim's compute modules, one per dataflow), with A = ifmap
operand matrix (M x K, a convolution's im2col addresses), B = filter (K x N); folds run over the
column folds (outer) and the row folds (inner):

- skewed stream of a T x L block X[t, l] (lane l delayed by l cycles): cycle tau, lanes l
  ascending, element X[tau - l, l];
- flipped tile of R x C: rows from the tile's last to its first, columns ascending.

output stationary, fold (n-fold, m-fold): A skewed, X[t, l] = A[mR + l, t]; B skewed,
X[t, l] = B[t, nC + l]. weight stationary, fold (n-fold, k-fold): A skewed, X[t, l] = A[t, kR + l];
B flipped tile of B[kR.., nC..]. input stationary, fold (m-fold, k-fold): A flipped tile of
A^T[kR.., mC..]; B skewed, X[t, l] = B[kR + l, t].

The trace is built with numpy over all folds at once (never element by element in Python) and
the windows are counted in one pass of a compiled kernel (qsim/_kernels/_replay).
"""

from __future__ import annotations

from dataclasses import dataclass
from math import ceil

import numpy as np

from .._kernels import _replay

WINDOW_SETS = 50      # sets per window (half of SCALE-Sim's 100 sets, the active half)
SET_DIVISOR = 100     # words per set = floor(scratchpad bytes / 100) (one-byte words)


@dataclass(frozen=True)
class Im2col:
    """A as a convolution's im2col matrix over an H x W x C input (SCALE-Sim's layout: row m =
    output pixel (row-major over the output), column k = (filter row, filter column, channel))."""
    h: int
    w: int
    r: int
    s: int
    c: int
    stride: int

    @property
    def out_hw(self) -> tuple[int, int]:
        return (self.h - self.r) // self.stride + 1, (self.w - self.s) // self.stride + 1

    @property
    def distinct(self) -> int:
        """Input elements some window touches."""
        (ho, wo), st = self.out_hw, self.stride
        rows = (ho - 1) * st + self.r if st <= self.r else ho * self.r
        cols = (wo - 1) * st + self.s if st <= self.s else wo * self.s
        return rows * cols * self.c

    def address(self, m: np.ndarray, k: np.ndarray) -> np.ndarray:
        """The input element (as its row-major index in H x W x C) that A[m, k] reads: a part
        from the output pixel m plus a part from the filter position k, each tabulated once."""
        ho, wo = self.out_hw
        orow, ocol = np.divmod(np.arange(ho * wo), wo)
        from_m = (orow * self.stride * self.w + ocol * self.stride) * self.c
        frow, rest = np.divmod(np.arange(self.r * self.s * self.c), self.s * self.c)
        fcol, ch = np.divmod(rest, self.c)
        from_k = (frow * self.w + fcol) * self.c + ch
        return from_m[m] + from_k[k]


def _skew_order(t_len: int, lanes: int) -> tuple[np.ndarray, np.ndarray]:
    """(t, l) of a skewed T x L block in trace order: cycle tau, then lane l ascending."""
    tau, lane = np.divmod(np.arange((t_len + lanes - 1) * lanes), lanes)
    t = tau - lane
    keep = (t >= 0) & (t < t_len)
    return t[keep], lane[keep]


def _flip_order(rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    """(row, col) of a flipped R x C tile in trace order: rows last to first, columns ascending."""
    i, j = np.divmod(np.arange(rows * cols), cols)
    return rows - 1 - i, j


def _trace(m: int, k: int, n: int, rows: int, cols: int, dataflow: str, operand: str):
    """(row, col) indices into the operand matrix (A: M x K, B: K x N) in SCALE-Sim's demand order."""
    if dataflow == "output-stationary":
        outer, inner = ceil(n / cols), ceil(m / rows)
        if operand == "a":
            t, lane = _skew_order(k, rows)
            fold_r = np.arange(inner) * rows                     # m-fold start, per inner fold
            r = np.tile(fold_r, outer)[:, None] + lane[None, :]
            c = np.broadcast_to(t[None, :], r.shape)
            return r, c, (m, k)
        t, lane = _skew_order(k, cols)
        fold_c = np.repeat(np.arange(outer) * cols, inner)
        c = fold_c[:, None] + lane[None, :]
        return np.broadcast_to(t[None, :], c.shape), c, (k, n)
    if dataflow == "weight-stationary":
        outer, inner = ceil(n / cols), ceil(k / rows)
        if operand == "a":
            t, lane = _skew_order(m, rows)
            fold_k = np.tile(np.arange(inner) * rows, outer)
            c = fold_k[:, None] + lane[None, :]
            return np.broadcast_to(t[None, :], c.shape), c, (m, k)
        i, j = _flip_order(rows, cols)
        fold_k = np.tile(np.arange(inner) * rows, outer)
        fold_n = np.repeat(np.arange(outer) * cols, inner)
        return fold_k[:, None] + i[None, :], fold_n[:, None] + j[None, :], (k, n)
    outer, inner = ceil(m / cols), ceil(k / rows)                # input stationary
    fold_k = np.tile(np.arange(inner) * rows, outer)
    fold_m = np.repeat(np.arange(outer) * cols, inner)
    if operand == "a":
        i, j = _flip_order(rows, cols)                           # tile of A^T: rows k, columns m
        return fold_m[:, None] + j[None, :], fold_k[:, None] + i[None, :], (m, k)
    t, lane = _skew_order(n, rows)
    r = fold_k[:, None] + lane[None, :]
    return r, np.broadcast_to(t[None, :], r.shape), (k, n)


def _windowed_distinct(trace: np.ndarray, window: int) -> int:
    """Sum over greedy windows of `window` distinct addresses (the last one partial): one pass
    of a compiled kernel remembering, per address, the window that last saw it."""
    trace = np.ascontiguousarray(trace, dtype=np.int64)
    if not len(trace):
        return 0
    last = np.full(int(trace.max()) + 1, -1, dtype=np.int64)
    return int(_replay.windowed_distinct(trace, last, window))


def scalesim_dram_reads(m: int, k: int, n: int, rows: int, cols: int, dataflow: str, operand: str,
                        scratchpad_bytes: int, sram_reads: int, im2col: Im2col | None = None) -> int:
    """SCALE-Sim's DRAM reads (words) of operand "a" or "b" through a scratchpad of that size;
    sram_reads: the array's reads of that operand (qsim.hardware.cost.systolic_gemm).

    Without a replay where the trace is passes over the whole operand, each address once per
    pass, every pass in the same order (a GEMM's A under output and weight stationary, its B under
    input stationary; A under input stationary and B under weight stationary are one such pass):
    between two reads of an address every other address is read once, so a window, which closes
    at its window-th distinct address, never holds both unless the whole operand fits in it, and
    every read of an operand that does not fit is a DRAM read."""
    window = WINDOW_SETS * (scratchpad_bytes // SET_DIVISOR)
    passes = im2col is None and not (dataflow == "output-stationary" and operand == "b")
    if passes and window and window <= (m * k if operand == "a" else k * n):
        return sram_reads
    return replayed_dram_reads(m, k, n, rows, cols, dataflow, operand, scratchpad_bytes, im2col)


def replayed_dram_reads(m: int, k: int, n: int, rows: int, cols: int, dataflow: str, operand: str,
                        scratchpad_bytes: int, im2col: Im2col | None = None) -> int:
    """scalesim_dram_reads by replaying the whole trace through the window."""
    r, c, (n_rows, n_cols) = _trace(m, k, n, rows, cols, dataflow, operand)
    keep = (r < n_rows) & (c < n_cols)            # lanes and rows past the operand's edge idle
    if not keep.all():
        r, c = r[keep], c[keep]
    else:
        r, c = r.ravel(), c.ravel()
    if operand == "a" and im2col is not None:
        addresses = im2col.address(r, c)
    else:
        addresses = r.astype(np.int64) * n_cols + c
    window = WINDOW_SETS * (scratchpad_bytes // SET_DIVISOR)
    if window == 0:
        return len(np.unique(addresses))
    return _windowed_distinct(addresses, window)
