"""Sweep descriptions: TOML in, a validated grid of points out. Every error names the key.

    name = "digits-24"
    models = ["digits-cnn"]
    calibration = ["max", "entropy"]        # optional, default ["max"]
    seed = 0                                # optional
    [[hardware]]                            # a preset name or a .toml file (relative to this file)
    preset = "edge-npu-int8"
    [hardware.grid]                         # every combination of these override lists
    "datapath.accumulator.bits" = [16, 20, 32]
    "datapath.weights.granularity" = ["per-tensor", "per-channel"]
    [[hardware]]
    preset = "h100-fp8"

Each combination of model, hardware entry, grid values and calibration is a Point; its
point_id hashes its canonical description (including the resolved hardware's config hash,
so an edited preset is a new point). Every hardware variant is built while loading, so a
bad override fails before any work.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..hardware import Hardware, HardwareError, override_hardware
from ..quant.calibrate import METHODS as CALIBRATIONS
from ..sim import MODELS
from ..sim.simulate import config_hash

TOP_KEYS = ("name", "description", "models", "calibration", "seed", "hardware")
ENTRY_KEYS = ("preset", "grid")


class SweepError(ValueError):
    """A sweep description that cannot be run; the message names the key."""


@dataclass(frozen=True)
class HardwareEntry:
    preset: str                                        # preset name or absolute .toml path
    grid: tuple[tuple[str, tuple], ...] = ()           # (dotted override key, values), in file order


@dataclass(frozen=True)
class Sweep:
    name: str
    models: tuple[str, ...]
    calibration: tuple[str, ...]
    seed: int
    hardware: tuple[HardwareEntry, ...]
    description: str = ""
    document: dict = field(default=None, compare=False, repr=False)     # the parsed TOML, kept with each point
    points: tuple[Point, ...] = field(default=(), compare=False, repr=False)

    @property
    def sweep_id(self) -> str:
        """The identity of the sweep's set of points: specs that expand to the same points
        (however written) are the same sweep, and resume each other."""
        return hashlib.sha256(" ".join(sorted(p.point_id for p in self.points)).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Point:
    """One simulation of a sweep: a model on one resolved hardware variant."""
    model: str
    hardware: Hardware                                 # overrides applied
    overrides: tuple[tuple[str, object], ...]
    calibration: str
    seed: int
    fp32_layers: tuple[str, ...] = ()                  # layers kept in FP32 (sensitivity analysis)
    point_id: str = ""
    config: str = ""                                   # a short human label; not part of the identity

    def describe(self) -> dict:
        """The canonical description point_id hashes, as JSON-ready values."""
        return {"model": self.model, "hardware": self.hardware.name, "overrides": dict(sorted(self.overrides)),
                "calibration": self.calibration, "seed": self.seed, "fp32_layers": sorted(self.fp32_layers),
                "config_hash": config_hash(self.hardware)}


def make_point(model: str, hardware: Hardware, overrides=(), calibration: str = "max", seed: int = 0,
               fp32_layers=(), label: str | None = None) -> Point:
    """A Point with its point_id and config label filled in."""
    point = Point(model, hardware, tuple(overrides), calibration, seed, tuple(fp32_layers))
    text = json.dumps(point.describe(), sort_keys=True, default=str)
    point_id = hashlib.sha256(text.encode()).hexdigest()[:16]
    return replace(point, point_id=point_id, config=label or config_label(point))


# short words for the overrides people sweep; anything else shows as leaf=value
_WORDS = {
    "datapath.kernel": lambda v: v,
    "datapath.accumulator.bits": lambda v: f"acc{v}",
    "datapath.accumulator.overflow": lambda v: {"saturate": "sat"}.get(v, v),
    "datapath.weights.format": lambda v: f"{v}w",
    "datapath.activations.format": lambda v: f"{v}a",
    "datapath.output.format": lambda v: f"{v}out",
    "datapath.weights.granularity": lambda v: v,
    "datapath.activations.granularity": lambda v: f"act-{v}",
    "datapath.weights.group_size": lambda v: f"g{v}",
    "datapath.weights.block_size": lambda v: f"wblock{v}",
    "datapath.activations.block_size": lambda v: f"ablock{v}",
    "datapath.activations.dynamic": lambda v: "dynamic" if v else "static",
}


def config_label(point: Point) -> str:
    """e.g. "edge-npu-int8 acc16 per-tensor entropy"."""
    words = [point.hardware.name]
    for key, value in point.overrides:
        words.append(_WORDS[key](value) if key in _WORDS else f"{key.rsplit('.', 1)[-1]}={value}")
    words.append(point.calibration)
    if point.fp32_layers:
        words.append("fp32:" + "+".join(point.fp32_layers))
    return " ".join(str(w) for w in words)


def load_sweep(path) -> Sweep:
    """A Sweep from a TOML file; SweepError (naming the key) if anything is off."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise SweepError(f"cannot read {path}: {e.strerror}") from None
    return parse_sweep(text, str(path), base_dir=path.parent)


