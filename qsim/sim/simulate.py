"""Run a workload on a described accelerator, layer by layer: bit-exact GEMMs through the
hardware's datapath, other operations in its vector format; per-layer error against the
float32 forward pass, and cost (cycles, bytes per memory level, energy terms).

Post-training quantization is static, calibrated by the range (max) of each tensor on the
calibration split: weights symmetric per output channel, activations affine per tensor for
integer hardware; per-tensor symmetric scales (or MX blocks) for float hardware.
"""

from __future__ import annotations

import hashlib
import time
import uuid

import numpy as np

from .. import __version__, decode, encode
from ..datapaths import FloatAccumulator, FloatDatapath, IntDatapath, float_matmul, mx_matmul, qlinear_matmul, quantize_bias
from ..formats import IntFormat, format as get_format
from ..hardware import load_hardware
from ..hardware.cost import gemm_layer_cost
from ..quant.intquant import dequantize_int, quantize_int
from ..quant.calibrate import calibrate
from ..quant.mx import mx_quantize
from .models import Conv2d, Linear, ReLU, forward_fp32, load_model


def _affine(lo: float, hi: float, fmt: IntFormat, symmetric: bool):
    """Scale (float32) and zero point covering [lo, hi] (always including 0)."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    if symmetric:
        scale = max(abs(lo), abs(hi)) / fmt.qmax or 1.0
        return np.float32(scale), 0
    scale = (hi - lo) / (fmt.qmax - fmt.qmin) or 1.0
    zero = int(np.clip(np.rint(fmt.qmin - lo / scale), fmt.qmin, fmt.qmax))
    return np.float32(scale), zero


def _typed_zero(z: int, fmt: IntFormat):
    return np.asarray(z, np.int8 if fmt.signed else np.uint8)


def _int_gemm(hw, path: IntDatapath, layer: Linear, x, x_range, y_range):
    d, q = hw.datapath, hw.quantization
    af, wf, yf = get_format(d.activations), get_format(d.weights), get_format(d.outputs)
    sx, zx = _affine(*x_range, af, q.symmetric_activations)
    sy, zy = _affine(*y_range, yf, q.symmetric_activations)
    wmax = np.abs(layer.weight).max(axis=0)
    sw = np.where(wmax > 0, wmax, 1.0) / wf.qmax                          # an all-zero channel: scale 1
    # a near-dead channel's scale is raised until its int32 bias fits (as TFLite's converter does)
    sw = np.maximum(sw, np.abs(layer.bias) / (float(sx) * 2.0 ** 30)).astype(np.float32)
    xq = quantize_int(x, af, sx, zx)
    wq = quantize_int(layer.weight, wf, sw, 0, axis=1)
    bias = layer.bias if path.bias == "float" else quantize_bias(layer.bias, sx, sw)
    y, events = qlinear_matmul(xq, sx, _typed_zero(zx, af), wq, sw, _typed_zero(0, wf), sy, _typed_zero(zy, yf),
                               bias, datapath=path, a_format=af.name, b_format=wf.name, y_format=yf.name,
                               return_events=True)
    acc = path.accumulator
    counts = {"overflow": int(events.sum()) if acc.overflow == "wrap" else 0,
              "saturated": int(events.sum()) if acc.overflow == "saturate" else 0}
    return dequantize_int(y, sy, zy), counts


def _float_codes(x, fmt_name: str, calib_max: float):
    """Codes of x in a float format, with the per-tensor scale applied before encoding."""
    fmt = get_format(fmt_name)
    # 8-bit and narrower formats are scaled to their range; 16-bit floats (BF16, FP16) are not
    scale = np.float32(max(calib_max, 1e-30) / fmt.max) if fmt.storage_bits < 16 else np.float32(1)
    return encode((x / scale).astype(np.float32), fmt, saturate=True), scale


def _float_gemm(hw, path: FloatDatapath, layer: Linear, x, x_range, y_range):
    d, q = hw.datapath, hw.quantization
    out = get_format(d.outputs)
    if path.block_size:
        a = mx_quantize(x, d.activations, axis=1, block_size=path.block_size)
        w = mx_quantize(layer.weight, d.weights, axis=0, block_size=path.block_size)
        acc, counts = mx_matmul(a, w), {"overflow": 0, "saturated": 0}
        y = acc.astype(np.float32)
    else:
        weight = layer.weight
        wfmt = d.weights
        if isinstance(get_format(d.weights), IntFormat):          # weight-only integer: per group
            wi = get_format(d.weights)
            gmax = np.maximum.reduceat(np.abs(weight), np.arange(0, weight.shape[0], q.group_size), axis=0)
            scales = (np.maximum(gmax, 1e-12) / wi.qmax).astype(np.float32)
            codes = quantize_int(weight, wi, scales, 0, axis=0, group_size=q.group_size)
            weight = dequantize_int(codes, scales, 0, axis=0, group_size=q.group_size)
            wfmt = d.activations
        xa, sa = _float_codes(x, d.activations, max(abs(x_range[0]), abs(x_range[1])))
        wa, sw = _float_codes(weight, wfmt, float(np.abs(weight).max()))
        if path.accumulator == FloatAccumulator():        # plain FP32 adds: the fast kernel, Inf/NaN counted
            acc = float_matmul(xa, wa, d.activations, wfmt, path.accumulator)
            counts = {"overflow": int((~np.isfinite(acc)).sum()), "saturated": 0}
        else:
            acc, events = float_matmul(xa, wa, d.activations, wfmt, path.accumulator, return_events=True)
            counts = {"overflow": int(events["overflow"].sum()), "saturated": int(events["saturated"].sum())}
        y = (acc.astype(np.float32) * (sa * sw)).astype(np.float32)
    y = y + layer.bias
    return decode(encode(y, out, saturate=True), out, dtype=np.float64).astype(np.float32), counts


def _metrics(ref: np.ndarray, got: np.ndarray) -> dict:
    err = got.astype(np.float64) - ref
    power, noise = float(np.sum(ref.astype(np.float64) ** 2)), float(np.sum(err ** 2))
    denom = float(np.linalg.norm(ref) * np.linalg.norm(got))
    sqnr = float("nan") if np.isnan(noise) else (10 * np.log10(power / noise) if noise > 0 else float("inf"))
    return {"sqnr_db": sqnr,
            "mse": noise / max(err.size, 1), "max_abs_err": float(np.abs(err).max(initial=0.0)),
            "cosine": float(np.sum(ref.astype(np.float64) * got) / denom) if denom > 0 else 1.0,
            "nan_count": int(np.isnan(got).sum())}


def _run_gemm(hw, path, layer: Linear, x, x_range, y_range) -> tuple[np.ndarray, dict]:
    """One GEMM through the hardware's datapath: its output and its record fields (counts, cost)."""
    gemm = _int_gemm if isinstance(path, IntDatapath) else _float_gemm
    y, counts = gemm(hw, path, layer, x, x_range, y_range)
    (m, k), n = x.shape, layer.weight.shape[1]
    cost = gemm_layer_cost(hw, m, k, n, hw.datapath.activations, hw.datapath.weights, hw.datapath.outputs,
                           hw.quantization.mx_block if hw.quantization.weights == "mx" else 0)
    return y, dict(counts, M=m, K=k, N=n, macs=cost.macs, cycles=cost.cycles, seconds=cost.seconds,
                   bound=cost.bound, utilization=cost.utilization,
                   **{f"bytes_{lv}": b for lv, b in cost.bytes_by_level.items()},
                   **{f"energy_{term}_pj": e for term, e in cost.energy_pj.items()},
                   energy_total_pj=cost.energy_total_pj)


