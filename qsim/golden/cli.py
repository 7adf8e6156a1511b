"""`qsim golden` and `qsim validate`: register(subparsers) adds both to an argparse parser.

Bad input raises ValueError/KeyError/FileNotFoundError (the main CLI prints `qsim: error:`
and exits 2); `validate` returns 1 when any code differs, 0 when all match.
"""

from __future__ import annotations

import argparse

from ..rounding import ROUNDING_MODES
from .adapters import ADAPTERS, get_adapter
from .generate import OPS, generate
from .ops import REGISTRY
from .validate import validate

_GOLDEN_EXAMPLES = """\
examples:
  qsim golden encode --format e4m3 --saturate --out golden/e4m3
  qsim golden encode --format uint8 --scale 0.5 --zero-point 3 --out golden/u8
  qsim golden decode --format bf16 --out golden/bf16-decode
  qsim golden gemm --datapath onnxruntime-x86 --format uint8 --weight-format int8 --no-bias --out golden/qgemm
  qsim golden conv --datapath edge-npu-int8-acc16 --out golden/npu-conv
  qsim golden gemm --datapath h100-fp8 --out golden/h100-gemm
  qsim golden requant --datapath gemmlowp --out golden/requant
  qsim golden mx --datapath mxfp4 --out golden/mxfp4
  qsim golden gemm --datapath hopper/wgmma/m64n256k32.f32.e4m3.e4m3 --out golden/wgmma   # a matrix unit
  qsim golden --adapter ort-qlinear-conv-u8s8 --out golden/ort-conv
  qsim golden --list-adapters
  qsim golden model model.onnx --out golden/model      # one golden set per layer (index.json lists them)
  qsim golden model model.onnx --hardware edge-npu-int8-acc16 --inputs x.npz --out golden/model-acc16

Writes DIR/golden.npz (every case's inputs, parameters and expected outputs), one
DIR/<array>.hex per array for Verilog $readmemh (cases concatenated, one code per line)
and DIR/manifest.json (configuration, seeds, formats, case shapes, sha256 of every file).

Float gemm/conv: y is the FP32 accumulator (fp32 codes). When --datapath names a hardware
description (preset or .toml) of a float kind whose datapath.output is not fp32 (e.g.
h100-fp8, mi300-fp8fnuz, tpu-bf16: bf16), the set has a second output y_out: the codes of
y converted to that format as the hardware writes it, qsim.datapaths.convert_output(y, fmt,
scale=1.0, rounding="rne", saturate=None) = encode(float32(y * 1.0)) with the format's
default overflow (manifest info: y_out, output_conversion). A datapath preset
(e.g. h100-fp8-like) has no output conversion: y only; so do the names mxfp4 and mxfp8,
which are datapath presets first (give the hardware .toml for y_out). Validate one output
alone with `qsim validate DIR --output y_out ...`.
"""

_VALIDATE_EXAMPLES = """\
examples:
  qsim validate golden/e4m3 --outputs sim/y.hex
  qsim validate golden/qgemm --outputs y.npy --report report.html --log log.parquet
  qsim validate golden/e4m3 --outputs y.bin --dtype uint8 --nan-equal
  qsim validate golden/ort-conv --adapter ort-qlinear-conv-u8s8
  qsim validate golden/wgmma --adapter mmasim:hopper/wgmma/m64n256k32.f32.e4m3.e4m3
  qsim validate golden/ort-e4m3 --adapter ort-quantize-linear-e4m3-sat0 --no-waivers
  qsim validate golden/h100-gemm --outputs y_out.hex --output y_out
  qsim validate golden/h100-gemm --outputs out.npz        # keys y and y_out

OUTPUTS holds every output code in order: output by output, case by case, each case
flattened in C order (as the expected DIR/<output>.hex). .npy, .npz (by output or case
name), hex (.hex/.mem/.memh/.txt) or raw binary with --dtype. --output NAME compares only
that output (repeat for several), and OUTPUTS then holds only those. --adapter refuses a
golden set whose configuration differs from the adapter's (`qsim golden --list-adapters`)
in any key the adapter sets. An adapter's known departures from the specification
(`qsim golden --list-adapters`) are classifiers: a mismatch that one explains is waived and
listed with its departure, every departure is reported as seen, not seen or not exercised,
and --no-waivers makes every mismatch fail. Exit status 1 if any code differs (and is not
waived), 0 if all match.
"""


# options that make up a golden configuration (None: not given, make_golden's default applies)
_CONFIG_OPTIONS = ("datapath", "format", "weight_format", "output_format", "rounding", "saturate", "scale",
                   "zero_point", "bias", "block_size", "scale_rule")


def _given(args, names) -> dict:
    return {k: getattr(args, k) for k in names if getattr(args, k) is not None}


