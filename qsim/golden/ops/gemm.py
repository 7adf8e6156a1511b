"""gemm (alias matmul): integer QLinearMatMul on an integer datapath, float GEMM (FP32
accumulator y, and y_out where the hardware converts its outputs) or MX block products on a
float one."""

from __future__ import annotations

import numpy as np

from ...codec import code_dtype
from ...datapaths import float_matmul, mx_matmul, qlinear_matmul
from ...datapaths.matrix_units import MatrixUnit
from ...formats import FloatFormat, format as get_format
from ...quant.intquant import container_dtype
from ...quant.mx import MXArray, mx_quantize
from ..show import show_range, values
from ..store import Case
from .base import not_for
from .layers import IntLayer, LayerOp, channel_scalars, float_formats, mx_operands
from .values import cast, f32, finite_codes, ints, saturated_codes


def _gemm_int_cases(cfg, path, hw, rng):
    layer = IntLayer(cfg, path, hw, rng)
    af, bf = layer.af, layer.bf
    raw = []

    def add(name, kind, desc, a, b, p):
        raw.append((name, kind, desc, {"a": a, "b": b, **p}))

    p = layer.params(5, False)
    add("zero-points", "directed", "nonzero activation and weight zero points, per-tensor scales",
        ints(rng, af, (3, 17)), ints(rng, bf, (17, 5)), p)
    p = layer.params(6, True)
    add("per-channel", "directed", "per-column weight scales and zero points",
        ints(rng, af, (4, 33)), ints(rng, bf, (33, 6)), p)
    p = layer.params(7, False, tie=True)
    a = layer.near_zero((5, 9), p["a_zero"], af)
    add("requant-ties", "directed", "power-of-two scales and small values: acc * m lands on exact .5 ties",
        a, layer.small_weights((9, 7)), p)
    p = layer.params(4, True, tie=True)
    add("requant-ties-per-channel", "directed", "ties with per-column power-of-two weight scales",
        layer.near_zero((6, 11), p["a_zero"], af), layer.small_weights((11, 4)), p)
    p = layer.params(4, False)
    p["y_scale"] = f32(p["a_scale"] * p["b_scale"] * 4)
    add("output-saturation", "directed", "a small output scale: results clamp at both ends of the output range",
        ints(rng, af, (3, 40)), ints(rng, bf, (40, 4)), p)
    overflow = layer.overflow()
    if overflow is not None:
        k, margin, ext, pos, neg = overflow
        a = np.full((2, k), ext, container_dtype(af))
        a[1, k - margin // 2:] = 0                             # a second row, still out of range
        # columns: largest positive products, largest negative ones, a quarter of them (in range)
        control = np.where(np.arange(k) < k // 4, pos, 0)
        b = np.stack([np.full(k, pos), np.full(k, neg), control], axis=1).astype(container_dtype(bf))
        add("accumulator-overflow", "directed", f"K={k} extreme products: {layer.overflow_effect()}", a, b,
            layer.overflow_params(3))
    for i in range(cfg.random):
        m, k, n = (int(v) for v in rng.integers(1, [7, 200, 9]))
        per_channel = bool(rng.integers(0, 2))
        add(f"random-{i:03d}", "random", f"seeded {m}x{k} @ {k}x{n}, {'per-channel' if per_channel else 'per-tensor'}",
            ints(rng, af, (m, k)), ints(rng, bf, (k, n)), layer.params(n, per_channel))
    cases = []
    for name, kind, desc, x in raw:
        y = qlinear_matmul(x["a"], x["a_scale"], x["a_zero"], x["b"], x["b_scale"], x["b_zero"], x["y_scale"],
                           x["y_zero"], x.get("bias"), datapath=path, a_format=af, b_format=bf, y_format=layer.yf)
        cases.append(Case(name, kind, desc, x, {"y": y}))
    info = {"a_format": af.name, "b_format": bf.name, "y_format": layer.yf.name}
    return cases, layer.formats(), info


def _float_operands(fa, fb, rng) -> list[tuple]:
    """Directed (name, description, a values, b values) for float GEMM."""
    ma, mb, ta, tb = float(fa.max), float(fb.max), float(fa.min_normal), float(fb.min_normal)
    k = 64
    cancel_a = np.array([[ma, -ma] + [ta] * 6, [ta] * 6 + [ma, -ma], [ma, ta, -ma, ta, ta, ta, ta, ta]])
    out = [("cancellation", "large terms cancelling around small ones (absorption, order of adds)",
            cancel_a, np.ones((8, 2)))]
    big = np.full((2, k), ma)
    big[1, 1::2] = -ma / 2
    out.append(("large-sums", f"{k} products of the largest values: FP32 rounding of big partial sums, "
                "overflow to Inf where the range allows", big, np.full((k, 3), mb)))
    if fa.min_subnormal is not None and fb.min_subnormal is not None:
        sa, sb = float(fa.min_subnormal), float(fb.min_subnormal)
        out.append(("subnormals", "products of subnormals (underflow in the accumulator)",
                    np.array([[sa, sa, ta, 3 * sa]]), np.array([[sb, tb], [sb, sb], [tb, sb], [sb, 1.0]])))
    specials = []
    if fa.has_nan:
        specials.append(np.nan)
    if fa.has_inf:
        specials += [np.inf, -np.inf]
    if specials:
        a = np.zeros((len(specials), 4))
        a[:, 0] = specials
        a[:, 1] = 1.0
        b = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0], [0.0, 0.0]])
        if fa.has_inf:
            a[-1, 1] = np.inf                  # Inf + -Inf -> NaN
        out.append(("specials", "NaN and Inf operands, Inf * 0, Inf - Inf", a, b))
    return out


