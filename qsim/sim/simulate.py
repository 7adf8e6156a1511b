"""Run a workload on a described accelerator, layer by layer: bit-exact GEMMs (Linear,
convolution, activation products, attention) through the hardware's datapath, other
operations in its vector format; per-layer error against the float32 forward pass, and cost
(cycles, bytes per memory level, energy terms).

Post-training quantization, calibrated on the calibration split (max, percentile, MSE or
entropy ranges of every GEMM operand and output):
- integer hardware: weights symmetric (or affine) per output channel or per tensor;
  activations affine (or symmetric) per tensor; static (calibrated output range, requantized
  by the datapath) or dynamic (input range taken at run time, float output as ONNX Runtime's
  MatMulIntegerToFloat);
- float hardware: per-tensor (or per-channel for weights) scales to the format's range for
  8-bit and narrower formats, MX blocks, or integer weight-only groups.
Layers named in fp32_layers run in FP32 (partial quantization, sensitivity analysis).
"""

from __future__ import annotations

import time
import uuid
from math import ceil
from collections import OrderedDict, defaultdict
from dataclasses import replace

import numpy as np

from .. import __version__, encode, quantize
from ..datapaths import FloatAccumulator, block_matmul, float_matmul, int_matmul, quantize_bias
from ..datapaths.integer import requantize_accumulator
from ..formats import IntFormat, format as get_format
from ..hardware import load_hardware
from ..hardware.cost import mapped_gemm_cost, vector_layer_cost
from ..io import MODEL_ROW
from ..plan import plan_gemm, resolve_datapath
from ..quant.calibrate import calibrate
from ..quant.intquant import dequantize_int, quantize_int
from ..quant.blocks import block_quantize
from .graph import FP32, forward_fp32, run_graph
from .layers import GEMM_LAYERS, CausalAttention
from .models import load_model

_GROWS_WITH_CONTEXT = (CausalAttention,)      # decode layers whose cost changes as the KV cache grows


def _affine(lo, hi, fmt: IntFormat, symmetric: bool):
    """Scales (float32) and zero points covering [lo, hi] (always including 0); lo and hi may be
    arrays (one range per channel)."""
    lo, hi = np.minimum(lo, 0.0), np.maximum(hi, 0.0)
    if symmetric:
        scale = np.maximum(np.abs(lo), np.abs(hi)) / fmt.qmax
        return np.where(scale > 0, scale, 1.0).astype(np.float32), np.zeros(np.shape(lo), np.int64)
    scale = (hi - lo) / (fmt.qmax - fmt.qmin)
    scale = np.where(scale > 0, scale, 1.0)
    zero = np.clip(np.rint(fmt.qmin - lo / scale), fmt.qmin, fmt.qmax).astype(np.int64)
    return scale.astype(np.float32), zero


def _observed(x) -> tuple[float, float]:
    return float(x.min(initial=0.0)), float(x.max(initial=0.0))


class _Calibration(FP32):
    """The FP32 forward pass, keeping every GEMM's activation operands and output."""

    def __init__(self):
        self.seen = defaultdict(lambda: defaultdict(list))

    def gemm(self, key, a, b, bias=None, weight=True):
        y = super().gemm(key, a, b, bias, weight)
        roles = {"a": a, "y": y} if weight else {"a": a, "b": b, "y": y}
        for role, t in roles.items():
            self.seen[key][role].append(t.ravel())
        return y

    def ranges(self, method: str) -> dict:
        return {key: {role: calibrate(np.concatenate(ts), method) for role, ts in roles.items()}
                for key, roles in self.seen.items()}


_PREPARED: OrderedDict = OrderedDict()      # (id(workload), calibration) -> (workload, ranges, reference)


def _prepare(work, calibration: str):
    """Calibrated ranges and the FP32 reference outputs of a workload; the last few are kept,
    as they do not depend on the hardware (a comparison or a sweep reuses them)."""
    key = (id(work), calibration)
    if key in _PREPARED and _PREPARED[key][0] is work:
        _PREPARED.move_to_end(key)
        return _PREPARED[key][1:]
    cal = _Calibration()
    run_graph(work.layers, work.calib, cal)
    entry = (work, cal.ranges(calibration), forward_fp32(work.layers, work.test))
    _PREPARED[key] = entry
    while len(_PREPARED) > 4:
        _PREPARED.popitem(last=False)
    return entry[1:]


