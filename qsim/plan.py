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
from .formats import format as get_format
from .formats.block import BlockFormat
from .hardware.cost import GemmCostInputs
from .hardware.energy import mac_area_um2, mac_pj
from .hardware.presets import hardware_presets

# granularities of a quantizer (those of a description's operands, qsim.hardware.spec)
GRANULARITIES = ("none", "per-tensor", "per-channel", "per-group", "block", "per-token")
# where a quantizer's range comes from
RANGES = ("none", "calibrated", "dynamic", "weights", "blocks")
KERNELS = ("integer", "float", "block", "fp32", "fp32-layer")
_RANGE_TEXT = {"calibrated": "calibrated range", "dynamic": "range of each input", "weights": "range of the weights",
               "blocks": "scale per block from its largest value"}


def preset_kinds() -> dict[str, str]:
    """Every preset name, kernel paths and machines together, and its kind ("integer kernel",
    "float kernel", "machine"): one namespace, so a name never means two things."""
    kinds = {**{n: "integer kernel" for n in PRESETS}, **{n: "float kernel" for n in FLOAT_PRESETS}}
    clashes = sorted((set(PRESETS) & set(FLOAT_PRESETS)) | (set(kinds) & set(hardware_presets())))
    if clashes:
        raise ImportError(f"preset names used twice (kernel paths and machines share one namespace): {clashes}")
    return {**kinds, **{n: "machine" for n in hardware_presets()}}


preset_kinds()             # a name in both namespaces fails here, at import


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
    """The kernel path a hardware description runs: its kernel preset with the described
    accumulator overrides and requantization. The name says what was changed (e.g.
    "gemmlowp+acc16s"): it is the records' `datapath` label."""
    d = hw.datapath if hasattr(hw, "datapath") else hw
    path = datapath_preset(d.kernel)
    if d.accumulator:
        changes = dict(d.accumulator)
        acc = replace(path.accumulator, **changes)
        if isinstance(path, IntDatapath) and set(changes) <= {"bits", "overflow"}:
            label = f"acc{acc.bits}{acc.overflow[0]}"
        else:
            label = ",".join(f"{k}={v}" for k, v in d.accumulator)
        path = replace(path, name=f"{path.name}+{label}", accumulator=acc)
    if isinstance(path, IntDatapath) and d.requant and d.requant != path.requant:
        from .datapaths.requant import FLOAT_BIAS_METHODS
        path = replace(path, name=f"{path.name}+{d.requant}", requant=d.requant,
                       bias="float" if d.requant in FLOAT_BIAS_METHODS else "int32")
    return path


