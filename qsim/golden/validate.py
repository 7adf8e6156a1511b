"""Comparing a kernel's outputs with a golden set, code by code.

Outputs are compared as codes of the output format, so -0 vs +0 and NaN payloads count.
The code distance of a mismatch is its distance in the format's value order (ULPs for floats,
with -0 and +0 adjacent; the integer difference for integer formats); a NaN on either side has
no distance. nan_equal=True makes any NaN code match any NaN code.

Known departures of a peer kernel from the specification are classifiers (Departure), not
facts about one version of the peer: each mismatch is classified, a mismatch that a known
departure explains is waived (counted and listed, not failed), and every departure is reported
as seen, not seen (its domain is in the golden set but the peer behaves per spec there) or not
exercised. waivers=False makes every mismatch fail. `waive` marks positions to waive directly.
"""

from __future__ import annotations

import html
import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np

from ..codec import decode
from ..io import write_text_atomic
from ..io.parquet import write_parquet
from ..io.tables import Column, columns, html_table, markdown_table, text_table
from .ops import get_op
from .show import ordered, show, show_hex, values
from .store import Case, Golden, GoldenError, load_golden, read_hex, to_codes

HEX_SUFFIXES = (".hex", ".mem", ".memh", ".txt")
REPORT_WAIVED_LIMIT = 10_000      # waived codes listed in a Markdown/HTML report; the count is always given


@dataclass(frozen=True)
class Departure:
    """A known way a peer kernel departs from the specification, as a classifier.

    domain(case): bool array of the case's `output` shape, the outputs where the departure could
    show. explains(case, expected, got): bool array, whether the peer's code there is the one
    this departure gives (expected: the specification's codes, got: the peer's; uint64 arrays of
    the output's shape). A mismatch is explained where both hold."""
    name: str
    description: str                                            # one line
    domain: Callable[[Case], np.ndarray] = field(repr=False)
    explains: Callable[[Case, np.ndarray, np.ndarray], np.ndarray] = field(repr=False)
    output: str = "y"


