"""Hardware descriptions: TOML in, frozen dataclasses out, validated on load. Every error
names the key path (e.g. `array.rows`) and the file.

A description has: the GEMM datapath (formats, accumulator and requantization by preset
name from qsim.datapaths), the vector-unit format for other operations, the quantization
scheme, the compute array, the memory levels and the energy table with its citations.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from ..formats import format as get_format
from .cost import DATAFLOWS

PRESET_DIR = Path(__file__).parent / "presets"
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

    def resolve(self):
        """The qsim.datapaths datapath this describes (IntDatapath or FloatDatapath)."""
        from dataclasses import replace
        from ..datapaths import any_datapath
        path = any_datapath(self.preset)
        if self.accumulator_bits is not None or self.accumulator_overflow is not None:
            acc = replace(path.accumulator, bits=self.accumulator_bits or path.accumulator.bits,
                          overflow=self.accumulator_overflow or path.accumulator.overflow)
            path = replace(path, name=f"{path.name}+acc{acc.bits}{acc.overflow[0]}", accumulator=acc)
        return path


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

    def get(self, key: str, kind, default=None, check=None, what: str = ""):
        self.used.add(key)
        if key not in self.data:
            if default is None:
                raise HardwareError(f"{self.where}: missing key {self._key(key)}")
            return default
        v = self.data[key]
        ok = isinstance(v, kind) and not (isinstance(v, bool) and kind in (int, float, (int, float)))
        if ok and check is not None:
            ok = check(v)
        if not ok:
            raise HardwareError(f"{self.where}: {self._key(key)} must be {what or kind.__name__}, got {v!r}")
        return v

    def choice(self, key: str, choices, default=None):
        return self.get(key, str, default, lambda v: v in choices, f"one of {', '.join(choices)}")

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
    return hardware_from_document(doc, where)


def hardware_from_document(doc: dict, where: str = "<document>") -> Hardware:
    """A Hardware from a parsed TOML document (nested dicts), validated as parse_hardware."""
    from ..datapaths import FLOAT_PRESETS, PRESETS
    top = _Table(doc, "", where)
    name = top.get("name", str)
    description = top.get("description", str, "")

    d = top.table("datapath")
    kind = d.choice("kind", ("integer", "float"))
    presets = PRESETS if kind == "integer" else FLOAT_PRESETS
    preset = d.choice("preset", tuple(presets))
    bits = overflow = None
    if kind == "integer":
        bits = d.get("accumulator_bits", int, 0, lambda v: v == 0 or 8 <= v <= 64, "an integer from 8 to 64") or None
        overflow = d.choice("accumulator_overflow", ("wrap", "saturate"), "") or None
    datapath = Datapath(kind, preset, d.fmt("weights"), d.fmt("activations"), d.fmt("outputs"),
                        d.fmt("vector_format", "fp32"), bits, overflow)
    d.done()

    q = top.table("quantization")
    quant = Quantization(q.choice("weights", GRANULARITIES, "per-channel"),
                         q.choice("activations", GRANULARITIES, "per-tensor"),
                         q.get("symmetric_weights", bool, True), q.get("symmetric_activations", bool, False),
                         q.get("group_size", int, 128, _positive, "a positive integer"),
                         q.get("mx_block", int, 32, _positive, "a positive integer"),
                         q.get("dynamic_activations", bool, False))
    q.done()
    if kind == "integer" and quant.weights not in ("per-channel", "per-tensor"):
        raise HardwareError(f"{where}: quantization.weights = {quant.weights!r}: integer datapaths take "
                            "per-channel or per-tensor weights (per-group and mx need a float datapath)")

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
                    e.get("accumulator_bits", int, 0, lambda v: v == 0 or 8 <= v <= 64, "an integer from 8 to 64") or None,
                    float(e.get("add_pj_per_bit", (int, float), ADD_PJ_PER_BIT, lambda v: v >= 0, "a number >= 0")))
    e.done()
    top.done()
    return Hardware(name, description, datapath, quant, array, tuple(memory), energy)


def load_hardware(spec) -> Hardware:
    """A Hardware from a preset name, a .toml path, or a Hardware."""
    if isinstance(spec, Hardware):
        return spec
    return parse_hardware(*_read(spec))


def hardware_document(spec) -> dict:
    """The TOML document (nested dicts) of a preset name or .toml path."""
    text, where = _read(spec)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise HardwareError(f"{where}: malformed TOML: {e}") from None


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
        doc["energy"].setdefault("accumulator_bits", base.datapath.resolve().accumulator.bits)
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
            raise HardwareError(f"unknown hardware {spec!r}; presets are {', '.join(hardware_presets())}")
    try:
        return path.read_text(), str(path)
    except OSError as e:
        raise HardwareError(f"cannot read {path}: {e.strerror}") from None


def hardware_presets() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.toml"))