@dataclass(frozen=True)
class Quantizer:
    """How one operand becomes codes of `format`."""
    format: str
    granularity: str = "none"     # GRANULARITIES
    symmetric: bool = True
    block: int = 0                # group size (per-group) or block length along K (block)
    range: str = "none"           # RANGES: calibrated (static), dynamic (each input), weights, blocks
    then: Quantizer | None = None  # weight-only groups: dequantized, then quantized again for the kernel
    block_format: BlockFormat | None = None   # block granularity: the block format (block length applied)

    def describe(self) -> str:
        if self.granularity == "none":
            text = f"{self.format}, unscaled"
        elif self.granularity == "block":
            f = self.block_format
            text = (f"{f.name}: {f.element.name} in blocks of {'x'.join(map(str, f.block))}, {f.scale.name} "
                    f"scales ({f.scale_rule})" + (", FP32 tensor scale" if f.tensor_scale else "")
                    + ", " + _RANGE_TEXT[self.range])
        else:
            text = f"{self.format} {self.granularity}" + (f" of {self.block}" if self.block else "")
            text += (", symmetric" if self.symmetric else ", affine") + ", " + _RANGE_TEXT[self.range]
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
    """The plan of one GEMM on `hw`. full_precision: the layer is kept in FP32. A product of
    two activations (weight=False) quantizes B as the activations are."""
    d = hw.datapath
    path = resolve_datapath(hw)
    integer = isinstance(path, IntDatapath)
    if full_precision:
        fp32 = Quantizer("fp32")
        kernel = Kernel("fp32-layer", "fp32", "fp32")
        return GemmPlan(m, k, n, weight, path.name, fp32, fp32, kernel, OutputStage("none", "fp32"),
                        GemmCostInputs((32.0, 32.0, 32.0), mac_pj(kernel, None, hw.energy.node_nm)))
    a_op = d.activations
    b_op = d.weights if weight else d.activations
    a = _quantizer(a_op, weight_operand=False)
    b = _quantizer(b_op, weight_operand=weight, kernel_operand=a_op)
    a_fmt, b_fmt = a_op.element_format, b_op.element_format
    if integer:
        kernel = Kernel("integer", a_fmt, b_fmt, path)
        output = (OutputStage("scale-to-float", d.output) if a_op.dynamic
                  else OutputStage("requantize", d.output, path.requant, a_op.symmetric))
    else:
        if path.block_products:
            kind = "block"
        elif get_format(a_fmt).storage_bits == get_format(b_fmt).storage_bits == 32:
            kind = "fp32"
        else:
            kind = "float"
        if b.then is not None:                          # weight-only integer groups: the kernel sees floats
            b_fmt = b.then.format
        kernel = Kernel(kind, a_fmt, b_fmt, path)
        output = OutputStage("convert" if d.output != "fp32" else "none", d.output)
    bits = (a_op.bits_per_element, b_op.bits_per_element, float(get_format(d.output).storage_bits))
    if hw.energy.mac_pj is None:          # derived from the formats and the accumulator at the node
        mac = mac_pj(kernel, a.block_format, hw.energy.node_nm)
    else:                                 # quoted for this machine
        mac = hw.energy.mac_pj_at(path.accumulator.bits if integer else None)
    return GemmPlan(m, k, n, weight, path.name, a, b, kernel, output, GemmCostInputs(bits, mac))


def _quantizer(op, weight_operand: bool, kernel_operand=None) -> Quantizer:
    """An operand's quantizer: its granularity, and where its range comes from. Weight-only
    integer groups are dequantized, then quantized again as kernel_operand (the activations) is."""
    source = "weights" if weight_operand else "dynamic" if op.dynamic else "calibrated"
    if op.granularity == "none":
        return Quantizer(op.format)
    if op.granularity == "block":
        return Quantizer(op.block.name, "block", True, op.block.block[-1], "blocks", block_format=op.block)
    if op.granularity == "per-token" and not weight_operand and kernel_operand is not None:
        # B of an activation product (K^T, V): a per-token scale along K cannot leave the sum: per tensor
        return Quantizer(op.format, "per-tensor", op.symmetric, 0, source)
    if op.granularity == "per-group":
        again = kernel_operand.granularity
        then = Quantizer(kernel_operand.format) if again == "none" else Quantizer(kernel_operand.format, again,
                                                                                    True, 0, "weights")
        return Quantizer(op.format, "per-group", True, op.group_size, "weights", then=then)
    return Quantizer(op.format, op.granularity, op.symmetric, 0, source)


# a typical layer, for descriptions of a hardware's plan (qsim hardware --show, stored facts)
TYPICAL_GEMM = (256, 1024, 1024)


def accumulator_text(path) -> str:
    """How a kernel path sums its products, in words."""
    acc = path.accumulator
    if isinstance(path, IntDatapath):
        return f"int{acc.bits}, {acc.overflow}" + (", pairs saturate to 16 bits" if acc.pair_saturate16 else "")
    if path.block_products:
        text = "each block's products summed exactly, block scales applied, blocks summed in FP32"
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
            # the weight GEMM's MAC unit from its formats, whatever mac_pj is quoted (energy.py: 45 nm
            # cited areas scaled by (node / 45)^2)
            "mac_area_um2": mac_area_um2(weights.kernel, weights.a.block_format, hw.energy.node_nm, "energy.node_nm"),
            "plan": {"shape": list(TYPICAL_GEMM), "weight GEMM": dict(weights.describe()),
                     "activation GEMM": dict(activations.describe())}}
