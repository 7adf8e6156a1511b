"""The plan stage: a hardware description and a GEMM turned, once, into what runs.

`plan_gemm(hw, m, k, n, weight)` decides everything the simulator, the cost model, golden and
`qsim hardware --show` need to agree on: how each operand is quantized, which kernel computes
(integer accumulator, float accumulation model or MX block products), what the output stage
does, and what the cost model charges. The integer / float / MX dispatch lives here and
nowhere else; executors only carry out a plan (calibration ranges stay run-time inputs).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from .datapaths import FLOAT_PRESETS, PRESETS, FloatDatapath, IntDatapath
from .formats import FloatFormat, IntFormat, format as get_format
from .hardware.cost import GemmCostInputs
from .hardware.presets import hardware_presets

# granularities of a quantizer; "none": values are encoded as they are, without a scale
GRANULARITIES = ("none", "per-tensor", "per-channel", "per-group", "mx")
# where a quantizer's range comes from
RANGES = ("none", "calibrated", "dynamic", "weights", "blocks")
KERNELS = ("integer", "float", "mx", "fp32", "fp32-layer")
_RANGE_TEXT = {"calibrated": "calibrated range", "dynamic": "range of each input", "weights": "range of the weights",
               "blocks": "scale per block from its largest value"}


def datapath_preset(name: str):
    """The kernel-path preset (IntDatapath or FloatDatapath) of that name."""
    if name in PRESETS:
        return PRESETS[name]
    if name in FLOAT_PRESETS:
        return FLOAT_PRESETS[name]
    paths = f"kernel-path presets are {', '.join(datapath_presets())}"
    if name in hardware_presets():
        raise ValueError(f"unknown datapath preset {name!r}: {name!r} is a machine preset (a hardware "
                         f"description for load_hardware / --hardware), not a kernel path; {paths}")
    raise ValueError(f"unknown datapath preset {name!r}; {paths} (machine presets, for load_hardware / "
                     f"--hardware: {', '.join(hardware_presets())})")


def datapath_presets() -> list[str]:
    return [*PRESETS, *FLOAT_PRESETS]


def resolve_datapath(hw):
    """The kernel path a hardware description runs: its preset with the described accumulator
    width/overflow and, on MX datapaths, quantization.mx_block as the block size. The name
    says what was changed (e.g. "mxfp8+block16"): it is the records' `datapath` label."""
    d = hw.datapath
    path = datapath_preset(d.preset)
    if d.accumulator_bits is not None or d.accumulator_overflow is not None:
        acc = replace(path.accumulator, bits=d.accumulator_bits or path.accumulator.bits,
                      overflow=d.accumulator_overflow or path.accumulator.overflow)
        path = replace(path, name=f"{path.name}+acc{acc.bits}{acc.overflow[0]}", accumulator=acc)
    block = hw.quantization.mx_block
    if getattr(path, "block_size", 0) and path.block_size != block:
        path = replace(path, name=f"{path.name}+block{block}", block_size=block)
    return path


@dataclass(frozen=True)
class Quantizer:
    """How one operand becomes codes of `format`."""
    format: str
    granularity: str = "none"     # GRANULARITIES
    symmetric: bool = True
    block: int = 0                # group size (per-group) or block size (mx)
    range: str = "none"           # RANGES: calibrated (static), dynamic (each input), weights, blocks (MX)
    then: Quantizer | None = None  # weight-only groups: dequantized, then quantized again for the kernel

    def describe(self) -> str:
        if self.granularity == "none":
            text = f"{self.format}, unscaled"
        else:
            text = f"{self.format} {self.granularity}" + (f" of {self.block}" if self.block else "")
            if self.granularity != "mx":
                text += ", symmetric" if self.symmetric else ", affine"
            text += ", " + _RANGE_TEXT[self.range]
        return text + (f"; dequantized, then {self.then.describe()}" if self.then else "")


@dataclass(frozen=True)
class Kernel:
    """What computes the product of the quantized operands."""
    kind: str                     # KERNELS
    a_format: str
    b_format: str
    path: IntDatapath | FloatDatapath | None = None     # the resolved kernel path (None: FP32 layer)

    @property
    def accumulator(self):
        return None if self.path is None else self.path.accumulator

    @property
    def block(self) -> int:
        return getattr(self.path, "block_size", 0) if self.kind == "mx" else 0

    def describe(self) -> str:
        if self.kind == "fp32-layer":
            return "layer kept in FP32 (the reference forward pass)"
        if self.kind == "fp32":
            return "FP32 operands: float32 products and sums (the host's FP32 GEMM)"
        if self.kind == "integer":
            return f"integer {self.a_format} x {self.b_format}, accumulator {accumulator_text(self.path)}"
        return f"{self.kind} {self.a_format} x {self.b_format}: {accumulator_text(self.path)}"


@dataclass(frozen=True)
class OutputStage:
    """What becomes of the accumulator."""
    method: str                   # "requantize", "scale-to-float", "convert", "none"
    format: str
    requant: str | None = None    # integer requantization method (qsim.datapaths.requant)
    symmetric: bool = True        # requantized output's scale and zero point

    def describe(self) -> str:
        if self.method == "requantize":
            return f"requantize ({self.requant}) to {self.format}, {'symmetric' if self.symmetric else 'affine'}"
        if self.method == "scale-to-float":
            return "scale to float32" + ("" if self.format == "fp32" else f", convert to {self.format}")
        if self.method == "convert":
            return f"convert to {self.format}"
        return "float32"


