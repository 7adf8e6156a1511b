"""`qsim sweep` and `qsim sensitivity`: register(subparsers) adds both to the qsim command line."""

from __future__ import annotations

import argparse
import sys
import textwrap


def register(subparsers) -> None:
    from ..quant.calibrate import METHODS as CALIBRATIONS
    from ..sim.models import MODELS

    s = subparsers.add_parser(
        "sweep", help="run a grid of models x hardware variants x calibrations into a Parquet dataset",
        description=_wrap("Run every point of SWEEP.toml (models, hardware presets with override grids, "
                         "calibrations) and write one Parquet file per point to OUT (OUT holds only these records, so "
                         "pandas, Polars and DuckDB open it as it is). Points run in parallel; a re-run of the "
                         "same spec skips finished points, so an interrupted sweep resumes where it stopped; "
                         "OUT holds one sweep, so another spec needs another OUT."),
        epilog="Examples:\n"
               "  qsim sweep reports/sweeps/digits-24.toml --out reports/sweeps/digits-24\n"
               "  qsim sweep my-sweep.toml --out runs/my-sweep --workers 4\n"
               "  qsim sweep my-sweep.toml --out /shared/my-sweep --scheduler tcp://10.0.0.5:8786\n\n"
               "SWEEP.toml:\n"
               '  name = "digits-24"\n  models = ["digits-cnn"]\n  calibration = ["max", "entropy"]\n'
               '  [[hardware]]\n  preset = "edge-npu-int8"\n  [hardware.grid]\n'
               '  "datapath.accumulator_bits" = [16, 20, 32]\n'
               '  "datapath.weights.granularity" = ["per-tensor", "per-channel"]\n'
               '  [[hardware]]\n  preset = "h100-fp8"',
        formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("spec", metavar="SWEEP.toml", help="the sweep description")
    _run_arguments(s)
    s.set_defaults(func=_cmd_sweep)

    t = subparsers.add_parser(
        "sensitivity", help="rank layers by accuracy loss when quantized alone; keep the worst in FP32",
        description=_wrap("Quantize one GEMM layer at a time (the others FP32) and rank the layers by accuracy "
                         "loss; then keep the k most sensitive layers in FP32 for k = 0, 1, ... until accuracy is "
                         "within --target-drop of FP32. Writes the runs to OUT (records only) and the result beside "
                         "it, to OUT.sensitivity.json and OUT.sensitivity.md."),
        epilog="Examples:\n"
               "  qsim sensitivity --model digits-cnn --hardware edge-npu-int8-acc16 --out reports/sensitivity/cnn\n"
               "  qsim sensitivity --model mnist1d-cnn --hardware mxfp4 --calibration entropy --target-drop 0.005 "
               "--out reports/sensitivity/mnist1d\n"
               "  qsim sensitivity --model smollm2-135m --hardware nvfp4 --target-drop 0.05 --out reports/sensitivity/llm",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    t.add_argument("--model", required=True, choices=sorted(MODELS), help="built-in workload")
    t.add_argument("--hardware", required=True, help="a preset (see `qsim hardware`) or a .toml file")
    t.add_argument("--calibration", default="max", choices=CALIBRATIONS, help="range calibration (default max)")
    t.add_argument("--target-drop", type=float, default=0.01, metavar="DROP",
                   help="stop once accuracy is within this of FP32's, absolute (default 0.01 = 1 point of top-1); "
                        "decoder LLMs: perplexity within this fraction above FP32's (0.05: 5 %%)")
    t.add_argument("--seed", type=int, default=0, help="seed of the runs (default 0)")
    _run_arguments(t)
    t.set_defaults(func=_cmd_sensitivity)


def _wrap(text: str) -> str:
    return textwrap.fill(text, 90, break_on_hyphens=False)


def _run_arguments(parser) -> None:
    parser.add_argument("--out", required=True, metavar="DIR", help="dataset directory (created if missing)")
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="local worker processes (default: one per core)")
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="run on a Dask distributed cluster instead (OUT is written by this process)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _resumable(run):
    """Run; on failed points or Ctrl-C, say that finished points are kept and how to resume."""
    from .run import PointsFailed
    try:
        return run(), 0
    except PointsFailed as e:
        print(f"qsim: {e}\nfinished points are kept; run the same command again to retry the failed ones",
              file=sys.stderr)
        return None, 1
    except KeyboardInterrupt:
        print("\nqsim: interrupted; finished points are kept; run the same command again to resume", file=sys.stderr)
        return None, 130


def _cmd_sweep(args) -> int:
    from .run import run_sweep
    summary, code = _resumable(lambda: run_sweep(args.spec, args.out, workers=args.workers,
                                                 scheduler=args.scheduler, progress=not args.quiet))
    if summary is None:
        return code
    print(f"{summary.total} points: {summary.ran} run, {summary.skipped} already done "
          f"({summary.seconds:.1f} s); records: {summary.out}/part-*.parquet")
    return 0


def _cmd_sensitivity(args) -> int:
    from .sensitivity import layer_sensitivity, write_sensitivity
    result, code = _resumable(lambda: layer_sensitivity(
        args.model, args.hardware, calibration=args.calibration, seed=args.seed, target_drop=args.target_drop,
        out_dir=args.out, workers=args.workers, scheduler=args.scheduler, progress=not args.quiet))
    if result is None:
        return code
    json_path, md_path = write_sensitivity(result, args.out)
    print(result.markdown(), end="")
    print(f"\nresult: {json_path}, {md_path}; records: {args.out}/part-*.parquet")
    return 0
