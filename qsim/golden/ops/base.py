"""What every golden op shares: its configuration (GoldenConfig, a validated frozen dataclass),
the GoldenOp interface the registry holds, and the rules a format option is checked by."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, replace

import numpy as np

from ...datapaths import IntDatapath
from ...formats import FloatFormat, IntFormat, builtin_formats, format as get_format
from ...rounding import rounding_code
from ..show import show_array_value


# -- configuration ------------------------------------------------------------------------------
def option(key: str) -> str:
    """A configuration key with its command-line option: "weight_format (--weight-format)"."""
    return f"{key} (--{key.replace('_', '-')})"


def _named_format(key: str, name):
    """The canonical name of a format option's value; an unknown name is reported with the option."""
    if name is None:
        return None
    try:
        return get_format(name).name
    except KeyError as e:
        raise KeyError(f"{option(key)}: {e.args[0]}") from None
    except ValueError as e:
        raise ValueError(f"{option(key)}: {e}") from None


def _check_int(name: str, value, least: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ValueError(f"{name} must be a {'non-negative' if least == 0 else 'positive'} int, got {value!r}")


@dataclass(frozen=True)
class GoldenConfig:
    """The arguments that regenerate a golden set: make_golden(**asdict(config)). The field
    order is the manifest's key order. Format names are canonical; rounding_seed is derived
    (the seed, for stochastic rounding)."""
    op: str
    datapath: str | None = None
    format: str | None = None            # noqa: A003
    weight_format: str | None = None
    output_format: str | None = None
    rounding: str = "rne"
    saturate: bool | None = None
    seed: int = 0
    rounding_seed: int | None = None
    random: int = 0
    scale: float | None = None
    zero_point: int = 0
    bias: bool = True
    block_size: int | None = None
    scale_rule: str = "floor"

    def __post_init__(self):
        rounding_code(self.rounding)                         # refuses unknown modes
        _check_int("seed", self.seed, 0)
        _check_int("random", self.random, 0)
        if self.scale is not None and not (np.isfinite(self.scale) and self.scale > 0):
            raise ValueError(f"scale must be finite and > 0, got {self.scale!r}")
        if self.scale_rule not in ("floor", "rceil"):
            raise ValueError(f"scale_rule must be 'floor' or 'rceil', got {self.scale_rule!r}")
        if self.block_size is not None:
            _check_int("block_size", self.block_size, 1)

    @classmethod
    def from_arguments(cls, op: GoldenOp, *, datapath=None, format=None, weight_format=None,  # noqa: A002
                       output_format=None, rounding="rne", saturate=None, seed=0, random=None, scale=None,
                       zero_point=0, bias=True, block_size=None, scale_rule="floor", rounding_seed=None):
        """make_golden's arguments, normalized: the op's default random count, canonical format
        names, rounding_seed derived (a given one is ignored: it is stored, not chosen)."""
        stochastic = rounding_code(rounding) == rounding_code("stochastic")
        return cls(op=op.name, datapath=None if datapath is None else str(datapath),
                   format=_named_format("format", format), weight_format=_named_format("weight_format", weight_format),
                   output_format=_named_format("output_format", output_format), rounding=rounding,
                   saturate=saturate, seed=seed, rounding_seed=seed if stochastic else None,
                   random=op.default_random if random is None else random,
                   scale=None if scale is None else float(scale), zero_point=int(zero_point), bias=bool(bias),
                   block_size=block_size, scale_rule=scale_rule)

    def as_dict(self) -> dict:
        return asdict(self)


# -- format options -------------------------------------------------------------------------------
def pick(*names):
    """The first format name given, canonical; None if none is."""
    for n in names:
        if n is not None:
            return get_format(n).name
    return None


def is_int_path(path) -> bool:
    return isinstance(path, IntDatapath)


def _small_int(f) -> bool:
    return isinstance(f, IntFormat) and f.bits <= 8


def _small_signed_float(f) -> bool:
    """Operands of golden float GEMM/conv and MX elements: signed, with a zero, codes enumerable."""
    return isinstance(f, FloatFormat) and f.signed and f.has_zero and f.storage_bits <= 16


# what a format option must be: (description, test); the built-in formats that pass are listed
INT_OPERAND = ("an integer format of 2 to 8 bits", _small_int)
FLOAT_OPERAND = ("a signed float format of at most 16 bits with a zero (or a custom e<E>m<M>[fn|fnuz] of "
                 "at most 16 bits)", _small_signed_float)


def must_be(rule) -> str:
    description, test = rule
    return f"{description}: {', '.join(f.name for f in builtin_formats() if test(f))}"


def not_for(reason: str):
    return (reason, None)                        # a rule that no format passes: the option does not apply


# -- the interface ----------------------------------------------------------------------------------
class GoldenOp(ABC):
    """One golden operation. A subclass sets name, aliases, default_random and needs_datapath
    and defines format_rules and cases; the registry (qsim.golden.ops.REGISTRY) lists one
    instance of each."""
    name: str
    aliases: tuple[str, ...] = ()
    default_random: int                          # random values or random cases (see make_golden)
    needs_datapath: bool = False                 # gemm, conv, requant: --datapath is required

    @abstractmethod
    def format_rules(self, path) -> dict:
        """What each format option must be on this datapath: None (any format), or
        (description, test), with test None where the option does not apply."""

    def complete(self, cfg: GoldenConfig, path, hw) -> GoldenConfig:
        """cfg with what the datapath or the format decides filled in; refuses what the op
        cannot take."""
        if self.needs_datapath and path is None:
            raise ValueError(f"{self.name} needs a datapath (--datapath): a datapath preset, hardware preset or .toml")
        cfg = self.fill(cfg, path, hw)
        self._check_format_options(cfg, path)
        return cfg

    def fill(self, cfg: GoldenConfig, path, hw) -> GoldenConfig:
        """The op's own defaults and checks (the format from the hardware, saturate...)."""
        return cfg

    def format_from_datapath(self, cfg: GoldenConfig, path, hw) -> GoldenConfig:
        """cfg with no format= given: the hardware's activation format, or the datapath's."""
        if cfg.format is not None:
            return cfg
        cfg = replace(cfg, format=pick(hw and hw.datapath.activations.element_format, getattr(path, "a_format", None)))
        if cfg.format is None:
            raise ValueError(f"{self.name} needs a format (--format)")
        return cfg

    def _check_format_options(self, cfg: GoldenConfig, path) -> None:
        """Refuse a format option the op cannot take, naming the option and what it must be."""
        for key, rule in self.format_rules(path).items():
            name = getattr(cfg, key)
            if name is None or rule is None:
                continue
            where = f"{option(key)} {name} for {self.name}" + ("" if cfg.datapath is None else f" on {cfg.datapath}")
            if rule[1] is None:
                raise ValueError(f"{where}: the option does not apply ({rule[0]})")
            if not rule[1](get_format(name)):
                raise ValueError(f"{where}: it must be {must_be(rule)}")

    @abstractmethod
    def cases(self, cfg: GoldenConfig, path, hw, rng) -> tuple[list, dict, dict]:
        """The cases (store.Case), the format of each array, and the facts the op resolved."""

    def overflow_mode(self, cfg: GoldenConfig, path) -> str | None:
        """What the op does on overflow, for the manifest and reports; None: nothing to say."""
        return None

    def inputs_at(self, golden, case, output: str, pos: tuple) -> dict[str, str]:
        """The inputs behind one output position, for a mismatch report: elementwise values
        where the input has the output's shape, scalars, per-channel entries."""
        shape = case.expected[output].shape
        out = {}
        for name, arr in case.inputs.items():
            if arr.shape == shape:
                out[name] = show_array_value(golden, name, arr[pos])
            elif arr.ndim == 0:
                out[name] = show_array_value(golden, name, arr[()])
            elif arr.ndim == 1 and shape and arr.shape[0] == shape[-1]:
                out[f"{name}[{pos[-1]}]"] = show_array_value(golden, name, arr[pos[-1]])
        return out


def accumulator_overflow(path) -> str:
    return f"accumulator int{path.accumulator.bits} {path.accumulator.overflow}; output clamps"
