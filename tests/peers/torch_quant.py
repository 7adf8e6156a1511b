"""Run torch's real quantized linear kernels (quantized::linear / linear_relu).

    y = quantized_linear(x, x_scale, x_zp, w, w_scale, w_zp, bias, y_scale, y_zp,
                         engine="fbgemm", relu=False, isa=None)

x: uint8 [M, K] (quint8 activations); w: int8 [N, K] (qint8 weights); w_scale / w_zp a
scalar (per tensor) or 1-D of length N (per channel, axis 0); bias float32 [N] or None.
Returns the uint8 codes [M, N] of the quint8 output.

engine: "fbgemm"; "x86" (for linear this is fbgemm's kernel, bit for bit); "qnnpack";
"onednn" also runs (symmetric weights only) but its arithmetic is not characterised.
isa: None runs in this process: fbgemm uses the best instruction set it finds (VPDPBUSD,
exact, on an AVX512-VNNI machine) unless FBGEMM_ENABLE_INSTRUCTIONS was already set.
"AVX2" (or another FBGEMM_ENABLE_INSTRUCTIONS value; "AVX512" without VNNI behaves the same)
runs in a subprocess with that variable set, because fbgemm reads it once at start-up;
those paths sum u8*s8 products in pairs (k = 2j, 2j+1) with int16 saturation (VPMADDUBSW).
It affects engines fbgemm and x86. quantized_linear_many runs a list of cases in one
subprocess, so the torch start-up (about 2 s) is paid once.
"""
import os
import subprocess
import sys
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

_KEYS = ("x", "x_scale", "x_zp", "w", "w_scale", "w_zp", "bias", "y_scale", "y_zp", "relu")


@contextmanager
def _engine(name):
    old = torch.backends.quantized.engine
    torch.backends.quantized.engine = name
    try:
        yield
    finally:
        torch.backends.quantized.engine = old


def _run(x, x_scale, x_zp, w, w_scale, w_zp, bias, y_scale, y_zp, relu):
    x = np.ascontiguousarray(x, np.uint8)
    w = np.ascontiguousarray(w, np.int8)
    with warnings.catch_warnings():  # quantized tensor creation is deprecated in torch 2.13
        warnings.simplefilter("ignore")
        xq = torch._make_per_tensor_quantized_tensor(torch.from_numpy(x), float(x_scale), int(x_zp))
        wt = torch.from_numpy(w)
        if np.ndim(w_scale) == 0:
            wq = torch._make_per_tensor_quantized_tensor(wt, float(w_scale), int(w_zp))
        else:
            scales = torch.tensor(np.asarray(w_scale, np.float64))
            zps = torch.tensor(np.broadcast_to(np.asarray(w_zp, np.int64), scales.shape).copy())
            wq = torch._make_per_channel_quantized_tensor(wt, scales, zps, 0)
        b = None if bias is None else torch.from_numpy(np.ascontiguousarray(bias, np.float32))
        packed = torch.ops.quantized.linear_prepack(wq, b)
        op = torch.ops.quantized.linear_relu if relu else torch.ops.quantized.linear
        y = op(xq, packed, float(y_scale), int(y_zp))
    return y.int_repr().numpy().copy()


def quantized_linear(x, x_scale, x_zp, w, w_scale, w_zp, bias, y_scale, y_zp,
                     engine="fbgemm", relu=False, isa=None):
    case = dict(x=x, x_scale=x_scale, x_zp=x_zp, w=w, w_scale=w_scale, w_zp=w_zp,
                bias=bias, y_scale=y_scale, y_zp=y_zp, relu=relu)
    return quantized_linear_many([case], engine=engine, isa=isa)[0]


def quantized_linear_many(cases, engine="fbgemm", isa=None):
    """cases: dicts with the keys of quantized_linear (relu optional, default False)."""
    cases = [{"relu": False, **c} for c in cases]
    if isa is None:
        with _engine(engine):
            return [_run(**{k: c[k] for k in _KEYS}) for c in cases]
    with tempfile.TemporaryDirectory(prefix="torch_quant_") as tmp:
        src, dst = Path(tmp, "cases.npz"), Path(tmp, "out.npz")
        arrays = {f"{i}.{k}": np.asarray(v) for i, c in enumerate(cases)
                  for k, v in c.items() if k in _KEYS and v is not None}
        np.savez(src, n=len(cases), engine=engine, **arrays)
        env = {**os.environ, "FBGEMM_ENABLE_INSTRUCTIONS": isa}
        subprocess.run([sys.executable, __file__, str(src), str(dst)], env=env, check=True)
        with np.load(dst) as out:
            return [out[str(i)] for i in range(len(cases))]


def _main(src, dst):
    with np.load(src) as f:
        n, engine = int(f["n"]), str(f["engine"])
        cases = [{k: (f[f"{i}.{k}"] if f"{i}.{k}" in f else None) for k in _KEYS}
                 for i in range(n)]
    with _engine(engine):
        np.savez(dst, **{str(i): _run(**c) for i, c in enumerate(cases)})


if __name__ == "__main__":
    _main(sys.argv[1], sys.argv[2])
