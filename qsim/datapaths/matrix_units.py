"""The matrix units of real GPUs (tensor cores, matrix cores), bit for bit.

Each unit is one data entry (presets/matrix_units.toml): its shape, operand formats and the
parameters of its arithmetic (`UnitArithmetic`), as MMA-Sim models them (Xie et al.,
arXiv 2511.10909) and as black-box tests against it confirm. One compiled kernel
(cython_src/_mmaunit.pyx) computes every unit from those parameters.

    unit = matrix_unit("hopper/wgmma/m64n256k32.f32.e4m3.e4m3")
    d = unit(a_codes, b_codes, c)             # one tile (or a batch of tiles)
    d = unit.gemm(a_codes, b_codes, c)        # any K: a chain of instructions, in order
"""

from __future__ import annotations

import difflib
import itertools
import re
import tomllib
from dataclasses import dataclass, field

import numpy as np

from .._kernels import _mmaunit
from .._threads import resolve_threads
from ..codec import decode
from ..formats import format as get_format
from .integer import PRESET_DIR

ARCHITECTURES = ("volta", "turing", "ampere", "ada-lovelace", "hopper", "blackwell", "rtx-blackwell",
                 "cdna1", "cdna2", "cdna3")
INSTRUCTIONS = ("mma", "mma.block_scale", "wgmma", "tcgen05.mma", "tcgen05.mma.block_scale", "mfma")

# PTX and AMD ISA type names -> qsim formats
PTX_TYPES = {"f32": "fp32", "f16": "fp16", "bf16": "bf16", "tf32": "tf32", "e4m3": "e4m3", "e5m2": "e5m2",
             "e3m2": "fp6_e3m2", "e2m3": "fp6_e2m3", "e2m1": "fp4_e2m1", "ue8m0": "e8m0", "ue4m3": "e4m3"}
AMD_TYPES = {"f32": "fp32", "f16": "fp16", "bf16": "bf16", "xf32": "tf32", "fp8": "e4m3fnuz", "bf8": "e5m2fnuz"}

# output rounding-format of a step: (fraction bits, emin, emax, round to nearest even, result format)
OUTPUTS = {"rz-fp32": (23, -126, 127, False, "fp32"), "rz-e8m13": (13, -126, 127, False, "fp32"),
           "rne-fp16": (10, -14, 15, True, "fp16"), "rne-fp32": (23, -126, 127, True, "fp32")}
KINDS = ("fdpa",)          # chains of FMAs (FP32/FP64 mfma, FP64 mma): not modelled yet
# the NaN every unit returns (NVIDIA and AMD alike, as the oracle gives them)
NAN_BITS = {"fp32": 0x7FFFFFFF, "fp16": 0x7FFF}

_SPECIAL, _NAN_LSB = 16000, 16001       # cython_src/_mmaunit.pyx


