"""Every instruction family of qsim's matrix units against MMA-Sim (mmasim) on many outputs:
random tiles (wide exponent spread, a few Inf/NaN) of the family's units, bitwise.

    python benchmarks/matrix_units_million.py [--outputs 1000000] [--filter hopper]

A family is an architecture, an instruction and one arithmetic (its units differ in shape and
operand types; the tiles cycle through them, narrowest n first). Prints one row per family:
outputs compared, mismatches."""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))   # the shared peer runners
from peers import mmasim_units as P  # noqa: E402

from qsim.datapaths.matrix_units import MATRIX_UNITS  # noqa: E402


def families(filt: str):
    fams = {}
    for name, u in MATRIX_UNITS.items():
        if filt in name:
            fams.setdefault((u.arch, u.instruction, u.arithmetic), []).append(u)
    for units in fams.values():          # one unit per operand types: the narrowest
        by_types = {}
        for u in sorted(units, key=lambda u: (u.n, u.m)):
            by_types.setdefault((u.a_format, u.b_format, u.c_format, u.block_size, u.scale_format, u.k), u)
        units[:] = list(by_types.values())
    return fams


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--outputs", type=int, default=1_000_000, help="outputs compared per family")
    p.add_argument("--filter", default="", help="only units whose name contains this")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    print(f"{'family':<58} {'units':>5} {'outputs':>9} {'mismatches':>10} {'s':>6}")
    total_bad = 0
    for (arch, inst, ar), units in families(args.filter).items():
        t0, done, bad, i = time.perf_counter(), 0, 0, 0
        while done < args.outputs:
            u = units[i % len(units)]
            trial = i % 3
            spread, special, c_spread = ((3, 0.0, 8), (12, 0.0, 24), (40, 0.02, 60))[trial]
            a = P.random_codes(u.a_format, (u.m, u.k), rng, spread, special)
            b = P.random_codes(u.b_format, (u.k, u.n), rng, spread, special)
            c = P.random_c(u, (u.m, u.n), rng, c_spread, 2 * special)
            s = (None, None)
            if u.block_size:
                nb = u.k // u.block_size
                s = (P.random_codes(u.scale_format, (u.m, nb), rng, 12), P.random_codes(u.scale_format, (nb, u.n), rng, 12))
            want, got = P.run_tile(u, a, b, c, *s), u(a, b, c, *s)
            dt = np.uint16 if want.dtype == np.float16 else np.uint32
            bad += int((want.view(dt) != got.view(dt)).sum())
            done += want.size
            i += 1
        total_bad += bad
        label = (f"{arch}/{inst} step {ar.step} F={ar.fraction_bits}{f' F2={ar.second_fraction_bits}' if ar.second_fraction_bits else ''}"
                 f"{f' G={ar.group}' if ar.group else ''} {ar.output}")
        print(f"{label[:58]:<58} {len(units):>5} {done:>9} {bad:>10} {time.perf_counter() - t0:6.1f}", flush=True)
    return 1 if total_bad else 0


if __name__ == "__main__":
    sys.exit(main())
