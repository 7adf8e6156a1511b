"""Throughput and traffic of a GEMM on a systolic array (SCALE-Sim v3 closed forms) and the
roofline bound by memory. See docs/design/costmodel.md.

GEMM A (M x K) times B (K x N) on an R x C array. Traffic is counted in words (one element
of the operand); the caller scales by each operand's bits (plus MX scale bytes).

Memory traffic per operand and level (`systolic_traffic`): the array reads A and B from and
writes C to three double-buffered scratchpads (ifmap, filter, ofmap as SCALE-Sim has them);
each scratchpad fetches its operand from DRAM once when the operand fits the scratchpad's
active half, else once per reuse by the tiling loop. Two countings:

- "physical" (qsim's default): partial sums of C are re-read from the ofmap scratchpad and
  stay on chip while a C tile fits its active half (else they go to DRAM and come back).
- "scalesim": SCALE-Sim 3.0.0's own counting, quirks included (SCALESIM_QUIRKS names them).
"""

from __future__ import annotations

from dataclasses import dataclass
from math import ceil

from .scalesim_replay import Im2col, scalesim_dram_reads

DATAFLOWS = ("output-stationary", "weight-stationary", "input-stationary")
COUNTINGS = ("physical", "scalesim")
# how each GEMM's dataflow is chosen: the array's own, or the one of least energy or latency
MAPPERS = ("fixed", "energy", "latency")

# How SCALE-Sim 3.0.0 counts where it departs from the physical counting, one line each; the
# test against the scalesim package names each difference by one of these keys.
SCALESIM_QUIRKS = {
    "os-drain-words": "output stationary: SRAM writes of C count R + C words more per fold (the padded "
                      "drain matrix's height plus width, systolic_compute_os.create_ofmap_demand_mat); "
                      "reproduced by counting='scalesim'",
    "psum-to-dram": "weight and input stationary: every partial sum of C goes to DRAM (MN ceil(K/R) words "
                    "written, none read back), even when the C tile fits the ofmap scratchpad; reproduced by "
                    "counting='scalesim'",
    "no-psum-reads": "partial sums re-read for accumulation are not counted at either level; reproduced by "
                     "counting='scalesim'",
    "fit-rule": "a read scratchpad holds its operand when it has fewer distinct words than 50 sets of "
                "floor(bytes / 100) words (not bytes / 2); reproduced by counting='scalesim'",
    "read-window": "when an operand does not fit, DRAM reads come from a replay of its SRAM read trace "
                   "through a window of 50 sets of floor(bytes / 100) words that forgets everything when "
                   "full; reproduced by counting='scalesim' (qsim.hardware.scalesim_replay)",
    "write-line-padding": "DRAM writes of C are drained in lines of C words; once the writes exceed half the "
                          "ofmap scratchpad, the part-full line drained first counts its padding (C - 1 words "
                          "when C divides that half); reproduced by counting='scalesim'",
}


@dataclass(frozen=True)
class ArrayCost:
    folds: int
    cycles: int
    words_a: int          # SRAM reads of A
    words_b: int          # SRAM reads of B
    words_c: int          # SRAM writes of C (partial sums included)