class UnknownUnitError(KeyError):
    """A name no matrix unit has; the message suggests the closest names."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class UnitArithmetic:
    """How a matrix unit sums: see presets/matrix_units.toml for the meaning of each field.

    step: products per step (each step's result is the next one's addend); fraction_bits: F,
    bits kept below the largest exponent (truncated toward zero); group: 0, or products per
    exactly summed group; second_fraction_bits: 0, or F2 of a two-stage sum (the products'
    truncated sum kept to F2 bits below the larger of its exponent and the addend's, the
    addend floored to F bits: CDNA3); lowest_exponent: the alignment exponent is at least this; output:
    the step result's rounding and format; product_inf_exponent: 0, or products of at least
    2 to this power are +-Inf (CDNA3: beyond FP32's range)."""

    kind: str = "fdpa"
    step: int = 16
    fraction_bits: int = 24
    second_fraction_bits: int = 0
    group: int = 0
    lowest_exponent: int = -133
    output: str = "rz-fp32"
    product_inf_exponent: int = 0

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unit arithmetic kind must be one of {KINDS}, got {self.kind!r}")
        if self.output not in OUTPUTS:
            raise ValueError(f"unit arithmetic output must be one of {tuple(OUTPUTS)}, got {self.output!r}")
        for name, lo, hi in (("step", 1, 128), ("fraction_bits", 2, 40), ("second_fraction_bits", 0, 40), ("group", 0, 64),
                             ("product_inf_exponent", 0, 1024),
                             ("lowest_exponent", -1100, 0)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                raise ValueError(f"unit arithmetic {name} must be an integer in [{lo}, {hi}], got {v!r}")
        if self.second_fraction_bits and (self.second_fraction_bits < self.fraction_bits or self.group):
            raise ValueError("a two-stage sum keeps at least fraction_bits in its second stage and has no groups")
        if self.group and self.step % self.group:
            raise ValueError(f"unit arithmetic step ({self.step}) must be a multiple of group ({self.group})")

    def describe(self) -> str:
        g = f", groups of {self.group} summed exactly" if self.group else ""
        if self.second_fraction_bits:
            g += f", then {self.second_fraction_bits} bits beside the addend floored to {self.fraction_bits}"
        return (f"fused dot-product-add of {self.step} products{g}, {self.fraction_bits} fraction bits "
                f"truncated, exponent >= {self.lowest_exponent}, {self.output}")


@dataclass(frozen=True)
class MatrixUnit:
    """One instruction of one GPU architecture: D (m x n) = A (m x k) . B (k x n) + C."""

    arch: str
    instruction: str
    qualifier: str
    m: int
    n: int
    k: int
    a_format: str
    b_format: str
    c_format: str
    d_format: str
    arithmetic: UnitArithmetic
    block_size: int = 0
    scale_format: str | None = None
    scale_sign_ignored: bool = False
    description: str = field(default="", compare=False)

    @property
    def name(self) -> str:
        return f"{self.arch}/{self.instruction}/{self.qualifier}"

    def __call__(self, a, b, c, scale_a=None, scale_b=None, num_threads: int | None = None) -> np.ndarray:
        """D = A.B + C for one tile (A m x k, B k x n, C m x n) or a batch of them (leading dims)."""
        a, b = np.asarray(a), np.asarray(b)
        if a.shape[-2:] != (self.m, self.k) or b.shape[-2:] != (self.k, self.n):
            raise ValueError(f"{self.name} takes A of shape (..., {self.m}, {self.k}) and B of shape "
                             f"(..., {self.k}, {self.n}), got {a.shape} and {b.shape}")
        return self.gemm(a, b, c, scale_a, scale_b, num_threads=num_threads)

    def gemm(self, a, b, c, scale_a=None, scale_b=None, promote_every: int = 0,
             num_threads: int | None = None) -> np.ndarray:
        """D = A.B + C for any M, N and K a multiple of the instruction's k, computed as a GEMM
        kernel issues it: a chain of instructions along K, each one's D the next one's C.
        promote_every: 0, or a multiple of k: every that many products the unit's partial sum
        (started from zero) is added into an FP32 register (IEEE, round to nearest even), as
        CUTLASS's FP8 kernels and DeepSeek-V3 do. Returns D with C's dtype."""
        a = self._codes(a, self.a_format, "a")
        b = self._codes(b, self.b_format, "b")
        if a.ndim < 2 or b.ndim < 2:
            raise ValueError(f"a and b must have at least 2 dimensions, got shapes {a.shape} and {b.shape}")
        m, kk, n = a.shape[-2], a.shape[-1], b.shape[-1]
        if b.shape[-2] != kk:
            raise ValueError(f"K differs: a is {a.shape}, b is {b.shape}")
        if kk % self.k:
            raise ValueError(f"K ({kk}) must be a multiple of {self.name}'s k ({self.k})")
        if isinstance(promote_every, bool) or not isinstance(promote_every, int) or promote_every < 0 \
                or promote_every % self.k:
            raise ValueError(f"promote_every must be 0 or a positive multiple of k ({self.k}), got {promote_every!r}")
        cdt = np.dtype(np.float16 if self.c_format == "fp16" else np.float32)
        c = np.asarray(c)
        if c.dtype != cdt:
            raise TypeError(f"{self.name} takes C as {cdt} ({self.c_format}), got {c.dtype}")
        batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2], c.shape[:-2])
        if c.shape[-2:] != (m, n):
            raise ValueError(f"C must have shape (..., {m}, {n}), got {c.shape}")
        sa, sb = self._scales(scale_a, scale_b, a.shape, b.shape, batch)
        ar = self.arithmetic
        mb, emin, emax, rne, dfmt = OUTPUTS[ar.output]
        asig, alsb = _split_table(self.a_format)
        bsig, blsb = _split_table(self.b_format)
        fa, fb = get_format(self.a_format), get_format(self.b_format)
        out = np.empty(batch + (m, n), np.uint32)
        a = np.broadcast_to(a, batch + a.shape[-2:])
        b = np.broadcast_to(b, batch + b.shape[-2:])
        c = np.broadcast_to(c, batch + (m, n))
        threads = resolve_threads(num_threads, int(np.prod(batch, dtype=np.int64)) * m * n * kk)
        empty = np.zeros((1, 1), np.int16)
        c_emin = get_format(self.c_format).emin
        finite = [alsb < _SPECIAL, blsb < _SPECIAL]     # per code: finite (the kernel's fast path)
        for i in np.ndindex(*batch):
            bt = np.ascontiguousarray(b[i].T)
            cv = c[i].astype(np.float64)
            state = np.where(np.isnan(cv), 3, np.where(np.isposinf(cv), 1, np.where(np.isneginf(cv), 2, 0))).astype(np.uint8)
            cv = np.where(state == 0, cv, 0.0)
            if sa is None:
                s = (empty, empty, empty, empty)
                xsa = xsb = 0
            else:
                ssig, slsb = _split_table(self.scale_format, self.scale_sign_ignored)
                sai, sbti = sa[i], np.ascontiguousarray(sb[i].T)
                s = (ssig[sai], slsb[sai], ssig[sbti], slsb[sbti])
                xsa = xsb = get_format(self.scale_format).mantissa_bits
            _mmaunit.unit_gemm(asig[a[i]], alsb[a[i]], bsig[bt], blsb[bt], *s, np.ascontiguousarray(cv), state, out[i],
                               min(ar.step, self.k), ar.fraction_bits, ar.second_fraction_bits, ar.group, ar.lowest_exponent, fa.mantissa_bits,
                               fb.mantissa_bits, xsa, xsb, self.block_size if sa is not None else 0, mb, emin,
                               emax, rne, c_emin, NAN_BITS[dfmt], dfmt == "fp16", promote_every,
                               bool(finite[0][a[i]].all() and finite[1][b[i]].all()), ar.product_inf_exponent, threads)
        if dfmt == "fp16":
            return out.astype(np.uint16).view(np.float16)
        return out.view(np.float32)

    def _codes(self, x, fmt: str, what: str) -> np.ndarray:
        x = np.asarray(x)
        if x.dtype.kind not in "ui":
            raise TypeError(f"{what} must hold {fmt} codes (an integer array), got dtype {x.dtype}")
        n = get_format(fmt).n_codes
        if x.size and (x.min() < 0 or x.max() >= n):
            raise ValueError(f"{what} holds codes outside {fmt}'s range 0..{n - 1}")
        return x.astype(np.intp, copy=False)

    def _scales(self, scale_a, scale_b, ashape, bshape, batch):
        if not self.block_size:
            if scale_a is not None or scale_b is not None:
                raise ValueError(f"{self.name} is not block-scaled: pass no scales")
            return None, None
        if scale_a is None or scale_b is None:
            raise ValueError(f"{self.name} is block-scaled: pass scale_a ((..., M, K/{self.block_size})) and "
                             f"scale_b ((..., K/{self.block_size}, N)) as {self.scale_format} codes")
        nb = ashape[-1] // self.block_size
        sa = self._codes(scale_a, self.scale_format, "scale_a")
        sb = self._codes(scale_b, self.scale_format, "scale_b")
        if sa.shape[-2:] != (ashape[-2], nb) or sb.shape[-2:] != (nb, bshape[-1]):
            raise ValueError(f"scales must have shapes (..., {ashape[-2]}, {nb}) and (..., {nb}, {bshape[-1]}), "
                             f"got {sa.shape} and {sb.shape}")
        return np.broadcast_to(sa, batch + sa.shape[-2:]), np.broadcast_to(sb, batch + sb.shape[-2:])


