"""The `qsim` command line."""

from __future__ import annotations

import argparse
import sys

import numpy as np


def _cmd_formats(args) -> int:
    from . import builtin_formats
    rows = [f.describe() for f in builtin_formats() if args.all or not getattr(f, "narrow", False)]
    if args.kind:
        rows = [r for r in rows if r["kind"] == args.kind]
    head = f"{'name':<14}{'bits':>5}{'E':>4}{'M':>4}{'bias':>6}  {'specials':<9}{'max':>13}{'min normal':>13}{'min subnorm':>13}{'epsilon':>13}"
    print(head)
    print("-" * len(head))
    for r in rows:
        def g(v):
            return "-" if v is None else f" {v:.6g}"
        print(f"{r['name']:<14}{r['bits']:>5}{g(r['e']):>4}{g(r['m']):>4}{g(r['bias']):>6}  {r['specials']:<9}"
              f"{g(r['max']):>13}{g(r['min_normal']):>13}{g(r['min_subnormal']):>13}{g(r['epsilon']):>13}")
    return 0


def _cmd_encode(args) -> int:
    from . import decode, encode, format
    fmt = format(args.format)
    x = np.array(args.values, dtype=np.float64)
    codes = encode(x, fmt, rounding=args.rounding, saturate=args.saturate, seed=args.seed)
    back = decode(codes, fmt)
    width = (fmt.storage_bits + 3) // 4
    print(f"{'input':>16}  {'code':>{width + 2}}  {'decoded':>16}   ({fmt.name}, {args.rounding}, "
          f"saturate={args.saturate if args.saturate is not None else fmt.default_saturate})")
    for v, c, d in zip(x.ravel(), codes.ravel(), np.asarray(back).ravel()):
        print(f"{v:>16.9g}  0x{int(c):0{width}x}  {float(d):>16.9g}")
    return 0


def _cmd_datapaths(args) -> int:
    import numpy as np

    from .datapaths import FLOAT_PRESETS, PRESETS
    from .datapaths.integer import requantize_accumulator
    from .formats import format as get_format

    for name, path in PRESETS.items():
        acc = path.accumulator
        print(f"{name:<17} acc int{acc.bits} {acc.overflow}{' pair-sat16' if acc.pair_saturate16 else ''}, "
              f"requant {path.requant}, bias {path.bias}")
        print(f"{'':<17} {path.description}")
    for name, path in FLOAT_PRESETS.items():
        acc = path.accumulator
        unit = (f"fused G={acc.fused_group} B={acc.fused_bits} {acc.fused_align}" if acc.fused_group
                else f"{acc.order} adds")
        kind = f"MX blocks of {path.block_size}" if path.block_size else f"{unit} in {acc.format} {acc.rounding}"
        print(f"{name:<17} inputs {path.a_format or 'any'} x {path.b_format or 'any'}, {kind}"
              f"{f', promoted every {acc.promote_every}' if acc.promote_every else ''}")
        print(f"{'':<17} {path.description}")
    if args.ties:
        accs = np.arange(-7, 8)
        print(f"\nacc * {args.multiplier} for acc = {accs.min()}..{accs.max()} (exact: "
              f"{' '.join(f'{v:g}' for v in accs * args.multiplier)}):")
        y8 = get_format("int8")
        for name, path in PRESETS.items():
            y, _ = requantize_accumulator(accs.astype(np.int64), np.zeros(accs.shape, np.int64), None, np.float32(1),
                           np.float32(args.multiplier), np.float32(1), 0, -128, 127, path, y8)
            print(f"  {name:<17} {' '.join(f'{v:3d}' for v in y)}")
    return 0


def _cmd_hardware(args) -> int:
    from .hardware import hardware_presets, load_hardware

    if args.show:
        hw = load_hardware(args.show)
        print(hw)
        return 0
    print(f"{'name':<20} {'GEMM datapath':<34} {'array':>10} {'clock':>9} {'peak TMAC/s':>12}")
    for name in hardware_presets():
        hw = load_hardware(name)
        d = hw.datapath
        path = f"{d.preset} ({d.weights}x{d.activations}" + (f", acc{d.accumulator_bits}" if d.accumulator_bits else "") + ")"
        print(f"{name:<20} {path:<34} {hw.array.rows:>4}x{hw.array.cols:<5} {hw.array.clock_hz / 1e9:>6.2f} GHz"
              f" {hw.peak_macs_per_s / 1e12:>12.3f}")
        print(f"{'':<20} {hw.description}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="qsim",
        description="Bit-accurate emulation of low-precision number formats and ML datapaths.",
        epilog="Examples:\n  qsim formats\n  qsim encode e4m3 0.1 463.9 464 465 1e9\n"
               "  qsim encode fp4_e2m1 --rounding stochastic --seed 1 0.3 0.3 0.3\n"
               "  qsim datapaths --ties",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    f = sub.add_parser("formats", help="print the table of number formats and their derived limits")
    f.add_argument("--kind", choices=["float", "int"], help="only float or only integer formats")
    f.add_argument("--all", action="store_true", help="include the narrow-range integer variants")
    f.set_defaults(func=_cmd_formats)

    e = sub.add_parser("encode", help="encode numbers to a format and show codes and decoded values",
                       description="Encode VALUES to FORMAT; prints each code in hex and its exact value.")
    e.add_argument("format", help="a format name (see `qsim formats`), or e<E>m<M>[fn|fnuz]")
    e.add_argument("values", nargs="+", type=float, help="numbers to encode (nan, inf allowed)")
    e.add_argument("--rounding", default="rne", help="rne (default), rtz, rna, up, down, stochastic")
    sat = e.add_mutually_exclusive_group()
    sat.add_argument("--saturate", dest="saturate", action="store_const", const=True, default=None,
                     help="overflow gives +-max")
    sat.add_argument("--no-saturate", dest="saturate", action="store_const", const=False,
                     help="overflow gives Inf or NaN")
    e.add_argument("--seed", type=int, default=None, help="seed for stochastic rounding")
    e.set_defaults(func=_cmd_encode)

    d = sub.add_parser("datapaths", help="list the kernel presets: integer (accumulator, requantization, bias) and floating point")
    d.add_argument("--ties", action="store_true", help="show how each preset rounds exact ties")
    d.add_argument("--multiplier", type=float, default=0.25,
                   help="requantization multiplier for --ties (default 0.25: odd multiples of 2 tie)")
    d.set_defaults(func=_cmd_datapaths)

    h = sub.add_parser("hardware", help="list the hardware presets (qsim/hardware/presets/*.toml)",
                       description="List the shipped hardware descriptions, or show one resolved.")
    h.add_argument("--show", metavar="NAME_OR_TOML", help="load and print one preset or .toml file")
    h.set_defaults(func=_cmd_hardware)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return args.func(args)
    except BrokenPipeError:       # output piped into `head` and closed early
        sys.stderr.close()
        return 0
    except (ValueError, KeyError, TypeError) as exc:
        print(f"qsim: error: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