def _gemm_float_cases(cfg, path, hw, rng):
    if path.block_products:
        return _gemm_mx_cases(cfg, hw, rng)
    fa, fb = float_formats(cfg, path, hw)
    ca, cb = finite_codes(fa), finite_codes(fb)
    raw = [(n, "directed", d, saturated_codes(fa, a), saturated_codes(fb, b)) for n, d, a, b in _float_operands(fa, fb, rng)]
    for i in range(cfg.random):
        m, k, n = (int(v) for v in rng.integers(1, [6, 300, 6]))
        raw.append((f"random-{i:03d}", "random", f"seeded finite codes {m}x{k} @ {k}x{n}",
                    rng.choice(ca, (m, k)).astype(code_dtype(fa)), rng.choice(cb, (k, n)).astype(code_dtype(fb))))
    cases = [Case(n, kind, d, {"a": a, "b": b},
                  {"y": float_matmul(a, b, fa, fb, path.accumulator).astype(np.float32)}) for n, kind, d, a, b in raw]
    return cases, {"a": fa.name, "b": fb.name, "y": "fp32"}, {"a_format": fa.name, "b_format": fb.name,
                                                             "y": "FP32 accumulator values"}


def _gemm_mx_cases(cfg, hw, rng):
    fa, fb, bs = mx_operands(cfg, hw)

    def operands(m, k, n, spread=0):
        x = rng.normal(0, 1, (m, k)) * 2.0 ** rng.integers(-spread, spread + 1, (m, 1))
        qa = mx_quantize(cast(x, np.float32), fa, axis=1, block_size=bs)
        qb = mx_quantize(cast(rng.normal(0, 1, (k, n)), np.float32), fb, axis=0, block_size=bs)
        return [qa.elements, qa.scales.copy(), qb.elements, qb.scales.copy()]

    raw = [("partial-block", "directed", "K not a multiple of the block size", operands(2, bs + 8, 3))]
    # block scale codes set by hand: (a row, block, code) and (block, b column, code)
    for name, desc, a_set, b_set in [
            ("nan-scale", "a NaN block scale (0xFF) in a", (0, 0, 255), None),
            ("max-scale", "scales 2^127 in both operands of one block: FP32 overflow", (1, 1, 254), (1, 1, 254)),
            ("min-scale", "scales 2^-127 in both operands of one block: FP32 underflow", (2, 0, 0), (0, 0, 0))]:
        a, a_s, b, b_s = operands(3, 2 * bs, 2)
        a_s[a_set[0], a_set[1]] = a_set[2]
        if b_set:
            b_s[b_set[0], b_set[1]] = b_set[2]
        raw.append((name, "directed", desc, [a, a_s, b, b_s]))
    for i in range(cfg.random):
        m, k, n = (int(v) for v in rng.integers(1, [5, 4 * bs, 5]))
        raw.append((f"random-{i:03d}", "random", f"seeded MX operands {m}x{k} @ {k}x{n}", operands(m, k, n, 8)))
    cases = []
    for name, kind, desc, (a, a_s, b, b_s) in raw:
        y = mx_matmul(MXArray(a, a_s, fa, 1, bs), MXArray(b, b_s, fb, 0, bs)).astype(np.float32)
        cases.append(Case(name, kind, desc, {"a": a, "a_scales": a_s, "b": b, "b_scales": b_s}, {"y": y}))
    formats = {"a": fa.name, "a_scales": "e8m0", "b": fb.name, "b_scales": "e8m0", "y": "fp32"}
    return cases, formats, {"a_format": fa.name, "b_format": fb.name, "block_size": bs, "y": "FP32 accumulator values"}


