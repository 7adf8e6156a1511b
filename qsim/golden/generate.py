"""Golden cases per operation: directed edge cases and seeded random ones, with the expected
outputs computed by qsim's own kernels (proven bit-exact against real runtimes in tests/).

Operations (OPS): encode (alias quantize), decode, gemm, conv, requant, mx. Every case holds
its inputs and parameters as arrays; `make_golden(**golden.config)` regenerates the same set.
Float gemm/conv on a hardware description that converts its outputs (datapath.output not
fp32) carry y_out, the converted codes, beside y, the FP32 accumulator values.
"""

from __future__ import annotations

from dataclasses import asdict, is_dataclass

import numpy as np

from ..datapaths.matrix_units import ARCHITECTURES, UnknownUnitError, matrix_unit
from ..hardware import hardware_presets, load_hardware
from ..plan import datapath_preset, datapath_presets
from ..plan import resolve_datapath as plan_datapath
from .ops import REGISTRY, GoldenConfig, get_op
from .store import Golden, write_golden

OPS = tuple(REGISTRY)


def canonical_op(op: str) -> str:
    """The op's name, given it or one of its aliases (quantize, matmul, requantize, mx_quantize)."""
    return get_op(op).name


def resolve_datapath(spec):
    """(datapath, hardware or None) from a datapath preset name, a hardware preset name, a
    hardware .toml path or a matrix unit name (arch/instruction/qualifier: the datapath is
    the MatrixUnit); a hardware description resolves as the simulator's plan does
    (qsim.plan.resolve_datapath)."""
    if spec is None:
        return None, None
    name = str(spec)
    if name in datapath_presets():
        return datapath_preset(name), None
    if name.split("/")[0] in ARCHITECTURES:           # a matrix unit: arch/instruction/qualifier
        try:
            return matrix_unit(name), None
        except UnknownUnitError as e:
            raise ValueError(f"unknown datapath {name!r}: {e}") from None
    if name.endswith(".toml") or name in hardware_presets():
        hw = load_hardware(name)
        return plan_datapath(hw), hw
    raise ValueError(f"unknown datapath {name!r}: give a datapath preset ({', '.join(datapath_presets())}), "
                     f"a hardware preset ({', '.join(hardware_presets())}) or a .toml file")


def _describe(obj):
    return asdict(obj) if is_dataclass(obj) else obj


def make_golden(op: str, *, datapath=None, format=None, weight_format=None, output_format=None,  # noqa: A002
                rounding: str = "rne", saturate: bool | None = None, seed: int = 0, random: int | None = None,
                scale: float | None = None, zero_point: int = 0, bias: bool = True, block_size: int | None = None,
                scale_rule: str = "floor", rounding_seed=None) -> Golden:
    """A golden set in memory. op: encode (quantize), decode, gemm, conv, requant, mx.

    datapath: a datapath preset, hardware preset or .toml (gemm, conv, requant; optional for
    the others, where it supplies the format). format: the element format (encode, decode,
    mx) or the activation format (gemm, conv); weight_format, output_format for the integer
    layers. rounding, saturate: encode and mx. scale, zero_point: encode (zero_point for
    integer formats). bias: include a bias in gemm/conv (int32, or float for the PyTorch
    datapaths). random: random values (encode, decode, requant, mx) or cases (gemm, conv).
    Float gemm/conv give y, the FP32 accumulator values; on a hardware description (preset
    or .toml) whose datapath.output is not fp32 also y_out, the codes of
    convert_output(y, outputs, scale=1.0, rounding="rne", saturate=None).
    rounding_seed is derived (the seed, for stochastic rounding); it is accepted so that
    make_golden(**golden.config) regenerates a stored set.
    """
    golden_op = get_op(op)
    cfg = GoldenConfig.from_arguments(
        golden_op, datapath=datapath, format=format, weight_format=weight_format, output_format=output_format,
        rounding=rounding, saturate=saturate, seed=seed, random=random, scale=scale, zero_point=zero_point,
        bias=bias, block_size=block_size, scale_rule=scale_rule, rounding_seed=rounding_seed)
    path, hw = resolve_datapath(datapath)
    cfg = golden_op.complete(cfg, path, hw)
    cases, formats, info = golden_op.cases(cfg, path, hw, np.random.default_rng(cfg.seed))
    info = {**info, "datapath": _describe(path), "hardware": hw.name if hw else None,
            "overflow": golden_op.overflow_mode(cfg, path)}
    return Golden(golden_op.name, cfg.as_dict(), info, formats, list(cases[0].expected), cases)


def generate(op: str, out_dir, **config):
    """make_golden(op, **config) written to out_dir (atomically); returns the Golden."""
    golden = make_golden(op, **config)
    write_golden(golden, out_dir)
    return golden