def _run_info(work_name: str, hw, path, seed: int, calibration: str) -> dict:
    return {"run_id": uuid.uuid4().hex[:12], "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "qsim_version": __version__, "config_hash": config_hash(hw), "seed": seed,
            "model": work_name, "hardware": hw.name, "datapath": path.name, "calibration": calibration}


def _totals(records) -> dict:
    return {k: sum(r.get(k, 0) for r in records) for k in ("macs", "cycles", "seconds", "energy_total_pj",
                                                         "overflow", "saturated")}


def _simulate_minilm(work, hw, path, seed: int, calibration: str) -> list[dict]:
    """MiniLM: its 36 Linear layers through the datapath; model row: embedding cosine to FP32
    and nearest-neighbour agreement (each sentence's most similar other sentence)."""
    run = _run_info(work.name, hw, path, seed, calibration)
    seen: dict[str, list] = {}

    def observe(name, x, w, b):
        y = (x @ w + b).astype(np.float32)
        seen.setdefault(name, []).append((x, y))
        return y

    work.forward(work.calib, observe)
    ranges = {name: (calibrate(np.concatenate([x for x, _ in v]).ravel(), calibration),
                     calibrate(np.concatenate([y for _, y in v]).ravel(), calibration)) for name, v in seen.items()}
    seen.clear()
    ref = work.forward(work.test, observe)
    ref_out = {name: v[-1][1] for name, v in seen.items()}
    records = []

    def on_hardware(name, x, w, b):
        y, fields = _run_gemm(hw, path, Linear(name, np.ascontiguousarray(w), b), x, *ranges[name])
        records.append(dict(run, layer=name, op="Linear", **fields, **_metrics(ref_out[name], y)))
        return y

    emb = work.forward(work.test, on_hardware)
    cos = (emb.astype(np.float64) * ref).sum(axis=1)
    nearest = lambda e: np.argmax(e @ e.T - 2 * np.eye(len(e)), axis=1)
    records.append(dict(run, layer="__model__", op="model", cosine_mean=float(cos.mean()), cosine_min=float(cos.min()),
                        nn_agreement=float((nearest(emb) == nearest(ref)).mean()), **_totals(records),
                        **_metrics(ref, emb)))
    return records