_TABLES: dict = {}


def _split_table(fmt_name: str, sign_ignored: bool = False):
    """Per code of a format: integer significand (signed) and the exponent of its last bit,
    lsb = max(e, emin) - mantissa_bits; Inf as (+-1, SPECIAL), NaN as (0, NAN_LSB)."""
    key = (fmt_name, sign_ignored)
    if key not in _TABLES:
        fmt = get_format(fmt_name)
        v = decode(np.arange(fmt.n_codes), fmt, dtype=np.float64)
        if sign_ignored:
            v = np.abs(v)
        fin = np.isfinite(v) & (v != 0)
        e = np.zeros(v.shape, np.int64)
        e[fin] = np.frexp(np.abs(v[fin]))[1] - 1
        lsb = np.maximum(e, fmt.emin) - fmt.mantissa_bits
        sig = np.where(fin, np.ldexp(v, -lsb), 0.0)
        lsb = np.where(fin, lsb, 0)
        lsb = np.where(np.isinf(v), _SPECIAL, np.where(np.isnan(v), _NAN_LSB, lsb))
        sig = np.where(np.isinf(v), np.sign(v), sig)
        if np.abs(sig).max() >= 1 << 15 or lsb[fin].min(initial=0) < -(1 << 15):
            raise ValueError(f"{fmt.name} does not fit a matrix unit's 16-bit operand fields")
        _TABLES[key] = (sig.astype(np.int16), lsb.astype(np.int16))
    return _TABLES[key]