class _OnHardware(FP32):
    """Runs each GEMM as its plan (qsim.plan) says and each vector result in the vector format,
    noting per call the counts and cost (collected per layer in `parts`). Plans are made once
    per (layer, GEMM key, shape, weight) and kept."""

    def __init__(self, hw, ranges: dict, fp32_layers, samples: int = 1, batch: int | None = None):
        self.hw, self.ranges, self.fp32_layers = hw, ranges, frozenset(fp32_layers)
        self.samples, self.batch = samples, batch or samples   # cost taken per batch of `batch` inferences
        self.parts: list[dict] = []
        self.plans: dict = {}

    @property
    def _full_precision(self) -> bool:
        return self.layer.name in self.fp32_layers

    def plan(self, key, m: int, k: int, n: int, weight: bool):
        full = self._full_precision
        cache_key = (key, m, k, n, weight, full)
        found = self.plans.get(cache_key)
        if found is None:
            found = self.plans[cache_key] = plan_gemm(self.hw, m, k, n, weight, full_precision=full)
        return found

    def gemm(self, key, a, b, bias=None, weight=True):
        m, k, n = a.shape[-2], a.shape[-1], b.shape[-1]
        plan = self.plan(key, m, k, n, weight)
        kind = plan.kernel.kind
        if kind == "fp32-layer":
            y, counts = super().gemm(key, a, b, bias, weight), {"overflow": 0, "saturated": 0}
        elif kind == "integer":
            y, counts = self._int_gemm(plan, key, a, b, bias, weight)
        else:
            y, counts = self._float_gemm(plan, key, a, b, bias, weight)
        products = int(np.prod(np.broadcast_shapes(a.shape[:-2], b.shape[:-2])))
        rows, products, batches = _at_batch(m, products, self.samples, self.batch)
        self.parts.append(dict(counts, M=m, K=k, N=n,
                               **_gemm_cost_fields(self.hw, rows, k, n, plan.cost, products * batches)))
        return y

    def vector(self, y, reads):
        fmt = "fp32" if self._full_precision else self.hw.datapath.vector_format
        if fmt != "fp32":
            y = quantize(y, fmt, saturate=True)
        share = self.batch / self.samples           # one batch's elements, costed once per batch
        cost = vector_layer_cost(self.hw, ceil(reads * share), ceil(y.size * share), fmt)
        self.parts.append(dict(overflow=0, saturated=0, **_cost_fields(cost, 1 / share)))
        return y

    def kv_cache(self, x):
        """Keys or values stored in the KV cache's format and read back (symmetric scales from the
        largest magnitude of the tensor or of each token's vector); writing them is charged."""
        kv = self.hw.datapath.kv_format
        if self._full_precision or kv.format == "fp32":
            return x
        fmt = get_format(kv.format)
        if kv.granularity == "none":
            y = quantize(x, fmt, saturate=True)
        else:
            amax = np.abs(x).max(axis=None if kv.granularity == "per-tensor" else -1, keepdims=True)
            limit = float(fmt.qmax if isinstance(fmt, IntFormat) else fmt.max)
            scale = (np.maximum(amax, np.float32(1e-30)) / np.float32(limit)).astype(np.float32)
            y = (quantize((x / scale).astype(np.float32), fmt, saturate=True) * scale).astype(np.float32)
        self.parts.append(dict(overflow=0, saturated=0, **_cost_fields(vector_layer_cost(self.hw, x.size, x.size,
                                                                                         kv.format))))
        return y

    def _range(self, quantizer, key, role, x):
        return _observed(x) if quantizer.range == "dynamic" else self.ranges[key][role]

    # -- integer kernels ---------------------------------------------------------------------------
    def _int_gemm(self, plan, key, a, b, bias, weight):
        qa, qb, out, path = plan.a, plan.b, plan.output, plan.kernel.path
        af, yf = get_format(qa.format), get_format(out.format)
        if qa.granularity == "per-token":      # a symmetric scale per row, from the row's largest magnitude
            amax = np.abs(a).max(axis=-1, keepdims=True)
            sa, za = (np.where(amax > 0, amax, np.float32(1)) / np.float32(af.qmax)).astype(np.float32), 0
            aq = quantize_int((a / sa).astype(np.float32), af, np.float32(1), 0)
        else:
            sa, za = _affine(*self._range(qa, key, "a", a), af, qa.symmetric)
            aq = quantize_int(a, af, sa, int(za))
        bf = get_format(qb.format)
        if weight:
            sb, zb = self._weight_scales(qb, path, b, bias, bf, sa)
        else:
            sb, zb = _affine(*self._range(qb, key, "b", b), bf, qb.symmetric)
        bq = quantize_int(b, bf, sb, zb, axis=1 if np.ndim(sb) else None)
        acc, events = int_matmul(aq, bq, int(za), zb, path.accumulator, return_events=True)
        if out.method == "scale-to-float":      # the accumulator scaled to float32, then the float bias
            y = acc.astype(np.float32) * (sa * sb).astype(np.float32)
            y = y if bias is None else (y + bias).astype(np.float32)
            y = y if out.format == "fp32" else quantize(y, out.format, saturate=True)
        else:
            sy, zy = _affine(*self.ranges[key]["y"], yf, out.symmetric)
            qbias = None if bias is None else bias if path.bias == "float" else quantize_bias(bias, sa, sb)
            yq, events = requantize_accumulator(acc, events, qbias, sa, sb, sy, int(zy), yf.qmin, yf.qmax, path, yf)
            y = dequantize_int(yq, sy, int(zy))
        total = int(events.sum())
        wraps = path.accumulator.overflow == "wrap"
        return y, {"overflow": total if wraps else 0, "saturated": 0 if wraps else total}

    @staticmethod
    def _weight_scales(qb, path, w, bias, fmt: IntFormat, sa):
        """Weight scales and zero points, per output channel or per tensor."""
        axis = 0 if qb.granularity == "per-channel" else None
        scale, zero = _affine(w.min(axis=axis), w.max(axis=axis), fmt, qb.symmetric)
        if bias is not None and path.bias == "int32" and qb.symmetric:
            # a near-dead channel's scale is raised until its int32 bias fits (as TFLite's converter does)
            need = np.abs(bias) / (float(np.max(sa)) * 2.0 ** 30)
            scale = np.maximum(scale, need if axis == 0 else need.max()).astype(np.float32)
        return scale, zero

    # -- float kernels -----------------------------------------------------------------------------
    def _float_gemm(self, plan, key, a, b, bias, weight):
        qa, qb, kernel = plan.a, plan.b, plan.kernel
        if kernel.kind == "block":
            y, counts = self._block_gemm(qa, qb, a, b), {"overflow": 0, "saturated": 0}
        elif kernel.kind == "fp32":
            # FP32 operands: the FP32 reference product (qsim's float kernels model <= 16-bit operands)
            y = super().gemm(key, a, b, None, weight)
            counts = {"overflow": int((~np.isfinite(y)).sum()), "saturated": 0}
        else:
            if qb.then is not None:                     # weight-only integer groups
                b, qb = self._weight_only(qb, b), qb.then
            lo, hi = self._range(qa, key, "a", a) if qa.granularity != "none" else (0.0, 0.0)
            ca, sa = _float_codes(a, qa, kernel.a_format, max(abs(lo), abs(hi)))
            if qb.range == "weights":
                bmax = np.abs(b).max(axis=0) if qb.granularity == "per-channel" else np.abs(b).max()
            elif qb.granularity == "none":
                bmax = 0.0
            else:
                lo, hi = self._range(qb, key, "b", b)
                bmax = max(abs(lo), abs(hi))
            cb, sb = _float_codes(b, qb, kernel.b_format, bmax)
            acc_model = kernel.accumulator
            if acc_model == FloatAccumulator():       # plain FP32 adds: the fast kernel, Inf/NaN counted
                acc = float_matmul(ca, cb, kernel.a_format, kernel.b_format, acc_model)
                counts = {"overflow": int((~np.isfinite(acc)).sum()), "saturated": 0}
            else:
                acc, events = float_matmul(ca, cb, kernel.a_format, kernel.b_format, acc_model, return_events=True)
                counts = {"overflow": int(events["overflow"].sum()), "saturated": int(events["saturated"].sum())}
            y = (acc.astype(np.float32) * (sa * sb).astype(np.float32)).astype(np.float32)
        if bias is not None:
            y = (y + bias).astype(np.float32)
        out = plan.output
        return (y if out.method == "none" else quantize(y, out.format, saturate=True)), counts

    @staticmethod
    def _block_gemm(qa, qb, a, b):
        """Both operands in blocks along K (B transposed, so 2-D tiles cover (N, K))."""
        return block_matmul(block_quantize(a, qa.block_format, axis=-1),
                            block_quantize(np.swapaxes(b, -1, -2), qb.block_format, axis=-1)).astype(np.float32)

    @staticmethod
    def _weight_only(qb, w):
        """Integer weights in groups along K, dequantized for the float kernel."""
        wf, group = get_format(qb.format), qb.block
        gmax = np.maximum.reduceat(np.abs(w), np.arange(0, w.shape[0], group), axis=0)
        scales = (np.maximum(gmax, 1e-12) / wf.qmax).astype(np.float32)
        codes = quantize_int(w, wf, scales, 0, axis=0, group_size=group)
        return dequantize_int(codes, scales, 0, axis=0, group_size=group)