def _check(m: int, k: int, n: int, rows: int, cols: int, dataflow: str) -> None:
    for name, v in (("M", m), ("K", k), ("N", n), ("rows", rows), ("cols", cols)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    if dataflow not in DATAFLOWS:
        raise ValueError(f"dataflow must be one of {DATAFLOWS}, got {dataflow!r}")


def systolic_gemm(m: int, k: int, n: int, rows: int, cols: int, dataflow: str,
                  counting: str = "physical") -> ArrayCost:
    """Folds, compute cycles and SRAM traffic of one GEMM.

    output stationary: folds = ceil(M/R) ceil(N/C), cycles = folds (R + C + K - 2) - 1
    weight stationary: folds = ceil(K/R) ceil(N/C), cycles = folds (2R + C + M - 2) - 1
    input stationary:  folds = ceil(K/R) ceil(M/C), cycles = folds (2R + C + N - 2) - 1
    counting="scalesim" adds SCALE-Sim's R + C words per output-stationary fold to C.
    """
    _check(m, k, n, rows, cols, dataflow)
    if counting not in COUNTINGS:
        raise ValueError(f"counting must be one of {COUNTINGS}, got {counting!r}")
    r, c = rows, cols
    if dataflow == "output-stationary":
        folds = ceil(m / r) * ceil(n / c)
        drain = folds * (r + c) if counting == "scalesim" else 0
        return ArrayCost(folds, folds * (r + c + k - 2) - 1, m * k * ceil(n / c), k * n * ceil(m / r),
                         m * n + drain)
    if dataflow == "weight-stationary":
        folds = ceil(k / r) * ceil(n / c)
        return ArrayCost(folds, folds * (2 * r + c + m - 2) - 1, m * k * ceil(n / c), k * n, m * n * ceil(k / r))
    folds = ceil(k / r) * ceil(m / c)
    return ArrayCost(folds, folds * (2 * r + c + n - 2) - 1, m * k, k * n * ceil(m / c), m * n * ceil(k / r))


@dataclass(frozen=True)
class Scratchpads:
    """Sizes of the three double-buffered scratchpads, bytes (SCALE-Sim's ifmap, filter and
    ofmap SRAMs): A lives in ifmap, B in filter, C in ofmap; half of each is active."""
    ifmap_bytes: int
    filter_bytes: int
    ofmap_bytes: int


@dataclass(frozen=True)
class Traffic:
    """Words moved per operand and level for one GEMM (multiply by the operand's bits / 8)."""
    cycles: int
    folds: int
    sram_reads_a: int
    sram_reads_b: int
    sram_writes_c: int        # outputs and partial sums written into the ofmap scratchpad
    sram_reads_c: int         # partial sums read back for accumulation
    dram_reads_a: int
    dram_reads_b: int
    dram_writes_c: int
    dram_reads_c: int         # partial sums fetched back from DRAM (C tile larger than its scratchpad)
    fits: tuple[bool, bool, bool]   # A, B whole and one C tile held by their scratchpad's active half


def _holds(words: int, nbytes: int, bits: float, counting: str) -> bool:
    """Does a scratchpad of nbytes hold `words` operand words in its active half?"""
    if counting == "scalesim":           # 1-byte words, 100 sets of floor(bytes / 100), 50 active
        per_set = nbytes // 100
        return per_set == 0 or words < 50 * per_set
    return words * bits <= nbytes * 8 / 2


def systolic_traffic(m: int, k: int, n: int, rows: int, cols: int, dataflow: str, pads: Scratchpads,
                     bits: tuple[float, float, float] = (8, 8, 8), distinct_a: int | None = None,
                     counting: str = "physical", im2col: Im2col | None = None) -> Traffic:
    """SRAM and DRAM words of A, B and C for one GEMM through per-operand scratchpads.

    Loop order as SCALE-Sim runs the folds: output stationary over column folds (outer) and row
    folds (inner); weight and input stationary over their column folds (outer) and the K folds
    (inner). A is fetched once when it fits its scratchpad, else once per column fold (its SRAM
    reads); B likewise, or, for output stationary, once per column tile when that K x C tile
    fits. distinct_a: distinct words of A (a convolution's input elements, fewer than M K);
    im2col: A as a convolution's im2col matrix (gives distinct_a, and the addresses SCALE-Sim's
    read window sees). counting="scalesim" replays an operand that does not fit through
    SCALE-Sim's read window (qsim.hardware.scalesim_replay).
    """
    arr = systolic_gemm(m, k, n, rows, cols, dataflow, counting)
    r, c = rows, cols
    if distinct_a is None:
        distinct_a = im2col.distinct if im2col is not None else m * k
    fit_a = _holds(distinct_a, pads.ifmap_bytes, bits[0], counting)
    fit_b = _holds(k * n, pads.filter_bytes, bits[1], counting)
    kf = ceil(k / r)
    psum_folds = 1 if dataflow == "output-stationary" else kf
    # a C tile accumulated over the K folds: M x C (weight stationary), N x C (input stationary)
    c_tile = m * min(n, c) if dataflow == "weight-stationary" else n * min(m, c)
    fit_c = dataflow == "output-stationary" or _holds(c_tile, pads.ofmap_bytes, bits[2], counting)
    dram_a = distinct_a if fit_a else arr.words_a
    if dataflow == "output-stationary" and not fit_b:
        fit_tile = _holds(k * min(n, c), pads.filter_bytes, bits[1], counting)
        dram_b = k * n if fit_tile else arr.words_b
    else:
        dram_b = k * n if fit_b else arr.words_b
    if counting == "scalesim":
        if not fit_a:
            dram_a = scalesim_dram_reads(m, k, n, r, c, dataflow, "a", pads.ifmap_bytes, arr.words_a, im2col)
        if not fit_b:
            dram_b = scalesim_dram_reads(m, k, n, r, c, dataflow, "b", pads.filter_bytes, arr.words_b)
        writes = m * n * psum_folds
        drain_half = pads.ofmap_bytes - ceil(pads.ofmap_bytes / 2)
        padding = (c - (drain_half + 1) % c) % c if writes > drain_half else 0
        return Traffic(arr.cycles, arr.folds, arr.words_a, arr.words_b, arr.words_c, 0,
                       dram_a, dram_b, writes + padding, 0, (fit_a, fit_b, fit_c))
    psum_reads = m * n * (psum_folds - 1)
    spilled = 0 if fit_c else psum_reads
    return Traffic(arr.cycles, arr.folds, arr.words_a, arr.words_b, arr.words_c, psum_reads,
                   dram_a, dram_b, m * n + spilled, spilled, (fit_a, fit_b, fit_c))


LOOP_ORDERS = ("mnk", "nmk", "mkn", "kmn", "nkm", "knm")   # DRAM tile loops, outermost first
_USES = {"a": "mk", "b": "kn", "c": "mn"}                    # the dimensions each operand's tile spans


@dataclass(frozen=True)
class Tiling:
    """A DRAM-level tiling: the scratchpads hold an M x K tile of A, a K x N tile of B and an
    M x N tile of C (its partial sums) between refills; the tile loops run in `order`
    (outermost first). The array runs each tile as a GEMM of its own."""
    m: int
    k: int
    n: int
    order: str = "nmk"


def _refetches(order: str, trips: dict[str, int], uses: str) -> int:
    """How often an operand's whole tile set crosses DRAM: its tile stays in its scratchpad only
    while loops over dimensions it does not span run inside its innermost own loop, so every
    outer loop it does not span multiplies its traffic."""
    innermost = max(order.index(d) for d in uses)
    count = 1
    for d in order[:innermost]:
        if d not in uses:
            count *= trips[d]
    return count


def tile_fits(tiling: Tiling, pads: Scratchpads, bits: tuple[float, float, float]) -> tuple[bool, bool, bool]:
    """Does each operand's tile fit its scratchpad's active half (A, B, C)?"""
    return (tiling.m * tiling.k * bits[0] <= pads.ifmap_bytes * 8 / 2,
            tiling.k * tiling.n * bits[1] <= pads.filter_bytes * 8 / 2,
            tiling.m * tiling.n * bits[2] <= pads.ofmap_bytes * 8 / 2)


def tiled_traffic(m: int, k: int, n: int, rows: int, cols: int, dataflow: str, pads: Scratchpads,
                  tiling: Tiling, bits: tuple[float, float, float] = (8, 8, 8)) -> Traffic:
    """SRAM and DRAM words of one GEMM run tile by tile (physical counting).

    Each tile is a GEMM of its own on the array (systolic_gemm; its partial sums stay on chip,
    as its C tile fits). DRAM: each operand's tiles are fetched _refetches times (A: M K words
    per fetch of the whole set, B: K N); C's tiles are written once per visit and, from the
    second visit on (K split across tiles with the K loop outside an M or N loop), read back to
    accumulate: writes M N v, reads M N (v - 1). A tile that does not fit raises ValueError."""
    _check(m, k, n, rows, cols, dataflow)
    if tiling.order not in LOOP_ORDERS:
        raise ValueError(f"loop order must be one of {LOOP_ORDERS}, got {tiling.order!r}")
    for name, v, full in (("M", tiling.m, m), ("K", tiling.k, k), ("N", tiling.n, n)):
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= full:
            raise ValueError(f"tile {name} must be an integer in 1..{full}, got {v!r}")
    fits = tile_fits(tiling, pads, bits)
    if not all(fits):
        which = ", ".join(op for op, ok in zip(("A", "B", "C"), fits) if not ok)
        raise ValueError(f"tile {tiling.m}x{tiling.k}x{tiling.n}: {which} does not fit its scratchpad's active half")
    trips = {"m": ceil(m / tiling.m), "k": ceil(k / tiling.k), "n": ceil(n / tiling.n)}
    # tiles come in at most 2 x 2 x 2 shapes: full, and the remainder at each edge
    extents = {}
    for d, full, t in (("m", m, tiling.m), ("k", k, tiling.k), ("n", n, tiling.n)):
        extents[d] = [(t, full // t)] + ([(full % t, 1)] if full % t else [])
    cycles = folds = sa = sb = sc = psum = 0
    for tm, cm in extents["m"]:
        for tk, ck in extents["k"]:
            for tn, cn in extents["n"]:
                count = cm * ck * cn
                t = systolic_gemm(tm, tk, tn, rows, cols, dataflow)
                kf = 1 if dataflow == "output-stationary" else ceil(tk / rows)
                cycles += count * t.cycles
                folds += count * t.folds
                sa, sb, sc = sa + count * t.words_a, sb + count * t.words_b, sc + count * t.words_c
                psum += count * tm * tn * (kf - 1)
    visits = _refetches(tiling.order, trips, _USES["c"])
    psum += m * n * (trips["k"] - 1)                  # accumulating across K tiles reads the partial sum
    return Traffic(cycles, folds, sa, sb, sc, psum,
                   m * k * _refetches(tiling.order, trips, _USES["a"]),
                   k * n * _refetches(tiling.order, trips, _USES["b"]),
                   m * n * visits, m * n * (visits - 1), fits)


def candidate_tilings(m: int, k: int, n: int, rows: int, cols: int, pads: Scratchpads,
                      bits: tuple[float, float, float], per_dim: int = 5) -> list[Tiling]:
    """The mapper's search space: per dimension the whole extent and the largest multiples of
    the array's edge (R for M and K, C for N) by powers of two below it, `per_dim` at most, the
    largest first; every loop order; only tilings whose three tiles fit their scratchpads."""
    def sizes(full: int, edge: int) -> list[int]:
        out, t = [full], edge
        while t < full:
            t *= 2
        t //= 2
        while t >= edge and len(out) < per_dim:
            out.append(t)
            t //= 2
        return out
    out = []
    for tm in sizes(m, rows):
        for tk in sizes(k, rows):
            for tn in sizes(n, cols):
                tiling = Tiling(tm, tk, tn)
                if not all(tile_fits(tiling, pads, bits)):
                    continue
                trips = {"m": ceil(m / tm), "k": ceil(k / tk), "n": ceil(n / tn)}
                seen = set()
                for order in LOOP_ORDERS:        # loops of one trip do not tell orders apart
                    key = "".join(d for d in order if trips[d] > 1)
                    if key not in seen:
                        seen.add(key)
                        out.append(Tiling(tm, tk, tn, order))
    return out


def roofline_seconds(cycles: int, clock_hz: float, bytes_by_level: dict[str, float],
                     bandwidth_by_level: dict[str, float]) -> tuple[float, str]:
    """time = max(compute cycles / clock, bytes / bandwidth at each level), and which bound."""
    if clock_hz <= 0:
        raise ValueError("clock_hz must be > 0")
    bounds = {"compute": cycles / clock_hz}
    for level, nbytes in bytes_by_level.items():
        bw = bandwidth_by_level.get(level)
        if bw is None or bw <= 0:
            raise ValueError(f"memory level {level!r} needs a bandwidth > 0")
        bounds[level] = nbytes / bw
    active = max(bounds, key=bounds.get)
    return bounds[active], active


def overlapped_seconds(cycles: int, folds: int, clock_hz: float, reads_by_level: dict[str, float],
                       writes_by_level: dict[str, float], bandwidth_by_level: dict[str, float]) -> tuple[float, str]:
    """Time of a GEMM whose memory traffic is double-buffered against compute, fold by fold.

    Each fold computes for c = cycles / folds / clock while the next fold's operands are read
    and the previous fold's results written, every level at once: the fold takes max(c, m),
    m = the slowest level's (reads + writes) / folds / bandwidth. The first fold's reads
    (fill, r) and the last fold's writes (drain, w) overlap nothing:
        time = r + (folds - 1) max(c, m) + c + w.
    One fold: r + c + w (nothing overlaps); many: about folds x max(c, m), the roofline.
    The bound is what limits the overlapped folds: "compute" when c >= m, else that level."""
    if clock_hz <= 0:
        raise ValueError("clock_hz must be > 0")
    for level in (*reads_by_level, *writes_by_level):
        if bandwidth_by_level.get(level, 0) <= 0:
            raise ValueError(f"memory level {level!r} needs a bandwidth > 0")
    levels = {**reads_by_level, **writes_by_level}
    per_fold = {lv: (reads_by_level.get(lv, 0.0) + writes_by_level.get(lv, 0.0)) / folds / bandwidth_by_level[lv]
                for lv in levels}
    fill = max((v / folds / bandwidth_by_level[lv] for lv, v in reads_by_level.items()), default=0.0)
    drain = max((v / folds / bandwidth_by_level[lv] for lv, v in writes_by_level.items()), default=0.0)
    compute = cycles / folds / clock_hz
    slowest = max(per_fold, key=per_fold.get, default=None)
    memory = per_fold.get(slowest, 0.0)
    bound = "compute" if compute >= memory else slowest
    return fill + (folds - 1) * max(compute, memory) + compute + drain, bound


@dataclass(frozen=True)
class GemmCostInputs:
    """What the cost model charges for a GEMM, as the plan (qsim.plan) resolved it."""
    bits: tuple[float, float, float]      # storage bits per element of A, B, C, block scales included
    mac_pj: float                         # one MAC (before calibration) with the resolved accumulator


@dataclass(frozen=True)
class LayerCost:
    macs: int
    cycles: int
    seconds: float
    bound: str                        # "compute" or the memory level that limits
    utilization: float                # MACs / (cycles * rows * cols)
    bytes_by_level: dict
    energy_pj: dict                   # "mac" and one term per memory level
    traffic: Traffic | None = None    # GEMMs: words per operand at the scratchpads and DRAM
    dataflow: str = ""                # GEMMs: the dataflow the cost was taken for
    tiling: Tiling | None = None      # GEMMs: the DRAM-level tiling (None: untiled, SCALE-Sim's loop)

    @property
    def energy_total_pj(self) -> float:
        return sum(self.energy_pj.values())


class CostError(ValueError):
    """A layer that the described memories cannot run; the message names the key."""


def _check_tiles(hw, rows: int, cols: int, bits) -> Scratchpads:
    """The on-chip scratchpads, each checked to hold one array edge of its operand in its active
    half (A: R words, B and C: C words), the smallest tile a fold streams."""
    pads = Scratchpads(*hw.memory[0].operand_bytes)
    key = "scratchpads" if hw.memory[0].scratchpads else "size_bytes"
    for name, nbytes, words, b in (("ifmap_bytes", pads.ifmap_bytes, rows, bits[0]),
                                   ("filter_bytes", pads.filter_bytes, cols, bits[1]),
                                   ("ofmap_bytes", pads.ofmap_bytes, cols, bits[2])):
        if words * b > nbytes * 8 / 2:
            where = f"memory[0].scratchpads.{name}" if key == "scratchpads" else "memory[0].size_bytes"
            raise CostError(f"{hw.name}: {where}: {nbytes} bytes cannot hold one tile ({words} words of "
                            f"{b:g} bits in its active half) of a {rows}x{cols} array")
    return pads


def gemm_layer_cost(hw, m: int, k: int, n: int, inputs: GemmCostInputs, dataflow: str | None = None,
                    distinct_a: int | None = None, tiling: Tiling | None = None) -> LayerCost:
    """Cost of one GEMM (A: M x K activations, B: K x N weights, C: M x N) on `hw`.

    The array's scratchpad traffic (systolic_traffic, in words) is scaled by each operand's bits
    and charged to the first memory level, its DRAM traffic to the second; each farther level
    sees every operand once when it fits half of the nearer level, else the nearer level's
    traffic. Time: the folds double-buffered against the traffic (overlapped_seconds). Energy:
    MACs x inputs.mac_pj x calibration, plus bytes x pJ/byte at each level.
    `inputs` come from the GEMM's plan (qsim.plan.plan_gemm(...).cost); dataflow: another
    than the array's (the mapper's choice); tiling: a DRAM-level tiling (tiled_traffic) instead
    of the untiled loop (systolic_traffic).
    """
    arr = hw.array
    dataflow = dataflow or arr.dataflow
    bits = inputs.bits
    pads = _check_tiles(hw, arr.rows, arr.cols, bits)
    if tiling is None:
        t = systolic_traffic(m, k, n, arr.rows, arr.cols, dataflow, pads, bits, distinct_a)
    else:
        t = tiled_traffic(m, k, n, arr.rows, arr.cols, dataflow, pads, tiling, bits)
    near_reads = (t.sram_reads_a * bits[0] + t.sram_reads_b * bits[1] + t.sram_reads_c * bits[2]) / 8
    far_reads = (t.dram_reads_a * bits[0] + t.dram_reads_b * bits[1] + t.dram_reads_c * bits[2]) / 8
    sizes = ((distinct_a or m * k) * bits[0] / 8, k * n * bits[1] / 8, m * n * bits[2] / 8)
    reads, writes = {}, {}
    for i, level in enumerate(hw.memory):
        if i == 0:
            r, w = near_reads, t.sram_writes_c * bits[2] / 8
        elif i == 1:
            r, w = far_reads, t.dram_writes_c * bits[2] / 8
        elif all(sz <= hw.memory[i - 1].size_bytes / 2 for sz in sizes):
            r, w = sizes[0] + sizes[1], sizes[2]          # each operand once
        # else: the nearer level's traffic passes through (r, w as they were)
        reads[level.name], writes[level.name] = r, w
    bytes_by_level = {lv: reads[lv] + writes[lv] for lv in reads}
    seconds, bound = overlapped_seconds(t.cycles, t.folds, arr.clock_hz, reads, writes,
                                        {lv.name: lv.bandwidth_bytes_per_s for lv in hw.memory})
    macs = m * k * n
    energy = {"mac": macs * inputs.mac_pj * hw.energy.calibration}
    for level in hw.memory:
        energy[level.name] = bytes_by_level[level.name] * level.energy_pj_per_byte
    return LayerCost(macs, t.cycles, seconds, bound, macs / (t.cycles * arr.rows * arr.cols),
                     bytes_by_level, energy, t, dataflow, tiling)


def fold_tile(m: int, k: int, n: int, rows: int, cols: int, dataflow: str) -> tuple[int, int, int]:
    """The GEMM tile one fold computes (M, K, N extents): output stationary holds an R x C block
    of C over all of K; weight stationary an R x C block of B streamed by all M rows of A; input
    stationary an R x C block of A (K x M) streamed by all N columns of B."""
    if dataflow == "output-stationary":
        return min(m, rows), k, min(n, cols)
    if dataflow == "weight-stationary":
        return m, min(k, rows), min(n, cols)
    return min(m, cols), min(k, rows), n


def mapped_gemm_cost(hw, m: int, k: int, n: int, inputs: GemmCostInputs, distinct_a: int | None = None,
                     mapper: str | None = None) -> LayerCost:
    """gemm_layer_cost with the dataflow and tiling the mapper (hw.array.mapper, or `mapper`)
    chooses: the array's own dataflow, untiled ("fixed"), or over the three dataflows x (untiled
    and candidate_tilings) the one of least energy ("energy", ties to the faster) or least time
    ("latency", ties to the cheaper); ties left to the untiled, then to the earlier candidate."""
    mapper = mapper or hw.array.mapper
    if mapper not in MAPPERS:
        raise ValueError(f"mapper must be one of {MAPPERS}, got {mapper!r}")
    if mapper == "fixed":
        return gemm_layer_cost(hw, m, k, n, inputs, None, distinct_a)
    pads = _check_tiles(hw, hw.array.rows, hw.array.cols, inputs.bits)
    tilings = [None, *candidate_tilings(m, k, n, hw.array.rows, hw.array.cols, pads, inputs.bits)]
    costs = [gemm_layer_cost(hw, m, k, n, inputs, df, distinct_a, tiling) for df in DATAFLOWS for tiling in tilings]
    if mapper == "energy":
        return min(costs, key=lambda c: (c.energy_total_pj, c.seconds, c.tiling is not None))
    return min(costs, key=lambda c: (c.seconds, c.energy_total_pj, c.tiling is not None))


def vector_layer_cost(hw, elements_read: int, elements_written: int, fmt: str) -> LayerCost:
    """Cost of an elementwise or reduction operation on the vector unit, modelled as one lane
    per array column, one element per lane per cycle: cycles = ceil(max(read, written) / cols).
    Operands and results cross the first memory level in `fmt`; no MAC energy."""
    lanes = hw.array.cols
    cycles = ceil(max(elements_read, elements_written) / lanes)
    near = hw.memory[0]
    from ..formats import format as get_format
    nbytes = (elements_read + elements_written) * get_format(fmt).storage_bits / 8
    seconds, bound = roofline_seconds(cycles, hw.array.clock_hz, {near.name: nbytes},
                                      {near.name: near.bandwidth_bytes_per_s})
    energy = {"mac": 0.0, **{lv.name: 0.0 for lv in hw.memory}, near.name: nbytes * near.energy_pj_per_byte}
    return LayerCost(0, cycles, seconds, bound, 0.0, {lv.name: nbytes if lv is near else 0.0 for lv in hw.memory},
                     energy)
