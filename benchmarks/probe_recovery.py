"""`qsim probe` on black boxes, the whole table: for one unit of every (architecture,
instruction, arithmetic) family of qsim's matrix units (the smallest tile of each), fit the
arithmetic to MMA-Sim's outputs (and, with --qsim, to qsim's own unit's) and print whether every
parameter was recovered: the unit's value among those that explain every probe, and the only
one where the probes observe it.

    python benchmarks/probe_recovery.py [--qsim] [--limit N] [--only SUBSTRING]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time


def families():
    from qsim.datapaths.matrix_units import MATRIX_UNITS
    best = {}
    for u in MATRIX_UNITS.values():
        key = (u.arch, u.instruction, u.arithmetic, u.block_size > 0, u.a_format == u.b_format)
        if key not in best or u.m * u.n * u.k < best[key].m * best[key].n * best[key].k:
            best[key] = u
    return list(best.values())


def recovered(result, unit) -> tuple[bool, list[str]]:
    true = dataclasses.replace(unit.arithmetic, step=min(unit.arithmetic.step, unit.k))
    ok, ranges = result.exact, []
    for name, values in result.consistent.items():
        if getattr(true, name) not in values:
            ok = False
        elif len(values) == 1 and getattr(result.arithmetic, name) != getattr(true, name):
            ok = False
        elif len(values) > 1:
            ranges.append(name)
    return ok, ranges


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--qsim", action="store_true", help="qsim's own units as the devices instead of mmasim")
    p.add_argument("--limit", type=int, default=0)
    p.add_argument("--only", default="")
    args = p.parse_args(argv)
    from qsim.datapaths.probe import fit, make_probes, qsim_device
    from qsim.golden import mmasim
    units = [u for u in families() if args.only in u.name]
    if args.limit:
        units = units[:args.limit]
    print(f"{len(units)} families, device: {'qsim' if args.qsim else 'mmasim'}")
    print(f"{'unit':<72} {'result':<10} {'outputs':>13} {'seconds':>7}  not observable (a range)")
    failures = 0
    for u in units:
        t = time.time()
        device = qsim_device(u) if args.qsim else mmasim.device(u)
        result = fit(make_probes(u), device=device)
        ok, ranges = recovered(result, u)
        failures += not ok
        print(f"{u.name:<72} {'recovered' if ok else 'NOT':<10} {result.matched:>6}/{result.total:<6} "
              f"{time.time() - t:>7.1f}  {', '.join(ranges)}", flush=True)
        if not ok:
            for row in result.unexplained[:3]:
                print(f"    unexplained {row['family']}: {row['note']}: device {row['device']}, fit {row['fit']}")
            print(f"    fitted {result.arithmetic}; true {u.arithmetic}")
    print(f"{len(units) - failures} of {len(units)} recovered")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