def _float_codes(x, quantizer, fmt_name: str, calib_max):
    """Codes of x in a float format with the quantizer's scale (per tensor, or per column when
    calib_max is an array) applied before encoding; unscaled quantizers (BF16, FP16) scale by 1."""
    fmt = get_format(fmt_name)
    if quantizer.granularity in ("per-tensor", "per-channel"):
        scale = np.asarray(np.maximum(calib_max, 1e-30) / fmt.max, np.float32)
    else:
        scale = np.ones(np.shape(calib_max), np.float32)
    return encode((x / scale).astype(np.float32), fmt, saturate=True), scale


def _at_batch(m: int, products: int, samples: int, batch: int) -> tuple[int, int, float]:
    """A GEMM of the whole run (`products` products of M rows over `samples` inferences) as one
    batch of `batch` inferences runs it: its rows, its products, and how many such batches
    make the run (samples / batch). The inferences are a product's rows (Linear, convolution:
    M = samples x rows per inference) or the products themselves (attention: one or more per
    inference)."""
    if batch == samples:
        return m, products, 1
    if products % samples == 0:
        return m, products // samples * batch, samples / batch
    if m % samples == 0:
        return m // samples * batch, products, samples / batch
    raise ValueError(f"a GEMM of {products} products of {m} rows does not split into {samples} inferences")


