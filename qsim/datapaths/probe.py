"""Characterize an unknown matrix unit: probe tiles that separate the arithmetic's parameters,
and a fit of those parameters to any device's outputs.

    probes = make_probes("hopper/wgmma/m64n256k32.f32.e4m3.e4m3")   # shape and formats of the device
    d = device(probes.a, probes.b, probes.c, probes.scale_a, probes.scale_b)   # (tiles, m, n)
    result = fit(probes, d)                 # or fit(probes, device=callable)
    print(result.report())                  # parameters, closest known unit, unexplained probes

The probes are data (PROBE_FAMILIES: what each family reveals and how its dot products are
built) and one deterministic generator. A probe is one dot product: products at positions
along K, block scales, the addend C; probes are packed on the diagonals of device-shaped tiles
(row i of A with column i of B and C[i, i]). The fit is a search: each parameter group of
UnitArithmetic (FIT_STAGES) is scanned over its candidates with qsim's own kernel (the
template unit with the candidate arithmetic), the candidate explaining the most outputs bit
for bit kept, until nothing changes; every parameter is then reported with the values that
explain every probe (a parameter no probe can observe shows as a range), the known units
whose arithmetic explains the most, and the probes nothing explains.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Callable

import numpy as np

from ..codec import decode, encode
from ..formats import format as get_format
from .matrix_units import MATRIX_UNITS, OUTPUTS, MatrixUnit, UnitArithmetic, matrix_unit

GENERATOR_VERSION = 1
ANCHOR_LIMIT = 46          # the farthest distance below the largest exponent a probe places a term
MINI = 16                  # probes per tile of the search (the candidates' own, smaller tiles)


class ProbeError(ValueError):
    """Probe files or device outputs that do not fit together."""


# -- the probe families (data) -------------------------------------------------------------------
@dataclass(frozen=True)
class Term:
    """One product at position `pos` along K: its value (factored into A and B codes by the
    generator), or the two factors given (specials)."""
    pos: int
    value: float | None = None
    a: float | None = None
    b: float | None = None


@dataclass(frozen=True)
class Probe:
    family: str
    note: str
    terms: tuple[Term, ...]
    c: float = 0.0
    scales: tuple[tuple[int, float], ...] = ()      # (block, scale value) where not 1


@dataclass(frozen=True)
class ProbeFamily:
    name: str
    reveals: str
    build: Callable


def _outputs_for(unit: MatrixUnit) -> list[str]:
    """The output rounding-formats a unit with this D format may have."""
    return [name for name, spec in OUTPUTS.items() if spec[4] == unit.d_format]


def _out_mbits(unit) -> list[int]:
    return sorted({OUTPUTS[o][0] for o in _outputs_for(unit)})


def _out_emin(unit) -> int:
    return get_format(unit.d_format).emin


def _fraction_bits(ctx):
    """+-2^e products cancel; the addend (or a third product) sits d bits below: it survives iff
    d <= F. Signs and a 1.5 mantissa show truncation toward zero."""
    out = []
    for d in range(1, ANCHOR_LIMIT + 1):
        e = ctx.anchor(d)
        for s in (1.0, -1.0):
            for mant in (1.0, 1.5):
                out.append(Probe("fraction-bits", f"+-2^{e} cancel, addend {s * mant:+g}*2^{e - d}",
                                 (Term(0, 2.0 ** e), Term(1, -2.0 ** e)), c=s * mant * 2.0 ** (e - d)))
            e2 = min(ctx.pmax, max(0, ctx.pmin + d))
            out.append(Probe("fraction-bits", f"+-2^{e2} cancel, product {s:+g}*2^{e2 - d}",
                             (Term(0, 2.0 ** e2), Term(1, -2.0 ** e2), Term(2, s * 2.0 ** (e2 - d)))))
    return out


def _step(ctx):
    """Where steps split: a term at position j lost (truncated or rounded away) beside position
    0 within one step, kept when j starts a new step."""
    out = []
    s = min(41, ctx.pmax - ctx.pmin)
    for j in range(1, ctx.k):
        if s >= 14:
            e = ctx.pmax
            out.append(Probe("step", f"addend 2^{e} cancelled at 0, 2^{e - s} at {j}",
                             (Term(0, -2.0 ** e), Term(j, 2.0 ** (e - s))), c=2.0 ** e))
        for m in ctx.mbits:
            out.append(Probe("step", f"addend 2^{m + 1}, ones at 0 and {j}", (Term(0, 1.0), Term(j, 1.0)),
                             c=2.0 ** (m + 1)))
            out.append(Probe("step", f"addend 2^{m + 1}, 1 at 0, 3 at {j}", (Term(0, 1.0), Term(j, 3.0)),
                             c=2.0 ** (m + 1)))
    return out


def _group(ctx):
    """Exactly summed groups: a run of small products below a cancelled anchor 2^A; each
    0.75*2^(A-s) alone truncates to 0, their exact sum does not. A is the smallest anchor
    exponent at which the probe is exact in the formats (block scales widen the range)."""
    out = []
    k = ctx.k
    start = k // 2 if k >= 4 else 1
    lengths = [n for n in (1, 2, 4, 8, 16, 32, 64) if start + n <= k]
    for s in range(2, ANCHOR_LIMIT + 1):
        for n in lengths:
            for e in range(0, 37, 4):
                terms = [Term(0, 2.0 ** e)] + [Term(start + i, 0.75 * 2.0 ** (e - s)) for i in range(n)]
                p = Probe("group", f"addend -2^{e}, 2^{e} at 0, {n} x 0.75*2^{e - s} from {start}", tuple(terms),
                          c=-2.0 ** e)
                if ctx.exact(p):
                    break
            out.append(p)
    return out


def _output(ctx):
    """The output rounding: sums a fraction of an output ulp above 2^(m+1) (ties, above and
    below half, sticky bits), both signs."""
    out = []
    for m in ctx.mbits:
        top = 2.0 ** (m + 1)             # ulp 2 at this size
        cases = [("tie", (1.0,)), ("1.5 ulp", (1.0, 2.0)), ("0.75 ulp", (1.0, 0.5)), ("0.375 ulp", (1.0, -0.25)),
                 ("just below 1 ulp", (2.0, -2.0 ** -6))]
        cases += [(f"tie + 2^-{t}", (1.0, 2.0 ** -t)) for t in range(1, 24, 2)]
        cases += [(f"tie - 2^-{t}", (1.0, -2.0 ** -t)) for t in range(1, 24, 2)]
        for s in (1.0, -1.0):
            for name, vals in cases:
                out.append(Probe("output", f"m={m}: {s * top:+g} + {name}",
                                 tuple(Term(i, s * v) for i, v in enumerate(vals)), c=s * top))
            # a carry out of the top: every term near the largest exponent
            out.append(Probe("output", f"m={m}: carry, {min(ctx.k, 8)} x {s * 1.875:+g}",
                             tuple(Term(i, s * 1.875) for i in range(min(ctx.k, 8))), c=s * (2.0 - 2.0 ** -m)))
    return out


def _lowest(ctx):
    """The smallest alignment exponent: 2^x and a term 2^(x - d) (with and without an output tie
    between them)."""
    out = []
    # near the bottom of the output's range, and of the products'
    tie_m = max(ctx.mbits)
    for x in sorted(set(range(ctx.out_emin - 48, ctx.out_emin + 3)) | set(range(ctx.pmin, ctx.pmin + 25))):
        for d in (1, 3, 8, 16, 24, 32, 40):
            out.append(Probe("lowest-exponent", f"2^{x} - 2^{x - d}", (Term(0, 2.0 ** x), Term(1, -2.0 ** (x - d)))))
            tie = 2.0 ** (max(x, ctx.out_emin) - tie_m - 1)      # half an output ulp above 2^x
            if tie > 2.0 ** (x - d):
                out.append(Probe("lowest-exponent", f"2^{x} + tie + 2^{x - d}",
                                 (Term(0, 2.0 ** x), Term(1, tie), Term(2, 2.0 ** (x - d)))))
    # the addend alone (no products): its bits d below its own exponent x
    cfmt = get_format(ctx.unit.c_format)
    for x in range(cfmt.emin - cfmt.mantissa_bits, 1, 3):
        for d in (1, 13, 23):
            out.append(Probe("lowest-exponent", f"addend 2^{x} + 2^{x - d}", (), c=2.0 ** x + 2.0 ** (x - d)))
    return out


def _specials(ctx):
    """NaN and Inf in A, B and C, Inf * 0, Inf - Inf, overflow, signed zeros."""
    nan, inf = float("nan"), float("inf")
    cmax = float(get_format(ctx.unit.c_format).max)
    raw = [("NaN in A", (Term(0, a=nan, b=1.0), Term(1, 1.0)), 0.0),
           ("NaN in B", (Term(0, a=1.0, b=nan),), 1.0),
           ("NaN addend", (Term(0, 1.0),), nan),
           ("+Inf in A", (Term(0, a=inf, b=1.0), Term(1, 1.0)), 1.0),
           ("-Inf in B", (Term(0, a=1.0, b=-inf),), 1.0),
           ("Inf * 0", (Term(0, a=inf, b=0.0),), 1.0),
           ("Inf - Inf", (Term(0, a=inf, b=1.0), Term(1, a=-inf, b=1.0)), 0.0),
           ("Inf product + -Inf addend", (Term(0, a=inf, b=1.0),), -inf),
           ("+Inf addend", (Term(0, 1.0),), inf), ("-Inf addend", (Term(0, -1.0),), -inf),
           ("-0 addend, no products", (), -0.0), ("-0 addend, -0 product", (Term(0, a=-0.0, b=1.0),), -0.0),
           ("+0 addend, -0 product", (Term(0, a=-0.0, b=1.0),), 0.0),
           ("-0 addend, 1 - 1", (Term(0, 1.0), Term(1, -1.0)), -0.0),
           ("largest addend + 2^pmax", (Term(0, 2.0 ** ctx.pmax),), cmax),
           ("-largest addend - 2^pmax", (Term(0, -2.0 ** ctx.pmax),), -cmax),
           ("largest addend - 2^pmax", (Term(0, -2.0 ** ctx.pmax),), cmax)]
    out = [Probe("specials", n, t, c=c) for n, t, c in raw]
    if ctx.unit.block_size:
        out.append(Probe("specials", "NaN block scale", (Term(0, 1.0),), 1.0, scales=((0, nan),)))
    return out


PROBE_FAMILIES: tuple[ProbeFamily, ...] = (
    ProbeFamily("fraction-bits", "F: how far below the largest exponent a term survives; truncation toward zero",
                _fraction_bits),
    ProbeFamily("step", "products per step: where a new step (a rounding of the running sum) begins", _step),
    ProbeFamily("group", "products summed exactly before the alignment (grouped kinds)", _group),
    ProbeFamily("output", "the output rounding: RZ or RNE, FP32, FP32 cut to 13 bits, FP16", _output),
    ProbeFamily("lowest-exponent", "the smallest alignment exponent (subnormal products and results)", _lowest),
    ProbeFamily("specials", "NaN, Inf, Inf * 0, Inf - Inf, overflow, signed zeros", _specials),
)
RANDOM_TILES = 2           # random tiles of wide exponent spread, for the final check


# -- realizing probes as codes ---------------------------------------------------------------
@cache
def _values(fmt_name: str) -> tuple[frozenset, tuple]:
    """The finite values of a format, and its positive powers of two and 1.5 times them."""
    f = get_format(fmt_name)
    v = decode(np.arange(f.n_codes), f, dtype=np.float64)
    v = v[np.isfinite(v)]
    pos = v[v > 0]
    m, _ = np.frexp(pos)
    factors = pos[(m == 0.5) | (m == 0.75)]
    return frozenset(v.tolist()), tuple(sorted(factors.tolist()))


@cache
def _code_table(fmt_name: str) -> dict:
    """value -> code for the finite nonzero values of a format; zeros and NaN by sign/kind."""
    f = get_format(fmt_name)
    codes = np.arange(f.n_codes)
    v = decode(codes, f, dtype=np.float64)
    table = {}
    for c, x in zip(codes[::-1].tolist(), v[::-1].tolist()):   # the lowest code of a value wins
        if x == 0:
            table["-0" if np.signbit(x) else "+0"] = c
        elif np.isnan(x):
            table["nan"] = c
        else:
            table[x] = c
    if f.has_nan:
        table["nan"] = int(encode(np.array([np.nan]), f)[0])
    return table


def _code(x: float, fmt_name: str) -> int | None:
    """The code of x in the format if x is exactly a value of it (NaN, signed zeros and Inf
    included), else None."""
    key = "nan" if np.isnan(x) else ("-0" if np.signbit(x) else "+0") if x == 0 else x
    return _code_table(fmt_name).get(key)


class _Context:
    """A unit template's formats, the range of its power-of-two products and of its output."""

    def __init__(self, unit: MatrixUnit):
        self.unit, self.k = unit, unit.k
        _, fa = _values(unit.a_format)
        _, fb = _values(unit.b_format)
        pa = [int(np.log2(x)) for x in fa if np.frexp(x)[0] == 0.5]
        pb = [int(np.log2(x)) for x in fb if np.frexp(x)[0] == 0.5]
        self.pmin, self.pmax = min(pa) + min(pb), max(pa) + max(pb)
        self.mbits, self.out_emin = _out_mbits(unit), _out_emin(unit)
        self.c_is_fp16 = unit.c_format == "fp16"

    def exact(self, probe: Probe) -> bool:
        return _realize(probe, self.unit) is not None

    def anchor(self, d: int) -> int:
        """An exponent e for +-2^e products with 2^(e - d) an exact addend."""
        if not self.c_is_fp16:
            return 0
        return min(self.pmax, max(0, d - 24))


