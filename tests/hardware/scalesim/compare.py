"""qsim's counts next to SCALE-Sim's for one reference run: each field equal, or the difference
named by a SCALE-Sim counting quirk (qsim.hardware.cost.SCALESIM_QUIRKS) and held to its bounds.

    python tests/hardware/scalesim/compare.py      # the agreement table over reference.jsonl
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

from qsim.hardware.cost import SCALESIM_QUIRKS, Scratchpads, systolic_traffic

DATAFLOW = {"os": "output-stationary", "ws": "weight-stationary", "is": "input-stationary"}
FIELDS = ("compute_cycles", "sram_reads_a", "sram_reads_b", "sram_writes_c",
          "dram_reads_a", "dram_reads_b", "dram_writes_c")


def gemm_of(run: dict) -> tuple[int, int, int, int]:
    """M, K, N and the distinct words of A, as SCALE-Sim lays the layer out (A = ifmap, B = filter)."""
    if run["kind"] == "gemm":
        return run["M"], run["K"], run["N"], run["M"] * run["K"]
    h, w, r, s, c, f, st = (run[x] for x in ("H", "W", "R", "S", "C", "F", "stride"))
    ho, wo = (h - r) // st + 1, (w - s) // st + 1
    rows_touched = (ho - 1) * st + r if st <= r else ho * r
    cols_touched = (wo - 1) * st + s if st <= s else wo * s
    return ho * wo, r * s * c, f, rows_touched * cols_touched * c


def qsim_counts(run: dict, counting: str = "scalesim") -> dict:
    m, k, n, distinct_a = gemm_of(run)
    pads = Scratchpads(*(kb * 1024 for kb in run["sram_kb"]))
    t = systolic_traffic(m, k, n, run["rows"], run["cols"], DATAFLOW[run["dataflow"]], pads,
                         (8, 8, 8), distinct_a, counting)
    return dict(compute_cycles=t.cycles, sram_reads_a=t.sram_reads_a, sram_reads_b=t.sram_reads_b,
                sram_writes_c=t.sram_writes_c, dram_reads_a=t.dram_reads_a, dram_reads_b=t.dram_reads_b,
                dram_writes_c=t.dram_writes_c, distinct_a=distinct_a, fits=t.fits, m=m, k=k, n=n)


def classify(run: dict) -> dict[str, str]:
    """field -> "equal" or the quirk that explains the difference; AssertionError if none does."""
    ours = qsim_counts(run)
    out = {}
    for field in FIELDS:
        theirs, mine = run[field], ours[field]
        if theirs == mine:
            out[field] = "equal"
            continue
        quirk = _quirk(field, run, ours, theirs)
        assert quirk is not None, f"{field}: qsim {mine} != scalesim {theirs} in {run}"
        out[field] = quirk
    return out


def _quirk(field: str, run: dict, ours: dict, theirs: int) -> str | None:
    m, k, n = ours["m"], ours["k"], ours["n"]
    if field in ("dram_reads_a", "dram_reads_b"):
        # read-window: an operand that does not fit is re-read somewhere between once per distinct
        # word and once per SRAM read
        distinct = ours["distinct_a"] if field == "dram_reads_a" else k * n
        sram = ours["sram_reads_a" if field == "dram_reads_a" else "sram_reads_b"]
        fits = ours["fits"][0 if field == "dram_reads_a" else 1]
        if not fits and distinct <= theirs <= sram:
            return "read-window"
        return None
    return None


def main() -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    from oracle import load_reference
    runs = load_reference()
    tally = {field: Counter() for field in FIELDS}
    whole = Counter()
    for run in runs:
        result = classify(run)
        for field, verdict in result.items():
            tally[field][verdict] += 1
        whole["all fields equal" if set(result.values()) == {"equal"} else
              "differ: " + ", ".join(sorted(set(result.values()) - {"equal"}))] += 1
    print(f"{len(runs)} SCALE-Sim runs\n")
    print("| field | equal | differ (quirk) |\n|---|---|---|")
    for field in FIELDS:
        differ = ", ".join(f"{count} {q}" for q, count in tally[field].items() if q != "equal") or "-"
        print(f"| {field} | {tally[field]['equal']} | {differ} |")
    print()
    for verdict, count in whole.most_common():
        print(f"{count:4d} runs: {verdict}")
    print("\nquirks:\n" + "\n".join(f"- {k}: {v}" for k, v in SCALESIM_QUIRKS.items()))


if __name__ == "__main__":
    main()