def _gemm_unit_cases(cfg, unit, rng):
    """A matrix unit: one directed case per probe family (the probes of `qsim probe` on the
    diagonals of instruction tiles), then random GEMMs of whole tiles with K a chain of 1 to 4
    instructions. Inputs: a, b codes, c (C's dtype), block scales; y: D as the unit computes it."""
    from ...datapaths.probe import PROBE_FAMILIES, pack_tiles, random_tile, realized_probes
    raw = []
    for fam in PROBE_FAMILIES:
        _, rows, _ = realized_probes(unit, {fam.name})
        if rows:
            raw.append((f"probe-{fam.name}", "directed", f"{fam.reveals} ({len(rows)} probes on tile diagonals)",
                        pack_tiles(unit, rows)))
    for i in range(cfg.random):
        chain = int(rng.integers(1, 5))
        tiles = [random_tile(unit, rng) for _ in range(chain)]
        a = np.concatenate([t[0] for t in tiles], axis=1)[None]
        b = np.concatenate([t[1] for t in tiles], axis=0)[None]
        sa = sb = None
        if unit.block_size:
            sa = np.concatenate([t[3] for t in tiles], axis=1)[None]
            sb = np.concatenate([t[4] for t in tiles], axis=0)[None]
        raw.append((f"random-{i:03d}", "random", f"seeded {unit.m}x{unit.k * chain} @ {unit.k * chain}x{unit.n}: "
                    f"a chain of {chain} instruction(s)", (a, b, tiles[0][2][None], sa, sb)))
    cases = []
    for name, kind, desc, (a, b, c, sa, sb) in raw:
        inputs = {"a": a, "b": b, "c": c}
        if sa is not None:
            inputs.update(scale_a=sa, scale_b=sb)
        cases.append(Case(name, kind, desc, inputs, {"y": unit.gemm(a, b, c, sa, sb)}))
    formats = {"a": unit.a_format, "b": unit.b_format, "c": unit.c_format, "y": unit.d_format}
    if unit.block_size:
        formats.update(scale_a=unit.scale_format, scale_b=unit.scale_format)
    return cases, formats, {"unit": unit.name, "a_format": unit.a_format, "b_format": unit.b_format,
                            "y": f"D = A.B + C as {unit.name} computes it ({unit.arithmetic.describe()}); "
                                 "K a chain of instructions, each D the next C"}


class Gemm(LayerOp):
    name = "gemm"
    aliases = ("matmul",)
    default_random = 6

    def int_cases(self, cfg, path, hw, rng):
        return _gemm_int_cases(cfg, path, hw, rng)

    def float_cases(self, cfg, path, hw, rng):
        if isinstance(path, MatrixUnit):
            return _gemm_unit_cases(cfg, path, rng)
        return _gemm_float_cases(cfg, path, hw, rng)

    def format_rules(self, path) -> dict:
        if isinstance(path, MatrixUnit):
            fixed = not_for(f"the matrix unit {path.name} fixes its operand and output formats")
            return {"format": fixed, "weight_format": fixed, "output_format": fixed}
        return super().format_rules(path)

    def inputs_at(self, golden, case, output, pos):
        """A row of a and a column of b (values, for float codes: MX before the block scales),
        K, the scalars and the column's per-channel entries."""
        if len(pos) < 2:
            return super().inputs_at(golden, case, output, pos)
        m, n = pos[-2], pos[-1]
        a, b = case.inputs["a"], case.inputs["b"]
        row, col = a[..., m, :].reshape(-1), b[..., :, n].reshape(-1)
        fa, fb = get_format(golden.formats["a"]), get_format(golden.formats["b"])
        if isinstance(fa, FloatFormat):
            row, col = values(row, fa), values(col, fb)
        return {"row": f"a[{m}, :] ({show_range(row)})", "column": f"b[:, {n}] ({show_range(col)})",
                "K": str(a.shape[-1]), **channel_scalars(golden, case, n)}