def _cmd_golden(args) -> int:
    if args.list_adapters:
        for a in ADAPTERS.values():
            cfg = ", ".join(f"{k}={v}" for k, v in a.golden_config.items() if k != "op")
            print(f"{a.name:<34} {a.op:<7} {cfg}")
            for d in a.departures:
                print(f"{'':<4}known departure {d.name}: {d.description}")
        print(f"{'mmasim:UNIT':<34} gemm    datapath=UNIT (any matrix unit, `qsim units`): MMA-Sim's model")
        return 0
    if args.out is None:
        raise ValueError("golden needs --out DIR")
    if args.op == "model":
        return _cmd_golden_model(args)
    if args.model_file is not None:
        raise ValueError(f"golden {args.op}: MODEL is for `qsim golden model MODEL --out DIR` only")
    options, seeding = _given(args, _CONFIG_OPTIONS), _given(args, ("seed", "random"))
    if args.adapter:
        if args.op:
            raise ValueError("give either OP or --adapter, not both")
        if options:
            raise ValueError(f"--adapter {args.adapter} fixes the configuration; only --seed and --random may "
                             f"change it (got {', '.join(options)})")
        config = {**get_adapter(args.adapter).golden_config, **seeding}
    elif args.op is None:
        raise ValueError(f"golden needs OP ({', '.join(OPS)}) or --adapter NAME")
    else:
        config = {"op": args.op, **options, **seeding}
    golden = generate(out_dir=args.out, **config)
    directed = sum(c.kind == "directed" for c in golden.cases)
    print(f"golden {golden.op}: {len(golden.cases)} cases ({directed} directed, {len(golden.cases) - directed} "
          f"random), {golden.total} expected codes ({', '.join(f'{o}: {golden.formats[o]}' for o in golden.outputs)})")
    print(f"written to {args.out}/ (golden.npz, manifest.json, "
          f"{len(golden.cases[0].inputs) + len(golden.outputs)} .hex files)")
    return 0


def _cmd_golden_model(args) -> int:
    """qsim golden model MODEL --out DIR: one golden set per layer of a quantized ONNX model."""
    import numpy as np

    from .model import model_golden
    if args.model_file is None:
        raise ValueError("golden model needs MODEL, a quantized .onnx file")
    inputs = _model_inputs(args.model_file, args.inputs, args.seed or 0)
    dirs = model_golden(args.model_file, inputs, args.out, hardware=args.hardware, path=args.path)
    total = sum(int(np.load(d / "golden.npz")[f].size) for d in dirs for f in np.load(d / "golden.npz").files
                if "/out" in f)
    print(f"golden model {args.model_file}: {len(dirs)} layers, {total} expected values, written to {args.out}/ "
          f"(index.json; one golden set per layer: NNN-<node>/)")
    return 0


def _model_inputs(model_file: str, inputs: str | None, seed: int):
    """The model's inputs from a .npy (one input) or .npz (by name) file, else seeded random
    values of each input's dtype and fixed shape."""
    import numpy as np

    from ..sim.onnx_quant import load_quantized
    if inputs is not None:
        try:
            data = np.load(inputs)
        except (OSError, ValueError) as e:
            raise ValueError(f"--inputs {inputs}: cannot read ({e})") from None
        return dict(data) if isinstance(data, np.lib.npyio.NpzFile) else data
    rng = np.random.default_rng(seed)
    feeds = {}
    for gi in load_quantized(model_file).inputs:
        if gi.shape is None or not all(isinstance(d, int) for d in gi.shape):
            raise ValueError(f"{model_file}: input {gi.name!r} has no fixed shape {gi.shape}; pass --inputs FILE.npz")
        if gi.dtype.kind == "f":
            feeds[gi.name] = rng.standard_normal(gi.shape).astype(gi.dtype)
        else:
            info = np.iinfo(gi.dtype)
            feeds[gi.name] = rng.integers(max(info.min, -128), min(info.max, 127), gi.shape, endpoint=True).astype(gi.dtype)
    return feeds


def _cmd_validate(args) -> int:
    if (args.outputs is None) == (args.adapter is None):
        raise ValueError("validate needs exactly one of --outputs FILE or --adapter NAME")
    if args.adapter and (args.dtype or args.shape or args.nan_equal):
        raise ValueError("--dtype, --shape and --nan-equal read an --outputs file; an --adapter sets its own")
    if args.adapter and args.output:
        raise ValueError("--output selects outputs of an --outputs file; an --adapter compares every output")
    shape = tuple(int(v) for v in args.shape.split(",")) if args.shape else None
    if args.adapter:
        result = get_adapter(args.adapter).validate(args.golden_dir, waivers=args.waivers)
    else:
        result = validate(args.golden_dir, args.outputs, dtype=args.dtype, shape=shape, nan_equal=args.nan_equal,
                          output=args.output, waivers=args.waivers)
    print(result.table(args.show), end="")
    if args.report:
        print(f"report: {result.write_report(args.report)}")
    if args.log:
        print(f"log: {result.to_parquet(args.log)}")
    return 0 if result.ok else 1