def _cost_fields(cost, batch: float = 1) -> dict:
    """Record fields of a cost, repeated `batch` times (a batched product, or one batch's cost
    repeated over the run's batches)."""
    return dict(macs=round(cost.macs * batch), cycles=round(cost.cycles * batch), seconds=cost.seconds * batch,
                bound=cost.bound,
                **{f"bytes_{lv}": b * batch for lv, b in cost.bytes_by_level.items()},
                **{f"energy_{term}_pj": e * batch for term, e in cost.energy_pj.items()},
                energy_total_pj=cost.energy_total_pj * batch)


def _gemm_cost_fields(hw, m: int, k: int, n: int, inputs, batch: int) -> dict:
    """A GEMM's cost fields with the mapper's choice: its dataflow and DRAM-level tiling (the
    whole GEMM, loop order "untiled", when it keeps SCALE-Sim's untiled loop)."""
    cost = mapped_gemm_cost(hw, m, k, n, inputs)
    t = cost.tiling
    tile, order = ((m, k, n), "untiled") if t is None else ((t.m, t.k, t.n), t.order)
    return dict(_cost_fields(cost, batch), dataflow=cost.dataflow, tile_M=tile[0], tile_K=tile[1], tile_N=tile[2],
                loop_order=order)


_CHOICE = ("dataflow", "tile_M", "tile_K", "tile_N", "loop_order")