@cache
def _factor(v: float, a_fmt: str, b_fmt: str) -> tuple[float, float] | None:
    """a, b exact in their formats with a * b == v; factors near sqrt(|v|) first."""
    if v == 0 or not np.isfinite(v):
        return None
    aset, afac = _values(a_fmt)
    bset, _ = _values(b_fmt)
    for a in _factors_near(a_fmt, int(np.floor(np.log2(abs(v)) / 2))):
        b = abs(v) / a
        if b in bset and a * b == abs(v):
            a_s = a if v > 0 else -a
            if a_s in aset:
                return a_s, b
            if -b in bset:
                return a, -b
    return None


@cache
def _factors_near(fmt_name: str, target: int) -> tuple:
    _, fac = _values(fmt_name)
    return tuple(sorted(fac, key=lambda x: abs(np.log2(x) - target)))


@cache
def _scale_pairs(scale_fmt: str):
    """(2^sa, 2^sb) scale values in the scale format, smallest total shift first."""
    vals, _ = _values(scale_fmt)
    p2 = sorted(x for x in vals if x > 0 and np.frexp(x)[0] == 0.5)
    exps = {int(np.log2(x)): x for x in p2}
    pairs = {}
    for ea in exps:
        for eb in exps:
            pairs.setdefault(ea + eb, (exps[ea], exps[eb]))
    return dict(sorted(pairs.items(), key=lambda kv: (abs(kv[0]), kv[0])))


