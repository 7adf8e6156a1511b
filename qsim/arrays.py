"""Array inputs as the kernels read them: C-contiguous, native byte order. Below the codecs and
the quantizers, which both take their inputs through here."""

from __future__ import annotations

import numpy as np


def float_input(x, name: str = "x") -> np.ndarray:
    """x as a C-contiguous, native-byte-order float32 or float64 array (float16 and bfloat16
    widen exactly)."""
    arr = np.asarray(x)
    kind, size = arr.dtype.kind, arr.dtype.itemsize
    if kind == "f" and size in (4, 8):
        return contiguous(arr, arr.dtype.newbyteorder("="))   # the kernels read native order
    if kind == "f" and size == 2 or arr.dtype.name.startswith(("bfloat16", "float8", "float6", "float4")):
        return arr.astype(np.float32, order="C")
    raise TypeError(f"{name} must be a floating-point array (float16/32/64 or bfloat16); got dtype "
                    f"{arr.dtype}. Convert explicitly, e.g. {name}.astype(np.float32).")


def contiguous(arr: np.ndarray, dtype=None) -> np.ndarray:
    """A C-contiguous array of the same shape (np.ascontiguousarray would make 0-d arrays 1-d)."""
    return np.require(arr, dtype=dtype, requirements="C")