# -- the table of units ----------------------------------------------------------------------------
def _expand(pattern: str, values: dict) -> list[str]:
    names = list(dict.fromkeys(re.findall(r"\{(\w+)\}", pattern)))
    lists = []
    for n in names:
        v = values[n]
        if isinstance(v, str):
            lo, hi, st = (int(x) for x in v.split(":"))
            v = [str(x) for x in range(lo, hi + 1, st)]
        lists.append(v)
    out = []
    for combo in itertools.product(*lists):
        s = pattern
        for n, x in zip(names, combo):
            s = s.replace("{" + n + "}", x)
        out.append(s)
    return out


_NV_FIELDS = {"mma": "dabc", "mma.block_scale": "dabcs", "wgmma": "dab", "tcgen05.mma": "dab",
              "tcgen05.mma.block_scale": "dabs"}
_AMD = re.compile(r"^(f32|f64)_(\d+)x(\d+)x(\d+)(?:_\d+b)?_?(f32|f16|bf16|xf32|f64|fp8|bf8)(?:_(fp8|bf8|f32|f16|bf16))?(?:_1k)?$")


def _parse(instruction: str, qualifier: str) -> dict:
    """Shape and operand formats of a qualifier as PTX / the AMD ISA spell it."""
    if instruction == "mfma":
        mt = _AMD.match(qualifier)
        if not mt:
            raise ValueError(f"cannot parse the mfma suffix {qualifier!r}")
        d, m, n, k, a, b = mt.groups()
        b = b or a
        return dict(m=int(m), n=int(n), k=int(k), a_format=AMD_TYPES[a], b_format=AMD_TYPES[b],
                    c_format=AMD_TYPES[d], d_format=AMD_TYPES[d])
    parts = qualifier.split(".")
    mt = re.fullmatch(r"m(\d+)n(\d+)k(\d+)", parts[0])
    rest = [p for p in parts[1:] if not p.startswith("kind::")]
    block = 0
    if rest and rest[0].startswith("block"):
        block = int(rest.pop(0)[5:])
    f = dict(zip(_NV_FIELDS[instruction], rest))
    out = dict(m=int(mt[1]), n=int(mt[2]), k=int(mt[3]), a_format=PTX_TYPES[f["a"]], b_format=PTX_TYPES[f["b"]],
               d_format=PTX_TYPES[f["d"]], c_format=PTX_TYPES[f.get("c", f["d"])])
    if "s" in f:
        out.update(block_size=block, scale_format=PTX_TYPES[f["s"]], scale_sign_ignored=f["s"] == "ue4m3")
    return out


