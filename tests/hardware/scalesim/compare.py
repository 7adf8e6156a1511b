"""qsim's counts next to SCALE-Sim's for one reference run: each field equal, or the difference
named by a SCALE-Sim counting quirk (qsim.hardware.cost.SCALESIM_QUIRKS) and held to its bounds.

    python tests/hardware/scalesim/compare.py      # the agreement table over reference.jsonl
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

from qsim.hardware.cost import SCALESIM_QUIRKS, Scratchpads, systolic_traffic
from qsim.hardware.scalesim_replay import Im2col

DATAFLOW = {"os": "output-stationary", "ws": "weight-stationary", "is": "input-stationary"}
FIELDS = ("compute_cycles", "sram_reads_a", "sram_reads_b", "sram_writes_c",
          "dram_reads_a", "dram_reads_b", "dram_writes_c")


def gemm_of(run: dict) -> tuple[int, int, int, Im2col | None]:
    """M, K, N and, for a convolution, A's im2col layout, as SCALE-Sim lays the layer out
    (A = ifmap, B = filter)."""
    if run["kind"] == "gemm":
        return run["M"], run["K"], run["N"], None
    h, w, r, s, c, f, st = (run[x] for x in ("H", "W", "R", "S", "C", "F", "stride"))
    conv = Im2col(h, w, r, s, c, st)
    ho, wo = conv.out_hw
    return ho * wo, r * s * c, f, conv


def qsim_counts(run: dict, counting: str = "scalesim") -> dict:
    m, k, n, conv = gemm_of(run)
    distinct_a = conv.distinct if conv is not None else m * k
    pads = Scratchpads(*(kb * 1024 for kb in run["sram_kb"]))
    t = systolic_traffic(m, k, n, run["rows"], run["cols"], DATAFLOW[run["dataflow"]], pads,
                         (8, 8, 8), None, counting, conv)
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
    """The quirk that explains a difference under counting="scalesim": none left, every quirk in
    SCALESIM_QUIRKS is reproduced, so any difference is a failure."""
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