# -- reading outputs ---------------------------------------------------------------------------
def load_outputs(path, dtype=None, shape=None):
    """Outputs from a file: .npy (an array), .npz (one array, or several by name: output names,
    case names, or "<case>/<output>"), hex (.hex/.mem/.memh/.txt: codes), or raw binary, which
    needs `dtype` (e.g. "uint8", "<f4"). `shape` reshapes a single array."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"outputs file {path} does not exist")
    if path.is_dir():
        raise GoldenError(f"{path} is a directory; give the file that holds the outputs")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            out = np.load(path, allow_pickle=False)
        except ValueError as e:
            raise GoldenError(f"{path}: not a readable .npy file ({e})") from None
    elif suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as z:
                out = {k: z[k] for k in z.files}
        except (ValueError, OSError) as e:
            raise GoldenError(f"{path}: not a readable .npz file ({e})") from None
        if len(out) == 1:
            out = next(iter(out.values()))
    elif suffix in HEX_SUFFIXES:
        out = read_hex(path)
    else:
        if dtype is None:
            raise GoldenError(f"{path}: raw binary outputs need a dtype (e.g. --dtype uint8); "
                              f"or use .npy, .npz or a hex file ({', '.join(HEX_SUFFIXES)})")
        dt = np.dtype(dtype)
        size = path.stat().st_size
        if size % dt.itemsize:
            raise GoldenError(f"{path}: {size} bytes is not a whole number of {dt} values ({dt.itemsize} bytes each)")
        out = np.fromfile(path, dtype=dt)
    if shape is not None:
        if isinstance(out, dict):
            raise GoldenError(f"{path}: shape= applies to a single array, the file holds {sorted(out)}")
        try:
            out = out.reshape(shape)
        except ValueError:
            raise GoldenError(f"{path}: {out.size} values cannot take shape {tuple(shape)}") from None
    return out


def _pieces(golden: Golden, outputs) -> list[np.ndarray]:
    """The outputs cut into the golden segments (one per output and case)."""
    segs = golden.segments()
    names = [c.name for c in golden.cases]
    if isinstance(outputs, dict):
        keyed = {f"{names[i]}/{o}": o for o, i, _, _ in segs}
        if all(k in outputs for k in keyed):
            got = [outputs[f"{names[i]}/{o}"] for o, i, _, _ in segs]
        elif len(golden.outputs) == 1 and all(n in outputs for n in names):
            got = [outputs[names[i]] for _, i, _, _ in segs]
        elif all(o in outputs for o in golden.outputs):
            got = []
            for o in golden.outputs:
                mine = [s for s in segs if s[0] == o]
                got += _split(np.asarray(outputs[o]), mine, f"outputs[{o!r}]")
            return got
        else:
            raise GoldenError(f"outputs hold keys {sorted(outputs)[:6]}; expected the output names "
                              f"{golden.outputs}, the case names, or '<case>/<output>' keys (to compare only "
                              "some outputs, name them: output= in Python, --output NAME on the command line)")
        for arr, (o, i, _, shape) in zip(got, segs):
            if np.shape(arr) != tuple(shape):
                raise GoldenError(f"outputs for case {names[i]!r} ({o}) have shape {np.shape(arr)}, "
                                  f"the golden set expects {tuple(shape)}")
        return [np.asarray(a) for a in got]
    arr = np.asarray(outputs)
    if len(segs) == 1 and arr.shape == tuple(segs[0][3]):
        return [arr]
    return _split(arr, segs, "outputs")


def _split(arr: np.ndarray, segs, what: str) -> list[np.ndarray]:
    if len(segs) == 1 and arr.shape == tuple(segs[0][3]):       # one case, given in its own shape
        return [arr]
    total = sum(math.prod(s[3]) for s in segs)
    if arr.ndim != 1 or arr.size != total:
        single = f" or shape {tuple(segs[0][3])}" if len(segs) == 1 else ""
        raise GoldenError(f"{what} have shape {arr.shape} ({arr.size} values); the golden set expects "
                          f"{total} values as a flat array{single}")
    base = segs[0][2]
    return [arr[off - base:off - base + math.prod(shape)].reshape(shape)
            for _, _, off, shape in segs]


# -- code arithmetic --------------------------------------------------------------------------
def _is_nan(codes: np.ndarray, fmt) -> np.ndarray:
    if not fmt.has_nan:
        return np.zeros(codes.shape, bool)
    return np.isnan(decode(codes.astype(np.uint64), fmt, dtype=np.float64))


def _bucket(d: int) -> str:
    if d <= 2:
        return str(d)
    hi = 1 << (d - 1).bit_length()
    return f"{hi // 2 + 1}-{hi}"


# -- the result --------------------------------------------------------------------------------
@dataclass
class ValidationResult:
    golden: Golden
    source: str                  # where the outputs came from
    expected: np.ndarray         # uint64 codes, the flat output stream
    got: np.ndarray
    match: np.ndarray            # per element, NaN classes merged when nan_equal
    distance: np.ndarray         # code distance, -1 where a NaN is involved
    nan_kind: np.ndarray         # 0 none, 1 NaN on one side, 2 NaN on both
    waived: np.ndarray           # mismatches waived: explained by a known departure, or marked by waive=
    nan_equal: bool
    not_compared: tuple = ()     # outputs of the golden set left out (validate(..., output=...))
    departures: tuple = ()       # the known departures (Departure) the mismatches were classified by
    explained_by: np.ndarray | None = None    # per code: index of the departure explaining the mismatch, -1 none
    in_domain: tuple = ()        # per departure: golden outputs in its domain
    waivers: bool = True         # False: mismatches that a departure explains fail too

    # -- counts --------------------------------------------------------------------------
    @property
    def total(self) -> int:
        return int(self.expected.size)

    @property
    def mismatch_index(self) -> np.ndarray:
        """Flat stream indices of the mismatches that are not waived."""
        return np.flatnonzero(~self.match & ~self.waived)

    @property
    def mismatches(self) -> int:
        return int(self.mismatch_index.size)

    @property
    def waived_mismatches(self) -> int:
        return int(np.count_nonzero(~self.match & self.waived))

    @property
    def ok(self) -> bool:
        return self.mismatches == 0

    @property
    def histogram(self) -> dict[str, int]:
        """Mismatches by code distance (power-of-two buckets), and NaN classes."""
        counts: dict[str, int] = {}
        idx = self.mismatch_index
        for d in np.unique(self.distance[idx][self.distance[idx] > 0]):
            key = _bucket(int(d))
            counts[key] = counts.get(key, 0) + int(np.count_nonzero(self.distance[idx] == d))
        for kind, label in ((1, "NaN vs number"), (2, "NaN vs other NaN code")):
            n = int(np.count_nonzero(self.nan_kind[idx] == kind))
            if n:
                counts[label] = n
        return counts

    # -- locating ------------------------------------------------------------------------
    def _segment_of(self, index: int):
        for seg in self.golden.segments():
            out, ci, off, shape = seg
            size = math.prod(shape)
            if off <= index < off + size:
                pos = tuple(int(p) for p in np.unravel_index(index - off, shape)) if shape else ()
                return out, ci, pos
        raise IndexError(index)

    def _row(self, index: int) -> dict:
        out, ci, pos = self._segment_of(index)
        fmt = self.golden.output_format(out)
        case = self.golden.cases[ci]
        e, g = self.expected[index:index + 1], self.got[index:index + 1]
        d = int(self.distance[index])
        k = int(self._explained_by[index])
        return {"index": index, "output": out, "case": case.name, "position": pos,
                "expected": show_hex(int(e[0]), fmt), "got": show_hex(int(g[0]), fmt),
                "expected_value": show(values(e, fmt)[0]), "got_value": show(values(g, fmt)[0]),
                "distance": d if d >= 0 else None, "inputs": get_op(self.golden.op).inputs_at(self.golden, case, out, pos),
                "departure": self.departures[k].name if k >= 0 else None}

    def first(self, n: int = 10) -> list[dict]:
        """The first n mismatches: where (output, case, position), the codes and values on
        both sides, the code distance, the inputs that produced the output, and the known
        departure that explains it (None if none does; with waivers on, explained mismatches
        are waived: see waived_rows)."""
        return [self._row(int(i)) for i in self.mismatch_index[:n]]

    # -- departures ----------------------------------------------------------------------
    @property
    def _explained_by(self) -> np.ndarray:
        return np.full(self.total, -1, np.int16) if self.explained_by is None else self.explained_by

    @property
    def waived_index(self) -> np.ndarray:
        """Flat stream indices of the waived mismatches."""
        return np.flatnonzero(~self.match & self.waived)

    def waived_rows(self, n: int | None = None) -> list[dict]:
        """The waived mismatches (the first n; None: all), as first() gives mismatches, with the
        departure that explains each (None: marked by waive=)."""
        return [self._row(int(i)) for i in self.waived_index[:n]]

    def departure_summary(self) -> list[dict]:
        """Per known departure: golden outputs in its domain, mismatches it explains (seen) and
        a status: "seen"; "not seen" (the golden set exercises its domain and the peer gives the
        specification's codes there); "not exercised" (no golden output in its domain)."""
        rows = []
        for k, dep in enumerate(self.departures):
            seen = int(np.count_nonzero(self._explained_by == k))
            status = "seen" if seen else "not seen" if self.in_domain[k] else "not exercised"
            rows.append({"name": dep.name, "description": dep.description, "in_domain": int(self.in_domain[k]),
                         "seen": seen, "status": status})
        return rows

    def cases(self) -> list[dict]:
        """Per output and case: values, mismatches, waived, largest code distance."""
        rows = []
        for out, ci, off, shape in self.golden.segments():
            sl = slice(off, off + math.prod(shape))
            bad = ~self.match[sl] & ~self.waived[sl]
            dist = self.distance[sl][bad]
            rows.append({"output": out, "case": self.golden.cases[ci].name, "kind": self.golden.cases[ci].kind,
                         "values": sl.stop - sl.start, "mismatches": int(bad.sum()),
                         "waived": int((~self.match[sl] & self.waived[sl]).sum()),
                         "max_distance": (int(dist.max()) if dist.size and dist.max() >= 0 else
                                          ("NaN" if dist.size else 0))})
        return rows

    # -- reports -------------------------------------------------------------------------
    def _facts(self) -> list[tuple[str, str]]:
        g, cfg = self.golden, self.golden.config
        facts = [("op", g.op), ("outputs from", self.source),
                 ("output format", ", ".join(f"{o}: {g.formats[o]}" for o in g.outputs))]
        if self.not_compared:
            facts.append(("not compared", ", ".join(self.not_compared)))
        for key in ("datapath", "format", "rounding", "saturate", "seed"):
            if cfg.get(key) is not None:
                facts.append((key, str(cfg[key])))
        if g.info.get("overflow"):
            facts.append(("overflow", g.info["overflow"]))
        facts += [("NaN codes", "any NaN matches any NaN" if self.nan_equal else "compared bit for bit")]
        if self.departures:
            facts.append(("waivers", "on: mismatches that a known departure explains are waived" if self.waivers
                          else "off: every mismatch fails, known departures included"))
        facts.append(("result", self._result_line()))
        return facts

    def _result_line(self) -> str:
        line = f"{'PASS' if self.ok else 'FAIL'}: {self.mismatches} of {self.total} codes differ"
        if self.waived_mismatches:
            line += f"; {self.waived_mismatches} waived (listed below)"
        explained = int(np.count_nonzero(self._explained_by[self.mismatch_index] >= 0))
        if explained:
            line += f"; waivers off: {explained} of the differing codes are explained by known departures"
        return line

    def _first_rows(self, n: int) -> list[list[str]]:
        rows = []
        for r in self.first(n):
            row = [r["case"], r["output"], str(r["position"]), r["expected"], r["expected_value"], r["got"],
                   r["got_value"], "NaN" if r["distance"] is None else str(r["distance"])]
            rows.append(row + ([r["departure"] or "-"] if self.departures else []) + [_show_inputs(r)])
        return rows

    def _first_columns(self) -> list[Column]:
        head = ["case", "output", "position", "expected", "value", "got", "value", "distance"]
        return columns(*head, *(["departure"] if self.departures else []), "inputs", numeric=("distance",))

    _CASE_COLUMNS = columns("output", "case", "kind", "values", "mismatches", "waived", "max distance",
                            numeric=("values", "mismatches", "waived", "max distance"))
    _DEPARTURE_COLUMNS = columns("departure", "status", "outputs in domain", "mismatches explained", "description",
                                 numeric=("outputs in domain", "mismatches explained"))
    _WAIVED_COLUMNS = columns("case", "output", "position", "inputs", "expected", "got", "departure")
    _HISTOGRAM_COLUMNS = columns("distance", "count", numeric=("count",))
    _FACT_COLUMNS = columns("", "")

    def _departure_rows(self) -> list[list[str]]:
        return [[d["name"], d["status"], str(d["in_domain"]), str(d["seen"]), d["description"]]
                for d in self.departure_summary()]

    def _waived_rows(self, n: int | None) -> list[list[str]]:
        return [[r["case"], r["output"], str(r["position"]), _show_inputs(r), f"{r['expected']} ({r['expected_value']})",
                 f"{r['got']} ({r['got_value']})", r["departure"] or "(waive mask)"] for r in self.waived_rows(n)]

    def _waived_title(self, n: int | None) -> str:
        total = self.waived_mismatches
        return f"all {total}" if n is None or n >= total else f"first {n} of {total}"

    def _case_rows(self) -> list[list[str]]:
        return [[str(r[k]) for k in ("output", "case", "kind", "values", "mismatches", "waived", "max_distance")]
                for r in self.cases()]

    def table(self, n: int = 10) -> str:
        """A plain-text summary for the terminal: the first n mismatches and the first n waived codes."""
        lines = [f"{k:>14}: {v}" for k, v in self._facts()]
        if self.departures:
            lines += ["", "known departures:", text_table(self._DEPARTURE_COLUMNS, self._departure_rows())]
        lines += ["", text_table(self._CASE_COLUMNS, self._case_rows())]
        if self.waived_mismatches:
            lines += ["", f"waived codes ({self._waived_title(n)}):", text_table(self._WAIVED_COLUMNS, self._waived_rows(n))]
        if self.mismatches:
            lines += ["", "code distance histogram:"] + [f"  {k:>22}: {v}" for k, v in self.histogram.items()]
            lines += ["", f"first {min(n, self.mismatches)} mismatches:", text_table(self._first_columns(), self._first_rows(n))]
        return "\n".join(lines) + "\n"

    def _sections(self, n: int, waived_limit: int) -> list[tuple[str, list[str], list]]:
        """(title, columns, rows) of the report sections after the facts."""
        sections = [("Known departures", self._DEPARTURE_COLUMNS, self._departure_rows())] if self.departures else []
        sections.append(("Cases", self._CASE_COLUMNS, self._case_rows()))
        if self.waived_mismatches:
            sections.append((f"Waived codes ({self._waived_title(waived_limit)})", self._WAIVED_COLUMNS,
                             self._waived_rows(waived_limit)))
        if self.mismatches:
            sections += [("Code distance of mismatches", self._HISTOGRAM_COLUMNS, list(self.histogram.items())),
                         (f"First {min(n, self.mismatches)} mismatches", self._first_columns(), self._first_rows(n))]
        return sections

    def markdown(self, n: int = 20, waived_limit: int = REPORT_WAIVED_LIMIT) -> str:
        """A Markdown report: the first n mismatches, every waived code up to waived_limit."""
        md = [f"# qsim validation: {self.golden.op}", "", markdown_table(self._FACT_COLUMNS, self._facts())]
        for title, cols, rows in self._sections(n, waived_limit):
            md += ["", f"## {title}", "", markdown_table(cols, rows)]
        return "\n".join(md) + "\n"

    def html(self, n: int = 20, waived_limit: int = REPORT_WAIVED_LIMIT) -> str:
        """A self-contained HTML page (inline style, no external resources), as markdown()."""
        status = "pass" if self.ok else "fail"
        parts = [f"<h1>qsim validation: {html.escape(self.golden.op)} <span class='{status}'>{status.upper()}</span></h1>",
                 html_table(self._FACT_COLUMNS, self._facts())]
        for title, cols, rows in self._sections(n, waived_limit):
            parts += [f"<h2>{html.escape(title)}</h2>", html_table(cols, rows)]
        style = ("body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:1em 0}"
                 "td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left;font-family:monospace}.num{text-align:right}"
                 "th{background:#f3f3f3}.pass{color:#fff;background:#2a7d2a;padding:0 .4em}"
                 ".fail{color:#fff;background:#b22;padding:0 .4em}")
        return (f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>qsim validation</title>"
                f"<style>{style}</style></head><body>\n" + "\n".join(parts) + "\n</body></html>\n")

    def write_report(self, path) -> Path:
        """Markdown (.md) or HTML (.html, .htm) report, written atomically."""
        path = Path(path)
        if path.suffix.lower() in (".html", ".htm"):
            return write_text_atomic(path, self.html())
        if path.suffix.lower() in (".md", ".markdown"):
            return write_text_atomic(path, self.markdown())
        raise ValueError(f"report {path}: use a .md or .html file name")

    def to_parquet(self, path) -> Path:
        """One row per compared code (index, output, case, position, codes, values, match,
        waived, the departure explaining a mismatch, distance), the summary in the schema
        metadata; written atomically."""
        import pyarrow as pa
        path = Path(path)
        cols = {k: [] for k in ("output", "case", "position", "expected_value", "got_value")}
        for out, ci, off, shape in self.golden.segments():
            size = math.prod(shape)
            fmt = self.golden.output_format(out)
            cols["output"] += [out] * size
            cols["case"] += [self.golden.cases[ci].name] * size
            cols["position"] += [",".join(map(str, p)) for p in np.ndindex(*shape)] if shape else [""]
            cols["expected_value"].append(values(self.expected[off:off + size], fmt))
            cols["got_value"].append(values(self.got[off:off + size], fmt))
        names = np.array([None] + [d.name for d in self.departures], dtype=object)
        table = pa.table({
            "index": np.arange(self.total, dtype=np.int64), "output": cols["output"], "case": cols["case"],
            "position": cols["position"], "expected": self.expected, "got": self.got,
            "expected_value": np.concatenate(cols["expected_value"]) if self.total else np.zeros(0),
            "got_value": np.concatenate(cols["got_value"]) if self.total else np.zeros(0),
            "match": self.match, "waived": self.waived,
            "departure": pa.array(names[self._explained_by.astype(np.int64) + 1], pa.string()),
            "distance": pa.array(self.distance, mask=self.nan_kind > 0)})
        summary = {"op": self.golden.op, "config": self.golden.config, "total": self.total,
                   "mismatches": self.mismatches, "waived": self.waived_mismatches, "histogram": self.histogram,
                   "nan_equal": self.nan_equal, "source": self.source, "outputs": self.golden.outputs,
                   "not_compared": list(self.not_compared), "waivers": self.waivers,
                   "departures": self.departure_summary()}
        return write_parquet(path, table, {"validation": summary})


def _show_inputs(row: dict) -> str:
    return "; ".join(f"{k}={v}" for k, v in row["inputs"].items())


# -- entry points -------------------------------------------------------------------------------
def select_outputs(golden: Golden, output) -> tuple[Golden, tuple]:
    """The golden set restricted to the named outputs (a name or a list; None: all), in the
    set's stream order, and the outputs left out."""
    if output is None:
        return golden, ()
    names = [output] if isinstance(output, str) else list(output)
    unknown = [n for n in names if n not in golden.outputs]
    if unknown or not names:
        raise GoldenError(f"no output {unknown[0] if unknown else '(none named)'!r} in the golden set; "
                          f"its outputs are {golden.outputs}")
    keep = [o for o in golden.outputs if o in names]
    return replace(golden, outputs=keep), tuple(o for o in golden.outputs if o not in names)


def compare(golden: Golden, got_codes: np.ndarray, *, nan_equal: bool = False, waive=None,
            source: str = "codes", departures=(), waivers: bool = True) -> ValidationResult:
    """A ValidationResult from the flat stream of output codes (read as codes of each
    output's format, see to_codes). Every mismatch is classified by the known departures
    (the first that explains it); explained mismatches and those marked by waive are waived
    unless waivers=False."""
    total = golden.total
    got_codes = np.asarray(got_codes).reshape(-1)
    if got_codes.size != total:
        raise GoldenError(f"{got_codes.size} output codes; the golden set expects {total}")
    expected = np.zeros(total, np.uint64)
    got = np.zeros(total, np.uint64)
    match = np.zeros(total, bool)
    distance = np.zeros(total, np.int64)
    nan_kind = np.zeros(total, np.int8)
    departures = tuple(departures)
    explained_by = np.full(total, -1, np.int16)
    in_domain = [0] * len(departures)
    for out, ci, off, shape in golden.segments():
        fmt = golden.output_format(out)
        sl = slice(off, off + math.prod(shape))
        e = to_codes(golden.cases[ci].expected[out].reshape(-1), fmt, f"golden {golden.cases[ci].name}/{out}")
        g = to_codes(got_codes[sl], fmt, f"outputs {golden.cases[ci].name}/{out}")
        expected[sl], got[sl] = e, g
        en, gn = _is_nan(e, fmt), _is_nan(g, fmt)
        nan_kind[sl] = en.astype(np.int8) + gn
        match[sl] = (e == g) | (nan_equal & en & gn)
        distance[sl] = np.where(en | gn, -1, np.abs(ordered(e, fmt) - ordered(g, fmt)))
        for k, dep in enumerate(departures):
            if dep.output == out:
                in_domain[k] += _classify(dep, golden.cases[ci], e.reshape(shape), g.reshape(shape), ~match[sl],
                                          k, explained_by[sl])
    nan_kind[match] = 0
    distance[match] = 0
    waived = explained_by >= 0
    if waive is not None:
        marked = np.asarray(waive, bool).reshape(-1)
        if marked.size != total:
            raise ValueError(f"waive must mark {total} outputs, got {marked.size}")
        waived |= marked
    if not waivers:
        waived[:] = False
    return ValidationResult(golden, source, expected, got, match, distance, nan_kind, waived, nan_equal,
                            departures=departures, explained_by=explained_by, in_domain=tuple(in_domain),
                            waivers=waivers)


def _classify(dep: Departure, case, expected: np.ndarray, got: np.ndarray, differs: np.ndarray, k: int,
              explained_by: np.ndarray) -> int:
    """Mark in explained_by (one case's flat view) the mismatches that dep explains and no earlier
    departure did; returns the number of outputs in dep's domain."""
    domain = np.asarray(dep.domain(case), bool).reshape(-1)
    if domain.size != differs.size:
        raise ValueError(f"departure {dep.name}: domain marks {domain.size} outputs of case {case.name!r}, "
                         f"which has {differs.size}")
    todo = domain & differs & (explained_by < 0)
    if todo.any():
        explains = np.asarray(dep.explains(case, expected, got), bool).reshape(-1)
        explained_by[todo & explains] = k
    return int(np.count_nonzero(domain))


def validate(golden, outputs, *, dtype=None, shape=None, nan_equal: bool = False, waive=None,
             output=None, departures=(), waivers: bool = True) -> ValidationResult:
    """Compare outputs with a golden set (a directory or a Golden).

    outputs: a file (see load_outputs), an array (the flat output stream, or the expected
    shape for a one-case set), or a dict of arrays by output name, case name or
    "<case>/<output>". Values are read as codes of each output's format (see to_codes).
    output: compare only this output (or these, a list), e.g. "y_out" of a float GEMM on
    hardware that converts its outputs; the stream then holds those outputs only, and waive
    marks that stream. Default: every output. departures, waivers: see compare."""
    golden, skipped = select_outputs(load_golden(golden), output)
    source = "array"
    if isinstance(outputs, (str, os.PathLike)):
        source = str(outputs)
        outputs = load_outputs(outputs, dtype=dtype, shape=shape)
    pieces = _pieces(golden, outputs)
    codes = [to_codes(p.reshape(-1), golden.output_format(out), f"outputs {golden.cases[ci].name}/{out}")
             for p, (out, ci, _, _) in zip(pieces, golden.segments())]
    got = np.concatenate(codes) if codes else np.zeros(0, np.uint64)
    result = compare(golden, got, nan_equal=nan_equal, waive=waive, source=source, departures=departures,
                     waivers=waivers)
    result.not_compared = skipped
    return result


def validate_kernel(golden, kernel, *, nan_equal: bool = False, waive=None, name: str | None = None,
                    output=None, departures=(), waivers: bool = True) -> ValidationResult:
    """Run `kernel(inputs)` on every golden case (inputs: dict of the case's arrays, copies)
    and compare. The kernel returns the output array, or a dict by output name. output: as
    in validate (only these outputs; the kernel may return just them)."""
    golden, skipped = select_outputs(load_golden(golden), output)
    results = {}
    for case in golden.cases:
        out = kernel({k: v.copy() for k, v in case.inputs.items()})
        if not isinstance(out, dict):
            if len(golden.outputs) != 1:
                raise GoldenError(f"the kernel must return a dict with {golden.outputs} for op {golden.op}")
            out = {golden.outputs[0]: out}
        for o in golden.outputs:
            if o not in out:
                raise GoldenError(f"the kernel returned no {o!r} for case {case.name!r}")
            results[f"{case.name}/{o}"] = np.asarray(out[o])
    result = validate(golden, results, nan_equal=nan_equal, waive=waive, departures=departures, waivers=waivers)
    result.source = name or getattr(kernel, "__name__", "kernel")
    result.not_compared = skipped
    return result
