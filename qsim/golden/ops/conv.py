"""conv: integer QLinearConv on an integer datapath, float convolution (FP32 accumulator y, and
y_out where the hardware converts its outputs) on a float one; 1-D and 2-D, strides,
padding, dilation, groups."""

from __future__ import annotations

import numpy as np

from ...codec import code_dtype
from ...datapaths import float_conv, qlinear_conv
from ...quant.intquant import container_dtype
from ..show import show_range
from ..store import Case
from .layers import IntLayer, LayerOp, channel_scalars, float_formats
from .values import finite_codes, geometry, ints, saturated_codes


def _conv_int_cases(cfg, path, hw, rng):
    layer = IntLayer(cfg, path, hw, rng)
    af, bf = layer.af, layer.bf
    raw = []

    def add(name, kind, desc, x, w, geometry, per_channel=False, tie=False):
        p = layer.params(w.shape[0], per_channel, tie)
        if tie:
            x = layer.near_zero(x.shape, p["a_zero"], af)
        raw.append((name, kind, desc, {"x": x, "w": w, **p, **geometry}))

    add("padding-zero-point", "directed", "3x3 kernel, padding 1 holding a nonzero input zero point",
        ints(rng, af, (1, 3, 5, 5)), ints(rng, bf, (4, 3, 3, 3)), geometry((1, 1), (1, 1, 1, 1), (1, 1), 1))
    add("stride", "directed", "strides (2, 3) with asymmetric padding",
        ints(rng, af, (1, 2, 7, 8)), ints(rng, bf, (3, 2, 3, 2)), geometry((2, 3), (0, 1, 1, 0), (1, 1), 1))
    add("dilation", "directed", "dilation 2, padding 2",
        ints(rng, af, (1, 2, 7, 7)), ints(rng, bf, (2, 2, 3, 3)), geometry((1, 1), (2, 2, 2, 2), (2, 2), 1))
    add("depthwise", "directed", "groups = channels, per-channel weight scales",
        ints(rng, af, (1, 4, 5, 5)), ints(rng, bf, (4, 1, 3, 3)), geometry((1, 1), (1, 1, 1, 1), (1, 1), 4), True)
    add("per-channel", "directed", "per-output-channel weight scales and zero points, batch 2",
        ints(rng, af, (2, 3, 4, 4)), ints(rng, bf, (5, 3, 2, 2)), geometry((1, 1), (0, 0, 0, 0), (1, 1), 1), True)
    add("requant-ties", "directed", "power-of-two scales and small values: exact .5 ties",
        ints(rng, af, (1, 2, 5, 5)), layer.small_weights((3, 2, 2, 2)),
        geometry((1, 1), (0, 0, 0, 0), (1, 1), 1), tie=True)
    add("conv1d", "directed", "1-D convolution, stride 2",
        ints(rng, af, (1, 3, 9)), ints(rng, bf, (2, 3, 3)), geometry((2,), (1, 1), (1,), 1))
    overflow = layer.overflow()
    if overflow is not None:
        k, _, ext, pos, neg = overflow
        x = np.full((1, k, 1, 1), ext, container_dtype(af))
        w = np.stack([np.full(k, pos), np.full(k, neg)]).reshape(2, k, 1, 1).astype(container_dtype(bf))
        raw.append(("accumulator-overflow", "directed", f"1x1 kernel over {k} channels of extreme products: "
                    f"{layer.overflow_effect()}",
                    {"x": x, "w": w, **layer.overflow_params(2), **geometry((1, 1), (0, 0, 0, 0), (1, 1), 1)}))
    for i in range(cfg.random):
        c, groups = int(rng.integers(1, 4)) * 2, int(rng.choice([1, 2]))
        c_out = groups * int(rng.integers(1, 3))
        ks, stride, dil = rng.integers(1, 4, 2), rng.integers(1, 3, 2), rng.integers(1, 3, 2)
        size = tuple(int(v) for v in rng.integers(3, 7, 2) + dil * ks)
        add(f"random-{i:03d}", "random", f"seeded conv x(1,{c},{size[0]},{size[1]}) w({c_out},{c // groups},"
            f"{ks[0]},{ks[1]}) stride {tuple(stride)} dilation {tuple(dil)} groups {groups}",
            ints(rng, af, (1, c) + size), ints(rng, bf, (c_out, c // groups) + tuple(int(v) for v in ks)),
            geometry(stride, rng.integers(0, 2, 4), dil, groups), bool(rng.integers(0, 2)))
    cases = []
    for name, kind, desc, x in raw:
        y = qlinear_conv(x["x"], x["a_scale"], x["a_zero"], x["w"], x["b_scale"], x["b_zero"], x["y_scale"],
                         x["y_zero"], x.get("bias"), stride=tuple(x["stride"].tolist()),
                         padding=tuple(x["padding"].tolist()), dilation=tuple(x["dilation"].tolist()),
                         groups=int(x["groups"]), datapath=path, x_format=af, w_format=bf, y_format=layer.yf)
        renamed = {CONV_NAMES.get(k, k): v for k, v in x.items()}
        cases.append(Case(name, kind, desc, renamed, {"y": y}))
    formats = {CONV_NAMES.get(k, k): v for k, v in layer.formats().items() if k not in ("a", "b")}
    formats.update(x=af.name, w=bf.name)
    return cases, formats, {"x_format": af.name, "w_format": bf.name, "y_format": layer.yf.name}


CONV_NAMES = {"a_scale": "x_scale", "a_zero": "x_zero", "b_scale": "w_scale", "b_zero": "w_zero"}


def _conv_float_cases(cfg, path, hw, rng):
    if path.block_products:
        raise ValueError(f"golden conv does not model block-scaled datapaths ({path.name}); use op gemm or mx")
    fa, fb = float_formats(cfg, path, hw)
    ca, cb = finite_codes(fa), finite_codes(fb)

    def codes(fmt, pool, shape):
        return rng.choice(pool, shape).astype(code_dtype(fmt))

    raw = [("padding", "directed", "3x3 kernel, padding 1 (padded taps are +0)", codes(fa, ca, (1, 2, 4, 4)),
            codes(fb, cb, (3, 2, 3, 3)), geometry((1, 1), (1, 1, 1, 1), (1, 1), 1)),
           ("stride", "directed", "strides (2, 2), asymmetric padding", codes(fa, ca, (1, 2, 7, 6)),
            codes(fb, cb, (2, 2, 3, 2)), geometry((2, 2), (0, 1, 1, 0), (1, 1), 1)),
           ("large", "directed", "largest values: FP32 rounding (and overflow where the range allows)",
            saturated_codes(fa, np.full((1, 4, 3, 3), float(fa.max))), saturated_codes(fb, np.full((2, 4, 3, 3), float(fb.max))),
            geometry((1, 1), (0, 0, 0, 0), (1, 1), 1))]
    for i in range(cfg.random):
        c, k = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        raw.append((f"random-{i:03d}", "random", f"seeded conv of finite codes, {c} channels, {k}x{k} kernel",
                    codes(fa, ca, (1, c, k + 3, k + 2)), codes(fb, cb, (2, c, k, k)),
                    geometry((1, 1), (0, 0, 0, 0), (1, 1), 1)))
    cases = []
    for name, kind, desc, x, w, g in raw:
        y = float_conv(x, w, fa, fb, tuple(g["stride"].tolist()), tuple(g["padding"].tolist()),
                       tuple(g["dilation"].tolist()), int(g["groups"]), path.accumulator)
        cases.append(Case(name, kind, desc, {"x": x, "w": w, **g}, {"y": y.astype(np.float32)}))
    return cases, {"x": fa.name, "w": fb.name, "y": "fp32"}, {"x_format": fa.name, "w_format": fb.name,
                                                             "y": "FP32 accumulator values"}


class Conv(LayerOp):
    name = "conv"
    default_random = 4

    def int_cases(self, cfg, path, hw, rng):
        return _conv_int_cases(cfg, path, hw, rng)

    def float_cases(self, cfg, path, hw, rng):
        return _conv_float_cases(cfg, path, hw, rng)

    def inputs_at(self, golden, case, output, pos):
        """The input window (where it starts), the output channel's kernel, the geometry, the
        scalars and the channel's per-channel entries."""
        if len(pos) < 3:
            return super().inputs_at(golden, case, output, pos)
        batch, co, spatial = pos[0], pos[1], pos[2:]
        stride, pads = case.inputs["stride"], case.inputs["padding"]
        start = tuple(int(o) * int(s) - int(p) for o, s, p in zip(spatial, stride, pads))
        w = case.inputs["w"][co]
        return {"window": f"x[{batch}, :, starting at {start} in the unpadded input]",
                "kernel": f"w[{co}] ({show_range(w.reshape(-1))})", "stride": str(tuple(stride.tolist())),
                "dilation": str(tuple(case.inputs["dilation"].tolist())), "groups": str(int(case.inputs["groups"])),
                **channel_scalars(golden, case, co)}