@dataclass(frozen=True)
class GemmPlan:
    """Everything decided for one GEMM (A: M x K, B: K x N) on one hardware description."""
    m: int
    k: int
    n: int
    weight: bool                  # B is a weight of the model (else an activation product)
    datapath: str                 # the resolved kernel path's name: the records' `datapath` label
    a: Quantizer
    b: Quantizer
    kernel: Kernel
    output: OutputStage
    cost: GemmCostInputs

    def describe(self) -> list[tuple[str, str]]:
        bits = ", ".join(f"{b:g}" for b in self.cost.bits)
        return [("A (activations)", self.a.describe()),
                ("B (weights)" if self.weight else "B (activations)", self.b.describe()),
                ("kernel", self.kernel.describe()), ("output", self.output.describe()),
                ("cost", f"bits per element A, B, C: {bits}; MAC {self.cost.mac_pj:g} pJ")]


def plan_gemm(hw, m: int, k: int, n: int, weight: bool, full_precision: bool = False) -> GemmPlan:
    """The plan of one GEMM on `hw`. full_precision: the layer is kept in FP32."""
    d, q = hw.datapath, hw.quantization
    path = resolve_datapath(hw)
    integer = isinstance(path, IntDatapath)
    acc_bits = path.accumulator.bits if integer else None
    mac_pj = hw.energy.mac_pj_at(acc_bits)
    if full_precision:
        fp32 = Quantizer("fp32")
        return GemmPlan(m, k, n, weight, path.name, fp32, fp32, Kernel("fp32-layer", "fp32", "fp32"),
                        OutputStage("none", "fp32"), GemmCostInputs.of(("fp32",) * 3, 0, mac_pj))
    b_format = d.weights if weight else d.activations
    act_range = "dynamic" if q.dynamic_activations else "calibrated"
    block = path.block_size if not integer else 0
    if integer:
        a = Quantizer(d.activations, "per-tensor", q.symmetric_activations, 0, act_range)
        b = (Quantizer(d.weights, q.weights, q.symmetric_weights, 0, "weights") if weight
             else Quantizer(d.activations, "per-tensor", q.symmetric_activations, 0, act_range))
        kernel = Kernel("integer", d.activations, b_format, path)
        output = (OutputStage("scale-to-float", d.outputs) if q.dynamic_activations
                  else OutputStage("requantize", d.outputs, path.requant, q.symmetric_activations))
    elif block:
        a, b = Quantizer(d.activations, "mx", True, block, "blocks"), Quantizer(b_format, "mx", True, block, "blocks")
        kernel = Kernel("mx", d.activations, b_format, path)
        output = OutputStage("convert" if d.outputs != "fp32" else "none", d.outputs)
    elif get_format(d.activations).storage_bits == get_format(b_format).storage_bits == 32:
        a, b = Quantizer(d.activations), Quantizer(b_format)
        kernel = Kernel("fp32", d.activations, b_format, path)
        output = OutputStage("convert" if d.outputs != "fp32" else "none", d.outputs)
    else:
        a = _float_quantizer(d.activations, "per-tensor", act_range)
        if weight and isinstance(get_format(d.weights), IntFormat):      # weight-only integer groups
            b = Quantizer(d.weights, "per-group", True, q.group_size, "weights",
                          then=_float_quantizer(d.activations, "per-tensor", "weights"))
            kernel = Kernel("float", d.activations, d.activations, path)
        else:
            b = _float_quantizer(b_format, q.weights if weight else "per-tensor", "weights" if weight else act_range)
            kernel = Kernel("float", d.activations, b_format, path)
        output = OutputStage("convert" if d.outputs != "fp32" else "none", d.outputs)
    cost = GemmCostInputs.of((d.activations, b_format, d.outputs), block, mac_pj)
    return GemmPlan(m, k, n, weight, path.name, a, b, kernel, output, cost)


def _float_quantizer(fmt: str, granularity: str, source: str) -> Quantizer:
    # 8-bit and narrower floats are scaled to their range; 16-bit floats (BF16, FP16) are not
    f = get_format(fmt)
    if isinstance(f, FloatFormat) and f.storage_bits >= 16:
        return Quantizer(fmt)
    return Quantizer(fmt, granularity, True, 0, source)


# a typical layer, for descriptions of a hardware's plan (qsim hardware --show, stored facts)
TYPICAL_GEMM = (256, 1024, 1024)


def accumulator_text(path) -> str:
    """How a kernel path sums its products, in words."""
    acc = path.accumulator
    if isinstance(path, IntDatapath):
        return f"int{acc.bits}, {acc.overflow}" + (", pairs saturate to 16 bits" if acc.pair_saturate16 else "")
    if path.block_size:
        text = f"MX blocks of {path.block_size} summed exactly, then {acc.format}"
    elif acc.fused_group:
        text = (f"fused groups of {acc.fused_group} products, {acc.fused_bits} bits kept ({acc.fused_align}), "
                f"into {acc.format} ({acc.rounding})")
    else:
        text = f"{acc.order} adds in {acc.format} ({acc.rounding})"
    return text + (f", promoted to FP32 every {acc.promote_every}" if acc.promote_every else "")


def resolved_facts(hw) -> dict:
    """The hardware as it runs, in words and numbers: what is stored with its records, so that
    a report describes a dataset as it was made, not as today's presets would resolve it."""
    path = resolve_datapath(hw)
    weights, activations = (plan_gemm(hw, *TYPICAL_GEMM, weight) for weight in (True, False))
    return {"datapath": path.name, "datapath_description": path.description,
            "accumulator": accumulator_text(path),
            "quantization": f"weights {weights.b.describe()}; activations {weights.a.describe()}",
            "mac_pj": weights.cost.mac_pj,
            "plan": {"shape": list(TYPICAL_GEMM), "weight GEMM": dict(weights.describe()),
                     "activation GEMM": dict(activations.describe())}}