def _layer_fields(parts: list[dict], hw) -> dict:
    """One layer's record fields from its datapath and vector calls: sums, the first GEMM's
    shape, the bound of its slowest call."""
    summed = {k: sum(p[k] for p in parts) for k in parts[0] if k not in ("M", "K", "N", "bound", *_CHOICE)}
    shape = next(({k: p[k] for k in ("M", "K", "N", *_CHOICE)} for p in parts if "M" in p), {})
    bound = max(parts, key=lambda p: p["seconds"])["bound"]
    array = hw.array.rows * hw.array.cols
    utilization = summed["macs"] / (summed["cycles"] * array) if summed["cycles"] else 0.0
    return dict(summed, **shape, bound=bound, utilization=utilization)


def _dot(x: np.ndarray, y: np.ndarray) -> float:
    """sum(x * y) by numpy's pairwise summation: unlike a BLAS dot, the same bits at any thread count."""
    return float(np.sum(x * y))


def _metrics(ref: np.ndarray, got: np.ndarray) -> dict:
    r, g = ref.astype(np.float64).ravel(), got.astype(np.float64).ravel()
    err = g - r
    power, noise = _dot(r, r), _dot(err, err)
    denom = float(np.sqrt(power * _dot(g, g)))
    sqnr = float("nan") if np.isnan(noise) else (10 * np.log10(power / noise) if noise > 0 else float("inf"))
    return {"sqnr_db": sqnr,
            "mse": noise / max(err.size, 1), "max_abs_err": float(np.abs(err).max(initial=0.0)),
            "cosine": _dot(r, g) / denom if denom > 0 else 1.0,
            "nan_count": int(np.isnan(g).sum())}


def _model_metrics(work, ref: np.ndarray, out: np.ndarray) -> dict:
    """Classifiers: top-1 and agreement with FP32; embedding models: cosine per sample to FP32's
    and nearest-neighbour agreement (each sample's most similar other sample)."""
    if work.labels is not None:
        return {"top1": float((out.argmax(axis=1) == work.labels).mean()),
                "agreement_fp32": float((out.argmax(axis=1) == ref.argmax(axis=1)).mean()),
                "fp32_top1": float((ref.argmax(axis=1) == work.labels).mean())}
    unit = lambda e: e.astype(np.float64) / np.linalg.norm(e, axis=1, keepdims=True)
    cos = (unit(out) * unit(ref)).sum(axis=1)
    # einsum's own loops, not BLAS: the similarities (and so the argmax) are the same at any thread count
    nearest = lambda e: np.argmax(np.einsum("id,jd->ij", e, e) - 2 * np.eye(len(e)), axis=1)
    return {"cosine_mean": float(cos.mean()), "cosine_min": float(cos.min()),
            "nn_agreement": float((nearest(out) == nearest(ref)).mean())}


def config_hash(hw) -> str:
    return hw.config_hash


def _run_info(work_name: str, hw, path, seed: int, calibration: str) -> dict:
    return {"run_id": uuid.uuid4().hex[:12], "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "qsim_version": __version__, "config_hash": config_hash(hw), "seed": seed,
            "model": work_name, "hardware": hw.name, "datapath": path.name, "calibration": calibration}


_TOTALS = ("macs", "cycles", "seconds", "energy_total_pj", "overflow", "saturated")


