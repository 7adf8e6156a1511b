"""Hardware descriptions: TOML in, frozen dataclasses out, validated on load. Every error
names the key path (e.g. `datapath.weights.granularity`) and the file.

A description has one datapath description (`Datapath`: how each GEMM operand is quantized,
the kernel and its accumulator, the output stage, the vector-unit format), the compute array,
the memory levels and the energy table with its citations. `extends = "other-preset"` (or a
.toml path) starts from that description and sets only what differs. Kernel paths (`kernel =
"gemmlowp"`, qsim.datapaths) and machines (presets/*.toml) share one namespace of presets
(qsim.plan.preset_kinds): no name means two things.
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from ..formats import FloatFormat, IntFormat, format as get_format
from ..formats.block import BlockFormat, block_format, builtin_block_formats
from .cost import DATAFLOWS, MAPPERS
from .energy import NodeError, check_node
from .presets import PRESET_DIR, hardware_presets

# how an operand is scaled: one scale per tensor, per output channel, per group of K elements,
# per block of a block format, per token (each row of the activations, dynamic), or not at all
# (16-bit and wider floats are encoded as they are)
GRANULARITIES = ("none", "per-tensor", "per-channel", "per-group", "block", "per-token")


class HardwareError(ValueError):
    """A hardware description that cannot be used; the message names the key."""


@dataclass(frozen=True)
class Operand:
    """How one GEMM operand (activations or weights) becomes codes."""
    format: str                  # an element format, or a block format (granularity "block")
    granularity: str             # GRANULARITIES
    symmetric: bool = True       # integer formats: no zero point
    group_size: int = 0          # per-group: elements of K that share a scale
    block_size: int = 0          # block: a block length along K other than the block format's own
    dynamic: bool = False        # activations: the range of each input at run time, not calibrated

    @property
    def block(self) -> BlockFormat | None:
        """The block format, with block_size applied; None unless granularity is "block"."""
        if self.granularity != "block":
            return None
        fmt = block_format(self.format)
        if self.block_size and self.block_size != fmt.block[-1]:
            fmt = replace(fmt, name=f"{fmt.name}/{self.block_size}", block=(self.block_size,))
        return fmt

    @property
    def element_format(self) -> str:
        """The format of each code (a block format's element format)."""
        block = self.block
        return get_format(self.format).name if block is None else block.element.name

    @property
    def bits_per_element(self) -> float:
        block = self.block
        return float(get_format(self.format).storage_bits) if block is None else block.bits_per_element


# how the KV cache scales what it stores: not at all (16-bit and wider floats), one scale per
# tensor, or one per token and KV head (each stored key or value vector)
KV_GRANULARITIES = ("none", "per-tensor", "per-token")


@dataclass(frozen=True)
class KVCache:
    """The format decoder LLMs keep keys and values in ([datapath] kv_cache): attention reads
    them back from it in prefill and in decode. Scales are symmetric, from each stored
    tensor's (or vector's) largest magnitude."""
    format: str
    granularity: str = "none"     # KV_GRANULARITIES

    @property
    def bits(self) -> float:
        return float(get_format(self.format).storage_bits)


@dataclass(frozen=True)
class Datapath:
    """Everything that decides a GEMM's numbers on this hardware: each operand's format and
    granularity, the kernel path (a preset of qsim.datapaths: the accumulator model and, for
    integer kernels, the requantization), overrides of its accumulator, the output format and
    the vector unit's format."""
    kernel: str                           # a kernel-path preset
    activations: Operand
    weights: Operand
    output: str                           # format of the GEMM outputs
    vector_format: str = "fp32"
    accumulator: tuple = ()               # (field, value) overrides of the kernel's accumulator, in order
    requant: str | None = None            # integer kernels: another requantization method
    kv_cache: KVCache | None = None       # decoder LLMs' KV cache; None: keys and values kept as the
                                          # k and v projections output them (the output format)

    @property
    def kv_format(self) -> KVCache:
        """The KV cache as it stores: the described one, or the GEMM output format unscaled."""
        return self.kv_cache or KVCache(self.output, "none")

    @property
    def kind(self) -> str:
        from ..datapaths import IntDatapath
        from ..plan import datapath_preset
        return "integer" if isinstance(datapath_preset(self.kernel), IntDatapath) else "float"

    @property
    def config_hash(self) -> str:
        """The hash of every setting: equal descriptions compute equal numbers."""
        return hashlib.sha256(repr(self).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class ComputeArray:
    rows: int
    cols: int
    dataflow: str
    clock_hz: float
    mapper: str = "fixed"        # MAPPERS: the dataflow above, or per GEMM the one of least energy or latency


@dataclass(frozen=True)
class MemoryLevel:
    name: str
    size_bytes: int
    bandwidth_bytes_per_s: float
    energy_pj_per_byte: float
    source: str
    # the on-chip level (memory[0]) only: its three double-buffered scratchpads, bytes, as SCALE-Sim
    # has them (ifmap holds A, filter B, ofmap C); absent: size_bytes split in three equal parts
    scratchpads: tuple[int, int, int] | None = None

    @property
    def operand_bytes(self) -> tuple[int, int, int]:
        """Bytes of the ifmap, filter and ofmap scratchpads."""
        return self.scratchpads or (self.size_bytes // 3,) * 3


# Horowitz ISSCC 2014, 45 nm: a 32-bit integer add costs 0.1 pJ; adders scale about linearly in width
ADD_PJ_PER_BIT = 0.1 / 32


@dataclass(frozen=True)
class Energy:
    mac_pj: float | None     # quoted for this machine; None: derived from the datapath (qsim.hardware.energy)
    node_nm: int
    calibration: float
    source: str
    accumulator_bits: int | None = None     # integer datapaths: the accumulator width mac_pj is quoted for
    add_pj_per_bit: float = ADD_PJ_PER_BIT  # what each accumulator bit more or less adds to a MAC

    def mac_pj_at(self, accumulator_bits: int | None) -> float:
        """The quoted MAC energy (before calibration) with an integer accumulator of that width."""
        if accumulator_bits is None or self.accumulator_bits is None:
            return self.mac_pj
        return max(self.mac_pj + (accumulator_bits - self.accumulator_bits) * self.add_pj_per_bit, 0.0)


@dataclass(frozen=True)
class Hardware:
    name: str
    description: str
    datapath: Datapath
    array: ComputeArray
    memory: tuple[MemoryLevel, ...]
    energy: Energy
    # what the description leaves out or approximates, in words (shown on the report's card)
    simplifications: tuple[str, ...] = ()
    # derived, not a setting: the plan's facts in words and numbers (qsim.plan.resolved_facts),
    # stored with the records (write_records) so that reports describe the hardware as it ran
    resolved: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        from ..plan import resolved_facts
        object.__setattr__(self, "resolved", resolved_facts(self))

    def resolve_datapath(self):
        """The kernel path this hardware runs (qsim.plan.resolve_datapath)."""
        from ..plan import resolve_datapath
        return resolve_datapath(self)

    @property
    def config_hash(self) -> str:
        """The records' name for this description: the hash of every setting (the derived
        `resolved` facts left out), so it changes whenever anything that changes results does."""
        return hashlib.sha256(repr(self).encode()).hexdigest()[:16]

    @property
    def peak_macs_per_s(self) -> float:
        return self.array.rows * self.array.cols * self.array.clock_hz


class _Table:
    """Typed reads from one TOML table; errors carry the key path."""

    def __init__(self, data, path: str, where: str):
        if not isinstance(data, dict):
            raise HardwareError(f"{where}: {path or 'the document'} must be a table")
        self.data, self.path, self.where = data, path, where
        self.used: set[str] = set()

    def _key(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def get(self, key: str, kind, default=None, check=None, what: str = "", required: bool = True):
        """The value of key, checked; absent: default, or an error if required and default is None."""
        self.used.add(key)
        if key not in self.data:
            if default is None and required:
                raise HardwareError(f"{self.where}: missing key {self._key(key)}")
            return default
        v = self.data[key]
        ok = isinstance(v, kind) and not (isinstance(v, bool) and kind in (int, float, (int, float)))
        if ok and check is not None:
            ok = check(v)
        if not ok:
            raise HardwareError(f"{self.where}: {self._key(key)} must be {what or kind.__name__}, got {v!r}")
        return v

    def choice(self, key: str, choices, default=None, required: bool = True):
        return self.get(key, str, default, lambda v: v in choices, f"one of {', '.join(choices)}", required)

    def given(self, key: str) -> bool:
        return key in self.data

    def error(self, key: str, value, message: str) -> HardwareError:
        given = "" if key in self.data else " (the default)"
        return HardwareError(f"{self.where}: {self._key(key)} = {value!r}{given}: {message}")

    def fmt(self, key: str, default=None):
        name = self.get(key, str, default)
        try:
            return get_format(name).name
        except (KeyError, ValueError) as e:
            raise HardwareError(f"{self.where}: {self._key(key)}: {e}") from None

    def table(self, key: str, optional: bool = False):
        """The sub-table at key; absent and optional: an empty one (every key at its default)."""
        self.used.add(key)
        if key not in self.data and not optional:
            raise HardwareError(f"{self.where}: missing table {self._key(key)}")
        return _Table(self.data.get(key, {}), self._key(key), self.where)

    def done(self):
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            raise HardwareError(f"{self.where}: unknown key {self._key(unknown[0])}")


def _positive(v) -> bool:
    return v > 0


def parse_hardware(text: str, where: str = "<string>") -> Hardware:
    """A Hardware from TOML text; HardwareError (naming the key) if anything is off."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise HardwareError(f"{where}: malformed TOML: {e}") from None
    return hardware_from_document(_resolve_extends(doc, where), where)


def hardware_from_document(doc: dict, where: str = "<document>") -> Hardware:
    """A Hardware from a parsed TOML document (nested dicts), validated as parse_hardware."""
    top = _Table(doc, "", where)
    name = top.get("name", str)
    description = top.get("description", str, "")
    simplifications = top.get("simplifications", list, [], lambda v: all(isinstance(x, str) and x for x in v),
                               "a list of non-empty strings")
    if "quantization" in doc:
        raise HardwareError(f"{where}: [quantization] is gone: each operand's granularity is set in "
                            "[datapath.activations] and [datapath.weights] (see qsim hardware --show edge-npu-int8)")
    datapath = _datapath(top.table("datapath"))

    a = top.table("array")
    array = ComputeArray(a.get("rows", int, check=_positive, what="a positive integer"),
                         a.get("cols", int, check=_positive, what="a positive integer"),
                         a.choice("dataflow", DATAFLOWS),
                         float(a.get("clock_hz", (int, float), check=_positive, what="a positive number")),
                         a.choice("mapper", MAPPERS, "fixed"))
    a.done()

    top.used.add("memory")
    levels = doc.get("memory")
    if not isinstance(levels, list) or not levels:
        raise HardwareError(f"{where}: memory must be a non-empty array of tables ([[memory]])")
    memory = []
    for i, level in enumerate(levels):
        m = _Table(level, f"memory[{i}]", where)
        size = m.get("size_bytes", int, check=_positive, what="a positive integer")
        pads = None
        if m.given("scratchpads"):
            if i > 0:
                raise m.error("scratchpads", level["scratchpads"], "only the on-chip level (memory[0]) "
                                                                   "has per-operand scratchpads")
            t = m.table("scratchpads")
            pads = tuple(t.get(key, int, check=_positive, what="a positive integer (bytes)")
                         for key in ("ifmap_bytes", "filter_bytes", "ofmap_bytes"))
            t.done()
            if sum(pads) > size:
                raise m.error("scratchpads", level["scratchpads"], f"the scratchpads ({sum(pads)} bytes) "
                                                                   f"exceed size_bytes = {size}")
        memory.append(MemoryLevel(m.get("name", str), size,
                                  float(m.get("bandwidth_bytes_per_s", (int, float), check=_positive,
                                              what="a positive number")),
                                  float(m.get("energy_pj_per_byte", (int, float), check=lambda v: v >= 0,
                                              what="a number >= 0")),
                                  m.get("source", str, ""), pads))
        m.done()
    names = [lv.name for lv in memory]
    if len(set(names)) != len(names):
        raise HardwareError(f"{where}: memory level names must be distinct, got {names}")

    e = top.table("energy")
    mac = e.get("mac_pj", (int, float), check=_positive, what="a positive number", required=False)
    node = e.get("node_nm", int, 45, _positive, "a positive integer")
    try:
        check_node(node, "energy.node_nm")
    except NodeError as err:
        raise HardwareError(f"{where}: {err}") from None
    energy = Energy(None if mac is None else float(mac), node,
                    float(e.get("calibration", (int, float), 1.0, _positive, "a positive number")),
                    e.get("source", str, ""),
                    e.get("accumulator_bits", int, None, lambda v: 8 <= v <= 64, "an integer from 8 to 64", required=False),
                    float(e.get("add_pj_per_bit", (int, float), ADD_PJ_PER_BIT, lambda v: v >= 0, "a number >= 0")))
    e.done()
    top.done()
    return Hardware(name, description, datapath, array, tuple(memory), energy, tuple(simplifications))


def _datapath(d: _Table) -> Datapath:
    """The [datapath] table: read, every default filled in, every cross-field rule checked here."""
    from ..datapaths import IntDatapath
    from ..plan import datapath_preset, datapath_presets
    given = d.get("kernel", str)
    if given not in datapath_presets():
        if given in hardware_presets():
            raise d.error("kernel", given, "that is a machine preset (a whole hardware description), not a "
                                           f"kernel path; kernel paths are {', '.join(datapath_presets())}")
        raise d.error("kernel", given, f"unknown kernel path; choose one of {', '.join(datapath_presets())}")
    path = datapath_preset(given)
    integer = isinstance(path, IntDatapath)
    activations = _operand(d.table("activations"), path, integer, weights=False)
    weights = _operand(d.table("weights"), path, integer, weights=True)
    out = d.table("output")
    output = out.fmt("format")
    requant = out.choice("requant", _requant_methods(), None, required=False) if integer else None
    if not integer and out.given("requant"):
        raise out.error("requant", out.data["requant"], "float kernels convert their outputs; requantization "
                                                        "is for integer kernels")
    out.done()
    accumulator = _accumulator(d.table("accumulator", optional=True), path)
    kv = _kv_cache(d.table("kv_cache"), d.where) if d.given("kv_cache") else None
    if kv is None:
        d.used.add("kv_cache")
    dp = Datapath(given, activations, weights, output, d.fmt("vector_format", "fp32"), accumulator, requant, kv)
    _check_datapath(dp, path, integer, d)
    d.done()
    return dp


def _block_names() -> list[str]:
    return [f.name for f in builtin_block_formats()]


def _requant_methods() -> tuple[str, ...]:
    from ..datapaths.requant import METHODS
    return (*METHODS, "shift")


def _operand(t: _Table, path, integer: bool, weights: bool) -> Operand:
    """One operand's table: format, granularity and the settings that granularity takes."""
    name = t.get("format", str)
    is_block = name in _block_names()
    if not is_block:
        name = t.fmt("format")
    fmt = None if is_block else get_format(name)
    wide_float = isinstance(fmt, FloatFormat) and fmt.storage_bits >= 16
    default = ("block" if is_block else "none" if wide_float else
               "per-group" if weights and not integer and isinstance(fmt, IntFormat) else
               "per-channel" if weights else "per-tensor")
    granularity = t.choice("granularity", GRANULARITIES, default)
    if is_block != (granularity == "block"):
        raise t.error("granularity", granularity, f"{name} is a block format: its granularity is block" if is_block
                      else f"block granularity takes a block format ({', '.join(_block_names())}), not {name}")
    symmetric = t.get("symmetric", bool, not (integer and not weights))
    group_size = t.get("group_size", int, 128 if granularity == "per-group" else 0, lambda v: v > 0,
                       "a positive integer")
    block_size = t.get("block_size", int, 0, lambda v: v > 0, "a positive integer", required=False)
    dynamic = t.get("dynamic", bool, False)
    if t.given("group_size") and granularity != "per-group":
        raise t.error("group_size", group_size, "applies to per-group granularity only")
    if block_size and granularity != "block":
        raise t.error("block_size", block_size, "applies to block formats only")
    if block_size and len(block_format(name).block) == 2:
        raise t.error("block_size", block_size, f"{name} has 2-D tiles; choose another block format")
    if dynamic and weights:
        raise t.error("dynamic", True, "weights are quantized once from their own range")
    if weights and granularity == "per-token":
        raise t.error("granularity", granularity, "per-token scales are for activations; weights take per-channel")
    t.done()
    return Operand(name, granularity, symmetric, group_size, block_size or 0, dynamic)


def _kv_cache(t: _Table, where: str) -> KVCache:
    """[datapath] kv_cache = { format = ..., granularity = ... }: narrow formats need a scale,
    16-bit and wider floats are stored as they are."""
    name = t.fmt("format")
    fmt = get_format(name)
    wide = isinstance(fmt, FloatFormat) and fmt.storage_bits >= 16
    granularity = t.choice("granularity", KV_GRANULARITIES, "none" if wide else "per-token")
    if wide and granularity != "none":
        raise t.error("granularity", granularity, f"{name} is stored as it is (no scale): granularity none")
    if not wide and granularity == "none":
        raise t.error("granularity", granularity, f"{name} needs a scale: per-tensor or per-token")
    if isinstance(fmt, IntFormat) and not fmt.signed:
        raise t.error("format", name, "keys and values are signed: choose a signed format (int8, int4, ...)")
    t.done()
    return KVCache(name, granularity)


def _accumulator(t: _Table, path) -> tuple:
    """Overrides of the kernel's accumulator, each a field of its Accumulator / FloatAccumulator."""
    acc = path.accumulator
    names = {f.name: type(getattr(acc, f.name)) for f in fields(acc)}
    overrides = []
    for key in t.data:
        if key not in names:
            raise HardwareError(f"{t.where}: unknown key {t._key(key)}; the accumulator of kernel {path.name} "
                                f"has {', '.join(names)}")
        value = t.get(key, names[key], what=f"a {names[key].__name__}")
        try:
            replace(acc, **{key: value})
        except (TypeError, ValueError) as e:
            raise t.error(key, value, str(e)) from None
        overrides.append((key, value))
    try:
        replace(acc, **dict(overrides))
    except (TypeError, ValueError) as e:
        raise HardwareError(f"{t.where}: {t.path}: {e}") from None
    t.done()
    return tuple(overrides)


def _check_datapath(d: Datapath, path, integer: bool, t: _Table) -> None:
    """What the kernel path can run: every setting the simulator would not honour is refused,
    so that a description (or a sweep over it) never carries a key with no effect."""
    a, w, out = d.activations, d.weights, get_format(d.output)
    blocks = bool(getattr(path, "block_products", False))
    acts, wts = t.table("activations"), t.table("weights")
    if integer:
        for op, tab in ((a, acts), (w, wts)):
            if not isinstance(get_format(op.element_format), IntFormat) or op.granularity == "block":
                raise tab.error("format", op.format, f"integer kernel {path.name} takes integer formats (int8, uint8, int4, ...)")
        if a.granularity not in ("per-tensor", "per-token"):
            raise acts.error("granularity", a.granularity, "integer kernels take per-tensor or per-token activations")
        if a.granularity == "per-token" and not (a.dynamic and a.symmetric):
            raise acts.error("granularity", a.granularity, "per-token activations take their scale from each row at "
                             "run time: set dynamic = true and symmetric = true")
        if w.granularity not in ("per-tensor", "per-channel"):
            raise wts.error("granularity", w.granularity, "integer kernels take per-tensor or per-channel weights")
        if not a.dynamic and not isinstance(out, IntFormat):
            raise t.table("output").error("format", d.output, "static integer kernels requantize to an integer format")
        if a.dynamic and not isinstance(out, FloatFormat):
            raise t.table("output").error("format", d.output, "with dynamic activations the accumulator is scaled to "
                                          "float (as MatMulIntegerToFloat): choose a float format such as fp32")
        try:
            replace(path, requant=d.requant or path.requant,
                    bias="float" if (d.requant or path.requant) in _float_bias() else "int32")
        except ValueError as e:
            raise HardwareError(f"{t.where}: datapath.output.requant: {e}") from None
    else:
        if blocks != (a.granularity == "block") or blocks != (w.granularity == "block"):
            want = "block formats" if blocks else "element formats"
            raise acts.error("format", a.format, f"kernel {path.name} takes {want} for both operands "
                             + ("(block products)" if blocks else "(choose kernel block-dot for block formats)"))
        if blocks:
            if a.block.block[-1] != w.block.block[-1]:
                raise wts.error("format", w.format, f"block length along K {w.block.block[-1]} differs from the "
                                f"activations' {a.block.block[-1]}")
            if a.dynamic:
                raise acts.error("dynamic", True, "block scales always come from the data")
        else:
            if not isinstance(get_format(a.format), FloatFormat):
                raise acts.error("format", a.format, "a float kernel takes float activations "
                                 "(integer weights are weight-only groups)")
            if a.granularity not in ("none", "per-tensor"):
                raise acts.error("granularity", a.granularity, "float kernels scale activations per tensor")
            int_weights = isinstance(get_format(w.format), IntFormat)
            wide = not int_weights and get_format(w.format).storage_bits >= 16
            allowed = ("per-group",) if int_weights else ("none",) if wide else ("per-tensor", "per-channel")
            if w.granularity not in allowed:
                raise wts.error("granularity", w.granularity, f"{w.format} weights on a float kernel take "
                                f"{' or '.join(allowed)}" + (" (weight-only groups)" if int_weights else
                                                             " (encoded as they are, no scale)" if wide else ""))
            for op, tab, want in ((a, acts, path.a_format), (w, wts, None if int_weights else path.b_format)):
                if want is not None and get_format(op.format).name != get_format(want).name:
                    raise tab.error("format", op.format, f"kernel {path.name} computes on {want}; choose a kernel "
                                    f"for {op.format} (qsim datapaths lists them)")
        for op, tab in ((a, acts), (w, wts)):
            fmt = get_format(op.element_format)
            if isinstance(fmt, FloatFormat) and fmt.storage_bits >= 16 and op.granularity != "none":
                raise tab.error("granularity", op.granularity, f"{fmt.name} is encoded as it is (no scale): "
                                "granularity none")
            if isinstance(fmt, FloatFormat) and fmt.storage_bits < 16 and op.granularity == "none":
                raise tab.error("granularity", op.granularity, f"{fmt.name} needs a scale: per-tensor or per-channel")
            if not op.symmetric:
                raise tab.error("symmetric", False, "float and block formats are symmetric (no zero point): only true")
        if not isinstance(out, FloatFormat):
            raise t.table("output").error("format", d.output, "float kernels convert their outputs to a float format")
    if not isinstance(get_format(d.vector_format), FloatFormat):
        raise t.error("vector_format", d.vector_format, "the vector unit computes in a float format")


def _float_bias() -> tuple[str, ...]:
    from ..datapaths.requant import FLOAT_BIAS_METHODS
    return FLOAT_BIAS_METHODS


def load_hardware(spec) -> Hardware:
    """A Hardware from a preset name, a .toml path, or a Hardware."""
    if isinstance(spec, Hardware):
        return spec
    doc, where = _document(spec)
    return hardware_from_document(doc, where)


def hardware_document(spec) -> dict:
    """The TOML document (nested dicts) of a preset name or .toml path, `extends` resolved."""
    return _document(spec)[0]


def _document(spec, chain: tuple[str, ...] = ()) -> tuple[dict, str]:
    """The resolved document of spec and the file it came from; chain: the files extending it."""
    text, where = _read(spec)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise HardwareError(f"{where}: malformed TOML: {e}") from None
    return _resolve_extends(doc, where, chain), where


def _resolve_extends(doc: dict, where: str, chain: tuple[str, ...] = ()) -> dict:
    """`extends = "preset-or-path.toml"`: the parent's document with this one merged into it
    key by key (tables merged, arrays such as [[memory]] replaced whole). A relative path is
    relative to the extending file."""
    if "extends" not in doc:
        return doc
    doc = dict(doc)
    parent = doc.pop("extends")
    if not isinstance(parent, str):
        raise HardwareError(f"{where}: extends must be a preset name or a .toml path, got {parent!r}")
    if parent.endswith(".toml") and not Path(parent).is_absolute() and Path(where).suffix == ".toml":
        parent = str(Path(where).parent / parent)
    chain = (*chain, str(Path(where).resolve()))
    try:
        _, parent_where = _read(parent)
        if str(Path(parent_where).resolve()) in chain:
            raise HardwareError(f"cycle: {' -> '.join([*chain, str(Path(parent_where).resolve())])}")
        base, _ = _document(parent, chain)
    except HardwareError as e:
        raise HardwareError(f"{where}: extends = {parent!r}: {e}") from None
    return _merge(base, doc)


def _merge(base: dict, over: dict) -> dict:
    """base with over's keys: tables merged recursively, anything else (arrays too) replaced."""
    merged = dict(base)
    for key, value in over.items():
        both_tables = isinstance(value, dict) and isinstance(base.get(key), dict)
        merged[key] = _merge(base[key], value) if both_tables else value
    return merged


def override_hardware(spec, overrides: dict, name: str | None = None) -> Hardware:
    """A preset or .toml file with some keys replaced, validated as any description.

    overrides maps dotted key paths to values, e.g. {"datapath.accumulator.bits": 16,
    "datapath.weights.granularity": "per-tensor"}; `memory` levels are replaced whole; a table
    that the description leaves to its defaults (datapath.accumulator) is created."""
    import copy
    doc = copy.deepcopy(hardware_document(spec))
    where = f"{spec} with overrides"
    base = hardware_from_document(doc, str(spec))
    if base.datapath.kind == "integer" and isinstance(doc.get("energy"), dict) and "mac_pj" in doc["energy"]:
        # mac_pj stays quoted for the base accumulator; a new width changes the adder's share
        doc["energy"].setdefault("accumulator_bits", base.resolve_datapath().accumulator.bits)
    for key, value in overrides.items():
        *tables, leaf = key.split(".")
        node = doc
        for t in tables:
            node = node.setdefault(t, {}) if t in ("accumulator", "kv_cache") and node is doc.get("datapath") else node.get(t)
            if not isinstance(node, dict):
                raise HardwareError(f"{where}: override {key}: {t} is not a table of the description")
        node[leaf] = value
    if name is not None:
        doc["name"] = name
    return hardware_from_document(doc, where)


def _read(spec) -> tuple[str, str]:
    path = Path(spec)
    if path.suffix != ".toml":
        path = PRESET_DIR / f"{spec}.toml"
        if not path.exists():
            raise HardwareError(_unknown_machine(str(spec)))
    try:
        return path.read_text(), str(path)
    except OSError as e:
        raise HardwareError(f"cannot read {path}: {e.strerror}") from None


def _unknown_machine(name: str) -> str:
    """Why name is no machine preset, naming both preset namespaces."""
    from ..plan import datapath_presets
    machines = f"machine presets are {', '.join(hardware_presets())}"
    if name in datapath_presets():
        return (f"unknown hardware {name!r}: {name!r} is a kernel-path preset (qsim datapaths), which a "
                f"description names in datapath.kernel, not a machine; {machines}")
    return (f"unknown hardware {name!r}; {machines} (kernel-path presets, for a description's "
            f"datapath.kernel: {', '.join(datapath_presets())})")


def iso_hardware(base, other, node_nm: int) -> Hardware:
    """`other`'s datapath on `base`'s array and memories at node_nm (qsim compare --iso): what
    differs between two such descriptions is their number formats and accumulators only.

    Held from base: the array (size, dataflow, clock, mapper), every memory level as described
    (sizes, bandwidths, pJ per byte: memory energies are not scaled with the node) and the
    energy calibration. Varied: the datapath. The MAC energy is always derived from the datapath
    at node_nm (qsim.hardware.energy); a quoted mac_pj is a fact of one machine and is dropped."""
    base, other = load_hardware(base), load_hardware(other)
    try:
        check_node(node_nm, "--iso")
    except NodeError as e:
        raise HardwareError(str(e)) from None
    energy = replace(base.energy, mac_pj=None, node_nm=node_nm, accumulator_bits=None,
                     source=f"MAC derived from the datapath at {node_nm} nm (qsim/hardware/energy.py); "
                            f"calibration of {base.name}")
    return Hardware(f"{other.name}@{node_nm}nm",
                    f"{other.name}'s datapath on {base.name}'s array and memories at {node_nm} nm",
                    other.datapath, base.array, base.memory, energy,
                    (f"iso comparison: {base.name}'s array, memories and calibration; MAC derived at {node_nm} nm",
                     *other.simplifications))