def register(subparsers) -> None:
    """Add the `golden` and `validate` subcommands to an argparse subparsers object."""
    g = subparsers.add_parser(
        "golden", help="write golden vectors (npz, $readmemh hex, manifest) for an operation",
        description="Generate directed edge cases (ties, overflow boundaries, NaN, Inf, subnormals, -0, "
                    "accumulator overflow) and seeded random cases for OP, with expected outputs from qsim.",
        epilog=_GOLDEN_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    g.add_argument("op", nargs="?", help=", ".join(op.name + (f" (alias {', '.join(op.aliases)})" if op.aliases else "")
                                                   for op in REGISTRY.values()))
    g.add_argument("model_file", nargs="?", metavar="MODEL",
                   help="golden model: a quantized .onnx file; one golden set per layer (see below)")
    g.add_argument("--out", metavar="DIR", help="output directory (replaced atomically if it holds a golden set)")
    g.add_argument("--inputs", metavar="FILE", help="golden model: the model's inputs (.npy, or .npz by input name); "
                                                     "default seeded random values of each input's shape")
    g.add_argument("--hardware", metavar="PRESET_OR_TOML",
                   help="golden model: run the integer products on this machine's kernel path (default ORT's own)")
    g.add_argument("--path", choices=["ort-default", "ort-unfused"],
                   help="golden model: ONNX Runtime's session path (default ort-default)")
    g.add_argument("--datapath", metavar="PRESET_OR_TOML",
                   help="datapath preset (see `qsim datapaths`), hardware preset (see `qsim hardware`) or .toml; "
                        "required for gemm, conv, requant. Float gemm/conv on hardware whose datapath.output "
                        "is not fp32 also give y_out (see below)")
    g.add_argument("--format", help="element format (encode, decode, mx) or activation format (gemm, conv)")
    g.add_argument("--weight-format", help="weight format for gemm and conv (default int8 / the datapath's)")
    g.add_argument("--output-format", help="output format for integer gemm, conv, requant")
    g.add_argument("--rounding", help=f"encode and mx rounding: {', '.join(ROUNDING_MODES)} (default rne)")
    sat = g.add_mutually_exclusive_group()
    sat.add_argument("--saturate", dest="saturate", action="store_const", const=True,
                     help="encode: overflow and Inf give +-max")
    sat.add_argument("--no-saturate", dest="saturate", action="store_const", const=False,
                     help="encode: overflow gives Inf or NaN")
    g.add_argument("--seed", type=int, help="seed of the random cases and of stochastic rounding (default 0)")
    g.add_argument("--random", type=int, metavar="N",
                   help="random values (encode, decode, requant, mx) or random cases (gemm, conv)")
    g.add_argument("--scale", type=float, help="encode: divide x by this scale first (as QuantizeLinear)")
    g.add_argument("--zero-point", type=int, help="encode to an integer format: the zero point (default 0)")
    g.add_argument("--no-bias", dest="bias", action="store_const", const=False, help="gemm, conv: no bias input")
    g.add_argument("--block-size", type=int, help="mx: elements per block (default the datapath's, or 32)")
    g.add_argument("--scale-rule", choices=["floor", "rceil"], help="mx: shared-scale rule (default floor)")
    g.add_argument("--adapter", metavar="NAME", help="use a built-in adapter's golden configuration")
    g.add_argument("--list-adapters", action="store_true",
                   help="list the built-in adapters, their configurations and known departures")
    g.set_defaults(func=_cmd_golden)

    v = subparsers.add_parser(
        "validate", help="compare kernel outputs with a golden directory, code by code",
        description="Bit-exact comparison: mismatch count, code-distance (ULP) histogram, the first "
                    "mismatches with their inputs, a per-case table; optional Markdown/HTML report and Parquet log.",
        epilog=_VALIDATE_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    v.add_argument("golden_dir", metavar="GOLDEN_DIR")
    v.add_argument("--outputs", metavar="FILE", help="the kernel's outputs: .npy, .npz, hex, or raw with --dtype")
    v.add_argument("--adapter", metavar="NAME", help="run a built-in adapter (onnxruntime, torch, ml_dtypes) instead; "
                   "the golden set must have been made with its configuration")
    v.add_argument("--dtype", help="dtype of a raw binary file, e.g. uint8, int8, <u2, float32")
    v.add_argument("--shape", help="reshape the outputs, e.g. 4,8 (comma-separated)")
    v.add_argument("--nan-equal", action="store_true", help="any NaN code matches any NaN code")
    v.add_argument("--output", action="append", metavar="NAME",
                   help="compare only this golden output (repeatable), e.g. y_out; default: every output")
    v.add_argument("--report", metavar="FILE", help="write a Markdown (.md) or HTML (.html) report")
    v.add_argument("--log", metavar="FILE", help="write a Parquet log, one row per compared code")
    v.add_argument("--show", type=int, default=10, metavar="N",
                   help="mismatches and waived codes to print (default 10; the reports list every waived code)")
    v.add_argument("--no-waivers", dest="waivers", action="store_false",
                   help="fail every mismatch, also those a known departure of the --adapter explains")
    v.set_defaults(func=_cmd_validate)