def simulate(model, hardware, seed: int = 0, calibration: str = "max", fp32_layers=(),
             batch: int | None = None) -> list[dict]:
    """One record per layer plus one for the whole model ("layer" = "__model__").

    calibration: how tensor ranges are taken from the calibration split (qsim.quant.calibrate:
    max, percentile, mse, entropy). fp32_layers: names of layers kept in FP32. batch: the
    inferences one run of the hardware takes at a time (default: the whole test set at once);
    the cost columns are one batch's cost times the run's batches (samples / batch), so that
    seconds / samples is the latency per inference at that batch (batch=1: batch-1 latency)
    and samples / seconds the throughput. The numbers (the error columns) do not depend on it."""
    if batch is not None and (isinstance(batch, bool) or not isinstance(batch, int) or batch < 1):
        raise ValueError(f"batch must be a positive integer, got {batch!r}")
    work = load_model(model) if isinstance(model, str) else model
    hw = load_hardware(hardware)
    path = resolve_datapath(hw)
    unknown = set(fp32_layers) - {layer.name for layer in work.layers}
    if unknown:
        raise ValueError(f"fp32_layers names layers {sorted(unknown)} that {work.name} does not have")
    ranges, ref = _prepare(work, calibration)
    run = _run_info(work.name, hw, path, seed, calibration)
    samples = len(ref[-1])
    ex = _OnHardware(hw, ranges, fp32_layers, samples, batch)
    records = []

    def record(layer, y):
        kind = "fp32" if layer.name in ex.fp32_layers else "gemm" if isinstance(layer, GEMM_LAYERS) else "vector"
        records.append(dict(run, layer=layer.name, op=type(layer).__name__, unit=kind,
                            **_layer_fields(ex.parts, hw), **_metrics(ref[len(records)], y)))
        ex.parts = []

    out = run_graph(work.layers, work.test, ex, record)
    if work.llm is not None:
        return _llm_records(work, hw, run, records, ex, ref[-1], out)
    totals = {k: sum(r[k] for r in records) for k in _TOTALS}
    records.append(dict(run, layer=MODEL_ROW, op="model", samples=len(out), batch=ex.batch, **_model_metrics(work, ref[-1], out), **totals,
                        **_metrics(ref[-1], out)))
    return records


def _llm_records(work, hw, run, prefill: list[dict], ex, ref, out) -> list[dict]:
    """A decoder LLM's records: the prefill layers as run (the prompts' tokens, every GEMM on
    the datapath), then each layer's decode cost summed over the generated tokens (GEMVs that
    read every weight, attention reading the KV cache as it grows), then the model row (both
    phases' cost; perplexity, agreement and KL divergence of the prompts' next tokens)."""
    from .llm import DecodeGemm, decode_step, llm_metrics
    llm = work.llm
    cfg, batch, prompt, steps = llm.file.config, llm.batch, llm.prompt_tokens, llm.decode_tokens
    for r in prefill:
        r.update(phase="prefill", tokens=batch * prompt)
    decode = []
    kv = hw.datapath.kv_format
    for layer in work.layers if steps else ():
        ex.layer = layer                           # the executor's plans follow the layer's precision
        full = layer.name in ex.fp32_layers
        parts = []
        for context in range(prompt + 1, prompt + steps + 1):
            for op in decode_step(layer, cfg, batch, context):
                if isinstance(op, DecodeGemm):
                    plan = ex.plan(op.key, op.m, op.k, op.n, op.weight)
                    cost = plan.cost if op.weight or full else replace(plan.cost, bits=(plan.cost.bits[0], kv.bits,
                                                                                       plan.cost.bits[2]))
                    parts.append(dict(overflow=0, saturated=0, M=op.m, K=op.k, N=op.n,
                                      **_gemm_cost_fields(hw, op.m, op.k, op.n, cost, op.count)))
                else:
                    fmt = "fp32" if full else kv.format if op.kv else hw.datapath.vector_format
                    parts.append(dict(overflow=0, saturated=0,
                                      **_cost_fields(vector_layer_cost(hw, op.reads, op.writes, fmt))))
            if not any(isinstance(layer, t) for t in _GROWS_WITH_CONTEXT):   # the same every step
                parts = [{k: v * steps if k not in ("M", "K", "N", "bound") else v for k, v in p.items()} for p in parts]
                break
        kind = "fp32" if full else "gemm" if isinstance(layer, GEMM_LAYERS) else "vector"
        decode.append(dict(run, layer=layer.name, op=type(layer).__name__, unit=kind, phase="decode",
                           tokens=batch * steps, **_layer_fields(parts, hw)))
    records = prefill + decode
    totals = {k: sum(r[k] for r in records) for k in _TOTALS}
    records.append(dict(run, layer=MODEL_ROW, op="model", samples=batch, phase="prefill+decode",
                        tokens=batch * (prompt + steps), **llm_metrics(llm.data.targets, ref, out), **totals,
                        **_metrics(ref, out)))
    return records
