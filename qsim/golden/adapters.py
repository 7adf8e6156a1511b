"""Built-in adapters: real kernels (ONNX Runtime, PyTorch, ml_dtypes) run on golden inputs.

Each Adapter names the golden configuration it should match (`golden_config`, the keyword
arguments of make_golden), says in `departs` what the real kernel computes, and lists in
`departures` the known ways a peer departs from the specification, each a classifier
(validate.Departure): which golden outputs are in its domain, and whether it explains a
mismatch. Whether a departure shows is measured on the installed peer, never assumed: a
mismatch is waived only if a known departure explains it, and the result reports each
departure as seen, not seen or not exercised. The peer packages are imported only when an
adapter runs.

    from qsim.golden import ADAPTERS, generate
    adapter = ADAPTERS["ort-qlinear-matmul-u8s8"]
    generate(out_dir=tmp, **adapter.golden_config)
    result = adapter.validate(tmp)          # result.ok, result.departure_summary(), result.markdown(), ...
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Callable

import numpy as np

from ..codec import decode
from ..datapaths import Accumulator, qlinear_conv, qlinear_matmul
from ..datapaths.integer import PRESETS
from ..formats import format as get_format
from .generate import canonical_op
from .store import GoldenError, load_golden
from .validate import Departure, validate_kernel


@dataclass(frozen=True)
class Adapter:
    name: str
    op: str
    golden_config: dict = field(hash=False)         # make_golden(**golden_config) gives the matching set
    departs: str                                    # what the kernel computes, against the specification
    kernel: Callable[[dict], object] = field(repr=False)
    nan_equal: bool = False                         # NaN results compared as a class
    departures: tuple[Departure, ...] = ()          # known departures, classified on every run
    requires: tuple[str, ...] = ()                  # the peer packages the kernel imports

    def run(self, inputs: dict):
        """The kernel's outputs for one golden case's inputs."""
        return self.kernel(inputs)

    def config_differences(self, golden) -> list[str]:
        """The keys that the adapter's golden_config sets (not None) and the golden set's
        configuration holds differently (format names compared canonically)."""
        golden = load_golden(golden)
        return [k for k, v in self.golden_config.items()
                if v is not None and _norm(k, v) != _norm(k, golden.config.get(k))]

    def validate(self, golden, *, waivers: bool = True):
        """Run the kernel on a golden set and compare, classifying every mismatch by the known
        departures (explained ones are waived; waivers=False: every mismatch fails). Refuses
        (GoldenError) a set of another op, or one whose configuration differs from
        golden_config in a key the adapter sets."""
        missing = [p for p in self.requires if importlib.util.find_spec(p) is None]
        if missing:
            raise ModuleNotFoundError(f"adapter {self.name} needs {', '.join(missing)}, which is not installed")
        golden = load_golden(golden)
        if golden.op != self.op:
            raise ValueError(f"adapter {self.name} runs op {self.op}, the golden set is op {golden.op}")
        differing = self.config_differences(golden)
        if differing:
            values = "; ".join(f"{k}: adapter {_norm(k, self.golden_config[k])!r}, "
                               f"golden set {_norm(k, golden.config.get(k))!r}" for k in differing)
            raise GoldenError(
                f"adapter {self.name} matches a golden set made with {_show_config(self.golden_config)}; this one "
                f"differs in {', '.join(differing)} ({values}). Make a matching set with "
                f"`qsim golden --adapter {self.name} --out DIR`")
        return validate_kernel(golden, self.run, nan_equal=self.nan_equal, name=self.name,
                               departures=self.departures, waivers=waivers)


_FORMAT_KEYS = ("format", "weight_format", "output_format")


def _norm(key: str, value):
    """A configuration value as make_golden stores it: canonical format names, float scales."""
    if value is None:
        return None
    if key in _FORMAT_KEYS:
        try:
            return get_format(value).name
        except (KeyError, ValueError):
            return value
    if key == "op":
        try:
            return canonical_op(value)
        except ValueError:
            return value
    if key == "scale" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return value


def _show_config(config: dict) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in config.items())


# -- ONNX Runtime ------------------------------------------------------------------------------
@cache
def _ort_session(op: str, inputs: tuple, attrs: tuple, out_type: int, zero_init: int | None, cast_float: bool,
                 out_rank: int):
    """A one-node model (optionally followed by a Cast to float32), run on the CPU provider
    with one thread. inputs: (name, numpy dtype str, rank); zero_init: the ONNX type of a
    zero "zp" initializer appended as the last input (float8 zero points)."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper
    graph_inputs = [helper.make_tensor_value_info(n, _onnx_type(d), [f"{n}_{i}" for i in range(r)])
                    for n, d, r in inputs]
    names = [n for n, _, _ in inputs]
    inits = []
    if zero_init is not None:
        names.append("zp")
        inits.append(helper.make_tensor("zp", zero_init, [], [0]))
    node_out = "q" if cast_float else "y"
    nodes = [helper.make_node(op, names, [node_out], **{k: list(v) if isinstance(v, tuple) else v for k, v in attrs})]
    if cast_float:
        nodes.append(helper.make_node("Cast", ["q"], ["y"], to=TensorProto.FLOAT))
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT if cast_float else out_type,
                                      [f"y_{i}" for i in range(out_rank)])
    model = helper.make_model(helper.make_graph(nodes, op, graph_inputs, [y], initializer=inits),
                              opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    onnx.checker.check_model(model)
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def _ort_run(op: str, feeds: list, out_type: int, attrs: dict | None = None, zero_init=None, cast_float=False):
    arrays = [(n, np.require(a, requirements="C")) for n, a in feeds]
    key_attrs = tuple(sorted((k, tuple(v) if isinstance(v, (list, tuple, np.ndarray)) else v)
                             for k, v in (attrs or {}).items()))
    session = _ort_session(op, tuple((n, a.dtype.str, a.ndim) for n, a in arrays), key_attrs, out_type,
                           zero_init, cast_float, arrays[0][1].ndim)    # every op here keeps the first input's rank
    return session.run(None, dict(arrays))[0]


def _onnx_type(dtype) -> int:
    from onnx import helper
    return helper.np_dtype_to_tensor_dtype(np.dtype(dtype))


def _ort_quantize_int(inputs):
    zp = inputs["zero_point"]
    return _ort_run("QuantizeLinear", [("x", inputs["x"].astype(np.float32)), ("scale", inputs["scale"].astype(np.float32)),
                                       ("zero_point", zp)], _onnx_type(zp.dtype))


_FLOAT8_ONNX = {"e4m3": "FLOAT8E4M3FN", "e5m2": "FLOAT8E5M2", "e4m3fnuz": "FLOAT8E4M3FNUZ", "e5m2fnuz": "FLOAT8E5M2FNUZ"}


def _ort_quantize_float8(fmt: str, saturate: int):
    def kernel(inputs):
        from onnx import TensorProto
        t = getattr(TensorProto, _FLOAT8_ONNX[fmt])
        scale = inputs.get("scale", np.array(1.0, np.float32)).astype(np.float32)
        return _ort_run("QuantizeLinear", [("x", inputs["x"].astype(np.float32)), ("scale", scale)], t,
                        {"saturate": saturate}, zero_init=t, cast_float=True)
    return kernel


def _ort_float8_band(fmt: str, lo: float, hi: float, spec_gives: str, peer_gives: str) -> Departure:
    """ONNX Runtime's non-saturating float8 conversion (seen in 1.32) keeps |x / scale| in
    [lo, hi), past the overflow threshold, at a value other than the specification's: the
    finite +-max (spec_gives "nan", peer_gives "max") or NaN (spec_gives "inf", peer_gives "nan")."""
    f = get_format(fmt)

    def in_band(case):
        a = np.abs(_scaled_input(case))
        return (a >= lo) & (a < hi)

    def gives(kind: str, codes: np.ndarray, case) -> np.ndarray:
        v = decode(codes, f, dtype=np.float64)
        if kind == "nan":
            return np.isnan(v)
        magnitude = float(f.max) if kind == "max" else np.inf
        return v == np.copysign(magnitude, _scaled_input(case))      # the sign of x / scale

    def explains(case, expected, got):
        return gives(spec_gives, expected, case) & gives(peer_gives, got, case)

    words = {"nan": "NaN", "max": f"+-{float(f.max):g}", "inf": "+-Inf"}
    return Departure(
        f"ort-{fmt}-saturate0-band", f"ONNX Runtime QuantizeLinear saturate=0: |x / scale| in [{lo:g}, {hi:g}) gives "
        f"{words[peer_gives]} where the specification gives {words[spec_gives]}", in_band, explains)


_ORT_FLOAT8_BANDS = {"e4m3": _ort_float8_band("e4m3", 480.0, 496.0, "nan", "max"),
                     "e5m2": _ort_float8_band("e5m2", 61440.0, 65536.0, "inf", "nan")}


def _scaled_input(case) -> np.ndarray:
    """x / scale in float32, as ONNX QuantizeLinear computes it (encode cases)."""
    x = case.inputs["x"].astype(np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        return x / case.inputs["scale"].astype(np.float32) if "scale" in case.inputs else x


def _ort_qlinear_matmul(inputs):
    i = inputs
    return _ort_run("QLinearMatMul", [("a", i["a"]), ("a_scale", i["a_scale"]), ("a_zero", i["a_zero"]),
                                      ("b", i["b"]), ("b_scale", i["b_scale"]), ("b_zero", i["b_zero"]),
                                      ("y_scale", i["y_scale"]), ("y_zero", i["y_zero"])], _onnx_type(i["y_zero"].dtype))


def _mlas_pair_saturation(op: str) -> Departure:
    """MLAS on x86 without VNNI multiplies u8 x s8 with VPMADDUBSW: each pair of products
    (k = 2j, 2j+1; in NHWC order for QLinearConv) saturates to int16 before the int32 sum, where
    the specification sums exactly. Modelled by the onnxruntime-x86-avx2 kernel path."""
    from ..sim.ort_kernels import mlas_conv_datapath
    avx2 = PRESETS["onnxruntime-x86-avx2"]
    computed: dict[int, tuple] = {}              # id(case) -> (case, codes): validation asks twice per case

    def saturated(case) -> np.ndarray:
        hit = computed.get(id(case))
        if hit is not None and hit[0] is case:
            return hit[1]
        i = case.inputs
        if op == "gemm":
            y = qlinear_matmul(i["a"], i["a_scale"], i["a_zero"], i["b"], i["b_scale"], i["b_zero"], i["y_scale"],
                               i["y_zero"], datapath=avx2)
        else:
            y = qlinear_conv(i["x"], i["x_scale"], i["x_zero"], i["w"], i["w_scale"], i["w_zero"], i["y_scale"],
                             i["y_zero"], i.get("bias"), stride=tuple(i["stride"].tolist()),
                             padding=tuple(i["padding"].tolist()), dilation=tuple(i["dilation"].tolist()),
                             groups=int(i["groups"]), channels_last=True,
                             datapath=mlas_conv_datapath(avx2, i["w"].shape, int(i["groups"]), constant_weights=False))
        computed[id(case)] = (case, y.astype(np.uint64))
        return computed[id(case)][1]

    def domain(case):
        return saturated(case) != case.expected["y"].astype(np.uint64)

    def explains(case, expected, got):
        return got == saturated(case)

    return Departure(
        "mlas-avx2-u8s8-pair-saturation", "ONNX Runtime's MLAS on x86 without VNNI (AVX2 kernels): u8 x s8 product "
        "pairs saturate to int16 (VPMADDUBSW) before the int32 sum; the specification sums exactly", domain, explains)


def _ort_convsym_saturation() -> Departure:
    """MLAS ConvSym (QLinearConv with uint8 x and constant int8 weights whose zero points are 0)
    sums the raw products with int32 saturation instead of wrapping. Modelled where the zero
    points and the bias are 0, so the raw sums are the accumulator's."""
    saturating = replace(PRESETS["onnxruntime-x86"], accumulator=Accumulator(32, "saturate"))

    def modelled(case) -> bool:
        i = case.inputs
        return (i["x"].dtype == np.uint8 and i["w"].dtype == np.int8 and not np.any(i["x_zero"])
                and not np.any(i["w_zero"]) and not np.any(i.get("bias", 0)))

    def saturated(case) -> np.ndarray:
        i = case.inputs
        return qlinear_conv(i["x"], i["x_scale"], i["x_zero"], i["w"], i["w_scale"], i["w_zero"], i["y_scale"],
                            i["y_zero"], i.get("bias"), stride=tuple(i["stride"].tolist()),
                            padding=tuple(i["padding"].tolist()), dilation=tuple(i["dilation"].tolist()),
                            groups=int(i["groups"]), datapath=saturating).astype(np.uint64)

    def domain(case):
        y = case.expected["y"]
        return saturated(case) != y.astype(np.uint64) if modelled(case) else np.zeros(y.shape, bool)

    def explains(case, expected, got):
        return got == saturated(case)

    return Departure(
        "ort-convsym-int32-saturation", "ONNX Runtime QLinearConv on MLAS ConvSym (uint8 x, constant int8 weights "
        "with zero points 0, constant x zero point; group 1 with M >= 16 and M, C multiples of 4, or depthwise): int32 "
        "sums saturate instead of wrapping; modelled for zero points and bias 0", domain, explains)


def _ort_qlinear_conv(inputs):
    i = inputs
    feeds = [("x", i["x"]), ("x_scale", i["x_scale"]), ("x_zero", i["x_zero"]), ("w", i["w"]),
             ("w_scale", i["w_scale"]), ("w_zero", i["w_zero"]), ("y_scale", i["y_scale"]), ("y_zero", i["y_zero"])]
    if "bias" in i:
        feeds.append(("bias", i["bias"].astype(np.int32)))
    attrs = {"strides": i["stride"].tolist(), "pads": i["padding"].tolist(), "dilations": i["dilation"].tolist(),
             "group": int(i["groups"])}
    return _ort_run("QLinearConv", feeds, _onnx_type(i["y_zero"].dtype), attrs)


# -- PyTorch -----------------------------------------------------------------------------------
# the dtype name of a qsim format in torch and in ml_dtypes (the two agree on the names)
_DTYPE_NAMES = {"e4m3": "float8_e4m3fn", "e5m2": "float8_e5m2", "e4m3fnuz": "float8_e4m3fnuz",
                "e5m2fnuz": "float8_e5m2fnuz", "e8m0": "float8_e8m0fnu", "bf16": "bfloat16", "fp16": "float16",
                "fp6_e2m3": "float6_e2m3fn", "fp6_e3m2": "float6_e3m2fn", "fp4_e2m1": "float4_e2m1fn"}


def _torch_dtype(fmt: str):
    import torch
    return getattr(torch, _DTYPE_NAMES[fmt])


def _torch_cast(fmt: str):
    def kernel(inputs):
        import torch
        t = torch.from_numpy(inputs["x"].astype(np.float32)).to(_torch_dtype(fmt))
        raw = t.view(torch.uint8 if t.element_size() == 1 else torch.int16).numpy()
        return raw.view(np.uint8 if t.element_size() == 1 else np.uint16)
    return kernel


def _torch_decode(fmt: str):
    def kernel(inputs):
        import torch
        codes = inputs["codes"]
        raw = torch.from_numpy(codes.view(np.int16) if codes.dtype == np.uint16 else codes)
        return raw.view(_torch_dtype(fmt)).float().numpy()
    return kernel


def _has_vnni() -> bool:
    cpuinfo = Path("/proc/cpuinfo")
    flags = cpuinfo.read_text().split() if cpuinfo.exists() else []
    return "avx512_vnni" in flags or "avx_vnni" in flags


def _torch_linear(engine: str):
    """quantized::linear: x uint8 (M, K), weights int8 given as (N, K) = golden b transposed."""
    def kernel(inputs):
        import warnings
        import torch
        i = inputs
        old = torch.backends.quantized.engine
        torch.backends.quantized.engine = engine
        try:
            with warnings.catch_warnings():           # quantized tensor creation is deprecated in torch 2.13
                warnings.simplefilter("ignore")
                x = torch._make_per_tensor_quantized_tensor(torch.from_numpy(np.ascontiguousarray(i["a"])),
                                                            float(i["a_scale"]), int(i["a_zero"]))
                w = torch.from_numpy(np.ascontiguousarray(i["b"].T))
                if i["b_scale"].ndim == 0:
                    wq = torch._make_per_tensor_quantized_tensor(w, float(i["b_scale"]), int(i["b_zero"]))
                else:
                    zero = np.broadcast_to(i["b_zero"].astype(np.int64), i["b_scale"].shape).copy()
                    wq = torch._make_per_channel_quantized_tensor(
                        w, torch.from_numpy(i["b_scale"].astype(np.float64)), torch.from_numpy(zero), 0)
                bias = torch.from_numpy(i["bias"].astype(np.float32)) if "bias" in i else None
                packed = torch.ops.quantized.linear_prepack(wq, bias)
                y = torch.ops.quantized.linear(x, packed, float(i["y_scale"]), int(i["y_zero"]))
        finally:
            torch.backends.quantized.engine = old
        return y.int_repr().numpy().copy()
    return kernel


# -- ml_dtypes -----------------------------------------------------------------------------------
# the qsim options that reproduce ml_dtypes' astype (see docs/design/formats.md)
_ML_DTYPES_MODE = {"e4m3": dict(saturate=False), "e5m2": dict(saturate=False), "e4m3fnuz": dict(saturate=False),
                   "e5m2fnuz": dict(saturate=False), "fp6_e2m3": dict(saturate=True), "fp6_e3m2": dict(saturate=True),
                   "fp4_e2m1": dict(saturate=True), "e8m0": dict(rounding="rna", saturate=False), "bf16": {}}


def _ml_dtype(fmt: str):
    import ml_dtypes
    return np.dtype(getattr(ml_dtypes, _DTYPE_NAMES[fmt]))


def _ml_dtypes_cast(fmt: str):
    def kernel(inputs):
        dtype = _ml_dtype(fmt)
        with np.errstate(over="ignore", invalid="ignore"):
            out = inputs["x"].astype(np.float32).astype(dtype)
        return out.view(np.uint8 if dtype.itemsize == 1 else np.uint16)
    return kernel


def _ml_dtypes_decode(fmt: str):
    def kernel(inputs):
        return inputs["codes"].view(_ml_dtype(fmt)).astype(np.float32)
    return kernel


def _e8m0_subnormal_round_up() -> Departure:
    """ml_dtypes before 0.7 rounds float32 subnormals in (2^-127, 1.5 * 2^-127) up to 2^-126
    although 2^-127 is nearer (negative inputs are NaN on both sides)."""
    f = get_format("e8m0")

    def domain(case):
        x = case.inputs["x"].astype(np.float64)
        return (x > 2.0 ** -127) & (x < 1.5 * 2.0 ** -127)

    def explains(case, expected, got):
        return (decode(expected, f, dtype=np.float64) == 2.0 ** -127) & (decode(got, f, dtype=np.float64) == 2.0 ** -126)

    return Departure("ml_dtypes-e8m0-subnormal-round-up", "ml_dtypes float32 -> float8_e8m0fnu: float32 subnormals "
                     "in (2^-127, 1.5 * 2^-127) give 2^-126 where the specification gives the nearer 2^-127",
                     domain, explains)


# -- the registry -----------------------------------------------------------------------------------
_ORT = ("onnx", "onnxruntime")
_TORCH_CAST_NOTES = {"e4m3": "torch saturates E4M3FN: overflow and Inf give +-448 (golden saturate=True).",
                     "e5m2": "overflow gives +-Inf (saturate=False).",
                     "e4m3fnuz": "overflow, Inf and NaN give 0x80 (saturate=False).",
                     "e5m2fnuz": "overflow, Inf and NaN give 0x80 (saturate=False)."}
_CLAMPS = "overflow and Inf clamp to +-max (no Inf/NaN codes)."
_ML_DTYPES_CAST_NOTES = {
    "e8m0": "ties round up (half away from zero, golden rounding=rna); 0, negatives and overflow give NaN.",
    "fp6_e2m3": _CLAMPS, "fp6_e3m2": _CLAMPS, "fp4_e2m1": _CLAMPS, "bf16": "round to nearest even, subnormals kept."}


def _decode_adapter(library: str, fmt: str, kernel, package: str) -> Adapter:
    return Adapter(f"{library}-decode-{fmt}", "decode", {"op": "decode", "format": fmt},
                   f"{library} {_DTYPE_NAMES[fmt]} -> float32: exact; NaN payloads compared as a class.",
                   kernel, nan_equal=True, requires=(package,))


def _ort_adapters() -> list[Adapter]:
    out = [Adapter(
        f"ort-quantize-linear-{fmt}", "encode",
        {"op": "encode", "format": fmt, "rounding": "rne", "scale": 0.5, "zero_point": zero},
        "ONNX QuantizeLinear to an integer: saturate(round_half_even(x / scale) + zero_point) with a true "
        "float32 division; matches the spec. NaN gives the lowest code in ONNX Runtime (the golden set "
        "holds no NaN: qsim refuses NaN for integer formats).",
        _ort_quantize_int, requires=_ORT) for fmt, zero in (("int8", -3), ("uint8", 3))]
    for fmt in _FLOAT8_ONNX:
        for sat in (1, 0):
            known = () if sat or fmt not in _ORT_FLOAT8_BANDS else (_ORT_FLOAT8_BANDS[fmt],)
            out.append(Adapter(
                f"ort-quantize-linear-{fmt}-sat{sat}", "encode",
                {"op": "encode", "format": fmt, "rounding": "rne", "saturate": bool(sat), "scale": 2.0},
                f"ONNX QuantizeLinear to {_FLOAT8_ONNX[fmt]} with saturate={sat}: x / scale in float32, then "
                f"round to nearest even; overflow and Inf {'clamp to +-max' if sat else 'give Inf or NaN'}. "
                "Outputs come back through an exact Cast to float32 (the Python binding cannot return "
                "float8), so NaN codes are compared as a class.",
                _ort_quantize_float8(fmt, sat), nan_equal=True, departures=known, requires=_ORT))
    for tag, (a, b) in {"u8u8": ("uint8", "uint8"), "u8s8": ("uint8", "int8"), "s8s8": ("int8", "int8")}.items():
        out.append(Adapter(
            f"ort-qlinear-matmul-{tag}", "gemm",
            {"op": "gemm", "datapath": "onnxruntime-x86", "format": a, "weight_format": b, "bias": False},
            "ONNX Runtime QLinearMatMul (MLAS, x86): int32 wrapping accumulator, float32 requantization "
            "rne(clamp(float32(acc) * float32(float32(sa * sb) / sy))); matches onnxruntime-x86. QLinearMatMul "
            "has no bias input (golden bias=False). Weights are fed as graph inputs; constant weights may "
            "be pre-packed into another kernel.",
            _ort_qlinear_matmul, departures=(_mlas_pair_saturation("gemm"),) if tag == "u8s8" else (),
            requires=_ORT))
        out.append(Adapter(
            f"ort-qlinear-conv-{tag}", "conv",
            {"op": "conv", "datapath": "onnxruntime-x86", "format": a, "weight_format": b, "bias": True},
            "ONNX Runtime QLinearConv (MLAS, x86): as QLinearMatMul, with an int32 bias added in the wrapping "
            "accumulator; matches onnxruntime-x86. Weights are fed as graph inputs, so ONNX Runtime should not "
            "take its ConvSym path (constant weights), whose saturating sums are a known departure.",
            _ort_qlinear_conv, departures=(_ort_convsym_saturation(), _mlas_pair_saturation("conv")) if tag == "u8s8" else (),
            requires=_ORT))
    return out


def _torch_adapters() -> list[Adapter]:
    out = [Adapter(
        f"torch-cast-{fmt}", "encode", {"op": "encode", "format": fmt, "rounding": "rne", "saturate": sat},
        f"torch float32 .to({_DTYPE_NAMES[fmt]}): round to nearest even; "
        f"{_TORCH_CAST_NOTES.get(fmt, 'IEEE round to nearest even.')} NaN codes compared as a class.",
        _torch_cast(fmt), nan_equal=True, requires=("torch",))
        for fmt, sat in (("e4m3", True), ("e5m2", False), ("e4m3fnuz", False), ("e5m2fnuz", False), ("bf16", None),
                         ("fp16", None))]
    out += [_decode_adapter("torch", fmt, _torch_decode(fmt), "torch")
            for fmt in ("e4m3", "e5m2", "e4m3fnuz", "e5m2fnuz", "e8m0", "bf16", "fp16")]
    vnni = _has_vnni()
    out.append(Adapter(
        "torch-quantized-linear-fbgemm", "gemm",
        {"op": "gemm", "datapath": "fbgemm-vnni" if vnni else "fbgemm-avx2", "format": "uint8",
         "weight_format": "int8", "output_format": "uint8", "bias": True},
        "torch quantized::linear on fbgemm (quint8 x, qint8 weights (N, K) = golden b transposed, float "
        "bias): float bias added to float32(acc), scaled in float32, ties to even. With AVX512-VNNI the "
        "int32 sums are exact (wrapping) and match fbgemm-vnni; without it (VPMADDUBSW) u8 x s8 product "
        "pairs saturate to int16 first, and the golden configuration is fbgemm-avx2. "
        f"This machine: {'VNNI' if vnni else 'no VNNI'}.",
        _torch_linear("fbgemm"), requires=("torch",)))
    out.append(Adapter(
        "torch-quantized-linear-qnnpack", "gemm",
        {"op": "gemm", "datapath": "qnnpack", "format": "uint8", "weight_format": "int8", "output_format": "uint8",
         "bias": True},
        "torch quantized::linear on qnnpack: the float bias is quantized its own way, "
        "rne(bias * float32(1 / float32(double(sw) * double(sx)))), then added in int32; scale "
        "(sw * sx) * (1 / sy) in float32. Matches the qnnpack preset, not the ONNX rule.",
        _torch_linear("qnnpack"), requires=("torch",)))
    return out


def _ml_dtypes_adapters() -> list[Adapter]:
    out = []
    for fmt, mode in _ML_DTYPES_MODE.items():
        out.append(Adapter(
            f"ml_dtypes-cast-{fmt}", "encode", {"op": "encode", "format": fmt, "rounding": "rne", **mode},
            f"ml_dtypes float32.astype({_DTYPE_NAMES[fmt]}): "
            f"{_ML_DTYPES_CAST_NOTES.get(fmt, 'non-saturating: overflow and Inf give Inf or NaN.')}"
            " NaN codes compared as a class.",
            _ml_dtypes_cast(fmt), nan_equal=True,
            departures=(_e8m0_subnormal_round_up(),) if fmt == "e8m0" else (), requires=("ml_dtypes",)))
        out.append(_decode_adapter("ml_dtypes", fmt, _ml_dtypes_decode(fmt), "ml_dtypes"))
    return out


ADAPTERS: dict[str, Adapter] = {a.name: a for a in _ort_adapters() + _torch_adapters() + _ml_dtypes_adapters()}


# -- MMA-Sim: every matrix unit, one adapter each, made on request ---------------------------------
MMASIM_PREFIX = "mmasim:"


def _mmasim_gemm(unit):
    def kernel(inputs):
        from . import mmasim
        a, b, c = inputs["a"], inputs["b"], inputs["c"]
        sa, sb = inputs.get("scale_a"), inputs.get("scale_b")
        out = np.empty(c.shape, c.dtype)
        for i in np.ndindex(*c.shape[:-2]):
            out[i] = mmasim.gemm(unit, a[i], b[i], c[i], None if sa is None else sa[i], None if sb is None else sb[i])
        return out
    return kernel


def mmasim_adapter(unit) -> Adapter:
    """The adapter of a matrix unit: MMA-Sim's model of the instruction, chained along K."""
    from ..datapaths.matrix_units import matrix_unit
    unit = matrix_unit(unit)
    return Adapter(f"{MMASIM_PREFIX}{unit.name}", "gemm", {"op": "gemm", "datapath": unit.name},
                   f"MMA-Sim 2.1.1's model of {unit.name} (bit-accurate against the hardware, Xie et al. "
                   "arXiv 2511.10909), one instruction per tile, K as a chain of instructions; compared bit for "
                   "bit, NaN encodings included.", _mmasim_gemm(unit), requires=("mmasim", "torch"))


def get_adapter(name: str) -> Adapter:
    if name.startswith(MMASIM_PREFIX):
        from ..datapaths.matrix_units import UnknownUnitError
        try:
            return mmasim_adapter(name[len(MMASIM_PREFIX):])
        except UnknownUnitError as e:
            raise KeyError(f"unknown adapter {name!r}: {e}") from None
    if name not in ADAPTERS:
        raise KeyError(f"unknown adapter {name!r}; adapters: {', '.join(ADAPTERS)}, or {MMASIM_PREFIX}UNIT "
                       "for any matrix unit")
    return ADAPTERS[name]