def parse_sweep(text: str, where: str = "<string>", base_dir=".") -> Sweep:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise SweepError(f"{where}: malformed TOML: {e}") from None
    return sweep_from_document(doc, where, base_dir)


def sweep_from_document(doc: dict, where: str = "<document>", base_dir=".") -> Sweep:
    _no_unknown(doc, TOP_KEYS, "", where)
    name = _get(doc, "name", str, where)
    if not name.strip():
        raise SweepError(f"{where}: name must not be empty")
    models = _names(doc, "models", MODELS, where)
    calibration = _names(doc, "calibration", CALIBRATIONS, where, default=["max"])
    seed = _get(doc, "seed", int, where, default=0)
    if "hardware" not in doc:
        raise SweepError(f"{where}: missing key hardware (one or more [[hardware]] tables)")
    items = doc["hardware"]
    if not isinstance(items, list) or not items:
        raise SweepError(f"{where}: hardware must be a non-empty array of tables ([[hardware]])")
    entries = tuple(_entry(item, i, where, Path(base_dir)) for i, item in enumerate(items))
    sweep = Sweep(name, models, calibration, seed, entries, _get(doc, "description", str, where, default=""), doc)
    return replace(sweep, points=_expand(sweep, where))


def _entry(item, i: int, where: str, base_dir: Path) -> HardwareEntry:
    key = f"hardware[{i}]"
    if isinstance(item, str):                           # shorthand: hardware = ["a", "b"]
        item = {"preset": item}
    if not isinstance(item, dict):
        raise SweepError(f"{where}: {key} must be a table or a preset name, got {item!r}")
    _no_unknown(item, ENTRY_KEYS, key, where)
    preset = _get(item, "preset", str, where, prefix=key)
    if preset.endswith(".toml"):                        # files are relative to the sweep file
        preset = str((base_dir / preset).resolve())
    grid = item.get("grid", {})
    if not isinstance(grid, dict):
        raise SweepError(f"{where}: {key}.grid must be a table of override lists")
    axes = []
    for name, values in grid.items():
        if not isinstance(values, list) or not values:
            raise SweepError(f'{where}: {key}.grid."{name}" must be a non-empty list of values, got {values!r}')
        axes.append((name, tuple(values)))
    return HardwareEntry(preset, tuple(axes))


def _expand(sweep: Sweep, where: str) -> tuple[Point, ...]:
    """Every point, in file order: models, then hardware entries and their grids, then calibrations."""
    variants = [v for i, entry in enumerate(sweep.hardware) for v in _variants(entry, i, where)]
    points, seen = [], {}
    for model in sweep.models:
        for overrides, hw in variants:
            for calibration in sweep.calibration:
                p = make_point(model, hw, overrides, calibration, sweep.seed)
                if p.point_id in seen:
                    raise SweepError(f"{where}: {p.config!r} on {model} appears twice "
                                     f"(same as {seen[p.point_id]!r}); remove one")
                seen[p.point_id] = p.config
                points.append(p)
    return tuple(points)


def _variants(entry: HardwareEntry, i: int, where: str):
    keys = [k for k, _ in entry.grid]
    for values in itertools.product(*(v for _, v in entry.grid)):
        overrides = tuple(zip(keys, values))
        try:
            hw = override_hardware(entry.preset, dict(overrides))
        except HardwareError as e:
            chosen = "".join(f", {k} = {v!r}" for k, v in overrides)
            raise SweepError(f"{where}: hardware[{i}] ({entry.preset}{chosen}): {e}") from None
        yield overrides, hw


def _get(table: dict, key: str, kind, where: str, default=None, prefix: str = ""):
    path = f"{prefix}.{key}" if prefix else key
    if key not in table:
        if default is None:
            raise SweepError(f"{where}: missing key {path}")
        return default
    value = table[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise SweepError(f"{where}: {path} must be {'an integer' if kind is int else 'a string'}, got {value!r}")
    return value


def _names(doc: dict, key: str, known, where: str, default=None) -> tuple[str, ...]:
    values = doc.get(key, default)
    if values is None:
        raise SweepError(f"{where}: missing key {key}")
    if isinstance(values, str):
        values = [values]
    if not isinstance(values, list) or not values:
        raise SweepError(f"{where}: {key} must be a non-empty list, got {values!r}")
    for v in values:
        if not isinstance(v, str) or v not in known:     # a str first: a list or table cannot be looked up
            raise SweepError(f"{where}: {key}: unknown {v!r}; choose from {', '.join(known)}")
    if len(set(values)) != len(values):
        raise SweepError(f"{where}: {key} lists a value twice: {values}")
    return tuple(values)


def _no_unknown(table: dict, allowed, prefix: str, where: str) -> None:
    unknown = sorted(set(table) - set(allowed))
    if unknown:
        path = f"{prefix}.{unknown[0]}" if prefix else unknown[0]
        raise SweepError(f"{where}: unknown key {path}; allowed: {', '.join(allowed)}")