def _realize(probe: Probe, unit: MatrixUnit):
    """(a codes (k,), b codes (k,), c, scale_a codes, scale_b codes) of one probe, or None if
    its values are not exact in the unit's formats."""
    k, bs = unit.k, unit.block_size
    av, bv = np.zeros(k), np.zeros(k)
    blocks = {}
    for t in probe.terms:
        if not 0 <= t.pos < k:
            return None
        blocks.setdefault(t.pos // bs if bs else 0, []).append(t)
    nb = k // bs if bs else 0
    sa, sb = np.ones(nb), np.ones(nb)
    given = dict(probe.scales)
    for blk, terms in blocks.items():
        shifts = {0: (1.0, 1.0)} if not bs else (
            {0: (given[blk], 1.0)} if blk in given else _scale_pairs(unit.scale_format))
        for shift, (xa, xb) in shifts.items():
            ok = True
            for t in terms:
                if t.value is None:
                    av[t.pos], bv[t.pos] = t.a, t.b
                    continue
                ab = _factor(t.value / 2.0 ** shift, unit.a_format, unit.b_format)
                if ab is None:
                    ok = False
                    break
                av[t.pos], bv[t.pos] = ab
            if ok:
                if bs:
                    sa[blk], sb[blk] = xa, xb
                break
        else:
            return None
    for blk, s in given.items():
        if bs and blk not in blocks:
            sa[blk] = s
    codes = []
    for vals, fmt in ((av, unit.a_format), (bv, unit.b_format)):
        cs = [_code(float(x), fmt) for x in vals]
        if any(c is None for c in cs):
            return None
        codes.append(np.array(cs, np.uint32))
    cdt = np.float16 if unit.c_format == "fp16" else np.float32
    with np.errstate(over="ignore", invalid="ignore"):
        c = cdt(probe.c)
        if not (np.isnan(c) and np.isnan(probe.c)) and (c != probe.c or np.signbit(c) != np.signbit(probe.c)):
            return None
    if bs:
        sca = [_code(float(x), unit.scale_format) for x in sa]
        scb = [_code(float(x), unit.scale_format) for x in sb]
        if any(x is None for x in sca + scb):
            return None
        return codes[0], codes[1], c, np.array(sca, np.uint32), np.array(scb, np.uint32)
    return codes[0], codes[1], c, None, None


def _random_tile(unit: MatrixUnit, rng):
    """Codes with exponents spread across the format (finite), C of wide spread."""
    def codes(fmt_name, shape):
        f = get_format(fmt_name)
        c = rng.integers(0, f.n_codes, size=shape)
        v = decode(c, f, dtype=np.float64)
        return np.where(np.isfinite(v), c, 0).astype(np.uint32)
    a = codes(unit.a_format, (unit.m, unit.k))
    b = codes(unit.b_format, (unit.k, unit.n))
    cdt = np.float16 if unit.c_format == "fp16" else np.float32
    c = (rng.standard_normal((unit.m, unit.n)) * np.exp2(rng.integers(-10, 11, (unit.m, unit.n)))).astype(cdt)
    if not unit.block_size:
        return a, b, c, None, None
    nb = unit.k // unit.block_size
    lo = 127 - 6 if unit.scale_format == "e8m0" else 0x30
    sa = rng.integers(lo, lo + 12, (unit.m, nb)).astype(np.uint32)
    sb = rng.integers(lo, lo + 12, (nb, unit.n)).astype(np.uint32)
    return a, b, c, sa, sb


# -- the probe set ---------------------------------------------------------------------------------
@dataclass
class ProbeSet:
    """Device-shaped tiles: a (T, m, k), b (T, k, n) codes, c (T, m, n), scales; probes[t][i] is
    the probe on the diagonal (i, i) of tile t; the last `random_tiles` tiles are random."""
    unit: MatrixUnit
    a: np.ndarray
    b: np.ndarray
    c: np.ndarray
    scale_a: np.ndarray | None
    scale_b: np.ndarray | None
    probes: list[Probe]                      # in diagonal order over the probe tiles
    random_tiles: int
    seed: int
    dropped: dict[str, int] = field(default_factory=dict)   # per family: probes not exact in the formats
    zero_addend: bool = False                # every C is 0 (a device with no addend input)

    @property
    def per_tile(self) -> int:
        return min(self.unit.m, self.unit.n)

    def where(self, index: int) -> tuple[int, int]:
        return divmod(index, self.per_tile)

    def save(self, path) -> Path:
        """probes.npz: the tiles, and the template and seed that regenerate the probe list."""
        path = Path(path)
        if path.suffix != ".npz":
            path.mkdir(parents=True, exist_ok=True)
            path = path / "probes.npz"
        meta = {"unit": self.unit.name, "seed": self.seed, "generator": GENERATOR_VERSION,
                "random_tiles": self.random_tiles, "probes": len(self.probes), "zero_addend": self.zero_addend}
        arrays = {"a": self.a, "b": self.b, "c": self.c}
        if self.scale_a is not None:
            arrays.update(scale_a=self.scale_a, scale_b=self.scale_b)
        np.savez_compressed(path, meta=np.array(json.dumps(meta)), **arrays)
        return path


def realized_probes(unit, families=None) -> tuple[list[Probe], list[tuple], dict[str, int]]:
    """The probes of PROBE_FAMILIES (or the named ones) exact in the unit's formats, their codes
    (a, b, c, scale_a, scale_b per probe), and per family how many were not exact."""
    unit = matrix_unit(unit)
    ctx = _Context(unit)
    kept, rows, dropped = [], [], {}
    for fam in PROBE_FAMILIES:
        if families is not None and fam.name not in families:
            continue
        for p in fam.build(ctx):
            r = _realize(p, unit)
            if r is None:
                dropped[fam.name] = dropped.get(fam.name, 0) + 1
                continue
            kept.append(p)
            rows.append(r)
    return kept, rows, dropped


def pack_tiles(unit, rows: list[tuple], extra_tiles: int = 0):
    """Probes' codes on the diagonals of unit-shaped tiles (zeros elsewhere, scales 1), with
    extra_tiles more after them: a (T, m, k), b (T, k, n), c (T, m, n), scale_a, scale_b."""
    per = min(unit.m, unit.n)
    total = -(-len(rows) // per) + extra_tiles
    cdt = np.float16 if unit.c_format == "fp16" else np.float32
    a = np.full((total, unit.m, unit.k), _code(0.0, unit.a_format), np.uint32)
    b = np.full((total, unit.k, unit.n), _code(0.0, unit.b_format), np.uint32)
    c = np.zeros((total, unit.m, unit.n), cdt)
    sa = sb = None
    if unit.block_size:
        nb = unit.k // unit.block_size
        one = _code(1.0, unit.scale_format)
        sa = np.full((total, unit.m, nb), one, np.uint32)
        sb = np.full((total, nb, unit.n), one, np.uint32)
    for idx, (ra, rb, rc, rsa, rsb) in enumerate(rows):
        t, i = divmod(idx, per)
        a[t, i], b[t, :, i], c[t, i, i] = ra, rb, rc
        if sa is not None:
            sa[t, i], sb[t, :, i] = rsa, rsb
    return a, b, c, sa, sb


def random_tile(unit, rng):
    """One unit-shaped tile of random finite codes (every exponent of the formats), C of wide
    spread, block scales within 2^-6..2^5."""
    return _random_tile(matrix_unit(unit), rng)


def make_probes(unit, seed: int = 0, random_tiles: int = RANDOM_TILES, zero_addend: bool = False) -> ProbeSet:
    """The probe tiles for a device shaped as `unit` (a MatrixUnit or a unit name: its shape,
    operand formats, block size and scale format; its arithmetic is not used). zero_addend:
    every C is 0, for a device with no addend (the probes that need one then reveal less)."""
    unit = matrix_unit(unit)
    kept, rows, dropped = realized_probes(unit)
    a, b, c, sa, sb = pack_tiles(unit, rows, random_tiles)
    rng = np.random.default_rng(seed)
    for t in range(len(a) - random_tiles, len(a)):
        ra, rb, rc, rsa, rsb = _random_tile(unit, rng)
        a[t], b[t], c[t] = ra, rb, rc
        if sa is not None:
            sa[t], sb[t] = rsa, rsb
    if zero_addend:
        c[:] = 0
    return ProbeSet(unit, a, b, c, sa, sb, kept, random_tiles, seed, dropped, zero_addend)


def load_probes(path) -> ProbeSet:
    """A probes.npz written by ProbeSet.save: the probe list regenerated from its template and
    seed, the tiles checked against the file."""
    path = Path(path)
    if path.is_dir():
        path = path / "probes.npz"
    try:
        with np.load(path) as z:
            meta = json.loads(str(z["meta"]))
            arrays = {k: z[k] for k in z.files if k != "meta"}
    except (OSError, KeyError, ValueError) as e:
        raise ProbeError(f"{path}: not a probe file written by `qsim probe --emit` ({e})") from None
    if meta.get("generator") != GENERATOR_VERSION:
        raise ProbeError(f"{path}: written by probe generator {meta.get('generator')}, this is {GENERATOR_VERSION}")
    ps = make_probes(meta["unit"], meta["seed"], meta["random_tiles"], bool(meta.get("zero_addend")))
    for k in ("a", "b", "c", "scale_a", "scale_b"):
        mine = getattr(ps, k)
        if (mine is None) != (k not in arrays) or (mine is not None and not np.array_equal(
                mine.view(np.uint8), np.asarray(arrays[k]).view(np.uint8))):
            raise ProbeError(f"{path}: array {k} differs from the probes the generator makes for {meta['unit']}")
    return ps


# -- running a device ------------------------------------------------------------------------------
def _bits(d: np.ndarray) -> np.ndarray:
    d = np.asarray(d)
    return d.view(np.uint16) if d.dtype == np.float16 else d.view(np.uint32)


def run_device(probes: ProbeSet, device: Callable) -> np.ndarray:
    """The device's D for every tile: device(a, b, c, scale_a, scale_b) called on the batch of
    tiles (leading dimension T), returning D with C's dtype."""
    d = np.asarray(device(probes.a, probes.b, probes.c, probes.scale_a, probes.scale_b))
    return check_outputs(probes, d)


def check_outputs(probes: ProbeSet, d) -> np.ndarray:
    d = np.asarray(d)
    if d.shape != probes.c.shape:
        raise ProbeError(f"device outputs have shape {d.shape}; the probes need {probes.c.shape} (tiles, m, n)")
    if d.dtype != probes.c.dtype:
        raise ProbeError(f"device outputs are {d.dtype}; the unit's D is {probes.c.dtype}")
    return d


def qsim_device(unit) -> Callable:
    """qsim's own unit as a device."""
    unit = matrix_unit(unit)

    def device(a, b, c, scale_a=None, scale_b=None):
        return unit.gemm(a, b, c, scale_a, scale_b, num_threads=1)
    return device


# -- the fit ---------------------------------------------------------------------------------------
def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def _cands_fraction_bits(unit, cur):
    return [dict(fraction_bits=f) for f in range(2, 41)]


def _cands_output(unit, cur):
    return [dict(output=o) for o in _outputs_for(unit)]


def _cands_step_group(unit, cur):
    out = []
    for s in _divisors(unit.k):
        out.append(dict(step=s, group=0))
        out += [dict(step=s, group=g) for g in _divisors(s) if 1 < g < s]
    return out


def _cands_second(unit, cur):
    if "second_fraction_bits" not in {f.name for f in dataclasses.fields(UnitArithmetic)}:
        return []
    return [dict(second_fraction_bits=0)] + ([] if cur.group else [
        dict(second_fraction_bits=f) for f in range(cur.fraction_bits, 41)])


# the lowest alignment exponent is scanned over [LOWEST_FLOOR, 0]: on a grid, then bisected
# where the outputs change (they are constant between the exponents the probes reach)
LOWEST_FLOOR, LOWEST_GRID = -300, 8


@dataclass(frozen=True)
class Scan:
    """An integer parameter whose outputs change at a few breakpoints: searched on a grid and
    bisected between grid points whose outputs differ."""
    name: str
    lo: int
    hi: int
    grid: int


# the parameter groups of UnitArithmetic the fit searches, in order: candidates, or a Scan
FIT_STAGES: tuple[tuple[str, Callable | Scan], ...] = (
    ("fraction bits", _cands_fraction_bits),
    ("output", _cands_output),
    ("step and group", _cands_step_group),
    ("second-stage fraction bits", _cands_second),
    ("lowest exponent", Scan("lowest_exponent", LOWEST_FLOOR, 0, LOWEST_GRID)),
)


class _Evaluator:
    """Candidate arithmetics run on the probes (packed MINI to a tile) and the random tiles;
    scores count the outputs equal bit for bit to the device's."""

    def __init__(self, probes: ProbeSet, d: np.ndarray):
        self.ps = probes
        unit, per = probes.unit, probes.per_tile
        n = len(probes.probes)
        idx = np.arange(n)
        t, i = idx // per, idx % per
        self.want = _bits(d[t, i, i])
        pad = -n % MINI
        sel = lambda x: np.concatenate([x, np.repeat(x[-1:], pad, axis=0)]) if pad else x  # noqa: E731
        ra, rb, rc = sel(probes.a[t, i]), sel(probes.b[t, :, i]), sel(probes.c[t, i, i])
        tiles = (n + pad) // MINI
        self.a = ra.reshape(tiles, MINI, unit.k)
        self.b = np.ascontiguousarray(rb.reshape(tiles, MINI, unit.k).transpose(0, 2, 1))
        c = np.zeros((tiles, MINI, MINI), probes.c.dtype)
        c[:, np.arange(MINI), np.arange(MINI)] = rc.reshape(tiles, MINI)
        self.c = c
        self.sa = self.sb = None
        if probes.scale_a is not None:
            self.sa = sel(probes.scale_a[t, i]).reshape(tiles, MINI, -1)
            self.sb = np.ascontiguousarray(sel(probes.scale_b[t, :, i]).reshape(tiles, MINI, -1).transpose(0, 2, 1))
        self.n = n
        r = probes.random_tiles
        self.rand = None
        if r:
            self.rand = (probes.a[-r:], probes.b[-r:], probes.c[-r:],
                         None if probes.scale_a is None else probes.scale_a[-r:],
                         None if probes.scale_b is None else probes.scale_b[-r:])
            self.rand_want = _bits(d[-r:])
        self.cache: dict = {}

    def diag(self, ar: UnitArithmetic) -> np.ndarray:
        """Per probe: whether the candidate gives the device's bits."""
        if ar not in self.cache:
            u = dataclasses.replace(self.ps.unit, arithmetic=ar)
            got = u.gemm(self.a, self.b, self.c, self.sa, self.sb, num_threads=1)
            got = _bits(got[:, np.arange(MINI), np.arange(MINI)].reshape(-1)[:self.n])
            self.cache[ar] = got == self.want
        return self.cache[ar]

    def random(self, ar: UnitArithmetic) -> np.ndarray:
        if self.rand is None:
            return np.ones(0, bool)
        if ("random", ar) not in self.cache:
            u = dataclasses.replace(self.ps.unit, arithmetic=ar)
            self.cache["random", ar] = _bits(u.gemm(*self.rand, num_threads=1)) == self.rand_want
        return self.cache["random", ar]

    def explains(self, ar: UnitArithmetic, score: int) -> bool:
        """Whether ar explains `score` probes and the random tiles as well as the fit does."""
        return int(self.diag(ar).sum()) == score and int(self.random(ar).sum()) == self.random_score

    def outputs(self, ar: UnitArithmetic) -> np.ndarray:
        """The candidate's D on the device's own tiles."""
        return dataclasses.replace(self.ps.unit, arithmetic=ar).gemm(
            self.ps.a, self.ps.b, self.ps.c, self.ps.scale_a, self.ps.scale_b, num_threads=1)


def _replace(ar: UnitArithmetic, change: dict) -> UnitArithmetic | None:
    try:
        return dataclasses.replace(ar, **change)
    except ValueError:
        return None


@dataclass
class FitResult:
    unit: MatrixUnit                          # the template, its arithmetic the fitted one
    arithmetic: UnitArithmetic
    consistent: dict[str, list[int | str]]    # per parameter: the values that explain every probe
    matched: int
    total: int
    unexplained: list[dict]                   # probes (and random-tile outputs) nothing explains
    closest: list[tuple[str, int, list[str]]]  # (arithmetic, probes it explains, known units with it)
    dropped: dict[str, int]
    rounds: int

    @property
    def exact(self) -> bool:
        return self.matched == self.total

    def report(self) -> str:
        u = self.unit
        lines = [f"probe fit for a device shaped {u.m}x{u.n}x{u.k}, A {u.a_format}, B {u.b_format}, "
                 f"C {u.c_format}, D {u.d_format}" + (f", scales {u.scale_format} per {u.block_size}"
                                                      if u.block_size else ""),
                 f"  outputs explained: {self.matched} of {self.total}"
                 + (" (every probe: bit-exact)" if self.exact else ""),
                 f"  fitted arithmetic: {self.arithmetic.describe()}"]
        for name, vals in self.consistent.items():
            lines.append(f"    {name:<22} {getattr(self.arithmetic, name)!s:<10} explains every probe: "
                         f"{_show_values(vals)}")
        if self.dropped:
            lines.append("  probes not exact in these formats (not emitted): "
                         + ", ".join(f"{k} {v}" for k, v in self.dropped.items()))
        lines.append("  closest known arithmetic (probe outputs explained):")
        for desc, score, names in self.closest[:3]:
            shown = ", ".join(names[:4]) + (f" (+{len(names) - 4} more)" if len(names) > 4 else "")
            lines.append(f"    {score:>6} / {self.total}  {desc}" + (f"\n{'':>20}{shown}" if names else ""))
        if self.unexplained:
            lines.append(f"  unexplained ({len(self.unexplained)}):")
            for row in self.unexplained[:20]:
                lines.append(f"    {row['family']}: {row['note']}: device {row['device']}, fit {row['fit']}")
        return "\n".join(lines)


def _show_values(vals: list) -> str:
    if not vals:
        return "none"
    if all(isinstance(v, int) for v in vals) and len(vals) > 3:
        if vals == list(range(vals[0], vals[-1] + 1)):
            if vals[0] == LOWEST_FLOOR:
                return f"any value up to {vals[-1]} (no probe reaches lower)"
            return f"{vals[0]}..{vals[-1]}"
        return f"{len(vals)} values from {min(vals)} to {max(vals)}"
    return ", ".join(str(v) for v in vals)


def _hex(x) -> str:
    x = np.asarray(x)
    return f"{float(x):.9g} (0x{int(_bits(x.reshape(1))[0]):0{x.dtype.itemsize * 2}x})"


def fit(probes, d=None, *, device: Callable | None = None, max_rounds: int = 4) -> FitResult:
    """Fit the arithmetic of a device to its outputs on the probes: d (tiles, m, n) as C's
    dtype, or device(a, b, c, scale_a, scale_b) run here."""
    if not isinstance(probes, ProbeSet):
        probes = make_probes(probes)
    if (d is None) == (device is None):
        raise ProbeError("fit needs exactly one of d (the device's outputs) or device (a callable)")
    d = run_device(probes, device) if device is not None else check_outputs(probes, d)
    ev = _Evaluator(probes, d)
    unit = probes.unit
    cur = UnitArithmetic(step=unit.k, fraction_bits=24, group=0, lowest_exponent=LOWEST_FLOOR,
                         output=_outputs_for(unit)[0])
    rounds = 0
    for rounds in range(1, max_rounds + 1):
        before = cur
        for _, stage in FIT_STAGES:
            if isinstance(stage, Scan):
                values = _scan(ev, cur, stage)
                best = max(values, key=lambda v: (values[v][0], v == getattr(cur, stage.name)))
                cur = dataclasses.replace(cur, **{stage.name: best})
                continue
            tied, best_score = [cur], int(ev.diag(cur).sum())
            for change in stage(unit, cur):
                ar = _replace(cur, change)
                if ar is None or ar == cur:
                    continue
                s = int(ev.diag(ar).sum())
                if s > best_score:
                    tied, best_score = [ar], s
                elif s == best_score:
                    tied.append(ar)
            # ties on the probes broken by the random tiles (the current value first)
            cur = max(tied, key=lambda ar: int(ev.random(ar).sum())) if len(tied) > 1 else tied[0]
        if cur == before:
            break
    # every parameter's values that explain as much as the fit, the others held
    full = int(ev.diag(cur).sum())
    ev.random_score = int(ev.random(cur).sum())
    consistent: dict[str, list] = {}
    for _, stage in FIT_STAGES:
        if isinstance(stage, Scan):
            values = _scan(ev, cur, stage)
            consistent[stage.name] = [v for v in sorted(values) if values[v][0] == full and ev.explains(
                dataclasses.replace(cur, **{stage.name: v}), full)]
            continue
        for change in stage(unit, cur):
            for name, v in change.items():
                ar = _replace(cur, {name: v})
                if ar is not None and ev.explains(ar, full) and v not in consistent.setdefault(name, []):
                    consistent[name].append(v)
    consistent = {k: sorted(v, key=str) if v and isinstance(v[0], str) else sorted(v) for k, v in consistent.items()}
    diag_ok = ev.diag(cur)
    rand_ok = ev.random(cur)
    matched, total = int(diag_ok.sum() + rand_ok.sum()), int(diag_ok.size + rand_ok.size)
    unexplained = []
    if matched < total:
        mine = ev.outputs(cur)
        per = probes.per_tile
        for idx in np.flatnonzero(~diag_ok):
            t, i = divmod(int(idx), per)
            p = probes.probes[idx]
            unexplained.append({"family": p.family, "note": p.note, "tile": t, "row": i, "col": i,
                                "device": _hex(d[t, i, i]), "fit": _hex(mine[t, i, i])})
        r = probes.random_tiles
        for flat in np.flatnonzero(~rand_ok.reshape(-1)):
            t, i, j = np.unravel_index(flat, d[-r:].shape)
            unexplained.append({"family": "random", "note": f"random tile {t}, ({i}, {j})", "tile": len(d) - r + t,
                                "row": int(i), "col": int(j), "device": _hex(d[-r + t, i, j]),
                                "fit": _hex(mine[-r + t, i, j])})
    return FitResult(dataclasses.replace(unit, arithmetic=cur), cur, consistent, matched, total, unexplained,
                     _closest(probes, ev), probes.dropped, rounds)


def _scan(ev: _Evaluator, cur: UnitArithmetic, scan: Scan) -> dict[int, tuple[int, bytes]]:
    """(score, outputs' match pattern) at every value of scan.name in [lo, hi], the others
    held; values between two evaluated ones with equal patterns are filled in, not run."""
    def at(v):
        m = ev.diag(dataclasses.replace(cur, **{scan.name: v}))
        return int(m.sum()), m.tobytes()
    grid = sorted(set(range(scan.lo, scan.hi + 1, scan.grid)) | {scan.hi})
    known = {v: at(v) for v in grid}
    todo = list(zip(grid, grid[1:]))
    while todo:
        lo, hi = todo.pop()
        if hi - lo <= 1 or known[lo] == known[hi]:
            continue
        mid = (lo + hi) // 2
        known[mid] = at(mid)
        todo += [(lo, mid), (mid, hi)]
    pts = sorted(known)
    for lo, hi in zip(pts, pts[1:]):
        if known[lo] == known[hi]:
            for v in range(lo + 1, hi):
                known[v] = known[lo]
    return known


def _effective(unit: MatrixUnit, ar: UnitArithmetic) -> UnitArithmetic | None:
    """The arithmetic as a unit of this shape runs it (no step longer than k), or None where
    it cannot run on it."""
    return _replace(ar, {"step": min(ar.step, unit.k)})


def _closest(probes: ProbeSet, ev: _Evaluator) -> list[tuple[str, int, list[str]]]:
    """Every distinct arithmetic of the table scored on the probes, best first, with the known
    units of the template's shape and formats that have it."""
    t = probes.unit
    same = lambda u: (u.m, u.n, u.k, u.a_format, u.b_format, u.c_format, u.d_format, u.block_size,  # noqa: E731
                      u.scale_format) == (t.m, t.n, t.k, t.a_format, t.b_format, t.c_format, t.d_format,
                                          t.block_size, t.scale_format)
    by_ar: dict = {}
    for u in MATRIX_UNITS.values():
        if u.d_format != t.d_format:
            continue
        ar = _effective(t, u.arithmetic)
        if ar is None:
            continue
        names = by_ar.setdefault(ar, [])
        if same(u):
            names.append(u.name)
    out = []
    for ar, names in by_ar.items():
        score = int(ev.diag(ar).sum() + ev.random(ar).sum())
        out.append((ar.describe(), score, names))
    out.sort(key=lambda x: (-x[1], not x[2]))
    return out