def config_hash(hw) -> str:
    return hashlib.sha256(repr(hw).encode()).hexdigest()[:16]


def simulate(model, hardware, seed: int = 0, calibration: str = "max") -> list[dict]:
    """One record per layer plus one for the whole model ("layer" = "__model__").

    calibration: how tensor ranges are taken from the calibration split (qsim.quant.calibrate:
    max, percentile, mse, entropy)."""
    work = load_model(model) if isinstance(model, str) else model
    hw = load_hardware(hardware)
    path = hw.datapath.resolve()
    if hasattr(work, "forward"):                          # a model with its own forward pass (MiniLM)
        return _simulate_minilm(work, hw, path, seed, calibration)
    run = _run_info(work.name, hw, path, seed, calibration)
    ref = forward_fp32(work.layers, work.test)
    calib = forward_fp32(work.layers, work.calib)
    ranges = [calibrate(t, calibration) for t in [work.calib] + calib]      # inputs, then each output
    ranges_in = ranges[:-1]
    records, x = [], work.test
    for i, layer in enumerate(work.layers):
        rec = dict(run, layer=layer.name, op=type(layer).__name__)
        if isinstance(layer, (Linear, Conv2d)):
            if isinstance(layer, Conv2d):                  # the convolution as a GEMM over patches
                cols, shape = layer.patches(x)
                y, fields = _run_gemm(hw, path, Linear(layer.name, layer.weight_matrix(), layer.bias), cols,
                                      ranges_in[i], ranges[i + 1])
                y = Conv2d.to_nchw(y, shape)
            else:
                y, fields = _run_gemm(hw, path, layer, x, ranges_in[i], ranges[i + 1])
            rec.update(fields)
        else:                                              # vector unit, FP32: exact on these ops
            y = np.maximum(x, np.float32(0)) if isinstance(layer, ReLU) else layer(x)
            rec.update(overflow=0, saturated=0, macs=0, cycles=0, seconds=0.0, energy_total_pj=0.0)
        rec.update(_metrics(ref[i], y))
        records.append(rec)
        x = y
    top1 = float((x.argmax(axis=1) == work.labels).mean())
    agree = float((x.argmax(axis=1) == ref[-1].argmax(axis=1)).mean())
    total = _totals(records)
    records.append(dict(run, layer="__model__", op="model", top1=top1, agreement_fp32=agree,
                        fp32_top1=float((ref[-1].argmax(axis=1) == work.labels).mean()), **total,
                        **_metrics(ref[-1], x)))
    return records
