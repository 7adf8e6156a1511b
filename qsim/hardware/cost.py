"""Throughput and traffic of a GEMM on a systolic array (SCALE-Sim v3 closed forms) and the
roofline bound by memory. See docs/design/costmodel.md.

GEMM A (M x K) times B (K x N) on an R x C array. Traffic is counted in words (one element
of the operand); the caller scales by each operand's bits (plus MX scale bytes).
"""

from __future__ import annotations

from dataclasses import dataclass
from math import ceil

DATAFLOWS = ("output-stationary", "weight-stationary", "input-stationary")


@dataclass(frozen=True)
class ArrayCost:
    folds: int
    cycles: int
    words_a: int          # SRAM reads of A
    words_b: int          # SRAM reads of B
    words_c: int          # SRAM writes (and partial-sum re-reads) of C


def _check(m: int, k: int, n: int, rows: int, cols: int, dataflow: str) -> None:
    for name, v in (("M", m), ("K", k), ("N", n), ("rows", rows), ("cols", cols)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    if dataflow not in DATAFLOWS:
        raise ValueError(f"dataflow must be one of {DATAFLOWS}, got {dataflow!r}")


def systolic_gemm(m: int, k: int, n: int, rows: int, cols: int, dataflow: str) -> ArrayCost:
    """Folds, compute cycles and SRAM traffic of one GEMM.

    output stationary: folds = ceil(M/R) ceil(N/C), cycles = folds (R + C + K - 2) - 1
    weight stationary: folds = ceil(K/R) ceil(N/C), cycles = folds (2R + C + M - 2) - 1
    input stationary:  folds = ceil(K/R) ceil(M/C), cycles = folds (2R + C + N - 2) - 1
    """
    _check(m, k, n, rows, cols, dataflow)
    r, c = rows, cols
    if dataflow == "output-stationary":
        folds = ceil(m / r) * ceil(n / c)
        return ArrayCost(folds, folds * (r + c + k - 2) - 1, m * k * ceil(n / c), k * n * ceil(m / r), m * n)
    if dataflow == "weight-stationary":
        folds = ceil(k / r) * ceil(n / c)
        return ArrayCost(folds, folds * (2 * r + c + m - 2) - 1, m * k * ceil(n / c), k * n, m * n * ceil(k / r))
    folds = ceil(k / r) * ceil(m / c)
    return ArrayCost(folds, folds * (2 * r + c + n - 2) - 1, m * k, k * n * ceil(m / c), m * n * ceil(k / r))


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

    @property
    def energy_total_pj(self) -> float:
        return sum(self.energy_pj.values())


def gemm_layer_cost(hw, m: int, k: int, n: int, inputs: GemmCostInputs) -> LayerCost:
    """Cost of one GEMM (A: M x K activations, B: K x N weights, C: M x N) on `hw`.

    The array's SRAM traffic (in words) is scaled by each operand's bits and charged to the
    first memory level; each farther level sees every operand once when it fits half of the
    nearer level (double buffering), else the nearer level's full traffic. Energy: MACs x
    inputs.mac_pj x calibration, plus bytes x pJ/byte at each level. `inputs` come from the
    GEMM's plan (qsim.plan.plan_gemm(...).cost).
    """
    arr = hw.array
    c = systolic_gemm(m, k, n, arr.rows, arr.cols, arr.dataflow)
    bits = inputs.bits
    near = (c.words_a * bits[0] + c.words_b * bits[1] + c.words_c * bits[2]) / 8
    sizes = (m * k * bits[0] / 8, k * n * bits[1] / 8, m * n * bits[2] / 8)
    bytes_by_level = {}
    traffic = near
    for i, level in enumerate(hw.memory):
        if i > 0:
            nearer = hw.memory[i - 1].size_bytes / 2
            traffic = sum(sizes) if all(s <= nearer for s in sizes) else traffic
        bytes_by_level[level.name] = traffic
    seconds, bound = roofline_seconds(c.cycles, arr.clock_hz, bytes_by_level,
                                      {lv.name: lv.bandwidth_bytes_per_s for lv in hw.memory})
    macs = m * k * n
    energy = {"mac": macs * inputs.mac_pj * hw.energy.calibration}
    for level in hw.memory:
        energy[level.name] = bytes_by_level[level.name] * level.energy_pj_per_byte
    return LayerCost(macs, c.cycles, seconds, bound, macs / (c.cycles * arr.rows * arr.cols),
                     bytes_by_level, energy)


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
