"""Characterize a real Hopper tensor core with `qsim probe`: the probe tiles through
torch._scaled_mm (FP8 E4M3 x E4M3 -> FP32, cuBLAS issuing wgmma), compared bit for bit with
qsim's hopper/wgmma/m64n256k32.f32.e4m3.e4m3, then fitted.

    python benchmarks/gpu_probe.py [--out DIR]      # on an H100/H200 with torch + CUDA

torch._scaled_mm has no addend, so every tile runs with C = 0 (the probes' addends are set
to 0 here and on qsim's side alike); with K = 32 each output is one wgmma instruction and the
unit scales of 1.0 are exact, so D is the instruction's own result. Import-safe: without
torch or a CUDA device of compute capability 9.0 or more it prints why and exits 0.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

UNIT = "hopper/wgmma/m64n256k32.f32.e4m3.e4m3"


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available()) and torch.cuda.get_device_capability() >= (9, 0)


def scaled_mm_device(a, b, c, scale_a=None, scale_b=None):
    """D = A.B for a batch of (m, k) x (k, n) e4m3 code tiles on the GPU; C must be 0."""
    import torch
    if np.any(np.asarray(c) != 0):
        raise ValueError("torch._scaled_mm has no addend: C must be 0")
    dev = torch.device("cuda")
    one = torch.ones((), dtype=torch.float32, device=dev)
    out = np.empty(np.asarray(c).shape, np.float32)
    for t in range(a.shape[0]):
        ta = torch.from_numpy(a[t].astype(np.uint8)).view(torch.float8_e4m3fn).to(dev)
        # the second operand column-major: (n, k) row-major, transposed
        tb = torch.from_numpy(np.ascontiguousarray(b[t].T).astype(np.uint8)).view(torch.float8_e4m3fn).to(dev).t()
        d = torch._scaled_mm(ta, tb, scale_a=one, scale_b=one, out_dtype=torch.float32, use_fast_accum=False)
        out[t] = d.cpu().numpy()
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", help="write probes.npz and d.npz here (then `qsim probe --fit DIR/d.npz` "
                                 "refits them)")
    args = p.parse_args(argv)
    if not cuda_available():
        print("gpu_probe: skipped: no CUDA device of compute capability >= 9.0 (or no torch) on this machine")
        return 0
    import torch

    from qsim.datapaths.matrix_units import matrix_unit
    from qsim.datapaths.probe import fit, make_probes, run_device
    unit = matrix_unit(UNIT)
    ps = make_probes(unit, zero_addend=True)        # no addend on this path
    print(f"device: {torch.cuda.get_device_name()}; {len(ps.probes)} probes on {ps.a.shape[0]} tiles of {UNIT}, C = 0")
    d = run_device(ps, scaled_mm_device)
    mine = unit.gemm(ps.a, ps.b, ps.c)
    differ = d.view(np.uint32) != mine.view(np.uint32)
    print(f"bit for bit against qsim's {UNIT}: {int(differ.sum())} of {differ.size} outputs differ")
    for t, i, j in np.argwhere(differ)[:10]:
        print(f"  tile {t} ({i}, {j}): GPU {d[t, i, j]!r} qsim {mine[t, i, j]!r}")
    result = fit(ps, d)
    print(result.report())
    if args.out:
        from pathlib import Path
        path = ps.save(args.out)
        np.savez(Path(path).parent / "d.npz", d=d)
        print(f"written: {path} (C = 0 in this set) and d.npz")
    return 0 if not differ.any() else 1


if __name__ == "__main__":
    sys.exit(main())
