"""Hardware descriptions: TOML in, frozen dataclasses out, validated on load. Every error
names the key path (e.g. `array.rows`) and the file.

A description has: the GEMM datapath (formats, accumulator and requantization by preset
name from qsim.datapaths), the vector-unit format for other operations, the quantization
scheme, the compute array, the memory levels and the energy table with its citations.
`extends = "other-preset"` (or a .toml path) starts from that description and sets only what
differs. Machine presets (presets/*.toml) and kernel-path presets (qsim.datapaths) are two
namespaces; mxfp8 and mxfp4 name one of each.
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from ..formats import format as get_format
from .cost import DATAFLOWS
from .presets import PRESET_DIR, hardware_presets

GRANULARITIES = ("per-tensor", "per-channel", "per-group", "mx")


class HardwareError(ValueError):
    """A hardware description that cannot be used; the message names the key."""


@dataclass(frozen=True)
class Datapath:
    kind: str                 # "integer" or "float"
    preset: str               # a qsim.datapaths preset
    weights: str
    activations: str
    outputs: str
    vector_format: str
    accumulator_bits: int | None = None          # integer kind: overrides the preset's width
    accumulator_overflow: str | None = None      # "wrap" or "saturate"


@dataclass(frozen=True)
class Quantization:
    weights: str
    activations: str
    symmetric_weights: bool
    symmetric_activations: bool
    group_size: int
    mx_block: int
    dynamic_activations: bool = False         # ranges from each input at run time, float output


@dataclass(frozen=True)
class ComputeArray:
    rows: int
    cols: int
    dataflow: str
    clock_hz: float


@dataclass(frozen=True)
class MemoryLevel:
    name: str
    size_bytes: int
    bandwidth_bytes_per_s: float
    energy_pj_per_byte: float
    source: str


# Horowitz ISSCC 2014, 45 nm: a 32-bit integer add costs 0.1 pJ; adders scale about linearly in width
ADD_PJ_PER_BIT = 0.1 / 32


@dataclass(frozen=True)
class Energy:
    mac_pj: float
    node_nm: int
    calibration: float
    source: str
    accumulator_bits: int | None = None     # integer datapaths: the accumulator width mac_pj is quoted for
    add_pj_per_bit: float = ADD_PJ_PER_BIT  # what each accumulator bit more or less adds to a MAC

    def mac_pj_at(self, accumulator_bits: int | None) -> float:
        """MAC energy (before calibration) with an integer accumulator of that width."""
        if accumulator_bits is None or self.accumulator_bits is None:
            return self.mac_pj
        return max(self.mac_pj + (accumulator_bits - self.accumulator_bits) * self.add_pj_per_bit, 0.0)


@dataclass(frozen=True)
class Hardware:
    name: str
    description: str
    datapath: Datapath
    quantization: Quantization
    array: ComputeArray
    memory: tuple[MemoryLevel, ...]
    energy: Energy
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

    def table(self, key: str):
        self.used.add(key)
        return _Table(self.data.get(key), self._key(key), self.where)

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
    from ..datapaths import FLOAT_PRESETS, PRESETS
    top = _Table(doc, "", where)
    name = top.get("name", str)
    description = top.get("description", str, "")

    d = top.table("datapath")
    kind = d.choice("kind", ("integer", "float"))
    presets = PRESETS if kind == "integer" else FLOAT_PRESETS
    given = d.data.get("preset")
    if given in hardware_presets() and given not in PRESETS and given not in FLOAT_PRESETS:
        raise d.error("preset", given, "that is a machine preset (a whole hardware description), not "
                      f"a kernel path; the {kind} kernel-path presets are {', '.join(presets)}")
    preset = d.choice("preset", tuple(presets))
    bits = overflow = None
    if kind == "integer":
        bits = d.get("accumulator_bits", int, None, lambda v: 8 <= v <= 64, "an integer from 8 to 64", required=False)
        overflow = d.choice("accumulator_overflow", ("wrap", "saturate"), None, required=False)
    datapath = Datapath(kind, preset, d.fmt("weights"), d.fmt("activations"), d.fmt("outputs"),
                        d.fmt("vector_format", "fp32"), bits, overflow)
    path = presets[preset]
    q = top.table("quantization")
    quant = Quantization(q.choice("weights", GRANULARITIES, "per-channel"),
                         q.choice("activations", GRANULARITIES, "mx" if getattr(path, "block_size", 0) else "per-tensor"),
                         q.get("symmetric_weights", bool, True),
                         q.get("symmetric_activations", bool, kind == "float"),
                         q.get("group_size", int, 128, _positive, "a positive integer"),
                         q.get("mx_block", int, getattr(path, "block_size", 0) or 32, _positive, "a positive integer"),
                         q.get("dynamic_activations", bool, False))
    q.done()
    _check_datapath(datapath, path, d)
    _check_quantization(datapath, quant, path, q)
    d.done()

    a = top.table("array")
    array = ComputeArray(a.get("rows", int, check=_positive, what="a positive integer"),
                         a.get("cols", int, check=_positive, what="a positive integer"),
                         a.choice("dataflow", DATAFLOWS),
                         float(a.get("clock_hz", (int, float), check=_positive, what="a positive number")))
    a.done()

    top.used.add("memory")
    levels = doc.get("memory")
    if not isinstance(levels, list) or not levels:
        raise HardwareError(f"{where}: memory must be a non-empty array of tables ([[memory]])")
    memory = []
    for i, level in enumerate(levels):
        m = _Table(level, f"memory[{i}]", where)
        memory.append(MemoryLevel(m.get("name", str),
                                  m.get("size_bytes", int, check=_positive, what="a positive integer"),
                                  float(m.get("bandwidth_bytes_per_s", (int, float), check=_positive,
                                              what="a positive number")),
                                  float(m.get("energy_pj_per_byte", (int, float), check=lambda v: v >= 0,
                                              what="a number >= 0")),
                                  m.get("source", str, "")))
        m.done()
    names = [lv.name for lv in memory]
    if len(set(names)) != len(names):
        raise HardwareError(f"{where}: memory level names must be distinct, got {names}")

    e = top.table("energy")
    energy = Energy(float(e.get("mac_pj", (int, float), check=_positive, what="a positive number")),
                    e.get("node_nm", int, 45, _positive, "a positive integer"),
                    float(e.get("calibration", (int, float), 1.0, _positive, "a positive number")),
                    e.get("source", str),
                    e.get("accumulator_bits", int, None, lambda v: 8 <= v <= 64, "an integer from 8 to 64", required=False),
                    float(e.get("add_pj_per_bit", (int, float), ADD_PJ_PER_BIT, lambda v: v >= 0, "a number >= 0")))
    e.done()
    top.done()
    return Hardware(name, description, datapath, quant, array, tuple(memory), energy)


def _check_datapath(d: Datapath, path, t: _Table) -> None:
    """The formats are of the kind the datapath computes in, and those its preset names."""
    from ..formats import FloatFormat, IntFormat
    kinds = {"weights": d.weights, "activations": d.activations, "outputs": d.outputs}
    if d.kind == "integer":
        for key, name in kinds.items():
            if key != "outputs" and not isinstance(get_format(name), IntFormat):
                raise t.error(key, name, "an integer datapath takes integer formats (int8, uint8, int4, ...)")
    else:
        for key in ("activations", "outputs"):
            if not isinstance(get_format(kinds[key]), FloatFormat):
                raise t.error(key, kinds[key], "a float datapath takes float formats (integer weights are weight-only groups)")
        for key, want in (("activations", path.a_format),
                          ("weights", path.b_format if isinstance(get_format(d.weights), FloatFormat) else None)):
            if want is not None and get_format(kinds[key]).name != get_format(want).name:
                raise t.error(key, kinds[key], f"datapath preset {path.name} computes on {want}; "
                                   f"choose a preset for {kinds[key]} (qsim datapaths lists them)")
    if not isinstance(get_format(d.vector_format), FloatFormat):
        raise t.error("vector_format", d.vector_format, "the vector unit computes in a float format")


def _check_quantization(d: Datapath, q: Quantization, path, t: _Table) -> None:
    """Every setting the simulator would not honour is refused, so that a description (or a
    sweep over it) never carries a key with no effect."""
    from ..formats import FloatFormat, IntFormat
    mx, integer = bool(getattr(path, "block_size", 0)), d.kind == "integer"
    int_weights = isinstance(get_format(d.weights), IntFormat)
    weight_choices = (("mx",) if mx else ("per-channel", "per-tensor") if integer or not int_weights
                      else ("per-group",))
    if q.weights not in weight_choices:
        raise t.error("weights", q.weights, f"this datapath takes {' or '.join(weight_choices)} weights"
                                 + ("" if integer or mx else " (per-group is for integer weight-only groups)"))
    activation_choice = "mx" if mx else "per-tensor"
    if q.activations != activation_choice:
        raise t.error("activations", q.activations, f"this datapath takes {activation_choice} activations")
    if not integer:
        for key in ("symmetric_activations", "symmetric_weights"):
            if not getattr(q, key):
                raise t.error(key, False, "float and MX formats are symmetric (no zero point): only true")
    if t.given("group_size") and q.weights != "per-group":
        raise t.error("group_size", q.group_size, "applies to per-group weights only")
    if t.given("mx_block") and not mx:
        raise t.error("mx_block", q.mx_block, "applies to MX datapaths only")
    if q.dynamic_activations and mx:
        raise t.error("dynamic_activations", True, "MX block scales always come from the data")
    if integer and not q.dynamic_activations and not isinstance(get_format(d.outputs), IntFormat):
        raise HardwareError(f"{t.where}: datapath.outputs = {d.outputs!r}: static integer datapaths requantize "
                            "to an integer output format")
    if integer and q.dynamic_activations and not isinstance(get_format(d.outputs), FloatFormat):
        raise HardwareError(f"{t.where}: datapath.outputs = {d.outputs!r}: with dynamic activations the "
                            "accumulator is scaled to float (as MatMulIntegerToFloat): set datapath.outputs to "
                            "a float format such as fp32")


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

    overrides maps dotted key paths to values, e.g. {"datapath.accumulator_bits": 16,
    "quantization.weights": "per-tensor"}; `memory` levels are replaced whole."""
    import copy
    doc = copy.deepcopy(hardware_document(spec))
    where = f"{spec} with overrides"
    base = hardware_from_document(doc, str(spec))
    if base.datapath.kind == "integer" and isinstance(doc.get("energy"), dict):
        # mac_pj stays quoted for the base accumulator; a new width changes the adder's share
        doc["energy"].setdefault("accumulator_bits", base.resolve_datapath().accumulator.bits)
    for key, value in overrides.items():
        *tables, leaf = key.split(".")
        node = doc
        for t in tables:
            node = node.get(t)
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
                f"description names in datapath.preset, not a machine; {machines}")
    return (f"unknown hardware {name!r}; {machines} (kernel-path presets, for a description's "
            f"datapath.preset: {', '.join(datapath_presets())})")