def _load(path) -> dict[str, MatrixUnit]:
    with open(path, "rb") as fh:
        data = tomllib.load(fh)
    algorithms = {name: UnitArithmetic(**spec) for name, spec in data["algorithms"].items()}
    units: dict[str, MatrixUnit] = {}
    for fam in data["units"]:
        quals = fam["qualifier"] if isinstance(fam["qualifier"], list) else [fam["qualifier"]]
        for arch in fam["arch"]:
            if arch not in ARCHITECTURES or fam["instruction"] not in INSTRUCTIONS:
                raise ValueError(f"{path}: unknown architecture {arch!r} or instruction {fam['instruction']!r}")
            for pat in quals:
                for q in _expand(pat, fam.get("values", {})):
                    u = MatrixUnit(arch, fam["instruction"], q, arithmetic=algorithms[fam["algorithm"]],
                                   **_parse(fam["instruction"], q))
                    if u.name in units:
                        raise ValueError(f"{path}: {u.name} is defined twice")
                    units[u.name] = u
    return units


MATRIX_UNITS: dict[str, MatrixUnit] = _load(PRESET_DIR / "matrix_units.toml")


def matrix_unit(name: str) -> MatrixUnit:
    """The unit named architecture/instruction/qualifier, e.g. "hopper/wgmma/m64n256k32.f32.e4m3.e4m3"."""
    if isinstance(name, MatrixUnit):
        return name
    if not isinstance(name, str):
        raise TypeError(f"a matrix unit is named by a string, got {type(name).__name__}")
    if name in MATRIX_UNITS:
        return MATRIX_UNITS[name]
    try:
        _closest(name)
    except UnknownUnitError as e:
        raise UnknownUnitError(f"unknown matrix unit {name!r}: {e}") from None


def _closest(name: str):
    """Raises UnknownUnitError naming what is wrong in name and the closest known names."""
    parts = name.split("/")
    if len(parts) != 3:
        raise UnknownUnitError(f"a matrix unit is named architecture/instruction/qualifier, got {name!r}")
    arch, inst, _ = parts
    if arch not in ARCHITECTURES:
        near = difflib.get_close_matches(arch, ARCHITECTURES, n=3)
        raise UnknownUnitError(f"no architecture {arch!r}" + (f"; did you mean {', '.join(near)}?" if near else
                                                                    f"; known: {', '.join(ARCHITECTURES)}"))
    insts = sorted({u.instruction for u in MATRIX_UNITS.values() if u.arch == arch})
    if inst not in insts:
        near = difflib.get_close_matches(inst, insts, n=3) or insts
        raise UnknownUnitError(f"{arch} has no instruction {inst!r}; it has {', '.join(near)}")
    quals = [u.qualifier for u in MATRIX_UNITS.values() if u.arch == arch and u.instruction == inst]
    near = difflib.get_close_matches(parts[2], quals, n=5, cutoff=0.5)
    raise UnknownUnitError(f"{arch}/{inst} has no qualifier {parts[2]!r}"
                           + (f"; closest: {', '.join(near)}" if near else f" ({len(quals)} qualifiers; `qsim units` lists them)"))
